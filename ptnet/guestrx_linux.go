package ptnet

import (
	"runtime/debug"
	"time"

	"github.com/valeswitch/vale/internal/guard"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

// Deliver writes frames into the driver's receive buffers of pair r.
func (p *Port) Deliver(r int, b *frame.Batch, which []uint16) (frames, bytes int, err error) {
	q := p.queues[2*r]
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.live() || !q.enabled {
		return 0, 0, nil
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
			frames, bytes = 0, 0
		}
	}()
	caps := p.Offloads()
	for frames < len(which) {
		k, n, err := q.putBurst(b, which[frames:], caps)
		frames, bytes = frames+k, bytes+n
		if err != nil {
			p.breakQueue(q, err)
			break
		}
		if frames == len(which) {
			break
		}
		// A frame the burst does not take: the general path.
		f := &b.Frames[which[frames]]
		ok, err := p.putRx(q, f, caps)
		if err != nil {
			p.breakQueue(q, err)
			break
		}
		if !ok {
			p.rxNoBuf.Add(uint64(len(which) - frames))
			break
		}
		frames++
		bytes += f.Len()
	}
	if frames > 0 {
		q.vq.publishUsed()
		if q.vq.needsSignal() {
			signal(q.call)
		}
	}
	return frames, bytes, nil
}

// putRx writes one frame, behind its header, into as many available
// chains as it needs (one without mergeable buffers). It reports false,
// having taken nothing, when the driver has not made room enough
// available. The queue's lock is held.
func (p *Port) putRx(q *queue, f *frame.Frame, caps frame.OffloadCaps) (bool, error) {
	o := f.Offload
	if !o.IsZero() && !caps.Accepts(o) {
		o = frame.Offload{}
	}
	// Find the chains: capacities first, nothing written yet.
	c := q.vq.next
	nchains, err := q.chainsFor(q.hdrLen+f.Len(), &c)
	if nchains == 0 && err == nil {
		// Look for buffers the driver added since the last look.
		if err := q.vq.refresh(); err != nil {
			return false, err
		}
		c = q.vq.next
		nchains, err = q.chainsFor(q.hdrLen+f.Len(), &c)
	}
	if nchains == 0 || err != nil {
		return false, err
	}
	// Write the header (what is left to do, and the chain count), then the
	// frame across the chains.
	frame.PutVnetHdr(q.hdr[:q.hdrLen], o, uint16(nchains))
	src := append(append(q.src[:0], q.hdr[:q.hdrLen], f.Data), f.More...)
	q.src = src[:0]
	si, so := 0, 0
	for _, ch := range q.rxChains[:nchains] {
		n := 0
		if _, err := q.vq.walk(q.mem, ch, true, 1<<30, func(addr uint64, buf []byte) {
			written := 0
			for len(buf) > 0 && si < len(src) {
				k := copy(buf, src[si][so:])
				buf = buf[k:]
				written += k
				if so += k; so == len(src[si]) {
					si, so = si+1, 0
				}
			}
			q.vq.logWrite(addr, written)
			n += written
		}); err != nil {
			return false, err
		}
		q.vq.putUsed(ch, uint32(n))
	}
	q.vq.next = c
	return true, nil
}

// rxBurst is the most frames putBurst finds buffers for at once when
// Room has not found them already.
const rxBurst = 32

// rxBuf is a receive buffer found for a frame: the single buffer of its
// chain, with its guest address, and where the chains go on after it.
type rxBuf struct {
	addr  uint64
	buf   []byte
	ch    chain
	after cursor
}

// rxPlan is what Room found for the frames it was asked about, for the
// Deliver that follows it (the switch holds its lock of the ring from one
// to the other): the buffers of the first frames that each fit a single
// buffer. It holds while the ring stays where it was (start) and the
// frames are the same.
type rxPlan struct {
	batch *frame.Batch
	first *uint16 // &which[0]
	start cursor
	bufs  []rxBuf
}

// putBurst writes the first frames of which that each fit, with their
// header, the single buffer of the next available chain (as receive
// buffers usually are, from Linux and DPDK alike), and stops at the first
// that does not (more fragments, a chain of several buffers, a small one,
// no chain available: putRx's general path takes it). The buffers are
// Room's when it found them, else found here up to rxBurst at a time; each
// frame's cache lines are asked for rxPrefetch frames ahead of its write.
// It returns the frames and bytes written. The queue's lock is held.
func (q *queue) putBurst(b *frame.Batch, which []uint16, caps frame.OffloadCaps) (frames, bytes int, err error) {
	bufs := q.takePlan(b, which)
	if bufs == nil {
		if bufs, err = q.findBuffers(q.burst[:0], b, which, q.vq.next, rxBurst); err != nil {
			return 0, 0, err
		}
	}
	bufs = bufs[:min(len(bufs), len(which))]
	for i := range min(len(bufs), rxPrefetch) {
		q.prefetchBuf(bufs[i], i)
	}
	for i, r := range bufs {
		if k := i + rxPrefetch; k < len(bufs) {
			q.prefetchBuf(bufs[k], rxPrefetch) // i entries used since the first
		}
		f := &b.Frames[which[i]]
		o := f.Offload
		if !o.IsZero() && !caps.Accepts(o) {
			o = frame.Offload{}
		}
		end := q.hdrLen + len(f.Data)
		frame.PutVnetHdr(r.buf[:q.hdrLen], o, 1)
		copy(r.buf[q.hdrLen:], f.Data)
		q.vq.logWrite(r.addr, end)
		q.vq.putUsed(r.ch, uint32(end))
		bytes += len(f.Data)
	}
	if len(bufs) > 0 {
		q.vq.next = bufs[len(bufs)-1].after
	}
	return len(bufs), bytes, nil
}

