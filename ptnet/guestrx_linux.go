package ptnet

import (
	"runtime/debug"
	"time"

	"github.com/valeswitch/vale/internal/guard"
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
	for _, fi := range which {
		f := &b.Frames[fi]
		ok, err := p.putRx(q, f)
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
func (p *Port) putRx(q *queue, f *frame.Frame) (bool, error) {
	o := f.Offload
	if !o.IsZero() && !p.Offloads().Accepts(o) {
		o = frame.Offload{}
	}
	if done, err := q.putSimple(f, o); done || err != nil {
		return done, err
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
	putVnetHdr(q.hdr[:q.hdrLen], o, uint16(nchains))
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

// putSimple writes a frame of one fragment into the next available chain
// when that chain is a single buffer the frame fits in, as receive buffers
// usually are, without putRx's general walk (capacities first, then the
// copy). It reports false, having taken nothing, for any other case. The
// queue's lock is held.
func (q *queue) putSimple(f *frame.Frame, o frame.Offload) (bool, error) {
	if f.More != nil {
		return false, nil
	}
	c := q.vq.next
	ch, ok, err := q.vq.take(&c)
	if !ok || err != nil {
		return false, err
	}
	addr, buf, ok, err := q.vq.single(q.mem, ch, true)
	n := q.hdrLen + len(f.Data)
	if !ok || err != nil || len(buf) < n {
		return false, err
	}
	putVnetHdr(buf[:q.hdrLen], o, 1)
	copy(buf[q.hdrLen:], f.Data)
	q.vq.logWrite(addr, n)
	q.vq.putUsed(ch, uint32(n))
	q.vq.next = c
	return true, nil
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
	if err := q.vq.refresh(); err != nil {
		return len(which) // Deliver stops the queue
	}
	c := q.vq.next
	for n, fi := range which {
		k, err := q.chainsFor(q.hdrLen+b.Frames[fi].Len(), &c)
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
