package ports

import "fmt"

// Ring is the application's side of one ring.
//
// Head and cur are kept in the Ring and published to shared memory by the
// port's sync operations (package nmport: TxSync, RxSync, Poll); tail is
// refreshed by the same calls. Between syncs the indexes do not move, as in
// netmap. The syncs also mirror the indexes into netmap's view of the ring
// ([NetmapRing]), as netmap's kernel would. A Ring must not be used by
// several goroutines at once.
type Ring struct {
	hdr     *RingHeader
	nm      *NetmapRing
	slots   []Slot
	bufs    []byte
	num     uint32
	bufSize uint32
	numBufs uint32
	first   uint32
	maxLen  int
	dir     Direction
	id      int
	port    string

	head, cur, tail uint32 // application's view
	pubHead         uint32 // head as last published
	pubCur          uint32 // cur as last published
	resetAck        uint32 // last reset generation acknowledged
}

// Ring returns the application's view of ring i of direction d; port names
// the port in errors.
func (f *Iface) Ring(d Direction, i int, port string) *Ring {
	hdr := f.header(d, i)
	ri := f.ringIndex(d, i)
	r := &Ring{
		hdr:     hdr,
		nm:      f.netmapRing(d, i),
		slots:   f.slots(d, i),
		bufs:    f.bufs,
		num:     f.nums[ri],
		bufSize: f.bufSize,
		numBufs: f.numBufs,
		first:   f.first[ri],
		maxLen:  int(f.maxLen()),
		dir:     d,
		id:      i,
		port:    port,
	}
	r.head = clampIndex(hdr.head.Load(), r.num)
	r.cur = clampIndex(hdr.cur.Load(), r.num)
	r.tail = clampIndex(hdr.tail.Load(), r.num)
	if !inRange(r.head, r.cur, r.tail, r.num) {
		r.cur = r.head
	}
	r.pubHead, r.pubCur = r.head, r.cur
	r.resetAck = hdr.resetGen.Load()
	r.mirror()
	return r
}

// mirror copies the indexes into netmap's view of the ring.
func (r *Ring) mirror() {
	r.nm.head.Store(r.head)
	r.nm.cur.Store(r.cur)
	r.nm.tail.Store(r.tail)
}

// clampIndex keeps an index read from shared memory inside the ring.
func clampIndex(i, n uint32) uint32 {
	if i >= n {
		return 0
	}
	return i
}

// NumSlots returns the number of slots in the ring.
func (r *Ring) NumSlots() uint32 { return r.num }

// BufSize returns the size of each buffer.
func (r *Ring) BufSize() int { return int(r.bufSize) }

// NumBufs returns the number of buffers in the pool, reserved ones included:
// valid buffer indexes are [2, NumBufs).
func (r *Ring) NumBufs() uint32 { return r.numBufs }

// MaxLen returns the largest length a slot may carry.
func (r *Ring) MaxLen() int { return r.maxLen }

// Dir returns the ring's direction.
func (r *Ring) Dir() Direction { return r.dir }

// ID returns the ring's index within its direction.
func (r *Ring) ID() int { return r.id }

// Head returns the first slot owned by the application.
func (r *Ring) Head() uint32 { return r.head }

// Cur returns the wake-up point.
func (r *Ring) Cur() uint32 { return r.cur }

// Tail returns the first slot owned by the switch, as of the last sync.
func (r *Ring) Tail() uint32 { return r.tail }

// SetHead sets head; it takes effect at the next sync.
func (r *Ring) SetHead(i uint32) { r.head = i }

// SetCur sets cur; it takes effect at the next sync.
func (r *Ring) SetCur(i uint32) { r.cur = i }

// Next returns the slot after i (netmap's nm_ring_next).
func (r *Ring) Next(i uint32) uint32 { return next(i, r.num) }

// Prev returns the slot before i.
func (r *Ring) Prev(i uint32) uint32 { return prev(i, r.num) }

// Between reports whether x is a slot of the ring lying in the cyclic
// interval [a, b].
func (r *Ring) Between(a, x, b uint32) bool { return inRange(a, x, b, r.num) }

// Space returns the number of slots in [head, tail): free slots on a TX ring,
// received frames on an RX ring (netmap's nm_ring_space).
func (r *Ring) Space() uint32 { return dist(r.head, r.tail, r.num) }

// Empty reports whether [head, tail) is empty (netmap's nm_ring_empty).
func (r *Ring) Empty() bool { return r.head == r.tail }

// Pending reports whether a TX ring has frames the other side has not taken
// yet (netmap's nm_tx_pending).
func (r *Ring) Pending() bool { return r.pubHead != r.head || next(r.tail, r.num) != r.head }

// Advance moves head and cur n slots forward: the usual way to hand n filled
// TX slots (or n consumed RX slots) back. n must not exceed Space.
func (r *Ring) Advance(n uint32) {
	r.head = advance(r.head, n, r.num)
	r.cur = r.head
}

// Slot returns slot i. Only slots in [head, tail) belong to the application.
func (r *Ring) Slot(i uint32) *Slot { return &r.slots[i] }

