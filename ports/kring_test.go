package ports

import (
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/valeswitch/vale/vale/frame"
)

// testPort is a port in heap memory with both sides of each ring: the
// application's Rings and the switch's KRings.
type testPort struct {
	layout Layout
	iface  *Iface
	kr     []*KRing // TX rings, then RX rings
	tx, rx []*Ring
}

func newTestPort(t testing.TB, g Geometry) *testPort {
	t.Helper()
	mem, l := newTestRegion(t, g)
	f, err := OpenIface(mem, l.Ifaces[0].Ofs)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPort{layout: l, iface: f, kr: f.KRings("vale0:test")}
	for i := range int(g.TxRings) {
		p.tx = append(p.tx, f.Ring(TX, i, "vale0:test"))
	}
	for i := range int(g.RxRings) {
		p.rx = append(p.rx, f.Ring(RX, i, "vale0:test"))
	}
	return p
}

func (p *testPort) ktx(i int) *KRing { return p.kr[i] }
func (p *testPort) krx(i int) *KRing { return p.kr[len(p.tx)+i] }

// syncRing is what a VALE port's client does on a sync, minus the kick:
// acknowledge a reset, check and publish the indexes, refresh tail.
func syncRing(r *Ring) error {
	if err := r.CheckReset(); err != nil {
		return err
	}
	if err := r.Prologue(); err != nil {
		return err
	}
	r.Publish()
	r.UpdateTail(r.Header().Tail())
	return nil
}

// send fills one slot per payload (flags as given) and syncs.
func send(t testing.TB, r *Ring, payloads [][]byte, flags []uint16) {
	t.Helper()
	h := r.Head()
	for i, pl := range payloads {
		s := r.Slot(h)
		copy(r.Buf(s.BufIdx), pl)
		s.Len = uint16(len(pl))
		s.Flags = 0
		if flags != nil {
			s.Flags = flags[i]
		}
		h = r.Next(h)
	}
	r.SetHead(h)
	r.SetCur(h)
	if err := syncRing(r); err != nil {
		t.Fatalf("tx sync: %v", err)
	}
}

func makeFrame(n int, fill byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = fill
	}
	return b
}

func TestTxFramesAndRelease(t *testing.T) {
	p := newTestPort(t, Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64})
	tx, k := p.tx[0], p.ktx(0)
	if tx.Space() != 7 {
		t.Fatalf("fresh TX ring has space %d, want 7 (one slot stays empty)", tx.Space())
	}
	send(t, tx, [][]byte{makeFrame(60, 1), makeFrame(64, 2), makeFrame(10, 3), makeFrame(20, 4)},
		[]uint16{0, NS_MOREFRAG, NS_MOREFRAG | NS_NO_LEARN, NS_NO_LEARN})
	b := frame.NewBatch()
	n, err := k.TxFrames(b)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || len(b.Frames) != 2 {
		t.Fatalf("got %d slots, %d frames; want 4 slots, 2 frames", n, len(b.Frames))
	}
	if f := b.Frames[0]; f.Len() != 60 || f.Data[0] != 1 || f.More != nil {
		t.Errorf("frame 0: len %d first byte %d more %v", f.Len(), f.Data[0], f.More)
	}
	if f := b.Frames[1]; f.Len() != 94 || len(f.More) != 2 || f.More[1][0] != 4 || f.Flags&NS_MOREFRAG == 0 {
		t.Errorf("frame 1: len %d, %d more fragments, flags %#x", f.Len(), len(f.More), f.Flags)
	}
	if wake := k.TxRelease(n); wake {
		t.Error("release asked to wake an application that is not asleep")
	}
	if err := syncRing(tx); err != nil {
		t.Fatal(err)
	}
	if tx.Space() != 7 {
		t.Errorf("after release space %d, want 7", tx.Space())
	}
	// A sleeping application is woken once per ticket.
	tx.hdr.appKick.Store(5)
	send(t, tx, [][]byte{makeFrame(60, 5)}, nil)
	n, _ = k.TxFrames(b)
	if !k.TxRelease(n) {
		t.Error("release did not answer the sleep ticket")
	}
	send(t, tx, [][]byte{makeFrame(60, 6)}, nil)
	n, _ = k.TxFrames(b)
	if k.TxRelease(n) {
		t.Error("release answered the same ticket twice")
	}
}

