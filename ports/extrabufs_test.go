package ports

import (
	"encoding/binary"
	"testing"
)

func TestExtraBufs(t *testing.T) {
	g := Geometry{TxRings: 1, RxRings: 1, TxSlots: 4, RxSlots: 4, BufSize: 64, ExtraBufs: 6}
	l, err := PortLayout(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, l.Size)
	x := NewExtraBufs(mem, &l)
	first := l.NumBufs - l.ExtraBufs
	buf := func(i uint32) []byte { return mem[l.BufOfs+int64(i)*int64(l.BufSize):] }
	chain := func(head uint32) []uint32 {
		var c []uint32
		for i := head; i != 0 && len(c) < 100; i = binary.LittleEndian.Uint32(buf(i)) {
			c = append(c, i)
		}
		return c
	}
	head, got := x.Grant(4)
	c := chain(head)
	if got != 4 || len(c) != 4 || x.Free() != 2 {
		t.Fatalf("granted %d, chain %v, %d left; want 4, 4 buffers, 2", got, c, x.Free())
	}
	for _, i := range c {
		if i < first || i >= l.NumBufs {
			t.Errorf("buffer %d is not an extra buffer [%d, %d)", i, first, l.NumBufs)
		}
	}
	if _, got := x.Grant(5); got != 2 || x.Free() != 0 {
		t.Errorf("granted %d of 5 with 2 free, %d left", got, x.Free())
	}
	// The application swapped c[1] into its ring and ring buffer 2 into
	// the chain, then made the chain loop back on itself.
	binary.LittleEndian.PutUint32(buf(c[0]), 2)
	binary.LittleEndian.PutUint32(buf(2), c[2])
	binary.LittleEndian.PutUint32(buf(c[3]), c[0])
	if n := x.Reclaim(head); n != 4 || x.Free() != 4 {
		t.Errorf("reclaimed %d (pool %d); want c0, 2, c2, c3 and the loop cut", n, x.Free())
	}
	if n := x.Reclaim(head); n != 0 {
		t.Errorf("a chain of free buffers reclaimed %d", n)
	}
	if n := x.Reclaim(l.NumBufs + 3); n != 0 {
		t.Errorf("an index outside the pool reclaimed %d", n)
	}
	if n := x.Reclaim(1); n != 0 {
		t.Errorf("a reserved buffer reclaimed %d", n)
	}
}
