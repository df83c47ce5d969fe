package ports

import (
	"strings"
	"testing"
	"unsafe"
)

// TestRingHeaderLayout pins the byte offsets the package documentation
// promises: they are the ABI shared with other processes.
func TestRingHeaderLayout(t *testing.T) {
	var h ringHeader
	fields := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"buf_ofs", unsafe.Offsetof(h.BufOfs), 0},
		{"num_slots", unsafe.Offsetof(h.NumSlots), 8},
		{"nr_buf_size", unsafe.Offsetof(h.BufSize), 12},
		{"ringid", unsafe.Offsetof(h.RingID), 16},
		{"dir", unsafe.Offsetof(h.Dir), 18},
		{"num_bufs", unsafe.Offsetof(h.NumBufs), 20},
		{"offset_mask", unsafe.Offsetof(h.OffsetMask), 24},
		{"buf_align", unsafe.Offsetof(h.BufAlign), 32},
		{"head", unsafe.Offsetof(h.head), 64},
		{"cur", unsafe.Offsetof(h.cur), 68},
		{"flags", unsafe.Offsetof(h.flags), 72},
		{"app_kick", unsafe.Offsetof(h.appKick), 76},
		{"reset_ack", unsafe.Offsetof(h.resetAck), 80},
		{"tail", unsafe.Offsetof(h.tail), 128},
		{"sw_kick", unsafe.Offsetof(h.swKick), 132},
		{"reset_gen", unsafe.Offsetof(h.resetGen), 136},
		{"reset_head", unsafe.Offsetof(h.resetHead), 140},
		{"reset_why", unsafe.Offsetof(h.resetWhy), 144},
		{"reset_slot", unsafe.Offsetof(h.resetSlot), 148},
		{"ts", unsafe.Offsetof(h.ts), 152},
		{"reset_value", unsafe.Offsetof(h.resetValue), 160},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s at offset %d, documented at %d", f.name, f.got, f.want)
		}
	}
	if s := unsafe.Sizeof(h); s != ringHeaderSize {
		t.Errorf("ring header is %d bytes, want %d", s, ringHeaderSize)
	}
	if s := unsafe.Sizeof(Slot{}); s != slotSize {
		t.Errorf("slot is %d bytes, want %d", s, slotSize)
	}
	var ifh ifHeader
	if o := unsafe.Offsetof(ifh.Name); o != 64 {
		t.Errorf("interface name at %d, want 64", o)
	}
	if o := unsafe.Offsetof(ifh.BufOfs); o != 40 {
		t.Errorf("interface buf_ofs at %d, want 40", o)
	}
	if s := unsafe.Sizeof(ifh); s != ifHeaderSize {
		t.Errorf("interface header is %d bytes, want %d", s, ifHeaderSize)
	}
}

