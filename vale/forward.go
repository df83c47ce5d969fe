package vale

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"time"

	"github.com/valeswitch/vale/internal/offload"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/frame"
)

// maxFrames is the most frames one round can carry.
const maxFrames = frame.MaxBatch + frame.MaxFrags

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
	batch *frame.Batch

	dst     [maxFrames]uint16 // destination of each frame
	next    [maxFrames]uint16 // next frame with the same unicast destination
	groups  []group           // unicast destinations of the round
	groupOf []uint16          // by port index: 1 + position in groups, 0 if none
	flood   []uint16          // frames to flood, in order
	learns  []uint64          // source MACs to learn after the round

	// The deliveries of a round: one per destination port, and the frame
	// lists of those that need one of their own (reused from round to
	// round).
	plan   []delivery
	lists  [][]uint16 // a group's frames, by delivery
	merged [][]uint16 // a group's frames merged with the flooded ones, by delivery

	// blocked is the destination (and its RX ring) that had no room for
	// the rest of the last round, and until when it may take to make
	// some (ns since the epoch; 0: it was dropped to, and the worker only
	// yields to it): the worker waits for it.
	blocked      *attachment
	blockedRing  int
	blockedUntil int64

	// Completing offloads for ports that cannot take them: done lazily,
	// the first time a round needs it.
	completer *offload.Completer
	completed *frame.Batch // the frames one offloaded frame became
	round     uint64       // rounds forwarded
	doneFrame int          // the frame of round doneRound completed holds
	doneRound uint64
}

// delivery is what one destination gets in a round.
type delivery struct {
	a     *attachment
	ring  int      // its RX ring
	which []uint16 // the frames, in order
	// wait is how long the destination may hold its senders back to make
	// room (0: not at all, what does not fit is dropped); held says it is
	// held to its room this round (its ring locked by reserve).
	wait     time.Duration
	lossless bool
	held     bool
	stuck    bool // it had its wait and no room: dropped to this round
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
		batch:   frame.NewBatch(),
		groups:  make([]group, 0, 64),
		groupOf: make([]uint16, len(sw.ports)),
		flood:   make([]uint16, 0, maxFrames),
		learns:  make([]uint64, 0, 64),
	}
}

// mac48 packs a 6-byte MAC into an integer; bit 0 is the group (multicast)
// bit.
func mac48(b []byte) uint64 {
	_ = b[5]
	return uint64(binary.LittleEndian.Uint32(b)) | uint64(binary.LittleEndian.Uint16(b[4:]))<<32
}