func TestTxIncompleteChainWaits(t *testing.T) {
	p := newTestPort(t, Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64})
	tx, k := p.tx[0], p.ktx(0)
	send(t, tx, [][]byte{makeFrame(60, 1), makeFrame(30, 2)}, []uint16{0, NS_MOREFRAG})
	b := frame.NewBatch()
	n, err := k.TxFrames(b)
	if err != nil || n != 1 || len(b.Frames) != 1 {
		t.Fatalf("got %d slots %d frames (%v), want the complete frame only", n, len(b.Frames), err)
	}
	k.TxRelease(n)
	b.Reset()
	if n, _ := k.TxFrames(b); n != 0 {
		t.Fatalf("unfinished chain returned (%d slots)", n)
	}
	send(t, tx, [][]byte{makeFrame(5, 3)}, nil)
	n, err = k.TxFrames(b)
	if err != nil || n != 2 || len(b.Frames) != 1 || b.Frames[0].Len() != 35 {
		t.Fatalf("completed chain: %d slots, %d frames, err %v", n, len(b.Frames), err)
	}
}

func TestTxViolations(t *testing.T) {
	g := Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64}
	tests := []struct {
		name   string
		break_ func(r *Ring)
		reason ResetReason
		msg    string
	}{
		// On a TX ring tail is always hwcur-1, so any head inside the ring
		// is a legal amount of filled slots; only one outside it is wrong.
		{"head out of ring", func(r *Ring) { r.hdr.head.Store(8); r.hdr.cur.Store(8) }, ResetBadHead, "head 8 not in [2, 1]"},
		{"head far out", func(r *Ring) { r.hdr.head.Store(1000) }, ResetBadHead, "head 1000"},
		{"cur behind head", func(r *Ring) { r.hdr.head.Store(3); r.hdr.cur.Store(2) }, ResetBadCur, "cur 2"},
		{"reserved buffer", func(r *Ring) { r.slots[2].BufIdx = 1; r.slots[2].Len = 60; r.hdr.head.Store(3); r.hdr.cur.Store(3) }, ResetBadBufIdx, "slot 2 buffer index 1 not in [2, 18)"},
		{"buffer beyond pool", func(r *Ring) {
			r.slots[2].BufIdx = 1 << 30
			r.slots[2].Len = 60
			r.hdr.head.Store(3)
			r.hdr.cur.Store(3)
		}, ResetBadBufIdx, "buffer index 1073741824"},
		{"length beyond buffer", func(r *Ring) { r.slots[2].Len = 65; r.hdr.head.Store(3); r.hdr.cur.Store(3) }, ResetBadLen, "length 65 larger than 64"},
		{"indirect", func(r *Ring) { r.slots[2].Flags = NS_INDIRECT; r.hdr.head.Store(3); r.hdr.cur.Store(3) }, ResetBadFlags, "NS_INDIRECT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPort(t, g)
			tx, k := p.tx[0], p.ktx(0)
			send(t, tx, [][]byte{makeFrame(60, 1), makeFrame(60, 2)}, nil)
			b := frame.NewBatch()
			n, _ := k.TxFrames(b)
			k.TxRelease(n)
			b.Reset()
			tt.break_(tx)
			_, err := k.TxFrames(b)
			var re *RingError
			if !errors.As(err, &re) || re.Reason != tt.reason {
				t.Fatalf("TxFrames error %v, want reason %v", err, tt.reason)
			}
			if len(b.Frames) != 0 {
				t.Errorf("%d frames returned from a broken ring", len(b.Frames))
			}
			// Until the application acknowledges, the ring is ignored.
			if n, err := k.TxFrames(b); n != 0 || err != nil {
				t.Errorf("ring in reset returned %d slots, %v", n, err)
			}
			// The application's next sync reports the reset.
			err = syncRing(tx)
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("client sync error %v, want one containing %q", err, tt.msg)
			}
			if tx.Head() != 2 || tx.Cur() != 2 {
				t.Errorf("after reset head %d cur %d, want 2 2", tx.Head(), tx.Cur())
			}
			for j, s := range tx.slots {
				if s.BufIdx < 2 || s.BufIdx >= p.layout.NumBufs || int(s.Len) > tx.MaxLen() {
					t.Errorf("slot %d still invalid after reset: %+v", j, s)
				}
			}
			// The ring works again.
			if err := syncRing(tx); err != nil {
				t.Fatalf("second sync: %v", err)
			}
			send(t, tx, [][]byte{makeFrame(60, 9)}, nil)
			if n, err := k.TxFrames(b); n != 1 || err != nil || b.Frames[0].Data[0] != 9 {
				t.Fatalf("after reset: %d slots, %v", n, err)
			}
		})
	}
}

