package vale

import (
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/valeswitch/vale/internal/offload"
	"github.com/valeswitch/vale/ports"
)

// maxFrames is the most frames one round can carry.
const maxFrames = ports.MaxBatch + ports.MaxFrags

// Destinations of a frame besides a port index.
const (
	dstFlood = 0xffff // every port but the source
	dstDrop  = 0xfffe // nowhere
)

// ethHeaderLen is the shortest frame the switch forwards.
const ethHeaderLen = 14

// forwarder is the per-worker state of the forwarding engine: the batch and
// the scratch space of one round, allocated once so rounds never allocate.
type forwarder struct {
	sw    *Switch
	src   *attachment
	ring  int
	batch *ports.Batch

	dst     [maxFrames]uint16 // destination of each frame
	next    [maxFrames]uint16 // next frame with the same unicast destination
	groups  []group           // unicast destinations of the round
	groupOf []uint16          // by port index: 1 + position in groups, 0 if none
	flood   []uint16          // frames to flood, in order
	list    []uint16          // frames of one destination
	merged  []uint16          // list merged with flood
	learns  []uint64          // source MACs to learn after the round

	// Completing offloads for ports that cannot take them: done lazily,
	// the first time a round needs it.
	completer *offload.Completer
	completed *ports.Batch // the frames one offloaded frame became
	round     uint64       // rounds forwarded
	doneFrame int          // the frame of round doneRound completed holds
	doneRound uint64
}

// group is the list of frames of one round going to one port, linked
// through forwarder.next.
type group struct {
	port        uint16
	first, last uint16
	n           int
}

// identity is 0, 1, 2, ...: the list of a destination that gets every frame.
var identity = func() (a [maxFrames]uint16) {
	for i := range a {
		a[i] = uint16(i)
	}
	return a
}()

func newForwarder(sw *Switch, src *attachment, ring int) *forwarder {
	return &forwarder{
		sw:      sw,
		src:     src,
		ring:    ring,
		batch:   ports.NewBatch(),
		groups:  make([]group, 0, 64),
		groupOf: make([]uint16, len(sw.ports)),
		flood:   make([]uint16, 0, maxFrames),
		list:    make([]uint16, 0, maxFrames),
		merged:  make([]uint16, 0, maxFrames),
		learns:  make([]uint64, 0, 64),
	}
}

// mac48 packs a 6-byte MAC into an integer; bit 0 is the group (multicast)
// bit.
func mac48(b []byte) uint64 {
	_ = b[5]
	return uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint16(b[4:]))<<32
}

// forward switches the frames of f.batch: one round.
func (f *forwarder) forward() {
	b := f.batch
	n := len(b.Frames)
	if n == 0 {
		return
	}
	sw, src := f.sw, f.src
	now := time.Now().UnixNano()
	b.Time = now
	f.round++
	txBytes, invalid, noRoute := f.lookup(sw.clock(now))

	sw.mu.RLock()
	if sw.ports[src.idx] == src {
		if mons := src.monitors.Load(); mons != nil && len(mons.tx) > 0 {
			copyTo(mons.tx, f.ring, b, identity[:n], false)
		}
		noRoute += f.deliverAll()
	} else {
		noRoute += n // detached during the round
	}
	sw.mu.RUnlock()

	for _, g := range f.groups {
		f.groupOf[g.port] = 0
	}
	if len(f.learns) > 0 {
		f.learn(now)
	}
	c := &src.counters
	c.txPackets.Add(uint64(n))
	c.txBytes.Add(uint64(txBytes))
	if invalid > 0 {
		c.dropInvalid.Add(uint64(invalid))
	}
	if noRoute > 0 {
		c.noRoute.Add(uint64(noRoute))
	}
	sw.rounds.Add(1)
	sw.frames.Add(uint64(n))
	sw.batches[min(bits.Len(uint(n)), BatchBuckets-1)].Add(1)
}

