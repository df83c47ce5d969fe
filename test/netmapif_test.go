package e2e

import (
	"encoding/binary"
	"testing"

	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
)

// nifRing returns the offset in p's memory of ring i (TX, or RX if rx) as
// a netmap program finds it from its netmap_if: NETMAP_TXRING and
// NETMAP_RXRING over nr_offset, reading bytes only. 0 means not bound.
func nifRing(p *nmport.Port, rx bool, i int) int64 {
	mem, nif := p.Mem(), p.NetmapIfOffset()
	le := binary.LittleEndian
	if rx {
		i += int(le.Uint32(mem[nif+24:])) + int(le.Uint32(mem[nif+36:]))
	}
	rel := int64(le.Uint64(mem[nif+56+8*int64(i):]))
	if rel == 0 {
		return 0
	}
	return nif + rel
}

// Every binding gets its own netmap_if listing the rings it bound, the
// rings there are netmap's struct netmap_ring with the indexes the last
// sync left, and regions have distinct memory ids, shared by the two ends
// of a pipe.
func TestNetmapIfPerBinding(t *testing.T) {
	d := startValed(t)
	all := d.open(t, "vale0:nif@conf:rings=2")
	one := d.open(t, "vale0:nif-1")
	other := d.open(t, "vale0:nif2")
	master, slave := d.open(t, "netmap:nifp{1"), d.open(t, "netmap:nifp}1")
	for _, p := range []*nmport.Port{all, one, other, master, slave} {
		defer p.Close()
	}
	if all.MemID() == 0 || all.MemID() != one.MemID() || all.MemID() == other.MemID() ||
		master.MemID() != slave.MemID() || master.MemID() == all.MemID() {
		t.Errorf("memory ids: vale0:nif %d and %d, vale0:nif2 %d, pipe ends %d and %d", all.MemID(), one.MemID(), other.MemID(), master.MemID(), slave.MemID())
	}
	if all.NetmapIfOffset() == one.NetmapIfOffset() {
		t.Errorf("two bindings share the netmap_if at %d", all.NetmapIfOffset())
	}
	le := binary.LittleEndian
	mem, nif := one.Mem(), one.NetmapIfOffset()
	if name, v, tx, rx := string(mem[nif:nif+8]), le.Uint32(mem[nif+16:]), le.Uint32(mem[nif+24:]), le.Uint32(mem[nif+28:]); name != "vale0:ni" || v != ports.NetmapAPI || tx != 2 || rx != 2 {
		t.Errorf("netmap_if of vale0:nif-1: name %q version %d rings %d/%d", name, v, tx, rx)
	}
	for _, rx := range []bool{false, true} {
		if nifRing(one, rx, 0) != 0 || nifRing(one, rx, 1) == 0 || nifRing(all, rx, 0) == 0 || nifRing(all, rx, 1) == 0 {
			t.Errorf("rx=%v: vale0:nif-1 lists rings at %d and %d, vale0:nif at %d and %d; want only ring 1 bound in the first",
				rx, nifRing(one, rx, 0), nifRing(one, rx, 1), nifRing(all, rx, 0), nifRing(all, rx, 1))
		}
	}
	// A frame sent from master arrives at slave; the netmap rings show the
	// indexes the syncs left.
	tx := master.TxRing(0)
	tx.Slot(tx.Head()).Len = 60
	tx.Advance(1)
	if err := master.TxSync(); err != nil {
		t.Fatal(err)
	}
	rxr := slave.RxRing(0)
	if _, err := slave.Poll(nmport.PollIn, -1); err != nil {
		t.Fatal(err)
	}
	ro := nifRing(slave, true, 0)
	smem := slave.Mem()
	head, cur, tail := le.Uint32(smem[ro+20:]), le.Uint32(smem[ro+24:]), le.Uint32(smem[ro+28:])
	if head != rxr.Head() || cur != rxr.Cur() || tail != rxr.Tail() || rxr.Space() != 1 {
		t.Errorf("slave's netmap RX ring: head %d cur %d tail %d, library %d/%d/%d with %d frames; want the same, 1 frame",
			head, cur, tail, rxr.Head(), rxr.Cur(), rxr.Tail(), rxr.Space())
	}
	if slot := le.Uint16(smem[ro+256+16*int64(head)+4:]); slot != 60 {
		t.Errorf("slot %d of the netmap RX ring has length %d, want 60", head, slot)
	}
}