func TestTxLongChain(t *testing.T) {
	p := newTestPort(t, Geometry{TxRings: 1, RxRings: 1, TxSlots: 128, RxSlots: 8, BufSize: 64})
	tx, k := p.tx[0], p.ktx(0)
	var pl [][]byte
	var fl []uint16
	for range MaxFrags + 1 {
		pl = append(pl, makeFrame(8, 1))
		fl = append(fl, NS_MOREFRAG)
	}
	send(t, tx, pl, fl)
	_, err := k.TxFrames(frame.NewBatch())
	var re *RingError
	if !errors.As(err, &re) || re.Reason != ResetLongChain {
		t.Fatalf("error %v, want a long-chain reset", err)
	}
}

func TestRxFrames(t *testing.T) {
	p := newTestPort(t, Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64})
	rx, k := p.rx[0], p.krx(0)
	b := frame.NewBatch()
	b.Add(makeFrame(60, 1), 0)
	b.Add(makeFrame(150, 2), 0) // three buffers of 64
	b.Add(makeFrame(30, 3), 0)
	b.AddFragment(makeFrame(40, 4))
	b.Add(makeFrame(60, 5), 0)
	b.Add(makeFrame(60, 6), 0)
	which := []uint16{0, 1, 2, 3, 4}
	n, bytes, wake, err := k.RxFrames(b, which, 1234)
	if err != nil {
		t.Fatal(err)
	}
	// 1 + 3 + 2 + 1 = 7 slots: the whole ring but the empty one. Frame 4 does not fit.
	if n != 4 || bytes != 60+150+70+60 || wake {
		t.Fatalf("delivered %d frames, %d bytes, wake %v", n, bytes, wake)
	}
	if err := syncRing(rx); err != nil {
		t.Fatal(err)
	}
	if rx.Space() != 7 {
		t.Fatalf("client sees %d slots, want 7", rx.Space())
	}
	wantLens := []uint16{60, 64, 64, 22, 30, 40, 60}
	wantFlags := []uint16{0, NS_MOREFRAG | 2<<8, NS_MOREFRAG | 1<<8, 0, NS_MOREFRAG | 1<<8, 0, 0}
	for i := range uint32(7) {
		s := rx.Slot(i)
		if s.Len != wantLens[i] || s.Flags != wantFlags[i] || s.Ptr != 1234 {
			t.Errorf("slot %d: len %d flags %#x ptr %d; want %d %#x 1234", i, s.Len, s.Flags, s.Ptr, wantLens[i], wantFlags[i])
		}
	}
	if rx.Packet(3)[0] != 2 || rx.Packet(5)[0] != 4 {
		t.Error("fragment payloads not where expected")
	}
	if rx.Timestamp() != 1234 {
		t.Errorf("ring timestamp %d", rx.Timestamp())
	}
	// Full ring: nothing more goes in.
	if n, _, _, _ := k.RxFrames(b, []uint16{4}, 0); n != 0 {
		t.Error("delivered into a full ring")
	}
	// Release three slots: a sleeping reader is woken once.
	rx.Advance(3)
	rx.hdr.appKick.Store(1)
	if err := syncRing(rx); err != nil {
		t.Fatal(err)
	}
	n, _, wake, err = k.RxFrames(b, []uint16{4, 0}, 0)
	if n != 2 || !wake || err != nil {
		t.Fatalf("after release: %d frames, wake %v, err %v", n, wake, err)
	}
}