// lookup is pass 1: learn sources and find the destination of every frame.
func (f *forwarder) lookup(clock uint32) (txBytes, invalid, noRoute int) {
	sw, src := f.sw, f.src
	macs := sw.macs
	const none = ^uint64(0)
	lastSrc, lastDst := none, none
	var lastPort uint16
	macs.mu.RLock()
	for i := range f.batch.Frames {
		fr := &f.batch.Frames[i]
		d := fr.Data
		txBytes += len(d)
		if fr.More != nil {
			txBytes += fr.Len() - len(d)
		}
		if len(d) < ethHeaderLen {
			f.dst[i] = dstDrop
			invalid++
			continue
		}
		if fr.Flags&ports.NS_NO_LEARN == 0 && d[6]&1 == 0 {
			if smac := mac48(d[6:]); smac != lastSrc {
				if !macs.refresh(smac, src.idx, clock) {
					f.learns = append(f.learns, smac)
				}
				lastSrc = smac
			}
		}
		dst := uint16(dstFlood)
		if d[0]&1 == 0 {
			if dmac := mac48(d); dmac == lastDst {
				dst = lastPort
			} else {
				if p, ok := macs.lookup(dmac); ok {
					dst = p
				}
				lastDst, lastPort = dmac, dst
			}
			if dst == src.idx {
				dst = dstDrop
				noRoute++
			}
		}
		f.dst[i] = dst
	}
	macs.mu.RUnlock()
	return txBytes, invalid, noRoute
}

// deliverAll is pass 2: group the frames per destination and deliver each
// group, the flooded frames merged in order into every other port's list. The
// caller holds sw.mu shared. It returns how many frames had no destination.
func (f *forwarder) deliverAll() (noRoute int) {
	sw, src := f.sw, f.src
	n := len(f.batch.Frames)
	f.groups = f.groups[:0]
	f.flood = f.flood[:0]
	for i := 0; i < n; i++ {
		d := f.dst[i]
		if d == dstDrop {
			continue
		}
		if d == dstFlood || sw.ports[d] == nil {
			// A stale table entry (port detached since) floods like an
			// unknown address.
			f.flood = append(f.flood, uint16(i))
			continue
		}
		if g := f.groupOf[d]; g != 0 {
			gr := &f.groups[g-1]
			f.next[gr.last] = uint16(i)
			gr.last = uint16(i)
			gr.n++
			continue
		}
		f.groups = append(f.groups, group{port: d, first: uint16(i), last: uint16(i), n: 1})
		f.groupOf[d] = uint16(len(f.groups))
	}
	if len(f.flood) == 0 {
		for gi := range f.groups {
			gr := &f.groups[gi]
			f.deliver(sw.ports[gr.port], f.frames(gr, n))
		}
		return 0
	}
	if len(sw.active) == 1 {
		return len(f.flood)
	}
	for _, a := range sw.active {
		if a == src {
			continue
		}
		which := f.flood
		if g := f.groupOf[a.idx]; g != 0 {
			which = f.merge(f.frames(&f.groups[g-1], n), f.flood)
		}
		f.deliver(a, which)
	}
	return 0
}

// frames returns the frames of group gr, in order.
func (f *forwarder) frames(gr *group, n int) []uint16 {
	if gr.n == n {
		return identity[:n]
	}
	l := f.list[:0]
	for i, k := gr.first, 0; k < gr.n; i, k = f.next[i], k+1 {
		l = append(l, i)
	}
	f.list = l
	return l
}

// merge merges two ascending lists of frame indexes.
func (f *forwarder) merge(a, b []uint16) []uint16 {
	m := f.merged[:0]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if a[i] < b[j] {
			m = append(m, a[i])
			i++
		} else {
			m = append(m, b[j])
			j++
		}
	}
	m = append(m, a[i:]...)
	m = append(m, b[j:]...)
	f.merged = m
	return m
}