func TestGeometryValidate(t *testing.T) {
	good := DefaultGeometry()
	if err := good.Validate(); err != nil {
		t.Fatalf("default geometry invalid: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Geometry)
		want   string
	}{
		{"no tx rings", func(g *Geometry) { g.TxRings = 0 }, "tx rings 0"},
		{"too many rx rings", func(g *Geometry) { g.RxRings = MaxRings + 1 }, "rx rings 17"},
		{"one slot", func(g *Geometry) { g.TxSlots = 1 }, "tx slots 1"},
		{"too many slots", func(g *Geometry) { g.RxSlots = MaxSlots + 1 }, "rx slots 4097"},
		{"odd buffer size", func(g *Geometry) { g.BufSize = 1000 }, "not a multiple of 64"},
		{"tiny buffers", func(g *Geometry) { g.BufSize = 32 }, "buffer size 32"},
	}
	for _, tt := range tests {
		g := good
		tt.change(&g)
		err := g.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestLayout(t *testing.T) {
	for _, g := range []Geometry{
		DefaultGeometry(),
		{TxRings: 3, RxRings: 2, TxSlots: 1000, RxSlots: 7, BufSize: 64, ExtraBufs: 5},
		{TxRings: MaxRings, RxRings: MaxRings, TxSlots: MaxSlots, RxSlots: MaxSlots, BufSize: MaxBufSize},
	} {
		l, err := g.Layout()
		if err != nil {
			t.Fatalf("%+v: %v", g, err)
		}
		end := int64(ifHeaderSize + 8*l.NumRings)
		next := uint32(reservedBufs)
		for i, off := range l.RingOfs {
			if off%cacheLine != 0 {
				t.Errorf("%+v: ring %d at %d not cache aligned", g, i, off)
			}
			if off < end {
				t.Errorf("%+v: ring %d at %d overlaps what precedes it (ends at %d)", g, i, off, end)
			}
			slots := g.TxSlots
			if i >= int(g.TxRings) {
				slots = g.RxSlots
			}
			end = off + ringHeaderSize + slotSize*int64(slots)
			if l.FirstBufs[i] != next {
				t.Errorf("%+v: ring %d first buffer %d, want %d", g, i, l.FirstBufs[i], next)
			}
			next += slots
		}
		if l.BufOfs < end || l.BufOfs%pageSize != 0 {
			t.Errorf("%+v: buffers at %d (rings end at %d)", g, l.BufOfs, end)
		}
		if l.Size < l.BufOfs+int64(l.NumBufs)*int64(g.BufSize) || l.Size%pageSize != 0 {
			t.Errorf("%+v: size %d too small or unaligned", g, l.Size)
		}
		if next+g.ExtraBufs != l.NumBufs {
			t.Errorf("%+v: %d buffers, rings and extras need %d", g, l.NumBufs, next+g.ExtraBufs)
		}
	}
}

// newTestRegion returns initialised heap memory for g: what the race
// detector can see, unlike mmap'd memory.
func newTestRegion(t testing.TB, g Geometry) ([]byte, Layout) {
	t.Helper()
	l, err := g.Layout()
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, l.Size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), l.Size)
	if err := Init(mem, l, "vale0:test"); err != nil {
		t.Fatal(err)
	}
	return mem, l
}

func TestInitAndVerify(t *testing.T) {
	g := Geometry{TxRings: 2, RxRings: 1, TxSlots: 16, RxSlots: 8, BufSize: 128, ExtraBufs: 3}
	mem, l := newTestRegion(t, g)
	r, err := newRegion(mem, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.verify(); err != nil {
		t.Fatalf("verify fresh region: %v", err)
	}
	if got := strings.TrimRight(string(r.ifHeader().Name[:]), "\x00"); got != "vale0:test" {
		t.Errorf("name %q", got)
	}
	for i := range l.NumRings {
		h := r.ringHeader(i)
		wantTail := uint32(0)
		if i < int(g.TxRings) {
			wantTail = h.NumSlots - 1
		}
		if h.head.Load() != 0 || h.cur.Load() != 0 || h.tail.Load() != wantTail {
			t.Errorf("ring %d: head %d cur %d tail %d, want 0 0 %d", i, h.head.Load(), h.cur.Load(), h.tail.Load(), wantTail)
		}
		for j, s := range r.slots(i) {
			if s.BufIdx != l.FirstBufs[i]+uint32(j) {
				t.Fatalf("ring %d slot %d has buffer %d", i, j, s.BufIdx)
			}
		}
	}
	// The extra buffers form a list ending with 0.
	seen := 0
	for idx := r.ifHeader().BufsHead.Load(); idx != 0; seen++ {
		if idx < l.NumBufs-g.ExtraBufs || idx >= l.NumBufs || seen > int(g.ExtraBufs) {
			t.Fatalf("extra buffer list reaches %d", idx)
		}
		b := r.bufs()[int(idx)*int(g.BufSize):]
		idx = uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	if seen != int(g.ExtraBufs) {
		t.Errorf("extra buffer list has %d buffers, want %d", seen, g.ExtraBufs)
	}
	// A corrupted header is refused.
	r.ringHeader(1).NumSlots = 3
	if err := r.verify(); err == nil {
		t.Error("verify accepted a ring with the wrong slot count")
	}
}
