package ports

import (
	"sync/atomic"
	"time"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/vale/frame"
)

// KRing is the switch's side of one ring ("kernel ring" in netmap). It keeps
// its own trusted copies of the indexes (hwcur, hwtail), validates everything
// it reads from application-writable memory before using it, and resets the
// ring the way netmap's ring reinit does when the application breaks the ring
// contract.
//
// A KRing is not safe for concurrent use: valed serialises the operations on
// each ring (one worker per TX ring, a lock per RX ring).
type KRing struct {
	port     string
	hdr      *RingHeader
	slots    []Slot
	bufs     []byte
	num      uint32
	numBufs  uint32
	bufSize  uint32
	maxLen   uint32
	dir      Direction
	id       int
	firstBuf uint32

	// hwcur is, on a TX ring, the next slot the switch will consume; on an RX
	// ring, the head last validated (the first slot not yet released).
	hwcur uint32
	// hwtail is the tail last published.
	hwtail uint32

	resetGen uint32
	inReset  bool
	app      notify.Answer // the application's sleep tickets

	// vnetHdr is the length of the virtio-net header before each frame in
	// the ring's slots (netmap's PORT_HDR_SET): 0, or frame.VnetHdrLen or
	// frame.VnetHdrLenMrg. It may change while the ring is in use.
	vnetHdr atomic.Uint32
}

// SetVnetHdrLen sets the length of the virtio-net header before each frame
// (0, frame.VnetHdrLen or frame.VnetHdrLenMrg; the caller checks).
func (k *KRing) SetVnetHdrLen(n int) { k.vnetHdr.Store(uint32(n)) }

// allOffloads is what a ring with a virtio-net header takes: everything its
// header can say (the application does the rest, as a virtio driver's host
// would).
var allOffloads = frame.OffloadCaps{Csum: true, TSO4: true, TSO6: true}

// takeVnetHdr strips the virtio-net header of h bytes from the last frame
// of b and records what it says is pending. The header is read once; a
// frame too short for it or with a header that means nothing is emptied,
// which the switch drops as invalid.
func takeVnetHdr(b *frame.Batch, h int) {
	last := len(b.Frames) - 1
	f := &b.Frames[last]
	if len(f.Data) < h {
		f.Data = f.Data[:0]
		return
	}
	var hdr [frame.VnetHdrLenMrg]byte
	copy(hdr[:], f.Data[:h])
	f.Data = f.Data[h:]
	o, err := frame.ParseVnetHdr(hdr[:], allOffloads)
	if err != nil {
		f.Data = f.Data[:0]
		return
	}
	b.SetOffload(last, o)
}

// KRing returns the switch-side view of ring i of direction d; port names
// the port in errors. The switch side should build its views before
// handing the memory out: the indexes it finds in the header are only
// clamped into the ring, not trusted.
func (f *Iface) KRing(d Direction, i int, port string) *KRing {
	ri := f.ringIndex(d, i)
	hdr := f.header(d, i)
	k := &KRing{
		port:     port,
		hdr:      hdr,
		slots:    f.slots(d, i),
		bufs:     f.bufs,
		num:      f.nums[ri],
		numBufs:  f.numBufs,
		bufSize:  f.bufSize,
		maxLen:   f.maxLen(),
		dir:      d,
		id:       i,
		firstBuf: f.first[ri],
	}
	k.hwcur = clampIndex(hdr.head.Load(), k.num)
	k.hwtail = clampIndex(hdr.tail.Load(), k.num)
	return k
}

// KRings returns the switch-side views of every ring of f: TX rings first,
// then RX rings.
func (f *Iface) KRings(port string) []*KRing {
	var krs []*KRing
	for i := range f.ntx {
		krs = append(krs, f.KRing(TX, i, port))
	}
	for i := range f.nrx {
		krs = append(krs, f.KRing(RX, i, port))
	}
	return krs
}

// NumSlots returns the number of slots in the ring.
func (k *KRing) NumSlots() uint32 { return k.num }

