package ports

import (
	"errors"
	"fmt"

	"github.com/valeswitch/vale/vale/frame"
)

// Slot flags, with netmap's bit values.
const (
	NS_BUF_CHANGED = 0x1  // the buffer index of the slot was changed
	NS_REPORT      = 0x2  // ask for a TX completion report
	NS_FORWARD     = 0x4  // pass the slot to the peer (NIC <-> host) on release
	NS_NO_LEARN    = 0x8  // the switch must not learn the source MAC
	NS_INDIRECT    = 0x10 // payload at a user address (not supported by vale)
	NS_MOREFRAG    = 0x20 // more fragments of the same frame follow
	NS_TXMON       = 0x40 // monitor slot that came from a TX ring
)

// Ring flags, with netmap's bit values.
const (
	NR_TIMESTAMP = 0x2 // update the ring timestamp on every sync
	NR_FORWARD   = 0x4 // enable NS_FORWARD
)

// Limits and defaults of a port's geometry.
const (
	DefaultSlots   = 1024           // slots per ring unless configured
	MinSlots       = 2              // a ring of two slots holds one frame
	MaxSlots       = 4096           // as netmap's VALE ports
	DefaultRings   = 1              // ring pairs per port unless configured
	MaxRings       = 16             // as netmap's NM_BDG_MAXRINGS
	DefaultBufSize = 2048           // bytes per buffer
	MinBufSize     = 64             // one cache line
	MaxBufSize     = 65536          // netmap's pool limit
	MaxFrags       = frame.MaxFrags // slots a single frame may span (NS_MOREFRAG)
	MaxBatch       = frame.MaxBatch // slots the switch takes from a ring per round
	MaxExtraBufs   = 65536
	maxMemSize     = 1 << 36
	reservedBufs   = 2 // buffers 0 and 1 are never handed out
)

// Magic and Version identify the layout in the interface header.
const (
	Magic   = 0x454c4156 // "VALE"
	Version = 2          // netmap's struct netmap_ring at each ring offset
)

// Interface flags.
const (
	NI_PRIV_MEM = 1 // the memory region belongs to this port alone
)

// Direction says whether a ring carries frames from the application to the
// switch (TX) or from the switch to the application (RX).
type Direction uint16

// Ring directions, with netmap's values.
const (
	TX Direction = 0
	RX Direction = 1
)

// String returns "tx" or "rx".
func (d Direction) String() string {
	if d == RX {
		return "rx"
	}
	return "tx"
}

// Geometry is the shape of a port: ring counts, slots per ring, buffer size
// and extra buffers. Everything else in the layout follows from it.
type Geometry struct {
	TxRings   uint32 `json:"tx_rings"`
	RxRings   uint32 `json:"rx_rings"`
	TxSlots   uint32 `json:"tx_slots"`
	RxSlots   uint32 `json:"rx_slots"`
	BufSize   uint32 `json:"buf_size"`
	ExtraBufs uint32 `json:"extra_bufs,omitempty"`
}

// DefaultGeometry is what a port gets when nothing is configured.
func DefaultGeometry() Geometry {
	return Geometry{
		TxRings: DefaultRings, RxRings: DefaultRings,
		TxSlots: DefaultSlots, RxSlots: DefaultSlots,
		BufSize: DefaultBufSize,
	}
}

// Validate reports whether every field of g is within its limits.
func (g Geometry) Validate() error {
	var errs []error
	check := func(name string, v, lo, hi uint32) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("%s %d out of range [%d, %d]", name, v, lo, hi))
		}
	}
	check("tx rings", g.TxRings, 1, MaxRings)
	check("rx rings", g.RxRings, 1, MaxRings)
	check("tx slots", g.TxSlots, MinSlots, MaxSlots)
	check("rx slots", g.RxSlots, MinSlots, MaxSlots)
	check("buffer size", g.BufSize, MinBufSize, MaxBufSize)
	check("extra buffers", g.ExtraBufs, 0, MaxExtraBufs)
	if g.BufSize%64 != 0 {
		errs = append(errs, fmt.Errorf("buffer size %d is not a multiple of 64", g.BufSize))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid port geometry: %w", err)
	}
	return nil
}

// Sizes and alignments of the fixed parts of the layout.
const (
	ifHeaderSize   = 128
	ringHeaderSize = 256 // netmap's struct netmap_ring, slots excluded
	ctlSize        = 256 // a ring's control block
	slotSize       = 16
	cacheLine      = 64
	ringAlign      = 128 // netmap's rings are 128-byte aligned
	pageSize       = 4096
)

