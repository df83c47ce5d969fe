package ports

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// NetmapAPI is the version of netmap's API vale's netmap_if and requests
// follow (netmap's NETMAP_API).
const NetmapAPI = 14

// MaxBindings is the most bindings a region serves at once: each gets its
// own netmap_if in the region's netmap_if area.
const MaxBindings = 64

// nifSize is the room of one netmap_if: its 56-byte header and a ring_ofs
// entry for every ring an interface may have, host rings included
// (2*MaxRings + 2), rounded up to netmap's ring alignment.
const nifSize = 384

// nifHeaderSize is the size of netmap's struct netmap_if before ring_ofs.
const nifHeaderSize = 56

// netmapIf is netmap's struct netmap_if, without its ring_ofs array.
type netmapIf struct {
	Name        [16]byte // ni_name, NUL terminated
	Version     uint32   // ni_version, NetmapAPI
	Flags       uint32   // ni_flags, NI_PRIV_MEM
	TxRings     uint32   // ni_tx_rings
	RxRings     uint32   // ni_rx_rings
	BufsHead    atomic.Uint32
	HostTxRings uint32
	HostRxRings uint32
	_           [3]uint32
}

// Bound says which rings of an interface a binding holds: TX rings
// [TxFirst, TxLast) and RX rings [RxFirst, RxLast).
type Bound struct {
	TxFirst, TxLast int
	RxFirst, RxLast int
}

// Pools describes a region as netmap's POOLS_INFO_GET does: where its
// netmap_if slots, its rings and its buffers lie, how many there are and
// how big each is (rings differ in size in vale: RingSize is the largest).
type Pools struct {
	IfOfs     int64  `json:"if_pool_ofs"`
	IfTotal   uint32 `json:"if_pool_total"`
	IfSize    uint32 `json:"if_pool_size"`
	RingOfs   int64  `json:"ring_pool_ofs"`
	RingTotal uint32 `json:"ring_pool_total"`
	RingSize  uint32 `json:"ring_pool_size"`
	BufOfs    int64  `json:"buf_pool_ofs"`
	BufTotal  uint32 `json:"buf_pool_total"`
	BufSize   uint32 `json:"buf_pool_size"`
}

// Pools returns the pools of a region laid out as l.
func (l *Layout) Pools() Pools {
	p := Pools{IfOfs: l.NifOfs, IfTotal: MaxBindings, IfSize: nifSize, RingOfs: -1,
		BufOfs: l.BufOfs, BufTotal: l.NumBufs, BufSize: l.BufSize}
	for _, f := range l.Ifaces {
		for r, ofs := range f.RingOfs {
			if p.RingOfs < 0 || ofs < p.RingOfs {
				p.RingOfs = ofs
			}
			p.RingTotal++
			p.RingSize = max(p.RingSize, uint32(alignUp(ringHeaderSize+slotSize*int64(f.Slots[r]), ringAlign)))
		}
	}
	return p
}

// lastMemID numbers regions for netmap's nr_mem_id.
var lastMemID atomic.Uint32

// NewMemID returns a memory id for a new region: never 0, and distinct
// from the ids of the 65534 regions made before it.
func NewMemID() uint16 { return uint16((lastMemID.Add(1)-1)%0xffff + 1) }

// NetmapIfs hands out the netmap_if slots of a region, one per binding,
// and writes each binding's netmap_if: what a netmap program finds at
// nr_offset. The region's owner (valed) writes them; applications may
// rewrite them, and valed never reads one back except its bufs_head.
type NetmapIfs struct {
	mu    sync.Mutex
	mem   []byte // nil once the region is gone (Close)
	l     *Layout
	memID uint16
	used  [MaxBindings]bool
}

// NewNetmapIfs serves the netmap_if area of mem, laid out as l.
func NewNetmapIfs(mem []byte, l *Layout) *NetmapIfs {
	return &NetmapIfs{mem: mem, l: l, memID: NewMemID()}
}

// MemID returns the region's memory id (netmap's nr_mem_id).
func (n *NetmapIfs) MemID() uint16 { return n.memID }

// errNoNetmapIf is returned when every netmap_if slot is taken.
var errNoNetmapIf = fmt.Errorf("the port's memory serves %d bindings at most", MaxBindings)

// Write takes a free slot and writes there the netmap_if of a binding to
// the rings b of interface iface, named name (cut to netmap's 15
// characters), with bufsHead as its first extra buffer. It returns the
// netmap_if's offset in the region.
func (n *NetmapIfs) Write(iface int, b Bound, name string, bufsHead uint32) (int64, error) {
	if iface < 0 || iface >= len(n.l.Ifaces) {
		return 0, errors.New("no such interface")
	}
	f := &n.l.Ifaces[iface]
	if nifHeaderSize+8*(f.TxRings+f.RxRings+2) > nifSize {
		return 0, fmt.Errorf("an interface of %d rings does not fit a netmap_if", f.TxRings+f.RxRings)
	}
	if b.TxFirst < 0 || b.TxLast > f.TxRings || b.TxFirst > b.TxLast || b.RxFirst < 0 || b.RxLast > f.RxRings || b.RxFirst > b.RxLast {
		return 0, fmt.Errorf("rings tx [%d, %d) rx [%d, %d) not in the interface", b.TxFirst, b.TxLast, b.RxFirst, b.RxLast)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mem == nil {
		return 0, errors.New("the port's memory is gone")
	}
	slot := -1
	for i, used := range n.used {
		if !used {
			slot = i
			n.used[i] = true
			break
		}
	}
	if slot < 0 {
		return 0, errNoNetmapIf
	}
	ofs := n.l.NifOfs + int64(slot)*nifSize
	area := n.mem[ofs : ofs+nifSize]
	clear(area)
	h := netmapIfAt(n.mem, ofs)
	copy(h.Name[:len(h.Name)-1], name)
	h.Version, h.Flags = NetmapAPI, NI_PRIV_MEM
	h.TxRings, h.RxRings = uint32(f.TxRings), uint32(f.RxRings)
	h.HostTxRings, h.HostRxRings = 1, 1 // none, reported as netmap does: one, at offset 0
	h.BufsHead.Store(bufsHead)
	ringOfs := int64sAt(n.mem, ofs+nifHeaderSize, f.TxRings+f.RxRings+2)
	for i := b.TxFirst; i < b.TxLast; i++ {
		ringOfs[i] = f.RingOfs[i] - ofs
	}
	for i := b.RxFirst; i < b.RxLast; i++ {
		ringOfs[f.TxRings+1+i] = f.RingOfs[f.TxRings+i] - ofs
	}
	return ofs, nil
}

// Release frees the slot of the netmap_if at ofs, as returned by Write,
// and returns the first extra buffer its bufs_head held, read once (the
// application may have written anything there); 0 once the region is
// gone. A binding may outlive its region's port: a zero-copy monitor
// stays, orphaned, after the port it watched.
func (n *NetmapIfs) Release(ofs int64) uint32 {
	slot := (ofs - n.l.NifOfs) / nifSize
	if slot < 0 || slot >= MaxBindings || n.l.NifOfs+slot*nifSize != ofs {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mem == nil {
		return 0
	}
	n.used[slot] = false
	return netmapIfAt(n.mem, ofs).BufsHead.Load()
}

// Close forgets the region, before its owner unmaps it: later Writes fail
// and Releases read nothing.
func (n *NetmapIfs) Close() {
	n.mu.Lock()
	n.mem = nil
	n.mu.Unlock()
}