// forward switches the frames of f.batch: one round. It returns how many
// frames (from the first) it took: all of them, unless a lossless
// destination had no room for some, in which case those and the frames
// after them are left to the source (and f.blocked says where the room
// lacked).
func (f *forwarder) forward() int {
	b := f.batch
	n := len(b.Frames)
	if n == 0 {
		return 0
	}
	sw, src := f.sw, f.src
	now := time.Now().UnixNano()
	b.Time = now
	f.round++
	txBytes, invalid, noRoute := f.lookup(sw.clock(now))

	taken := n
	sw.mu.RLock()
	if sw.ports[src.idx] == src {
		var flooded int
		taken, flooded = f.deliverAll(now)
		noRoute += flooded
		if mons := src.monitors.Load(); mons != nil && len(mons.tx) > 0 {
			copyTo(mons.tx, f.ring, b, identity[:taken], false)
		}
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
	if taken < n {
		// Count only what was taken: the rest comes again.
		txBytes, invalid, noRoute = f.recount(taken)
		src.counters.waits.Add(1)
	}
	c := &src.counters
	c.txPackets.Add(uint64(taken))
	c.txBytes.Add(uint64(txBytes))
	if invalid > 0 {
		c.dropInvalid.Add(uint64(invalid))
	}
	if noRoute > 0 {
		c.noRoute.Add(uint64(noRoute))
	}
	sw.rounds.Add(1)
	sw.frames.Add(uint64(taken))
	sw.batches[min(bits.Len(uint(taken)), BatchBuckets-1)].Add(1)
	return taken
}

// recount returns the counts of lookup for the first n frames of the
// round only.
func (f *forwarder) recount(n int) (txBytes, invalid, noRoute int) {
	for i := range n {
		fr := &f.batch.Frames[i]
		txBytes += fr.Len()
		switch {
		case len(fr.Data) < ethHeaderLen:
			invalid++
		case f.dst[i] == dstDrop:
			noRoute++
		}
	}
	return txBytes, invalid, noRoute
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

// deliverAll is pass 2: group the frames per destination (the flooded
// frames merged in order into every other port's list), hold each lossless
// destination to its room, and deliver. The caller holds sw.mu shared. It
// returns how many frames (from the first) the round took, and how many of
// those had no destination.
func (f *forwarder) deliverAll(now int64) (taken, noRoute int) {
	n := len(f.batch.Frames)
	if noRoute = f.planRound(n); noRoute > 0 {
		return n, noRoute
	}
	taken = n
	held := false
	for i := range f.plan {
		d := &f.plan[i]
		d.lossless = f.sw.losslessDst(d.a)
		d.wait, d.held, d.stuck = f.sw.waitOf(d.a, d.lossless), false, false
		held = held || d.wait > 0
	}
	if held {
		taken = f.reserve(now, n)
	}
	for i := range f.plan {
		d := &f.plan[i]
		which := d.which
		if taken < n {
			which = below(which, uint16(taken))
		}
		if len(which) > 0 {
			f.deliver(d, which)
		}
	}
	if held {
		f.unreserve()
	}
	return taken, 0
}

// planRound fills f.plan with the deliveries of the round. It returns the
// number of frames with nowhere to go when the source is alone on the
// switch.
func (f *forwarder) planRound(n int) (noRoute int) {
	sw, src := f.sw, f.src
	f.plan = f.plan[:0]
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
			f.add(sw.ports[gr.port], f.frames(gr, n))
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
		f.add(a, which)
	}
	return 0
}

// add plans the delivery of frames which to port a. Frames from ring r go
// to ring r modulo the destination's ring count.
func (f *forwarder) add(a *attachment, which []uint16) {
	ring := f.ring
	if ring >= a.nrx {
		ring %= a.nrx
	}
	f.plan = append(f.plan, delivery{a: a, ring: ring, which: which})
}

// scratch returns a frame list from pool for the delivery about to be
// added: its own, reused from round to round.
func (f *forwarder) scratch(pool *[][]uint16) []uint16 {
	i := len(f.plan)
	for len(*pool) <= i {
		*pool = append(*pool, make([]uint16, 0, maxFrames))
	}
	return (*pool)[i][:0]
}

// frames returns the frames of group gr, in order.
func (f *forwarder) frames(gr *group, n int) []uint16 {
	if gr.n == n {
		return identity[:n]
	}
	l := f.scratch(&f.lists)
	for i, k := gr.first, 0; k < gr.n; i, k = f.next[i], k+1 {
		l = append(l, i)
	}
	return l
}

// merge merges two ascending lists of frame indexes.
func (f *forwarder) merge(a, b []uint16) []uint16 {
	m := f.scratch(&f.merged)
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
	return m
}

// below returns the prefix of the ascending list which with frame indexes
// under n.
func below(which []uint16, n uint16) []uint16 {
	k := len(which)
	for k > 0 && which[k-1] >= n {
		k--
	}
	return which[:k]
}

// reserve holds the destinations of the round that may wait for room to
// their room: it takes their RX ring locks (in port index order, as every
// worker does), asks each how many of its frames fit, and returns the
// number of frames of the round all of them can take. A destination whose
// hold has lasted its allowance (see hold) is dropped to instead (stuck).
// The locks are held until unreserve.
func (f *forwarder) reserve(now int64, n int) int {
	slices.SortFunc(f.plan, func(x, y delivery) int { return int(x.a.idx) - int(y.a.idx) })
	taken := n
	healthy := false // some destination gets all its frames
	for i := range f.plan {
		d := &f.plan[i]
		if d.wait <= 0 {
			healthy = true
			continue
		}
		d.held = true
		d.a.rxLocks[d.ring].Lock()
		room := d.a.room.Room(d.ring, f.batch, d.which)
		h := &d.a.holds[d.ring]
		if room == len(d.which) || (d.lossless && room > 0) {
			h.release(now, d.wait, d.lossless) // room for everything, or lossless progress
		}
		if room == len(d.which) {
			healthy = true
			continue
		}
		until := h.hold(now, d.wait, d.lossless)
		if now >= until {
			d.stuck = true
			if f.blocked == nil {
				// It keeps dropping: rather than take more frames only to
				// drop them, the worker waits a little for its room.
				f.blocked, f.blockedRing, f.blockedUntil = d.a, d.ring, 0
			}
			continue
		}
		healthy = true // it takes what fits now, the rest later
		if cut := int(d.which[room]); cut < taken {
			taken = cut
			f.blocked, f.blockedRing, f.blockedUntil = d.a, d.ring, until
		}
	}
	if healthy && f.blocked != nil && f.blockedUntil == 0 {
		// Other destinations take the source's frames: a port that drops
		// does not slow them (the source is not starving a reader of
		// its own making).
		f.blocked = nil
	}
	return taken
}

// hold is how an RX ring keeps the senders to it waiting for room. A hold
// starts when a round finds the ring without room for all its frames and
// ends when the ring takes them all (a lossless one: anything). A lossless
// ring may hold its senders for its wait (the stuck timeout) without
// taking anything. A dropping one may hold them for its wait (drop_after)
// at a time, and for holdShare of the time overall: its credit, spent by
// its holds and refilled with time up to its wait. So a receiver off the
// CPU for a moment loses nothing, while one that stalls again and again,
// by accident or on purpose, cannot keep slowing its senders (and the
// other receivers of their floods): it is dropped to, as netmap does.
type hold struct {
	since  int64 // when the current hold began, 0 if none
	credit int64 // ns a dropping ring may still hold
	at     int64 // when credit was last refilled
}

// holdShare is the largest share of the time a dropping ring may keep its
// senders waiting, as 1/holdShare.
const holdShare = 2

// hold starts a hold or continues it, and returns until when it may last.
func (h *hold) hold(now int64, wait time.Duration, lossless bool) int64 {
	if h.since == 0 {
		h.since = now
	}
	if lossless {
		return h.since + int64(wait)
	}
	h.refill(now, wait)
	return h.since + h.credit
}

// release ends a hold; a dropping ring pays for it from its credit.
func (h *hold) release(now int64, wait time.Duration, lossless bool) {
	if h.since == 0 {
		return
	}
	if !lossless {
		h.refill(now, wait)
		h.credit = max(h.credit-(now-h.since), 0)
	}
	h.since = 0
}

// refill adds to the credit what time has earned since the last refill.
func (h *hold) refill(now int64, wait time.Duration) {
	if h.at == 0 {
		h.credit, h.at = int64(wait), now
		return
	}
	h.credit = min(h.credit+(now-h.at)/holdShare, int64(wait))
	h.at = now
}

// unreserve releases the locks reserve took.
func (f *forwarder) unreserve() {
	for i := range f.plan {
		if d := &f.plan[i]; d.held {
			d.a.rxLocks[d.ring].Unlock()
		}
	}
}

// waitRoom waits until the destination that had no room for the last
// round may have some, or its hold passes, or maxRoomWait (so that the
// worker sees its own port go). After a round that dropped frames for a
// destination that keeps dropping, and no other destination took them, it
// waits up to dropYield: time on the CPU the destination's reader may need,
// rather than frames taken from the source only to be dropped (receive
// livelock).
func (f *forwarder) waitRoom() {
	a, ring := f.blocked, f.blockedRing
	f.blocked = nil
	now := time.Now()
	deadline := now.Add(maxRoomWait)
	if f.blockedUntil == 0 {
		deadline = now.Add(dropYield)
	} else if end := time.Unix(0, f.blockedUntil); end.Before(deadline) {
		deadline = end
	}
	a.room.WaitRoom(ring, deadline)
}

// dropYield bounds the wait after a round that dropped frames.
const dropYield = 500 * time.Microsecond

// maxRoomWait is the longest a worker waits for room at once.
const maxRoomWait = 10 * time.Millisecond

// deliver hands the frames which of delivery d to its port and counts the
// outcome. Frames with offloads pending go as they are to a port that
// takes them, completed (checksummed, segmented) to any other.
func (f *forwarder) deliver(d *delivery, which []uint16) {
	b := f.batch
	if b.Offloads == 0 {
		f.deliverTo(d, b, which)
		return
	}
	var caps frame.OffloadCaps
	if op, ok := d.a.port.(OffloadPort); ok {
		caps = op.Offloads()
	}
	start := 0
	for i, fi := range which {
		fr := &b.Frames[fi]
		if fr.Offload.IsZero() || caps.Accepts(fr.Offload) {
			continue
		}
		if i > start {
			f.deliverTo(d, b, which[start:i])
		}
		start = i + 1
		if n := f.complete(int(fi)); n > 0 {
			f.deliverTo(d, f.completed, identity[:n])
		}
	}
	if start < len(which) {
		f.deliverTo(d, b, which[start:])
	}
}

// complete fills f.completed with the frames frame fi of the round becomes
// once its pending offloads are done, and returns how many; 0 if the
// offload does not describe the frame: it is dropped, and counted once as
// invalid at its source.
func (f *forwarder) complete(fi int) int {
	if f.completer == nil {
		f.completer = offload.NewCompleter()
		f.completed = frame.NewBatch()
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

// deliverTo hands frames which of b to delivery d's port and counts the
// outcome. The RX ring's lock is taken when the port has RX monitors (so
// that they see the port's order), unless reserve holds it already.
func (f *forwarder) deliverTo(d *delivery, b *frame.Batch, which []uint16) {
	a, ring := d.a, d.ring
	var (
		frames, bytes int
		err           error
	)
	if mons := a.monitors.Load(); mons != nil && len(mons.rx) > 0 {
		lk := &a.rxLocks[ring]
		if !d.held {
			lk.Lock()
		}
		frames, bytes, err = a.port.Deliver(ring, b, which)
		if err == nil && frames > 0 {
			copyTo(mons.rx, ring, b, which[:frames], true)
		}
		if !d.held {
			lk.Unlock()
		}
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
		if d.stuck && d.lossless {
			c.dropStuck.Add(uint64(lost))
		} else {
			c.dropFull.Add(uint64(lost))
		}
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