// Buf returns the whole buffer with index idx (netmap's NETMAP_BUF). An
// index outside the pool gives buffer 0, which is reserved and never handed
// out, as netmap's kernel does: a slot corrupted by someone else sharing the
// memory (a pipe peer) cannot make the application fault.
func (r *Ring) Buf(idx uint32) []byte {
	if idx >= r.numBufs {
		idx = 0
	}
	off := int(idx) * int(r.bufSize)
	return r.bufs[off : off+int(r.bufSize) : off+int(r.bufSize)]
}

// Packet returns the bytes slot i holds: its buffer cut to its length (at
// most the buffer size).
func (r *Ring) Packet(i uint32) []byte {
	s := &r.slots[i]
	return r.Buf(s.BufIdx)[:min(int(s.Len), int(r.bufSize))]
}

// Timestamp returns the time (CLOCK_REALTIME, ns) of the switch's last update
// of the ring (netmap's ring->ts, with nanosecond resolution).
func (r *Ring) Timestamp() int64 { return r.hdr.ts.Load() }

// Flags returns the ring flags (NR_*).
func (r *Ring) Flags() uint32 { return r.nm.flags.Load() }

// SetFlags sets the ring flags (NR_*), in netmap's view of the ring and in
// the control block.
func (r *Ring) SetFlags(f uint32) {
	r.nm.flags.Store(f)
	r.hdr.flags.Store(f)
}

// The methods below are for code implementing a sync (packages nmport and
// pipes), not for applications.

// Header returns the ring's shared header.
func (r *Ring) Header() *RingHeader { return r.hdr }

// PublishedHead returns head as last published.
func (r *Ring) PublishedHead() uint32 { return r.pubHead }

// CheckReset returns a *RingError if the switch reset the ring since the last
// sync, after restoring head and cur and acknowledging the reset.
func (r *Ring) CheckReset() error {
	gen := r.hdr.resetGen.Load()
	if gen == r.resetAck {
		return nil
	}
	h := r.hdr.resetHead.Load()
	e := &RingError{
		Port:   r.port,
		Dir:    r.dir,
		Ring:   r.id,
		Reason: ResetReason(r.hdr.resetWhy.Load()),
		Slot:   r.hdr.resetSlot.Load(),
		Value:  r.hdr.resetValue.Load(),
		Head:   h,
		Tail:   r.hdr.tail.Load(),
	}
	switch e.Reason {
	case ResetBadBufIdx:
		e.Limit = r.numBufs
	case ResetBadLen:
		e.Limit = uint32(r.maxLen)
	}
	h = clampIndex(h, r.num)
	r.head, r.cur, r.pubHead, r.pubCur = h, h, h, h
	r.hdr.cur.Store(h)
	r.hdr.head.Store(h)
	r.tail = clampIndex(e.Tail, r.num)
	r.resetAck = gen
	r.hdr.resetAck.Store(gen)
	r.mirror()
	return e
}

// ResetPending reports, without acknowledging it, whether the switch reset
// the ring since the last sync.
func (r *Ring) ResetPending() bool { return r.hdr.resetGen.Load() != r.resetAck }

// Prologue checks the application's own indexes before they are published,
// as netmap's sync prologue does: head in [published head, tail], cur in
// [head, tail].
func (r *Ring) Prologue() error {
	if !inRange(r.pubHead, r.head, r.tail, r.num) {
		return fmt.Errorf("%s %s ring %d: head %d not in [%d, %d]", r.port, r.dir, r.id, r.head, r.pubHead, r.tail)
	}
	if !inRange(r.head, r.cur, r.tail, r.num) {
		return fmt.Errorf("%s %s ring %d: cur %d not in [head %d, tail %d]", r.port, r.dir, r.id, r.cur, r.head, r.tail)
	}
	return nil
}

// Publish stores head and cur in shared memory if they changed, and reports
// whether head moved.
func (r *Ring) Publish() bool {
	if r.cur != r.pubCur {
		r.hdr.cur.Store(r.cur)
		r.nm.cur.Store(r.cur)
		r.pubCur = r.cur
	}
	if r.head == r.pubHead {
		return false
	}
	r.hdr.head.Store(r.head)
	r.nm.head.Store(r.head)
	r.pubHead = r.head
	return true
}

// UpdateTail sets the tail the application sees, as published by the other
// side (and checked by the caller), and mirrors it and the switch's
// timestamp into netmap's view of the ring.
func (r *Ring) UpdateTail(t uint32) {
	r.tail = t
	r.nm.tail.Store(t)
	ns := r.hdr.ts.Load()
	r.nm.tsSec.Store(ns / 1e9)
	r.nm.tsUsec.Store(ns % 1e9 / 1e3)
}

// Ready reports whether poll should return for this ring: cur != tail.
func (r *Ring) Ready() bool { return r.cur != r.tail }

// HomeBuf returns the buffer slot i was given at creation.
func (r *Ring) HomeBuf(i uint32) uint32 { return r.first + i }
