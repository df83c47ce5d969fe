package ports

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

// field is a field's offset next to the one documented.
type field struct {
	name string
	got  uintptr
	want uintptr
}

func checkFields(t *testing.T, what string, fields []field) {
	t.Helper()
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s: %s at offset %d, documented at %d", what, f.name, f.got, f.want)
		}
	}
}

// TestNetmapRingLayout pins netmap's struct netmap_ring (sys/net/netmap.h,
// LP64): C programs compiled against netmap's headers read these offsets.
func TestNetmapRingLayout(t *testing.T) {
	var r NetmapRing
	checkFields(t, "netmap ring", []field{
		{"buf_ofs", unsafe.Offsetof(r.BufOfs), 0},
		{"num_slots", unsafe.Offsetof(r.NumSlots), 8},
		{"nr_buf_size", unsafe.Offsetof(r.BufSize), 12},
		{"ringid", unsafe.Offsetof(r.RingID), 16},
		{"dir", unsafe.Offsetof(r.Dir), 18},
		{"head", unsafe.Offsetof(r.head), 20},
		{"cur", unsafe.Offsetof(r.cur), 24},
		{"tail", unsafe.Offsetof(r.tail), 28},
		{"flags", unsafe.Offsetof(r.flags), 32},
		{"ts.tv_sec", unsafe.Offsetof(r.tsSec), 40},
		{"ts.tv_usec", unsafe.Offsetof(r.tsUsec), 48},
		{"offset_mask", unsafe.Offsetof(r.OffsetMask), 56},
		{"buf_align", unsafe.Offsetof(r.BufAlign), 64},
		{"sem", unsafe.Offsetof(r.sem), 128},
	})
	if s := unsafe.Sizeof(r); s != ringHeaderSize {
		t.Errorf("netmap ring header is %d bytes, want %d (slot[] starts there)", s, ringHeaderSize)
	}
}