// rxPrefetch is how many frames ahead of the one it writes putBurst asks
// for cache lines: enough for their fetches to overlap, few enough that
// the lines stay in the L1 cache until written.
const rxPrefetch = 16

// prefetchBuf asks for the cache lines a frame will be written to, for
// writing: its buffer r (the header's line and the frame's last) and its
// used entry, ahead entries after the next one to fill.
func (q *queue) prefetchBuf(r rxBuf, ahead int) {
	vhostuser.PrefetchW(&r.buf[0], &r.buf[len(r.buf)-1])
	q.vq.prefetchUsed(uint16(ahead))
}

// takePlan returns (and forgets) the buffers Room found, if it found them
// for these frames at the ring's position now.
func (q *queue) takePlan(b *frame.Batch, which []uint16) []rxBuf {
	p := q.plan
	q.plan.batch = nil
	if p.batch != b || len(which) == 0 || p.first != &which[0] || p.start != q.vq.next || len(p.bufs) == 0 {
		return nil
	}
	return p.bufs
}

// findBuffers appends to dst the buffers, from cursor c on, of the first
// frames of which (up to max) that each fit the single buffer of the next
// chain (each cut to the frame and its header). The queue's lock is held.
func (q *queue) findBuffers(dst []rxBuf, b *frame.Batch, which []uint16, c cursor, max int) ([]rxBuf, error) {
	for len(dst) < len(which) && len(dst) < max {
		f := &b.Frames[which[len(dst)]]
		if f.More != nil {
			break
		}
		next := c
		ch, ok, err := q.vq.take(&next)
		if err != nil || !ok {
			return dst, err
		}
		addr, buf, ok, err := q.vq.single(q.mem, ch, true)
		if err != nil {
			return dst, err
		}
		end := q.hdrLen + len(f.Data)
		if !ok || len(buf) < end {
			break
		}
		dst = append(dst, rxBuf{addr: addr, buf: buf[:end], ch: ch, after: next})
		c = next
	}
	return dst, nil
}

// chainsFor finds the available chains from c on that a frame of need
// bytes with its header takes, notes them in q.rxChains, moves c past them
// and returns how many: 0 if the driver has not made room enough
// available. The queue's lock is held.
func (q *queue) chainsFor(need int, c *cursor) (int, error) {
	nchains, room := 0, 0
	for room < need {
		if nchains == maxRxChains || (!q.mrg && nchains == 1) {
			return 0, nil
		}
		ch, ok, err := q.vq.take(c)
		if !ok || err != nil {
			return 0, err
		}
		n, err := q.vq.walk(q.mem, ch, true, 1<<30, func(uint64, []byte) {})
		if err != nil {
			return 0, err
		}
		q.rxChains[nchains] = ch
		nchains++
		room += n
	}
	return nchains, nil
}

// Room tells how many of the frames which the driver's receive queue of
// pair r has buffers for now (see vale.RoomPort). A queue that is not
// served (no frontend, not started, stopped) has room for everything:
// Deliver drops what it is given, and nobody waits for a guest that is not
// there.
func (p *Port) Room(r int, b *frame.Batch, which []uint16) (n int) {
	q := p.queues[2*r]
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.live() || !q.enabled {
		return len(which)
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
			n = len(which)
		}
	}()
	if err := q.vq.refresh(); err != nil || len(which) == 0 {
		return len(which) // Deliver stops the queue
	}
	// The frames that fit single buffers (most): found once, for Deliver
	// too. The others: their chains counted.
	bufs, err := q.findBuffers(q.plan.bufs[:0], b, which, q.vq.next, len(which))
	if err != nil {
		return len(which)
	}
	q.plan = rxPlan{batch: b, first: &which[0], start: q.vq.next, bufs: bufs}
	c := q.vq.next
	if len(bufs) > 0 {
		c = bufs[len(bufs)-1].after
	}
	for n := len(bufs); n < len(which); n++ {
		k, err := q.chainsFor(q.hdrLen+b.Frames[which[n]].Len(), &c)
		if err != nil {
			return len(which) // Deliver stops the queue
		}
		if k == 0 {
			return n
		}
	}
	return len(which)
}

// WaitRoom asks the driver to kick when it makes more receive buffers
// available on the queue of pair r, and waits for that, or the deadline
// (see vale.RoomPort).
func (p *Port) WaitRoom(r int, deadline time.Time) {
	q := p.queues[2*r]
	more, ok := p.armRoom(q, true)
	if !ok || more {
		p.armRoom(q, false)
		return
	}
	timer := time.NewTimer(time.Until(deadline))
	select {
	case <-q.kicked:
	case <-q.changed:
	case <-p.stopCh:
	case <-timer.C:
	}
	timer.Stop()
	p.armRoom(q, false)
}

// armRoom enables (or disables again) the driver's kicks on a receive
// queue and, when enabling, reports whether buffers came meanwhile. ok is
// false for a queue that is not served.
func (p *Port) armRoom(q *queue, on bool) (more, ok bool) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.live() {
		return false, false
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
			more, ok = false, false
		}
	}()
	if !on {
		q.vq.disableKicks()
		return false, true
	}
	// Kick for buffers beyond those available now (too few for the frame
	// that waits: a packed ring's are found by walking them), then look
	// once more.
	c := q.vq.next
	if !q.vq.packed {
		c.idx = q.vq.availIdx()
	}
	for q.vq.packed {
		_, ok, err := q.vq.take(&c)
		if err != nil {
			return false, false
		}
		if !ok {
			break
		}
	}
	q.vq.enableKicksAt(c)
	return q.vq.availableAt(c), true
}
