package ports

import (
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"
)

// TestNetmapIfLayout pins netmap's struct netmap_if (sys/net/netmap.h, LP64).
func TestNetmapIfLayout(t *testing.T) {
	var h netmapIf
	checkFields(t, "netmap_if", []field{
		{"ni_name", unsafe.Offsetof(h.Name), 0},
		{"ni_version", unsafe.Offsetof(h.Version), 16},
		{"ni_flags", unsafe.Offsetof(h.Flags), 20},
		{"ni_tx_rings", unsafe.Offsetof(h.TxRings), 24},
		{"ni_rx_rings", unsafe.Offsetof(h.RxRings), 28},
		{"ni_bufs_head", unsafe.Offsetof(h.BufsHead), 32},
		{"ni_host_tx_rings", unsafe.Offsetof(h.HostTxRings), 36},
		{"ni_host_rx_rings", unsafe.Offsetof(h.HostRxRings), 40},
	})
	if s := unsafe.Sizeof(h); s != nifHeaderSize {
		t.Errorf("netmap_if header is %d bytes, want %d (ring_ofs starts there)", s, nifHeaderSize)
	}
	if need := nifHeaderSize + 8*(2*MaxRings+2); need > nifSize { // an interface has at most 2*MaxRings rings
		t.Errorf("a netmap_if may need %d bytes, slots have %d", need, nifSize)
	}
}

// cNetmapRing finds ring i of a netmap_if as netmap's macros do, reading
// only bytes: NETMAP_TXRING(nifp, i) is nifp + ring_ofs[i], NETMAP_RXRING
// skips the TX and host TX entries.
func cNetmapRing(mem []byte, nif int64, rx bool, i int) int64 {
	le := binary.LittleEndian
	idx := i
	if rx {
		idx += int(le.Uint32(mem[nif+24:])) + int(le.Uint32(mem[nif+36:]))
	}
	rel := int64(le.Uint64(mem[nif+56+8*int64(idx):]))
	if rel == 0 {
		return 0
	}
	return nif + rel
}

func TestNetmapIfWrite(t *testing.T) {
	g := Geometry{TxRings: 3, RxRings: 2, TxSlots: 8, RxSlots: 16, BufSize: 128}
	l, err := PortLayout(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, l.Size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), l.Size)
	if err := Init(mem, l, []string{"vale0:a-port-with-a-long-name"}); err != nil {
		t.Fatal(err)
	}
	nifs := NewNetmapIfs(mem, &l)
	if nifs.MemID() == 0 || NewNetmapIfs(mem, &l).MemID() == nifs.MemID() {
		t.Errorf("memory ids %d and then the same: want distinct, non-zero ids", nifs.MemID())
	}
	// A binding to TX ring 1 and RX ring 1 only (netmap's -1).
	ofs, err := nifs.Write(0, Bound{TxFirst: 1, TxLast: 2, RxFirst: 1, RxLast: 2}, "vale0:a-port-with-a-long-name", 0)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if name := cString(mem[ofs : ofs+16]); name != "vale0:a-port-wi" {
		t.Errorf("ni_name %q, want the first 15 bytes", name)
	}
	if v, tx, rx, htx, hrx := le.Uint32(mem[ofs+16:]), le.Uint32(mem[ofs+24:]), le.Uint32(mem[ofs+28:]), le.Uint32(mem[ofs+36:]), le.Uint32(mem[ofs+40:]); v != NetmapAPI || tx != 3 || rx != 2 || htx != 1 || hrx != 1 {
		t.Errorf("ni_version %d, rings %d/%d, host rings %d/%d; want %d, 3/2, 1/1", v, tx, rx, htx, hrx, NetmapAPI)
	}
	for _, c := range []struct {
		rx    bool
		i     int
		bound bool
	}{{false, 0, false}, {false, 1, true}, {false, 2, false}, {false, 3, false}, {true, 0, false}, {true, 1, true}, {true, 2, false}} {
		ro := cNetmapRing(mem, ofs, c.rx, c.i)
		if !c.bound {
			if ro != 0 {
				t.Errorf("rx=%v ring %d: offset %d, want 0 (not bound)", c.rx, c.i, ro)
			}
			continue
		}
		dir, slots, want := uint16(0), uint32(8), l.Ifaces[0].RingOfs[c.i]
		if c.rx {
			dir, slots, want = 1, 16, l.Ifaces[0].RingOfs[3+c.i]
		}
		if ro != want || le.Uint32(mem[ro+8:]) != slots || le.Uint16(mem[ro+16:]) != uint16(c.i) || le.Uint16(mem[ro+18:]) != dir {
			t.Errorf("rx=%v ring %d at %d (want %d): num_slots %d ringid %d dir %d", c.rx, c.i, ro, want,
				le.Uint32(mem[ro+8:]), le.Uint16(mem[ro+16:]), le.Uint16(mem[ro+18:]))
		}
		// NETMAP_BUF(ring, slot[0].buf_idx) is buffer slot 0 started with.
		bufOfs := int64(le.Uint64(mem[ro:]))
		idx := le.Uint32(mem[ro+256:])
		if got := ro + bufOfs + int64(idx)*int64(le.Uint32(mem[ro+12:])); got != l.BufOfs+int64(idx)*int64(l.BufSize) {
			t.Errorf("rx=%v ring %d: NETMAP_BUF at %d, want %d", c.rx, c.i, got, l.BufOfs+int64(idx)*int64(l.BufSize))
		}
	}
	// Every slot taken, then one freed and taken again.
	var all []int64
	for {
		o, err := nifs.Write(0, Bound{TxLast: 3, RxLast: 2}, "x", 0)
		if errors.Is(err, errNoNetmapIf) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, o)
	}
	if len(all) != MaxBindings-1 {
		t.Fatalf("%d more bindings, want %d", len(all), MaxBindings-1)
	}
	le.PutUint32(mem[all[5]+32:], 77) // the application's bufs_head
	if head := nifs.Release(all[5]); head != 77 {
		t.Errorf("released bufs_head %d, want 77", head)
	}
	if nifs.Release(all[5]+8) != 0 || nifs.Release(-1) != 0 {
		t.Error("releasing an offset that is no slot returned a buffer")
	}
	if o, err := nifs.Write(0, Bound{TxLast: 3, RxLast: 2}, "x", 0); err != nil || o != all[5] {
		t.Errorf("after a release: slot at %d, %v; want %d", o, err, all[5])
	}
	if _, err := nifs.Write(0, Bound{TxLast: 4}, "x", 0); err == nil {
		t.Error("a binding to a ring the interface lacks was written")
	}
	// The region goes (its port is destroyed) before a binding to it does
	// (an orphaned zero-copy monitor): nothing is read or written any more.
	nifs.Close()
	if head := nifs.Release(all[6]); head != 0 {
		t.Errorf("release after close read bufs_head %d", head)
	}
	if _, err := nifs.Write(0, Bound{TxLast: 3, RxLast: 2}, "x", 0); err == nil {
		t.Error("a netmap_if was written after close")
	}
}