// Dir returns the ring's direction.
func (k *KRing) Dir() Direction { return k.dir }

// ID returns the ring's index within its direction.
func (k *KRing) ID() int { return k.id }

// buf returns the first n bytes of buffer idx; idx must be valid.
func (k *KRing) buf(idx, n uint32) []byte {
	off := int(idx) * int(k.bufSize)
	return k.bufs[off : off+int(n) : off+int(k.bufSize)]
}

// resumed reports whether the ring is usable: not waiting for the
// application to acknowledge a reset.
func (k *KRing) resumed() bool {
	if !k.inReset {
		return true
	}
	if k.hdr.resetAck.Load() != k.resetGen {
		return false
	}
	k.inReset = false
	return true
}

// InReset reports whether the ring waits for the application to acknowledge a
// reset.
func (k *KRing) InReset() bool { return !k.resumed() }

// reset restores the ring to a consistent state after a violation and tells
// the application why.
func (k *KRing) reset(why ResetReason, slot, value uint32) *RingError {
	for j := range k.slots {
		s := &k.slots[j]
		if idx := s.BufIdx; idx < reservedBufs || idx >= k.numBufs {
			s.BufIdx = k.firstBuf + uint32(j)
			s.Len = 0
			s.Flags = 0
		} else if uint32(s.Len) > k.maxLen {
			s.Len = 0
		}
	}
	h := k.hdr
	h.resetHead.Store(k.hwcur)
	h.resetWhy.Store(uint32(why))
	h.resetSlot.Store(slot)
	h.resetValue.Store(value)
	k.resetGen++
	h.resetGen.Store(k.resetGen)
	k.inReset = true
	return k.ringError(why, slot, value)
}

func (k *KRing) ringError(why ResetReason, slot, value uint32) *RingError {
	e := &RingError{
		Port: k.port, Dir: k.dir, Ring: k.id, Reason: why,
		Slot: slot, Value: value, Head: k.hwcur, Tail: k.hwtail,
	}
	switch why {
	case ResetBadBufIdx:
		e.Limit = k.numBufs
	case ResetBadLen:
		e.Limit = k.maxLen
	}
	return e
}

// checkIndexes reads head and cur and checks head in [hwcur, hwtail] and cur
// in [head, hwtail]. On a TX ring that is the range of slots the application
// may have filled; on an RX ring, the range it may have released.
func (k *KRing) checkIndexes() (head uint32, err *RingError) {
	head = k.hdr.head.Load()
	if !inRange(k.hwcur, head, k.hwtail, k.num) {
		return 0, k.reset(ResetBadHead, 0, head)
	}
	if cur := k.hdr.cur.Load(); !inRange(head, cur, k.hwtail, k.num) {
		return 0, k.reset(ResetBadCur, 0, cur)
	}
	return head, nil
}

// Pending reports whether the application has published TX slots the switch
// has not consumed yet (or acknowledged a reset, which also needs attention).
// It is the cheap check a worker makes before going to sleep.
func (k *KRing) Pending() bool {
	if k.inReset {
		return k.hdr.resetAck.Load() == k.resetGen
	}
	return k.hdr.head.Load() != k.hwcur
}