// deliver hands the frames which to port a and counts the outcome. Frames
// from ring r go to ring r modulo the destination's ring count. Frames with
// offloads pending go as they are to a port that takes them, completed
// (checksummed, segmented) to any other.
func (f *forwarder) deliver(a *attachment, which []uint16) {
	ring := f.ring
	if ring >= a.nrx {
		ring %= a.nrx
	}
	b := f.batch
	if b.Offloads == 0 {
		f.deliverTo(a, ring, b, which)
		return
	}
	var caps ports.OffloadCaps
	if op, ok := a.port.(OffloadPort); ok {
		caps = op.Offloads()
	}
	start := 0
	for i, fi := range which {
		fr := &b.Frames[fi]
		if fr.Offload.IsZero() || caps.Accepts(fr.Offload) {
			continue
		}
		if i > start {
			f.deliverTo(a, ring, b, which[start:i])
		}
		start = i + 1
		if n := f.complete(int(fi)); n > 0 {
			f.deliverTo(a, ring, f.completed, identity[:n])
		}
	}
	if start < len(which) {
		f.deliverTo(a, ring, b, which[start:])
	}
}

// complete fills f.completed with the frames frame fi of the round becomes
// once its pending offloads are done, and returns how many; 0 if the
// offload does not describe the frame: it is dropped, and counted once as
// invalid at its source.
func (f *forwarder) complete(fi int) int {
	if f.completer == nil {
		f.completer = offload.NewCompleter()
		f.completed = ports.NewBatch()
	}
	if f.doneRound == f.round && f.doneFrame == fi {
		return len(f.completed.Frames)
	}
	f.completed.Reset()
	f.completed.Time = f.batch.Time
	f.doneRound = 0
	segs, err := f.completer.Complete(&f.batch.Frames[fi])
	if err != nil {
		f.src.counters.dropInvalid.Add(1)
		if f.src.logLimit.allow() {
			f.sw.log.Warn("dropped a frame whose offload cannot be done", "port", f.src.port.Name(), "error", err)
		}
		segs = nil
	}
	for _, s := range segs {
		f.completed.Add(s, 0)
	}
	f.doneFrame, f.doneRound = fi, f.round
	return len(segs)
}

// deliverTo hands frames which of b to RX ring ring of port a and counts
// the outcome.
func (f *forwarder) deliverTo(a *attachment, ring int, b *ports.Batch, which []uint16) {
	var (
		frames, bytes int
		err           error
	)
	if mons := a.monitors.Load(); mons != nil && len(mons.rx) > 0 {
		lk := &a.rxLocks[ring]
		lk.Lock()
		frames, bytes, err = a.port.Deliver(ring, b, which)
		if err == nil && frames > 0 {
			copyTo(mons.rx, ring, b, which[:frames], true)
		}
		lk.Unlock()
	} else {
		frames, bytes, err = a.port.Deliver(ring, b, which)
	}
	c := &a.counters
	if err != nil {
		c.resets.Add(1)
		if a.logLimit.allow() {
			f.sw.log.Warn("ring reset after a client violation", "port", a.port.Name(), "error", err)
		}
		frames, bytes = 0, 0
	}
	if frames > 0 {
		c.rxPackets.Add(uint64(frames))
		c.rxBytes.Add(uint64(bytes))
	}
	if lost := len(which) - frames; lost > 0 {
		c.dropFull.Add(uint64(lost))
	}
}

// learn records the round's new source addresses, unless the source port
// was detached meanwhile (its index may already belong to another port).
func (f *forwarder) learn(now int64) {
	sw := f.sw
	clock := sw.clock(now)
	sw.mu.RLock()
	if sw.ports[f.src.idx] == f.src {
		sw.macs.mu.Lock()
		for _, mac := range f.learns {
			sw.macs.learn(mac, f.src.idx, clock)
		}
		sw.macs.mu.Unlock()
	}
	sw.mu.RUnlock()
	f.learns = f.learns[:0]
}
