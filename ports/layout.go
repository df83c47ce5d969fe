package ports

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
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
	DefaultSlots   = 1024  // slots per ring unless configured
	MinSlots       = 2     // a ring of two slots holds one frame
	MaxSlots       = 4096  // as netmap's VALE ports
	DefaultRings   = 1     // ring pairs per port unless configured
	MaxRings       = 16    // as netmap's NM_BDG_MAXRINGS
	DefaultBufSize = 2048  // bytes per buffer
	MinBufSize     = 64    // one cache line
	MaxBufSize     = 65536 // netmap's pool limit
	MaxFrags       = 64    // slots a single frame may span (NS_MOREFRAG)
	MaxBatch       = 1024  // slots the switch takes from a ring per round
	MaxExtraBufs   = 65536
	maxMemSize     = 1 << 36
	reservedBufs   = 2 // buffers 0 and 1 are never handed out
)

// Magic and Version identify the layout in the interface header.
const (
	Magic   = 0x454c4156 // "VALE"
	Version = 1
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

// NumBufs is the number of buffers in the pool, reserved ones included.
func (g Geometry) NumBufs() uint32 {
	return reservedBufs + g.TxRings*g.TxSlots + g.RxRings*g.RxSlots + g.ExtraBufs
}

// MaxFrameLen is the largest length a single slot can carry.
func (g Geometry) MaxFrameLen() int {
	return min(int(g.BufSize), 0xffff)
}

// Layout gives the position of every part of a port's region.
type Layout struct {
	Geometry
	NumRings  int     // TxRings + RxRings
	RingOfs   []int64 // offset of each ring from the region start: TX rings, then RX rings
	BufOfs    int64   // offset of buffer 0 from the region start
	NumBufs   uint32  // buffers in the pool, reserved ones included
	FirstBufs []uint32
	Size      int64 // bytes in the region
}

// Sizes of the fixed parts of the layout.
const (
	ifHeaderSize   = 128
	ringHeaderSize = 256
	slotSize       = 16
	cacheLine      = 64
	pageSize       = 4096
)

func alignUp(v, a int64) int64 { return (v + a - 1) &^ (a - 1) }

// Layout computes the layout of g. g must be valid.
func (g Geometry) Layout() (Layout, error) {
	if err := g.Validate(); err != nil {
		return Layout{}, err
	}
	l := Layout{Geometry: g, NumRings: int(g.TxRings + g.RxRings), NumBufs: g.NumBufs()}
	off := alignUp(ifHeaderSize+8*int64(l.NumRings), cacheLine)
	nextBuf := uint32(reservedBufs)
	for i := 0; i < l.NumRings; i++ {
		slots := g.TxSlots
		if i >= int(g.TxRings) {
			slots = g.RxSlots
		}
		l.RingOfs = append(l.RingOfs, off)
		l.FirstBufs = append(l.FirstBufs, nextBuf)
		nextBuf += slots
		off = alignUp(off+ringHeaderSize+slotSize*int64(slots), cacheLine)
	}
	l.BufOfs = alignUp(off, pageSize)
	l.Size = alignUp(l.BufOfs+int64(l.NumBufs)*int64(g.BufSize), pageSize)
	if l.Size > maxMemSize {
		return Layout{}, fmt.Errorf("invalid port geometry: region of %d bytes exceeds %d", l.Size, int64(maxMemSize))
	}
	return l, nil
}

// RingIndex returns the position of ring i of direction d in RingOfs.
func (l *Layout) RingIndex(d Direction, i int) int {
	if d == RX {
		return int(l.TxRings) + i
	}
	return i
}

// Slots returns the number of slots of rings of direction d.
func (l *Layout) Slots(d Direction) uint32 {
	if d == RX {
		return l.RxSlots
	}
	return l.TxSlots
}

// Slot is a ring slot, netmap's struct netmap_slot. Its fields are plain
// memory shared with the other side: write them only on slots you own.
type Slot struct {
	BufIdx uint32 // buffer index
	Len    uint16 // bytes used in the buffer
	Flags  uint16 // NS_* flags
	Ptr    uint64 // RX: delivery time (CLOCK_REALTIME, ns)
}

// ifHeader is the interface header at offset 0 of a region.
type ifHeader struct {
	Magic       uint32
	Version     uint32
	Flags       uint32
	TxRings     uint32
	RxRings     uint32
	HostTxRings uint32
	HostRxRings uint32
	BufsHead    atomic.Uint32
	BufSize     uint32
	NumBufs     uint32
	BufOfs      int64
	MemSize     int64
	_           int64
	Name        [64]byte
}

// ringHeader is the 256-byte header of a ring. Line 1 is written only by the
// application, line 2 only by the switch.
type ringHeader struct {
	// Line 0: constants.
	BufOfs     int64
	NumSlots   uint32
	BufSize    uint32
	RingID     uint16
	Dir        uint16
	NumBufs    uint32
	OffsetMask uint64
	BufAlign   uint64
	_          [24]byte

	// Line 1: application-written.
	head     atomic.Uint32
	cur      atomic.Uint32
	flags    atomic.Uint32
	appKick  atomic.Uint32
	resetAck atomic.Uint32
	_        [44]byte

	// Line 2: switch-written.
	tail       atomic.Uint32
	swKick     atomic.Uint32
	resetGen   atomic.Uint32
	resetHead  atomic.Uint32
	resetWhy   atomic.Uint32
	resetSlot  atomic.Uint32
	ts         atomic.Int64
	resetValue atomic.Uint32
	_          [28]byte

	// Line 3: reserved.
	_ [64]byte
}

// region is a view of a port's memory with typed access to its parts. It
// works on any []byte: an mmap'd memfd or, in tests, ordinary heap memory.
type region struct {
	mem    []byte
	layout Layout
}

func newRegion(mem []byte, l Layout) (*region, error) {
	if int64(len(mem)) < l.Size {
		return nil, fmt.Errorf("port memory has %d bytes, layout needs %d", len(mem), l.Size)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return nil, errors.New("port memory is not 8-byte aligned")
	}
	return &region{mem: mem, layout: l}, nil
}

func (r *region) ifHeader() *ifHeader {
	return (*ifHeader)(unsafe.Pointer(&r.mem[0]))
}

func (r *region) ringHeader(i int) *ringHeader {
	off := r.layout.RingOfs[i]
	_ = r.mem[off+ringHeaderSize-1]
	return (*ringHeader)(unsafe.Pointer(&r.mem[off]))
}

func (r *region) slots(i int) []Slot {
	off := r.layout.RingOfs[i] + ringHeaderSize
	n := r.layout.TxSlots
	if i >= int(r.layout.TxRings) {
		n = r.layout.RxSlots
	}
	_ = r.mem[off+int64(n)*slotSize-1]
	return unsafe.Slice((*Slot)(unsafe.Pointer(&r.mem[off])), n)
}

func (r *region) bufs() []byte {
	l := &r.layout
	return r.mem[l.BufOfs : l.BufOfs+int64(l.NumBufs)*int64(l.BufSize)]
}

// Init writes the headers of a fresh region of layout l: constants, initial
// indexes and the buffer index of every slot. The memory must be zeroed.
// valed calls it once before handing the region out.
func Init(mem []byte, l Layout, name string) error {
	r, err := newRegion(mem, l)
	if err != nil {
		return err
	}
	if len(name) > len(ifHeader{}.Name) {
		return fmt.Errorf("port name %q longer than %d bytes", name, len(ifHeader{}.Name))
	}
	h := r.ifHeader()
	h.Magic, h.Version, h.Flags = Magic, Version, NI_PRIV_MEM
	h.TxRings, h.RxRings = l.TxRings, l.RxRings
	h.BufSize, h.NumBufs = l.BufSize, l.NumBufs
	h.BufOfs, h.MemSize = l.BufOfs, l.Size
	copy(h.Name[:], name)
	ringOfs := unsafe.Slice((*int64)(unsafe.Pointer(&mem[ifHeaderSize])), l.NumRings)
	for i := range l.NumRings {
		ringOfs[i] = l.RingOfs[i]
		rh := r.ringHeader(i)
		dir, id := TX, i
		if i >= int(l.TxRings) {
			dir, id = RX, i-int(l.TxRings)
		}
		slots := r.slots(i)
		rh.BufOfs = l.BufOfs - l.RingOfs[i]
		rh.NumSlots = uint32(len(slots))
		rh.BufSize = l.BufSize
		rh.RingID = uint16(id)
		rh.Dir = uint16(dir)
		rh.NumBufs = l.NumBufs
		for j := range slots {
			slots[j] = Slot{BufIdx: l.FirstBufs[i] + uint32(j)}
		}
		if dir == TX {
			// The application owns every slot but the one kept empty.
			rh.tail.Store(uint32(len(slots)) - 1)
		}
	}
	// Chain the extra buffers through their first four bytes.
	if l.ExtraBufs > 0 {
		first := l.NumBufs - l.ExtraBufs
		bufs := r.bufs()
		for i := first; i < l.NumBufs-1; i++ {
			putLE32(bufs[int64(i)*int64(l.BufSize):], i+1)
		}
		h.BufsHead.Store(first)
	}
	return nil
}

// verify checks that the headers in the region match its layout: what a
// client does after mapping memory it received from valed.
func (r *region) verify() error {
	l := &r.layout
	h := r.ifHeader()
	if h.Magic != Magic || h.Version != Version {
		return fmt.Errorf("port memory has magic %#x version %d, want %#x version %d", h.Magic, h.Version, Magic, Version)
	}
	if h.TxRings != l.TxRings || h.RxRings != l.RxRings || h.BufSize != l.BufSize ||
		h.NumBufs != l.NumBufs || h.BufOfs != l.BufOfs || h.MemSize != l.Size {
		return errors.New("port memory header does not match the port geometry")
	}
	ringOfs := unsafe.Slice((*int64)(unsafe.Pointer(&r.mem[ifHeaderSize])), l.NumRings)
	for i := range l.NumRings {
		if ringOfs[i] != l.RingOfs[i] || r.ringHeader(i).NumSlots != uint32(len(r.slots(i))) {
			return fmt.Errorf("port memory ring %d does not match the port geometry", i)
		}
	}
	return nil
}

func putLE32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