func TestRxViolations(t *testing.T) {
	g := Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64}
	b := frame.NewBatch()
	b.Add(makeFrame(60, 1), 0)
	b.Add(makeFrame(60, 2), 0)

	p := newTestPort(t, g)
	rx, k := p.rx[0], p.krx(0)
	rx.hdr.head.Store(5) // releasing slots it was never given
	_, _, _, err := k.RxFrames(b, []uint16{0}, 0)
	var re *RingError
	if !errors.As(err, &re) || re.Reason != ResetBadHead {
		t.Fatalf("error %v, want a bad-head reset", err)
	}
	if err := syncRing(rx); !errors.As(err, &re) {
		t.Fatalf("client did not see the reset: %v", err)
	}
	if n, _, _, err := k.RxFrames(b, []uint16{0}, 0); n != 1 || err != nil {
		t.Fatalf("ring not usable after the reset: %d, %v", n, err)
	}

	// A free slot whose buffer the application broke.
	p = newTestPort(t, g)
	rx, k = p.rx[0], p.krx(0)
	rx.slots[1].BufIdx = 0
	n, _, _, err := k.RxFrames(b, []uint16{0, 1}, 0)
	if !errors.As(err, &re) || re.Reason != ResetBadBufIdx || re.Slot != 1 || n != 0 {
		t.Fatalf("delivered %d, error %v; want a bad-index reset on slot 1", n, err)
	}
	if rx.slots[1].BufIdx != p.layout.Ifaces[0].FirstBufs[1]+1 {
		t.Errorf("broken slot restored to buffer %d", rx.slots[1].BufIdx)
	}
}

// FuzzKRing gives the switch rings in arbitrary states, as a malicious or
// buggy application could leave them, and checks that the switch never
// panics, never hands out memory outside the buffer pool, and leaves every
// ring it resets consistent.
func FuzzKRing(f *testing.F) {
	f.Add([]byte{3, 3, 0, 2, 0, 60, 0, 0, 3, 0, 60, 0, 0x20, 4, 0, 10, 0, 0}, uint32(2), uint32(2))
	f.Add([]byte{200, 1, 1, 0, 0, 0, 0, 0}, uint32(9), uint32(1))
	f.Add([]byte{1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, rxHead, rxCur uint32) {
		g := Geometry{TxRings: 1, RxRings: 1, TxSlots: 16, RxSlots: 16, BufSize: 64}
		p := newTestPort(t, g)
		tx := p.tx[0]
		// data: head, cur, then 6-byte slot records (idx16, len16, flags16).
		if len(data) >= 2 {
			tx.hdr.head.Store(uint32(data[0]))
			tx.hdr.cur.Store(uint32(data[1]))
			data = data[2:]
		}
		for i := 0; len(data) >= 6 && i < int(g.TxSlots); i++ {
			s := &tx.slots[i]
			s.BufIdx = uint32(binary.LittleEndian.Uint16(data))
			if data[1]&0x80 != 0 {
				s.BufIdx |= 0xffff0000
			}
			s.Len = binary.LittleEndian.Uint16(data[2:])
			s.Flags = binary.LittleEndian.Uint16(data[4:])
			data = data[6:]
		}
		pool := p.iface.bufs
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(pool)))
		hi := lo + uintptr(len(pool))
		b := frame.NewBatch()
		k := p.ktx(0)
		n, err := k.TxFrames(b)
		if err != nil {
			var re *RingError
			if !errors.As(err, &re) {
				t.Fatalf("error of type %T", err)
			}
			checkReset(t, p, tx, k)
			return
		}
		for _, fr := range b.Frames {
			for _, frag := range append([][]byte{fr.Data}, fr.More...) {
				if len(frag) > tx.MaxLen() {
					t.Fatalf("fragment of %d bytes", len(frag))
				}
				if len(frag) > 0 {
					a := uintptr(unsafe.Pointer(unsafe.SliceData(frag)))
					if a < lo || a+uintptr(len(frag)) > hi {
						t.Fatal("fragment outside the buffer pool")
					}
				}
			}
		}
		k.TxRelease(n)

		// Deliver what came out into an RX ring whose indexes the fuzzer
		// chose, so the RX validator sees arbitrary states too.
		rx := p.rx[0]
		rx.hdr.head.Store(rxHead)
		rx.hdr.cur.Store(rxCur)
		which := make([]uint16, len(b.Frames))
		for i := range which {
			which[i] = uint16(i)
		}
		kr := p.krx(0)
		if _, _, _, err := kr.RxFrames(b, which, 1); err != nil {
			checkReset(t, p, rx, kr)
		}
	})
}

