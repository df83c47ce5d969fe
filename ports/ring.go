package ports

import "fmt"

// Ring is the application's side of one ring of an open port.
//
// Head and cur are kept in the Ring and published to shared memory by
// [Port.TxSync], [Port.RxSync] and [Port.Poll]; tail is refreshed by the same
// calls. Between syncs the indexes do not move, as in netmap. A Ring must not
// be used by several goroutines at once.
type Ring struct {
	hdr     *ringHeader
	slots   []Slot
	bufs    []byte
	num     uint32
	bufSize uint32
	maxLen  int
	dir     Direction
	id      int
	port    string

	head, cur, tail uint32 // application's view
	pubHead         uint32 // head as last published
	pubCur          uint32 // cur as last published
	resetAck        uint32 // last reset generation acknowledged
	swTicket        uint32 // last sw_kick ticket answered
	kickFD          int    // eventfd waking the switch worker (TX rings), -1 if none
}

func newRing(r *region, i int, port string) *Ring {
	hdr := r.ringHeader(i)
	ring := &Ring{
		hdr:     hdr,
		slots:   r.slots(i),
		bufs:    r.bufs(),
		num:     hdr.NumSlots,
		bufSize: hdr.BufSize,
		maxLen:  r.layout.MaxFrameLen(),
		dir:     Direction(hdr.Dir),
		id:      int(hdr.RingID),
		port:    port,
		kickFD:  -1,
	}
	ring.head = hdr.head.Load()
	ring.cur = hdr.cur.Load()
	ring.tail = hdr.tail.Load()
	ring.pubHead, ring.pubCur = ring.head, ring.cur
	ring.resetAck = hdr.resetGen.Load()
	return ring
}

// NumSlots returns the number of slots in the ring.
func (r *Ring) NumSlots() uint32 { return r.num }

// BufSize returns the size of each buffer.
func (r *Ring) BufSize() int { return int(r.bufSize) }

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

// Space returns the number of slots in [head, tail): free slots on a TX ring,
// received frames on an RX ring (netmap's nm_ring_space).
func (r *Ring) Space() uint32 { return dist(r.head, r.tail, r.num) }

// Empty reports whether [head, tail) is empty (netmap's nm_ring_empty).
func (r *Ring) Empty() bool { return r.head == r.tail }

// Pending reports whether a TX ring has frames the switch has not taken yet
// (netmap's nm_tx_pending).
func (r *Ring) Pending() bool { return r.pubHead != r.head || next(r.tail, r.num) != r.head }

// Advance moves head and cur n slots forward: the usual way to hand n filled
// TX slots (or n consumed RX slots) back. n must not exceed Space.
func (r *Ring) Advance(n uint32) {
	r.head = advance(r.head, n, r.num)
	r.cur = r.head
}

// Slot returns slot i. Only slots in [head, tail) belong to the application.
func (r *Ring) Slot(i uint32) *Slot { return &r.slots[i] }

// Buf returns the whole buffer with index idx (netmap's NETMAP_BUF). It
// panics if idx is not a buffer of the port.
func (r *Ring) Buf(idx uint32) []byte {
	off := int(idx) * int(r.bufSize)
	return r.bufs[off : off+int(r.bufSize) : off+int(r.bufSize)]
}

// Packet returns the bytes slot i holds: its buffer cut to its length.
func (r *Ring) Packet(i uint32) []byte {
	s := &r.slots[i]
	return r.Buf(s.BufIdx)[:s.Len]
}

// Timestamp returns the time (CLOCK_REALTIME, ns) of the switch's last update
// of the ring (netmap's ring->ts, with nanosecond resolution).
func (r *Ring) Timestamp() int64 { return r.hdr.ts.Load() }

// Flags returns the ring flags (NR_*).
func (r *Ring) Flags() uint32 { return r.hdr.flags.Load() }

// SetFlags sets the ring flags (NR_*).
func (r *Ring) SetFlags(f uint32) { r.hdr.flags.Store(f) }

// checkReset returns a *RingError if the switch reset the ring since the last
// sync, after restoring head and cur and acknowledging the reset.
func (r *Ring) checkReset() error {
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
		e.Limit = uint32(len(r.bufs) / int(r.bufSize))
	case ResetBadLen:
		e.Limit = uint32(r.maxLen)
	}
	if h >= r.num {
		h = 0 // cannot happen with an honest switch; stay in range regardless
	}
	r.head, r.cur, r.pubHead, r.pubCur = h, h, h, h
	r.hdr.cur.Store(h)
	r.hdr.head.Store(h)
	r.tail = e.Tail
	r.resetAck = gen
	r.hdr.resetAck.Store(gen)
	return e
}

// prologue checks the application's own indexes before they are published,
// as netmap's sync prologue does: head in [published head, tail], cur in
// [head, tail].
func (r *Ring) prologue() error {
	if !inRange(r.pubHead, r.head, r.tail, r.num) {
		return fmt.Errorf("%s %s ring %d: head %d not in [%d, %d]", r.port, r.dir, r.id, r.head, r.pubHead, r.tail)
	}
	if !inRange(r.head, r.cur, r.tail, r.num) {
		return fmt.Errorf("%s %s ring %d: cur %d not in [head %d, tail %d]", r.port, r.dir, r.id, r.cur, r.head, r.tail)
	}
	return nil
}

// sync publishes head and cur, kicks the switch if it sleeps on this ring
// and new TX slots were published, and refreshes tail.
func (r *Ring) sync() error {
	if err := r.checkReset(); err != nil {
		return err
	}
	if err := r.prologue(); err != nil {
		return err
	}
	if r.cur != r.pubCur {
		r.hdr.cur.Store(r.cur)
		r.pubCur = r.cur
	}
	if r.head != r.pubHead {
		r.hdr.head.Store(r.head)
		r.pubHead = r.head
		if r.kickFD >= 0 {
			if t := r.hdr.swKick.Load(); t != 0 && t != r.swTicket {
				r.swTicket = t
				kick(r.kickFD)
			}
		}
	}
	r.tail = r.hdr.tail.Load()
	return nil
}

// ready reports whether poll should return for this ring: cur != tail.
func (r *Ring) ready() bool { return r.cur != r.tail }