// TxFrames validates the TX ring and appends to b the complete frames among
// the slots the application has published, at most MaxBatch slots (a chain of
// fragments may take up to MaxFrags more). It returns the number of slots the
// frames occupy, to be passed to TxRelease once the frames have been copied.
//
// On a violation the ring is reset, nothing is appended and the error is a
// *RingError. A trailing chain the application has not finished publishing is
// left for a later round.
func (k *KRing) TxFrames(b *frame.Batch) (slots uint32, err error) {
	if !k.resumed() {
		return 0, nil
	}
	head, rerr := k.checkIndexes()
	if rerr != nil {
		return 0, rerr
	}
	avail := dist(k.hwcur, head, k.num)
	if avail == 0 {
		return 0, nil
	}
	limit := min(avail, MaxBatch+MaxFrags)
	frames := len(b.Frames)
	vnetHdr := int(k.vnetHdr.Load())
	var (
		i        = k.hwcur
		done     uint32 // slots making up complete frames
		inChain  bool
		chainLen int
	)
	for n := uint32(1); n <= limit; n++ {
		s := k.slots[i] // one read of the shared slot; only the copy is used
		if s.BufIdx < reservedBufs || s.BufIdx >= k.numBufs {
			b.Frames = b.Frames[:frames]
			return 0, k.reset(ResetBadBufIdx, i, s.BufIdx)
		}
		if uint32(s.Len) > k.maxLen {
			b.Frames = b.Frames[:frames]
			return 0, k.reset(ResetBadLen, i, uint32(s.Len))
		}
		if s.Flags&NS_INDIRECT != 0 {
			b.Frames = b.Frames[:frames]
			return 0, k.reset(ResetBadFlags, i, uint32(s.Flags))
		}
		data := k.buf(s.BufIdx, uint32(s.Len))
		if inChain {
			b.AddFragment(data)
			chainLen++
		} else {
			b.Add(data, s.Flags)
			chainLen = 1
		}
		if s.Flags&NS_MOREFRAG == 0 {
			done = n
			inChain = false
			if vnetHdr > 0 {
				takeVnetHdr(b, vnetHdr)
			}
			if n >= MaxBatch {
				break
			}
		} else {
			if chainLen >= MaxFrags {
				b.Frames = b.Frames[:frames]
				return 0, k.reset(ResetLongChain, i, uint32(chainLen))
			}
			inChain = true
		}
		i = next(i, k.num)
	}
	if inChain {
		// Drop the unfinished frame; it will be read again once complete.
		b.Frames = b.Frames[:len(b.Frames)-1]
	}
	return done, nil
}

// TxRelease returns n consumed slots to the application: it advances hwcur and
// publishes tail. It reports whether the application sleeps waiting for room
// and must be woken.
func (k *KRing) TxRelease(n uint32) (wake bool) {
	if n == 0 {
		return false
	}
	k.hwcur = advance(k.hwcur, n, k.num)
	k.hwtail = prev(k.hwcur, k.num)
	k.hdr.tail.Store(k.hwtail)
	return k.wantsWake()
}

// wantsWake reports whether the application published a new sleep ticket.
// Each ticket is answered once, so a sleeping application gets one eventfd
// signal however many rounds happen before it wakes.
func (k *KRing) wantsWake() bool { return k.app.Due(&k.hdr.appKick) }