// checkReset verifies the state a reset leaves: the application sees the
// error once, resumes at reset_head, and every slot is usable.
func checkReset(t *testing.T, p *testPort, r *Ring, k *KRing) {
	t.Helper()
	var re *RingError
	if err := syncRing(r); !errors.As(err, &re) {
		t.Fatalf("application did not see the reset: %v", err)
	}
	if r.Head() >= r.NumSlots() || r.Head() != r.Cur() {
		t.Fatalf("after reset head %d cur %d", r.Head(), r.Cur())
	}
	for j, s := range r.slots {
		if s.BufIdx < 2 || s.BufIdx >= p.layout.NumBufs || int(s.Len) > r.MaxLen() {
			t.Fatalf("slot %d invalid after reset: %+v", j, s)
		}
	}
	if k.InReset() {
		t.Fatal("switch still waits after the application acknowledged")
	}
}

// TestRingProtocolConcurrent runs a sender, a switch and a receiver as
// goroutines over heap memory, where the race detector can see every access,
// and checks that every frame arrives once and in order.
func TestRingProtocolConcurrent(t *testing.T) {
	g := Geometry{TxRings: 1, RxRings: 1, TxSlots: 64, RxSlots: 32, BufSize: 64}
	src, dst := newTestPort(t, g), newTestPort(t, g)
	const total = 20000
	var wg sync.WaitGroup
	for _, side := range []func(){
		func() { sendSeq(t, src.tx[0], total) },
		func() { forwardAll(t, src.ktx(0), dst.krx(0), total) },
		func() { receiveSeq(t, dst.rx[0], total) },
	} {
		wg.Add(1)
		go func() { defer wg.Done(); side() }()
	}
	wg.Wait()
}

// sendSeq sends total numbered frames of varying lengths on tx, then waits
// until the switch has taken them all.
func sendSeq(t *testing.T, tx *Ring, total uint32) {
	for seq := uint32(0); seq < total; {
		if err := syncRing(tx); err != nil {
			t.Error(err)
			return
		}
		for tx.Space() > 0 && seq < total {
			s := tx.Slot(tx.Head())
			binary.LittleEndian.PutUint32(tx.Buf(s.BufIdx), seq)
			s.Len = 4 + uint16(seq%50)
			tx.Advance(1)
			seq++
		}
		runtime.Gosched()
	}
	for syncRing(tx) == nil && tx.Pending() {
		runtime.Gosched()
	}
}

// forwardAll is the switch: it moves total frames from ktx to krx, never
// blocking on a full destination (it yields and tries again, to count
// exactly, where a real switch drops).
func forwardAll(t *testing.T, ktx, krx *KRing, total int) {
	b := frame.NewBatch()
	which := make([]uint16, 0, MaxBatch)
	for moved := 0; moved < total; {
		n, err := ktx.TxFrames(b)
		if err != nil {
			t.Error(err)
			return
		}
		if n == 0 {
			runtime.Gosched()
			continue
		}
		for done := 0; done < len(b.Frames); {
			which = which[:0]
			for i := done; i < len(b.Frames); i++ {
				which = append(which, uint16(i))
			}
			k, _, _, err := krx.RxFrames(b, which, 0)
			if err != nil {
				t.Error(err)
				return
			}
			done += k
			if k == 0 {
				runtime.Gosched()
			}
		}
		moved += len(b.Frames)
		ktx.TxRelease(n)
		b.Reset()
	}
}

// receiveSeq receives total frames on rx and checks their numbers and
// lengths.
func receiveSeq(t *testing.T, rx *Ring, total uint32) {
	for want := uint32(0); want < total; {
		if err := syncRing(rx); err != nil {
			t.Error(err)
			return
		}
		for !rx.Empty() {
			p := rx.Packet(rx.Head())
			if got := binary.LittleEndian.Uint32(p); got != want || len(p) != 4+int(want%50) {
				t.Errorf("frame %d: got seq %d len %d", want, got, len(p))
				return
			}
			want++
			rx.Advance(1)
		}
		runtime.Gosched()
	}
}
