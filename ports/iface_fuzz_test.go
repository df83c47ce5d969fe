package ports

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/valeswitch/vale/vale/frame"
)

// FuzzOpenIface hands OpenIface port memory whose headers (the interface
// header, its ring table, the ring headers) a hostile process rewrote,
// and an arbitrary interface offset. OpenIface must refuse the memory or
// give a view whose every ring, slot and buffer lies inside it, and the
// rings built on that view must be usable without a panic.
func FuzzOpenIface(f *testing.F) {
	g := Geometry{TxRings: 2, RxRings: 1, TxSlots: 8, RxSlots: 4, BufSize: 64, ExtraBufs: 2}
	put := func(pos uint16, v uint64) []byte {
		b := make([]byte, 10)
		binary.LittleEndian.PutUint16(b, pos)
		binary.LittleEndian.PutUint64(b[2:], v)
		return b
	}
	f.Add(int64(0), []byte{})
	f.Add(int64(0), put(40, 1<<63-1))            // buf_ofs
	f.Add(int64(0), put(40, 1<<62))              // buf_ofs
	f.Add(int64(0), put(36, 0xffffffff))         // num_bufs
	f.Add(int64(0), put(128, 1<<63-8))           // first ring offset
	f.Add(int64(0), put(128, uint64(1<<64-128))) // a negative ring offset
	f.Add(int64(0), put(152, 1<<63-8))           // first control block offset (after 3 ring offsets)
	f.Add(int64(0), put(152, uint64(1<<64-256))) // a negative control block offset
	f.Add(int64(0), put(12, 0xffffffff00000002)) // ring counts
	f.Add(int64(1<<63-8), []byte{})              // interface offset
	f.Add(int64(-8), []byte{})                   // interface offset
	f.Add(int64(0), append(put(256+8, 4096), put(256+40, 0xfffffffe)...))
	f.Fuzz(func(t *testing.T, ofs int64, patch []byte) {
		l, err := PortLayout(g, 1)
		if err != nil {
			t.Fatal(err)
		}
		words := make([]uint64, l.Size/8)
		mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), l.Size)
		if err := Init(mem, l, []string{"vale0:f", "vale0:f/z1"}); err != nil {
			t.Fatal(err)
		}
		for ; len(patch) >= 10; patch = patch[10:] {
			pos := int64(binary.LittleEndian.Uint16(patch)) % (l.BufOfs - 8)
			copy(mem[pos:pos+8], patch[2:10])
		}
		fi, err := OpenIface(mem, ofs)
		if err != nil {
			return
		}
		checkIfaceInside(t, fi, mem)
		exerciseRings(t, fi)
	})
}

// checkIfaceInside fails if a view of fi reaches outside mem.
func checkIfaceInside(t *testing.T, fi *Iface, mem []byte) {
	t.Helper()
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	hi := lo + uintptr(len(mem))
	inside := func(what string, p unsafe.Pointer, n uintptr) {
		if a := uintptr(p); a < lo || a+n > hi {
			t.Fatalf("%s at %#x+%d outside memory [%#x, %#x)", what, a, n, lo, hi)
		}
	}
	if len(fi.bufs) > 0 {
		inside("buffers", unsafe.Pointer(unsafe.SliceData(fi.bufs)), uintptr(len(fi.bufs)))
	}
	for _, d := range []Direction{TX, RX} {
		for i := range fi.NumRings(d) {
			inside("control block", unsafe.Pointer(fi.header(d, i)), ctlSize)
			inside("ring header", unsafe.Pointer(fi.netmapRing(d, i)), ringHeaderSize)
			s := fi.slots(d, i)
			inside("slots", unsafe.Pointer(unsafe.SliceData(s)), uintptr(len(s))*slotSize)
		}
	}
}

// exerciseRings drives both sides of every ring of fi once.
func exerciseRings(t *testing.T, fi *Iface) {
	t.Helper()
	b := frame.NewBatch()
	frame := make([]byte, 60)
	for _, k := range fi.KRings("vale0:f") {
		if k.Dir() == TX {
			if n, err := k.TxFrames(b); err == nil {
				k.TxRelease(n)
			}
			b.Reset()
		} else {
			b.Add(frame, 0)
			k.RxFrames(b, []uint16{0}, 1)
			b.Reset()
		}
		k.Occupancy()
	}
	for _, d := range []Direction{TX, RX} {
		for i := range fi.NumRings(d) {
			r := fi.Ring(d, i, "vale0:f")
			for j := range r.NumSlots() {
				_ = r.Packet(j)
			}
			r.CheckReset()
			r.Prologue()
		}
	}
}