func alignUp(v, a int64) int64 { return (v + a - 1) &^ (a - 1) }

// Kinds of interface a region holds.
const (
	IfacePort            = 1 // a VALE port (or a copy monitor's own memory)
	IfacePipeMaster      = 2 // the master end of a pipe, NAME{ID
	IfacePipeSlave       = 3 // the slave end of a pipe, NAME}ID
	IfaceZeroCopyMonitor = 4 // a zero-copy monitor level of another interface of the region
)

// IfaceLayout places one interface in a region: its header, its rings (TX
// rings first, then RX rings) and their control blocks.
type IfaceLayout struct {
	Kind      uint32
	TxRings   int
	RxRings   int
	Ofs       int64    // interface header, from the region start
	RingOfs   []int64  // each ring (netmap's struct netmap_ring), from the region start
	CtlOfs    []int64  // each ring's control block, from the region start
	Slots     []uint32 // slots of each ring
	FirstBufs []uint32 // buffer of slot 0 of each ring; slot j starts with FirstBufs+j
}

// NumRings returns TxRings + RxRings.
func (f *IfaceLayout) NumRings() int { return f.TxRings + f.RxRings }

// Ring returns the position of ring i of direction d in RingOfs.
func (f *IfaceLayout) Ring(d Direction, i int) int {
	if d == RX {
		return f.TxRings + i
	}
	return i
}

// Layout gives the position of every part of a region: the interfaces
// (one for a VALE port, two for a pipe pair, then zero-copy monitor levels
// for each of them), their rings, and the buffer pool they share.
type Layout struct {
	BufSize   uint32
	ExtraBufs uint32 // extra buffers of interface 0, chained from its bufs_head
	NumBufs   uint32 // buffers in the pool, reserved ones included
	BufOfs    int64  // offset of buffer 0 from the region start
	Size      int64  // bytes in the region
	NifOfs    int64  // the netmap_if area: MaxBindings slots, one per binding
	Ports     int    // port interfaces: 1, or 2 for a pipe pair
	ZLevels   int    // zero-copy monitor levels per port interface
	Ifaces    []IfaceLayout
}

// MaxZLevels is the most zero-copy monitors that can be chained on one port.
const MaxZLevels = 4

// ZeroCopyMonitor returns the interface index of zero-copy monitor level (1-based) of
// port interface port.
func (l *Layout) ZeroCopyMonitor(port, level int) int { return l.Ports + port*l.ZLevels + level - 1 }

// Hot returns how many bytes from the start of the region the port
// interfaces use from the first frame on: every header and ring, and the
// buffers the port interfaces' rings start with. Zero-copy monitor levels'
// buffers and extra buffers lie beyond, untouched until used.
func (l *Layout) Hot() int64 {
	end := uint32(reservedBufs)
	for _, f := range l.Ifaces[:l.Ports] {
		for r, n := range f.Slots {
			end = max(end, f.FirstBufs[r]+n)
		}
	}
	return l.BufOfs + int64(end)*int64(l.BufSize)
}

// MaxFrameLen is the largest length a single slot can carry.
func (l *Layout) MaxFrameLen() int { return min(int(l.BufSize), 0xffff) }

// ifaceSpec describes an interface before placement.
type ifaceSpec struct {
	kind     uint32
	tx, rx   []uint32 // slots of each ring
	borrowRx int      // -1, or the interface whose TX ring i lends its buffers to RX ring i
}

func ringSlots(n, slots uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = slots
	}
	return s
}

// PortLayout lays out a VALE port of geometry g with zlevels zero-copy
// monitor levels.
func PortLayout(g Geometry, zlevels int) (Layout, error) {
	if err := g.Validate(); err != nil {
		return Layout{}, err
	}
	spec := ifaceSpec{kind: IfacePort, tx: ringSlots(g.TxRings, g.TxSlots), rx: ringSlots(g.RxRings, g.RxSlots), borrowRx: -1}
	return build(g, []ifaceSpec{spec}, zlevels)
}