// DrainedBy waits until the switch has consumed every slot the application
// had published when it was called, or until deadline, or until stop
// reports true or the ring is reset (nothing more will be consumed then).
// It reads only the published indexes and may run beside the switch's
// worker. It reports false if the deadline passed first.
func (k *KRing) DrainedBy(deadline time.Time, stop func() bool) bool {
	h := k.hdr
	target := h.head.Load()
	if target >= k.num {
		return true // a head out of range: the switch resets the ring
	}
	gen := h.resetGen.Load()
	for {
		t := h.tail.Load()
		if t >= k.num || next(t, k.num) == target || !inRange(next(t, k.num), target, h.head.Load(), k.num) {
			return true // consumed up to target (or past it)
		}
		if stop() || h.resetGen.Load() != gen {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// SetSwitchSleeping publishes (or clears) the switch's sleep ticket on a TX
// ring, so that the application kicks the ring's eventfd after publishing new
// slots. A worker sets it, checks Pending once more, and only then sleeps.
func (k *KRing) SetSwitchSleeping(ticket uint32) { k.hdr.swKick.Store(ticket) }

// RxSpace validates the RX ring and returns how many slots the switch may fill.
func (k *KRing) RxSpace() (uint32, error) {
	if !k.resumed() {
		return 0, nil
	}
	head, err := k.checkIndexes()
	if err != nil {
		return 0, err
	}
	k.hwcur = head
	return k.num - 1 - dist(head, k.hwtail, k.num), nil
}

// Room returns how many of the frames b.Frames[which[0]], ... (in order)
// the RX ring has room for now: what RxFrames would take. A ring that
// waits for a reset to be acknowledged, or that its application broke,
// has room for everything: RxFrames will take nothing, and the frames are
// dropped rather than held back for a client that broke its ring.
func (k *KRing) Room(b *frame.Batch, which []uint16) int {
	space, err := k.RxSpace()
	if err != nil || !k.resumed() {
		return len(which)
	}
	h := k.vnetHdr.Load()
	for n, fi := range which {
		f := &b.Frames[fi]
		need := uint32(1)
		if len(f.More) > 0 || h+uint32(len(f.Data)) > k.maxLen {
			need = k.slotsFor(f, h)
		}
		if need > space || need > MaxFrags {
			return n
		}
		space -= need
	}
	return len(which)
}

// ArmRoom publishes (or, with 0, clears) the switch side's sleep ticket on
// an RX ring: the application's next sync that releases slots signals the
// ring's room eventfd. A sender waiting for room sets it, checks the room
// once more, and only then sleeps.
func (k *KRing) ArmRoom(ticket uint32) { k.hdr.swKick.Store(ticket) }

// slotsFor returns how many RX slots frame f needs in this ring, behind a
// virtio-net header of h bytes.
func (k *KRing) slotsFor(f *frame.Frame, h uint32) uint32 {
	need := uint32(1)
	if l := h + uint32(len(f.Data)); l > k.maxLen {
		need = (l + k.maxLen - 1) / k.maxLen
	}
	for _, m := range f.More {
		if l := uint32(len(m)); l > k.maxLen {
			need += (l + k.maxLen - 1) / k.maxLen
		} else {
			need++
		}
	}
	return need
}

// RxFrames copies frames b.Frames[which[0]], b.Frames[which[1]], ... into the
// free slots of the RX ring, in order, until one does not fit, and publishes
// them with timestamp ts. It returns how many frames it took and their total
// length, and reports whether the application must be woken.
//
// On a violation (bad indexes, or a free slot whose buffer index the
// application broke) the ring is reset, nothing is published and the error is
// a *RingError.
func (k *KRing) RxFrames(b *frame.Batch, which []uint16, ts int64) (n, bytes int, wake bool, err error) {
	space, err := k.RxSpace()
	if err != nil || space == 0 {
		return 0, 0, false, err
	}
	t := k.hwtail
	h := k.vnetHdr.Load()
	for _, fi := range which {
		f := &b.Frames[fi]
		if len(f.More) == 0 && h+uint32(len(f.Data)) <= k.maxLen {
			// Fast path: one fragment into one slot.
			if space == 0 {
				break
			}
			s := &k.slots[t]
			idx := s.BufIdx
			if idx < reservedBufs || idx >= k.numBufs {
				return 0, 0, false, k.reset(ResetBadBufIdx, t, idx)
			}
			buf := k.buf(idx, h+uint32(len(f.Data)))
			if h > 0 {
				frame.PutVnetHdr(buf[:h], f.Offload, 1)
			}
			copy(buf[h:], f.Data)
			s.Len = uint16(len(buf))
			s.Flags = 0
			s.Ptr = uint64(ts)
			t = next(t, k.num)
			space--
			n++
			bytes += len(f.Data)
			continue
		}
		need := k.slotsFor(f, h)
		if need > space || need > MaxFrags {
			break
		}
		var rerr *RingError
		if t, rerr = k.rxChain(f, t, need, ts, h); rerr != nil {
			return 0, 0, false, rerr
		}
		space -= need
		n++
		bytes += f.Len()
	}
	if n == 0 {
		return 0, 0, false, nil
	}
	k.hwtail = t
	k.hdr.ts.Store(ts)
	k.hdr.tail.Store(t)
	return n, bytes, k.wantsWake(), nil
}

// rxChain writes a multi-slot frame starting at slot t, splitting fragments
// larger than a buffer, and returns the slot after it. need is the number of
// slots it takes (at most MaxFrags): the last one ends the chain, the others
// carry NS_MOREFRAG and, in the upper 8 bits of flags, the number of
// fragments still to come, as netmap's VALE does. A virtio-net header of h
// bytes starts the first slot.
func (k *KRing) rxChain(f *frame.Frame, t, need uint32, ts int64, h uint32) (uint32, *RingError) {
	left := need
	put := func(p []byte) *RingError {
		for {
			s := &k.slots[t]
			idx := s.BufIdx
			if idx < reservedBufs || idx >= k.numBufs {
				return k.reset(ResetBadBufIdx, t, idx)
			}
			chunk := p[:min(uint32(len(p)), k.maxLen-h)]
			buf := k.buf(idx, h+uint32(len(chunk)))
			if h > 0 {
				frame.PutVnetHdr(buf[:h], f.Offload, uint16(need))
				h = 0
			}
			copy(buf[len(buf)-len(chunk):], chunk)
			left--
			s.Len = uint16(len(buf))
			s.Flags = 0
			if left > 0 {
				s.Flags = NS_MOREFRAG | uint16(left)<<8
			}
			s.Ptr = uint64(ts)
			t = next(t, k.num)
			p = p[len(chunk):]
			if len(p) == 0 {
				return nil
			}
		}
	}
	if err := put(f.Data); err != nil {
		return 0, err
	}
	for _, m := range f.More {
		if err := put(m); err != nil {
			return 0, err
		}
	}
	return t, nil
}

// SwapIn hands the frames in slots [from, to) of ring src to this RX ring
// without copying them: each source slot's buffer goes to the next free slot
// here, whose own buffer goes back to the source slot, flagged
// NS_BUF_CHANGED. Zero-copy monitors are fed this way. The frames keep their
// length, NS_MOREFRAG and NS_TXMON; flags adds further flags. It stops when
// the ring is full and returns how many frames it took; a source slot naming
// no valid buffer is skipped (and counted as taken). It reports whether the
// reader must be woken. On a violation of this ring's contract the ring is
// reset and the error is a *RingError.
func (k *KRing) SwapIn(src *Ring, from, to uint32, flags uint16, ts int64) (n int, wake bool, err error) {
	space, err := k.RxSpace()
	if err != nil || space == 0 {
		return 0, false, err
	}
	t := k.hwtail
	for i := from; i != to && space > 0; i = src.Next(i) {
		s := src.Slot(i)
		idx := s.BufIdx
		n++
		if idx < reservedBufs || idx >= k.numBufs {
			continue
		}
		z := &k.slots[t]
		zidx := z.BufIdx
		if zidx < reservedBufs || zidx >= k.numBufs {
			return 0, false, k.reset(ResetBadBufIdx, t, zidx)
		}
		z.BufIdx, z.Len, z.Flags, z.Ptr = idx, min(s.Len, uint16(k.maxLen)), s.Flags&(NS_MOREFRAG|NS_TXMON)|flags, uint64(ts)
		s.BufIdx = zidx
		s.Flags |= NS_BUF_CHANGED
		t = next(t, k.num)
		space--
	}
	if t == k.hwtail {
		return n, false, nil
	}
	k.hwtail = t
	k.hdr.ts.Store(ts)
	k.hdr.tail.Store(t)
	return n, k.wantsWake(), nil
}

// Dropped counts frames that did not fit in the ring, in its header.
func (k *KRing) Dropped(n int) { k.hdr.dropped.Add(uint64(n)) }

// Occupancy returns how many slots hold frames in flight between the two
// sides: on a TX ring, those the application published and the switch has
// not given back; on an RX ring, those the switch delivered and the
// application has not released. It reads the shared indexes (a gauge, not
// a trusted value) and is safe to call from any goroutine.
func (k *KRing) Occupancy() int {
	head, tail := clampIndex(k.hdr.head.Load(), k.num), clampIndex(k.hdr.tail.Load(), k.num)
	if k.dir == TX {
		return int((head + 2*k.num - tail - 1) % k.num)
	}
	return int((tail + k.num - head) % k.num)
}