// TestRingHeaderLayout pins the byte offsets the package documentation
// promises: they are the ABI shared with other processes.
func TestRingHeaderLayout(t *testing.T) {
	var h RingHeader
	fields := []field{
		{"buf_ofs", unsafe.Offsetof(h.BufOfs), 0},
		{"num_slots", unsafe.Offsetof(h.NumSlots), 8},
		{"nr_buf_size", unsafe.Offsetof(h.BufSize), 12},
		{"ringid", unsafe.Offsetof(h.RingID), 16},
		{"dir", unsafe.Offsetof(h.Dir), 18},
		{"num_bufs", unsafe.Offsetof(h.NumBufs), 20},
		{"offset_mask", unsafe.Offsetof(h.OffsetMask), 24},
		{"buf_align", unsafe.Offsetof(h.BufAlign), 32},
		{"first_buf", unsafe.Offsetof(h.FirstBuf), 40},
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
		{"hwcur", unsafe.Offsetof(h.hwcur), 164},
		{"dropped", unsafe.Offsetof(h.dropped), 168},
	}
	checkFields(t, "control block", fields)
	if s := unsafe.Sizeof(h); s != ctlSize {
		t.Errorf("control block is %d bytes, want %d", s, ctlSize)
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
	if o := unsafe.Offsetof(ifh.Kind); o != 56 {
		t.Errorf("interface kind at %d, want 56", o)
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

// checkLayout verifies that nothing in l overlaps, everything is aligned,
// and every non-borrowed ring owns its own buffers.
func checkLayout(t *testing.T, what string, l Layout) {
	t.Helper()
	type span struct{ lo, hi int64 }
	var spans []span
	owned := map[uint32]bool{}
	for fi, f := range l.Ifaces {
		if f.Ofs%cacheLine != 0 {
			t.Errorf("%s: interface %d at %d not cache aligned", what, fi, f.Ofs)
		}
		spans = append(spans, span{f.Ofs, f.Ofs + ifHeaderSize + 2*8*int64(f.NumRings())})
		for r, off := range f.RingOfs {
			if off%ringAlign != 0 {
				t.Errorf("%s: interface %d ring %d at %d not 128-byte aligned", what, fi, r, off)
			}
			if f.CtlOfs[r]%cacheLine != 0 {
				t.Errorf("%s: interface %d control block %d at %d not cache aligned", what, fi, r, f.CtlOfs[r])
			}
			spans = append(spans, span{off, off + ringHeaderSize + slotSize*int64(f.Slots[r])},
				span{f.CtlOfs[r], f.CtlOfs[r] + ctlSize})
			for j := range f.Slots[r] {
				owned[f.FirstBufs[r]+j] = true
			}
		}
	}
	for i, a := range spans {
		if a.hi > l.BufOfs {
			t.Errorf("%s: part %d [%d, %d) runs into the buffers at %d", what, i, a.lo, a.hi, l.BufOfs)
		}
		for _, b := range spans[i+1:] {
			if a.lo < b.hi && b.lo < a.hi {
				t.Errorf("%s: parts [%d, %d) and [%d, %d) overlap", what, a.lo, a.hi, b.lo, b.hi)
			}
		}
	}
	if l.BufOfs%pageSize != 0 || l.Size%pageSize != 0 || l.Size < l.BufOfs+int64(l.NumBufs)*int64(l.BufSize) {
		t.Errorf("%s: buffers at %d, %d of %d, size %d", what, l.BufOfs, l.NumBufs, l.BufSize, l.Size)
	}
	if uint32(len(owned))+reservedBufs+l.ExtraBufs != l.NumBufs || owned[0] || owned[1] {
		t.Errorf("%s: rings use %d buffers, pool has %d (%d extra)", what, len(owned), l.NumBufs, l.ExtraBufs)
	}
}

func TestLayout(t *testing.T) {
	for _, g := range []Geometry{
		DefaultGeometry(),
		{TxRings: 3, RxRings: 2, TxSlots: 1000, RxSlots: 7, BufSize: 64, ExtraBufs: 5},
		{TxRings: MaxRings, RxRings: MaxRings, TxSlots: MaxSlots, RxSlots: MaxSlots, BufSize: MaxBufSize},
	} {
		for z := range 3 {
			l, err := PortLayout(g, z)
			if err != nil {
				t.Fatalf("%+v: %v", g, err)
			}
			checkLayout(t, fmt.Sprintf("port %+v z%d", g, z), l)
			if len(l.Ifaces) != 1+z || l.Ifaces[0].Kind != IfacePort {
				t.Errorf("port with %d zero-copy monitor levels has %d interfaces", z, len(l.Ifaces))
			}
			if z > 0 {
				zm := l.Ifaces[l.ZeroCopyMonitor(0, z)]
				if zm.Kind != IfaceZeroCopyMonitor || zm.TxRings != 0 || zm.RxRings != int(g.TxRings+g.RxRings) {
					t.Errorf("zero-copy monitor level %d: %+v", z, zm)
				}
			}
		}
	}
}

func TestPipeLayout(t *testing.T) {
	g := Geometry{TxRings: 2, RxRings: 1, TxSlots: 64, RxSlots: 32, BufSize: 2048}
	l, err := PipeLayout(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, "pipe", l)
	m, s := l.Ifaces[0], l.Ifaces[1]
	if m.Kind != IfacePipeMaster || s.Kind != IfacePipeSlave || s.TxRings != 1 || s.RxRings != 2 {
		t.Fatalf("ends %+v %+v", m, s)
	}
	// Each RX ring starts on the buffers of the peer's TX ring of the same index.
	for i := range m.TxRings {
		if s.FirstBufs[s.Ring(RX, i)] != m.FirstBufs[m.Ring(TX, i)] || s.Slots[s.Ring(RX, i)] != m.Slots[m.Ring(TX, i)] {
			t.Errorf("slave rx %d does not mirror master tx %d", i, i)
		}
	}
	for i := range s.TxRings {
		if m.FirstBufs[m.Ring(RX, i)] != s.FirstBufs[s.Ring(TX, i)] {
			t.Errorf("master rx %d does not mirror slave tx %d", i, i)
		}
	}
	if len(l.Ifaces) != 4 || l.Ifaces[l.ZeroCopyMonitor(1, 1)].RxRings != 3 {
		t.Errorf("zero-copy monitor interfaces of a pipe: %d", len(l.Ifaces))
	}
}

// newTestRegion returns initialised heap memory for a port of geometry g:
// what the race detector can see, unlike mmap'd memory.
func newTestRegion(t testing.TB, g Geometry) ([]byte, Layout) {
	t.Helper()
	l, err := PortLayout(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, l.Size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), l.Size)
	if err := Init(mem, l, []string{"vale0:test"}); err != nil {
		t.Fatal(err)
	}
	return mem, l
}

func TestInitAndOpenIface(t *testing.T) {
	g := Geometry{TxRings: 2, RxRings: 1, TxSlots: 16, RxSlots: 8, BufSize: 128, ExtraBufs: 3}
	mem, l := newTestRegion(t, g)
	f, err := OpenIface(mem, l.Ifaces[0].Ofs)
	if err != nil {
		t.Fatalf("open fresh interface: %v", err)
	}
	if f.Name() != "vale0:test" || f.NumRings(TX) != 2 || f.NumRings(RX) != 1 || f.Kind() != IfacePort {
		t.Errorf("interface %q kind %d with %d/%d rings", f.Name(), f.Kind(), f.NumRings(TX), f.NumRings(RX))
	}
	for d, n := range map[Direction]int{TX: 2, RX: 1} {
		for i := range n {
			r := f.Ring(d, i, "x")
			wantTail := uint32(0)
			if d == TX {
				wantTail = r.NumSlots() - 1
			}
			if r.Head() != 0 || r.Cur() != 0 || r.Tail() != wantTail {
				t.Errorf("%s ring %d: head %d cur %d tail %d, want 0 0 %d", d, i, r.Head(), r.Cur(), r.Tail(), wantTail)
			}
			for j := range r.NumSlots() {
				if r.Slot(j).BufIdx != r.HomeBuf(j) {
					t.Fatalf("%s ring %d slot %d has buffer %d", d, i, j, r.Slot(j).BufIdx)
				}
			}
		}
	}
	if f.hdr.BufsHead.Load() != 0 {
		t.Errorf("interface bufs_head %d: extra buffers go to bindings, from their netmap_if", f.hdr.BufsHead.Load())
	}
	// Corrupted headers are refused, never followed.
	corrupt := []struct {
		name string
		off  int64
		val  uint32
	}{
		{"slot count", l.Ifaces[0].RingOfs[1] + 8, 1 << 20},
		{"magic", 0, 0},
		{"ring count", 12, 1000},
		{"buffer count", 36, 1 << 30},
	}
	for _, c := range corrupt {
		bad := append([]byte(nil), mem...)
		binary.LittleEndian.PutUint32(bad[c.off:], c.val)
		if _, err := OpenIface(alignedCopy(bad), 0); err == nil {
			t.Errorf("corrupted %s accepted", c.name)
		}
	}
	if _, err := OpenIface(mem, 3); err == nil {
		t.Error("unaligned interface offset accepted")
	}
	if _, err := OpenIface(mem, int64(len(mem))); err == nil {
		t.Error("interface beyond the memory accepted")
	}
}

func alignedCopy(b []byte) []byte {
	words := make([]uint64, (len(b)+7)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(b))
	copy(mem, b)
	return mem
}

func TestMonitorLayout(t *testing.T) {
	l, err := MonitorLayout(2*MaxRings, 64, 2048)
	if err != nil {
		t.Fatalf("monitor of a port with %d ring pairs: %v", MaxRings, err)
	}
	checkLayout(t, "monitor", l)
	if f := l.Ifaces[0]; f.TxRings != 0 || f.RxRings != 2*MaxRings {
		t.Errorf("monitor interface %+v", f)
	}
	if _, err := MonitorLayout(2*MaxRings+1, 64, 2048); err == nil {
		t.Error("monitor with too many rings accepted")
	}
}