// MonitorLayout lays out the private memory of a copy monitor: rxRings
// receive rings (up to 2*MaxRings: both directions of a port) of slots
// slots, and no transmit ring.
func MonitorLayout(rxRings, slots, bufSize uint32) (Layout, error) {
	if rxRings < 1 || rxRings > 2*MaxRings {
		return Layout{}, fmt.Errorf("invalid monitor geometry: %d rings out of range [1, %d]", rxRings, 2*MaxRings)
	}
	g := Geometry{TxRings: 1, RxRings: 1, TxSlots: slots, RxSlots: slots, BufSize: bufSize}
	if err := g.Validate(); err != nil {
		return Layout{}, err
	}
	g.RxRings = rxRings
	spec := ifaceSpec{kind: IfacePort, rx: ringSlots(rxRings, slots), borrowRx: -1}
	return build(g, []ifaceSpec{spec}, 0)
}

// PipeLayout lays out a pipe pair: the master end has geometry g, the slave
// end the mirror image (its TX rings are the master's RX rings and the other
// way round). TX ring i of one end and RX ring i of the other share their
// buffers slot by slot, so frames move between the ends without a copy.
func PipeLayout(g Geometry, zlevels int) (Layout, error) {
	if err := g.Validate(); err != nil {
		return Layout{}, err
	}
	g.ExtraBufs = 0
	master := ifaceSpec{kind: IfacePipeMaster, tx: ringSlots(g.TxRings, g.TxSlots), rx: ringSlots(g.RxRings, g.RxSlots), borrowRx: 1}
	slave := ifaceSpec{kind: IfacePipeSlave, tx: ringSlots(g.RxRings, g.RxSlots), rx: ringSlots(g.TxRings, g.TxSlots), borrowRx: 0}
	return build(g, []ifaceSpec{master, slave}, zlevels)
}

// build places the port interfaces in specs, then zlevels zero-copy monitor
// interfaces for each (one RX ring per ring of the monitored interface):
// their headers, the netmap_if area, their rings, the rings' control
// blocks, then the buffers.
func build(g Geometry, specs []ifaceSpec, zlevels int) (Layout, error) {
	if zlevels < 0 || zlevels > MaxZLevels {
		return Layout{}, fmt.Errorf("zero-copy monitor levels %d out of range [0, %d]", zlevels, MaxZLevels)
	}
	l := Layout{BufSize: g.BufSize, ExtraBufs: g.ExtraBufs, Ports: len(specs), ZLevels: zlevels}
	all := specs
	for _, p := range specs {
		for range zlevels {
			all = append(all, ifaceSpec{kind: IfaceZeroCopyMonitor, rx: append(append([]uint32{}, p.tx...), p.rx...), borrowRx: -1})
		}
	}
	off := int64(0)
	for _, s := range all {
		f := IfaceLayout{Kind: s.kind, TxRings: len(s.tx), RxRings: len(s.rx), Ofs: off}
		f.Slots = append(append([]uint32{}, s.tx...), s.rx...)
		off = alignUp(off+ifHeaderSize+2*8*int64(len(f.Slots)), ringAlign)
		l.Ifaces = append(l.Ifaces, f)
	}
	l.NifOfs = off
	off += MaxBindings * nifSize
	for i := range l.Ifaces {
		f := &l.Ifaces[i]
		for _, n := range f.Slots {
			f.RingOfs = append(f.RingOfs, off)
			off = alignUp(off+ringHeaderSize+slotSize*int64(n), ringAlign)
		}
	}
	for i := range l.Ifaces {
		f := &l.Ifaces[i]
		for range f.Slots {
			f.CtlOfs = append(f.CtlOfs, off)
			off += ctlSize
		}
	}
	// Buffers: every ring owns one per slot, except RX rings that borrow
	// the buffers of a peer's TX ring.
	next := uint32(reservedBufs)
	for i := range l.Ifaces {
		f := &l.Ifaces[i]
		f.FirstBufs = make([]uint32, len(f.Slots))
		for r, n := range f.Slots {
			if r >= f.TxRings && all[i].borrowRx >= 0 {
				continue
			}
			f.FirstBufs[r] = next
			next += n
		}
	}
	for i := range l.Ifaces {
		f := &l.Ifaces[i]
		if lender := all[i].borrowRx; lender >= 0 {
			for r := range f.RxRings {
				f.FirstBufs[f.TxRings+r] = l.Ifaces[lender].FirstBufs[r]
			}
		}
	}
	l.NumBufs = next + g.ExtraBufs
	l.BufOfs = alignUp(off, pageSize)
	l.Size = alignUp(l.BufOfs+int64(l.NumBufs)*int64(g.BufSize), pageSize)
	if l.Size > maxMemSize {
		return Layout{}, fmt.Errorf("invalid port geometry: region of %d bytes exceeds %d", l.Size, int64(maxMemSize))
	}
	return l, nil
}
