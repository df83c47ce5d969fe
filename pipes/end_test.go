package pipes

import (
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/valeswitch/vale/ports"
)

// testPipe is a pipe pair in heap memory (visible to the race detector)
// with an End for each side.
type testPipe struct {
	mem    []byte
	layout ports.Layout
	ends   [2]*End
}

func newTestPipe(t testing.TB, g ports.Geometry) *testPipe {
	t.Helper()
	l, err := ports.PipeLayout(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, l.Size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), l.Size)
	if err := ports.Init(mem, l, []string{"netmap:p{1", "netmap:p}1"}); err != nil {
		t.Fatal(err)
	}
	p := &testPipe{mem: mem, layout: l}
	for end := range 2 {
		p.ends[end] = p.open(t, end)
	}
	return p
}

// open builds a fresh End for one side, as a (re)opening client does.
func (p *testPipe) open(t testing.TB, end int) *End {
	t.Helper()
	own, err := ports.OpenIface(p.mem, p.layout.Ifaces[end].Ofs)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ports.OpenIface(p.mem, p.layout.Ifaces[1-end].Ofs)
	if err != nil {
		t.Fatal(err)
	}
	var tx, rx []*ports.Ring
	for i := range own.NumRings(ports.TX) {
		tx = append(tx, own.Ring(ports.TX, i, own.Name()))
	}
	for i := range own.NumRings(ports.RX) {
		rx = append(rx, own.Ring(ports.RX, i, own.Name()))
	}
	e, err := NewEnd(tx, rx, peer, own.Name(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func put(t testing.TB, e *End, ring int, payloads [][]byte, flags []uint16) {
	t.Helper()
	r := e.tx[ring]
	for i, pl := range payloads {
		s := r.Slot(r.Head())
		copy(r.Buf(s.BufIdx), pl)
		s.Len, s.Flags = uint16(len(pl)), 0
		if flags != nil {
			s.Flags = flags[i]
		}
		r.Advance(1)
	}
	if err := e.TxSync(ring); err != nil {
		t.Fatal(err)
	}
}

func take(t testing.TB, e *End, ring int) []string {
	t.Helper()
	r := e.rx[ring]
	if err := e.RxSync(ring); err != nil {
		t.Fatal(err)
	}
	var got []string
	for !r.Empty() {
		got = append(got, string(r.Packet(r.Head())))
		r.Advance(1)
	}
	if err := e.RxSync(ring); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPipeTransfer(t *testing.T) {
	p := newTestPipe(t, ports.Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64})
	m, s := p.ends[Master], p.ends[Slave]
	put(t, m, 0, [][]byte{[]byte("one"), []byte("two-a")}, []uint16{0, ports.NS_MOREFRAG})
	if got := take(t, s, 0); len(got) != 1 || got[0] != "one" {
		t.Fatalf("slave got %q: a partial chain must not show", got)
	}
	put(t, m, 0, [][]byte{[]byte("two-b")}, nil)
	if got := take(t, s, 0); len(got) != 2 || got[0] != "two-a" || got[1] != "two-b" {
		t.Fatalf("slave got %q", got)
	}
	// Zero copy: the slave read the master's buffers.
	if m.tx[0].Slot(0).BufIdx != s.rx[0].Slot(0).BufIdx {
		t.Error("rx slot does not share the tx slot's buffer")
	}
	// The other direction, and the ring fills: 7 frames at most.
	var pl [][]byte
	for range 7 {
		pl = append(pl, []byte("back"))
	}
	put(t, s, 0, pl, nil)
	if s.tx[0].Space() != 0 {
		t.Fatalf("slave tx space %d after 7 frames, want 0", s.tx[0].Space())
	}
	if got := take(t, m, 0); len(got) != 7 {
		t.Fatalf("master got %d frames", len(got))
	}
	if err := s.TxSync(0); err != nil || s.tx[0].Space() != 7 {
		t.Fatalf("slave tx space %d after the master read (%v)", s.tx[0].Space(), err)
	}
}

func TestPipeReopen(t *testing.T) {
	p := newTestPipe(t, ports.Geometry{TxRings: 1, RxRings: 1, TxSlots: 16, RxSlots: 16, BufSize: 64})
	put(t, p.ends[Master], 0, [][]byte{[]byte("a"), []byte("b")}, nil)
	take(t, p.ends[Slave], 0)
	put(t, p.ends[Master], 0, [][]byte{[]byte("c")}, nil)
	// The master goes away and comes back; the slave stays.
	p.ends[Master] = p.open(t, Master)
	put(t, p.ends[Master], 0, [][]byte{[]byte("d")}, nil)
	if got := take(t, p.ends[Slave], 0); len(got) != 2 || got[0] != "c" || got[1] != "d" {
		t.Fatalf("after the master reopened the slave got %q", got)
	}
	// And the slave too.
	put(t, p.ends[Master], 0, [][]byte{[]byte("e")}, nil)
	p.ends[Slave] = p.open(t, Slave)
	if got := take(t, p.ends[Slave], 0); len(got) != 1 || got[0] != "e" {
		t.Fatalf("reopened slave got %q", got)
	}
	if err := p.ends[Master].TxSync(0); err != nil || p.ends[Master].tx[0].Space() != 15 {
		t.Fatalf("master space %d (%v): slots not all returned", p.ends[Master].tx[0].Space(), err)
	}
}

func TestPipePeerGarbage(t *testing.T) {
	p := newTestPipe(t, ports.Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64})
	m, s := p.ends[Master], p.ends[Slave]
	// The slave publishes a tail for the master's TX ring it has no right to.
	m.tx[0].Header().SetTail(5)
	var pe *PeerError
	if err := m.TxSync(0); !errors.As(err, &pe) || pe.Dir != ports.TX {
		t.Fatalf("TxSync accepted a forged tail: %v", err)
	}
	if m.tx[0].Tail() != 7 {
		t.Errorf("forged tail used: %d", m.tx[0].Tail())
	}
	m.tx[0].Header().SetTail(7)
	s.rx[0].Header().SetTail(1000)
	if err := s.RxSync(0); !errors.As(err, &pe) {
		t.Fatalf("RxSync accepted a tail outside the ring: %v", err)
	}
	s.rx[0].Header().SetTail(0)
	// A slot naming a buffer outside the pool reads as buffer 0.
	put(t, m, 0, [][]byte{[]byte("x")}, nil)
	s.rx[0].Slot(0).BufIdx = 0xffffffff
	if err := s.RxSync(0); err != nil {
		t.Fatal(err)
	}
	if b := s.rx[0].Packet(0); len(b) != 1 {
		t.Errorf("packet of a corrupted slot: %d bytes", len(b))
	}
}

// TestPipeConcurrent runs both ends as goroutines over heap memory, where
// the race detector sees every access: every frame arrives once and in
// order, and buffers the receiver swaps go back to the sender.
func TestPipeConcurrent(t *testing.T) {
	p := newTestPipe(t, ports.Geometry{TxRings: 1, RxRings: 1, TxSlots: 64, RxSlots: 64, BufSize: 64})
	const total = 50000
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		e := p.ends[Master]
		r := e.tx[0]
		for seq := uint32(0); seq < total; {
			if err := e.TxSync(0); err != nil {
				t.Error(err)
				return
			}
			for r.Space() > 0 && seq < total {
				s := r.Slot(r.Head())
				binary.LittleEndian.PutUint32(r.Buf(s.BufIdx), seq)
				s.Len, s.Flags = 4, 0
				r.Advance(1)
				seq++
			}
			runtime.Gosched()
		}
		for e.TxSync(0) == nil && r.Pending() {
			runtime.Gosched()
		}
	}()
	go func() {
		defer wg.Done()
		e := p.ends[Slave]
		r := e.rx[0]
		for want := uint32(0); want < total; {
			if err := e.RxSync(0); err != nil {
				t.Error(err)
				return
			}
			for r.Space() >= 2 {
				h := r.Head()
				a, b := r.Slot(h), r.Slot(r.Next(h))
				for _, s := range []*ports.Slot{a, b} {
					if got := binary.LittleEndian.Uint32(r.Buf(s.BufIdx)); got != want {
						t.Errorf("frame %d: got %d", want, got)
						return
					}
					want++
				}
				// Swap the two buffers, as an application keeping one may.
				a.BufIdx, b.BufIdx = b.BufIdx, a.BufIdx
				a.Flags |= ports.NS_BUF_CHANGED
				b.Flags |= ports.NS_BUF_CHANGED
				r.Advance(2)
			}
			if r.Space() == 1 && want == total-1 {
				want++
				r.Advance(1)
			}
			runtime.Gosched()
		}
		e.RxSync(0)
	}()
	wg.Wait()
	// Every buffer is still owned by exactly one slot of the master's TX ring.
	seen := map[uint32]bool{}
	r := p.ends[Master].tx[0]
	for i := range r.NumSlots() {
		idx := r.Slot(i).BufIdx
		if seen[idx] {
			t.Fatalf("buffer %d in two TX slots", idx)
		}
		seen[idx] = true
	}
}
