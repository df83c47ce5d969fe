package ports

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/valeswitch/vale/internal/notify"
)

// Slot is a ring slot, netmap's struct netmap_slot. Its fields are plain
// memory shared with the other side: write them only on slots you own.
type Slot struct {
	BufIdx uint32 // buffer index
	Len    uint16 // bytes used in the buffer
	Flags  uint16 // NS_* flags
	Ptr    uint64 // RX: delivery time (CLOCK_REALTIME, ns)
}

// ifHeader is an interface header (netmap's struct netmap_if).
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
	BufOfs      int64 // from the region start
	MemSize     int64
	Kind        uint32 // Iface* constant
	_           uint32
	Name        [64]byte
}

// NetmapRing is netmap's struct netmap_ring: the 256 bytes at each ring
// offset, followed by the slots. It is the application's: a netmap program
// reads and writes it with plain loads and stores (head, cur and flags, and
// sem as scratch space), and the switch never reads it. The client library
// copies the indexes between it and the ring's control block ([RingHeader])
// at sync time, as netmap's kernel copies them between a ring and its
// kernel ring.
type NetmapRing struct {
	BufOfs   int64 // offset of buffer 0 from the start of this ring
	NumSlots uint32
	BufSize  uint32
	RingID   uint16
	Dir      uint16
	head     atomic.Uint32
	cur      atomic.Uint32
	tail     atomic.Uint32
	flags    atomic.Uint32
	_        uint32
	tsSec    atomic.Int64 // struct timeval: seconds
	tsUsec   atomic.Int64 // and microseconds
	// OffsetMask and BufAlign are 0: per-slot buffer offsets are not
	// supported.
	OffsetMask uint64
	BufAlign   uint64
	_          [56]byte
	sem        [128]byte // the application's scratch space (netmap's sem)
}

// RingHeader is the 256-byte control block of a ring: the lines vale's two
// sides share, outside netmap's view of the ring (netmap's own CSB split is
// the model). Its indexes are only read and written through atomic
// operations. Applications use a [Ring]; this type is for code that
// implements the other side of a ring or a sync: line 1 is written only by
// the application side (the client library, at sync time), line 2 only by
// the switch (or pipe peer) side.
type RingHeader struct {
	// Line 0: constants.
	BufOfs     int64 // offset of buffer 0 from the start of the netmap ring
	NumSlots   uint32
	BufSize    uint32
	RingID     uint16
	Dir        uint16
	NumBufs    uint32
	OffsetMask uint64
	BufAlign   uint64
	FirstBuf   uint32 // buffer slot 0 got at creation; slot j got FirstBuf+j
	_          [20]byte

	// Line 1: application-written.
	head     atomic.Uint32
	cur      atomic.Uint32
	flags    atomic.Uint32
	appKick  notify.Word // the application's sleep ticket
	resetAck atomic.Uint32
	_        [44]byte

	// Line 2: switch-written.
	tail       atomic.Uint32
	swKick     notify.Word // the switch side's sleep ticket
	resetGen   atomic.Uint32
	resetHead  atomic.Uint32
	resetWhy   atomic.Uint32
	resetSlot  atomic.Uint32
	ts         atomic.Int64
	resetValue atomic.Uint32
	hwcur      atomic.Uint32
	dropped    atomic.Uint64
	_          [16]byte

	// Line 3: reserved.
	_ [64]byte
}

// Head returns the published head.
func (h *RingHeader) Head() uint32 { return h.head.Load() }

// Cur returns the published cur.
func (h *RingHeader) Cur() uint32 { return h.cur.Load() }

// Tail returns the published tail.
func (h *RingHeader) Tail() uint32 { return h.tail.Load() }

// SetTail publishes tail (switch side).
func (h *RingHeader) SetTail(v uint32) { h.tail.Store(v) }

// AppTicket returns the word holding the application's sleep ticket (see
// package notify).
func (h *RingHeader) AppTicket() *notify.Word { return &h.appKick }

// SwTicket returns the word holding the switch side's sleep ticket.
func (h *RingHeader) SwTicket() *notify.Word { return &h.swKick }

// Hwcur returns the switch side's consumption point, where the switch side
// publishes it (pipe ends do, so that a reopened end resumes there).
func (h *RingHeader) Hwcur() uint32 { return h.hwcur.Load() }

// SetHwcur publishes the switch side's consumption point.
func (h *RingHeader) SetHwcur(v uint32) { h.hwcur.Store(v) }

// Dropped returns how many frames the switch side could not put into this
// ring (zero-copy monitors count what they missed here).
func (h *RingHeader) Dropped() uint64 { return h.dropped.Load() }

// AddDropped counts frames the switch side could not put into the ring.
func (h *RingHeader) AddDropped(n uint64) { h.dropped.Add(n) }

// SetTimestamp publishes the time of the last switch-side update.
func (h *RingHeader) SetTimestamp(ns int64) { h.ts.Store(ns) }

// ResetGen returns the number of resets so far.
func (h *RingHeader) ResetGen() uint32 { return h.resetGen.Load() }

// Init writes the headers of a fresh region of layout l: constants, initial
// indexes and the buffer index of every slot. names gives the name of each
// interface. The memory must be zeroed. The owner of the region calls it
// once before handing it out.
func Init(mem []byte, l Layout, names []string) error {
	if int64(len(mem)) < l.Size {
		return fmt.Errorf("port memory has %d bytes, layout needs %d", len(mem), l.Size)
	}
	if !aligned8(mem) {
		return errors.New("port memory is not 8-byte aligned")
	}
	if len(names) != len(l.Ifaces) {
		return fmt.Errorf("%d names for %d interfaces", len(names), len(l.Ifaces))
	}
	for fi := range l.Ifaces {
		f := &l.Ifaces[fi]
		if len(names[fi]) > len(ifHeader{}.Name) {
			return fmt.Errorf("port name %q longer than %d bytes", names[fi], len(ifHeader{}.Name))
		}
		h := ifHeaderAt(mem, f.Ofs)
		h.Magic, h.Version, h.Flags, h.Kind = Magic, Version, NI_PRIV_MEM, f.Kind
		h.TxRings, h.RxRings = uint32(f.TxRings), uint32(f.RxRings)
		h.BufSize, h.NumBufs = l.BufSize, l.NumBufs
		h.BufOfs, h.MemSize = l.BufOfs, l.Size
		copy(h.Name[:], names[fi])
		n := f.NumRings()
		table := int64sAt(mem, f.Ofs+ifHeaderSize, 2*n)
		for r := range n {
			table[r] = f.RingOfs[r] - f.Ofs
			table[n+r] = f.CtlOfs[r] - f.Ofs
			initRing(mem, &l, f, r)
		}
	}
	// The extra buffers are handed to bindings one by one (ExtraBufs).
	return nil
}

// initRing writes ring r of interface f: its netmap header, its control
// block and its slots.
func initRing(mem []byte, l *Layout, f *IfaceLayout, r int) {
	dir, id := TX, r
	if r >= f.TxRings {
		dir, id = RX, r-f.TxRings
	}
	nm := netmapRingAt(mem, f.RingOfs[r])
	nm.BufOfs = l.BufOfs - f.RingOfs[r]
	nm.NumSlots, nm.BufSize = f.Slots[r], l.BufSize
	nm.RingID, nm.Dir = uint16(id), uint16(dir)
	rh := ringHeaderAt(mem, f.CtlOfs[r])
	rh.BufOfs = nm.BufOfs
	rh.NumSlots, rh.BufSize = nm.NumSlots, nm.BufSize
	rh.RingID, rh.Dir = nm.RingID, nm.Dir
	rh.NumBufs = l.NumBufs
	rh.FirstBuf = f.FirstBufs[r]
	slots := slotsAt(mem, f.RingOfs[r]+ringHeaderSize, f.Slots[r])
	for j := range slots {
		slots[j] = Slot{BufIdx: f.FirstBufs[r] + uint32(j)}
	}
	if dir == TX {
		// The application owns every slot but the one kept empty.
		rh.tail.Store(f.Slots[r] - 1)
		nm.tail.Store(f.Slots[r] - 1)
	}
}

// Iface is a view of one interface of a region, built from the headers in
// memory and checked against its bounds: a corrupted region gives an error,
// never an access outside it.
type Iface struct {
	mem      []byte
	hdr      *ifHeader
	kind     uint32
	name     string
	ntx, nrx int
	ringOfs  []int64  // netmap rings, from the region start
	ctlOfs   []int64  // control blocks, from the region start
	nums     []uint32 // slots of each ring, read once
	first    []uint32 // first buffer of each ring, read once
	bufs     []byte
	bufOfs   int64 // of bufs in mem
	bufSize  uint32
	numBufs  uint32
}

// OpenIface reads the interface header at ofs in mem: the view an
// application builds of memory someone else initialised. Every field is
// read once and checked, in arithmetic that cannot overflow, against the
// bounds of mem, so that a corrupted or hostile header gives an error,
// never a view reaching outside mem. The side that initialised the memory
// builds its views from its own Layout instead (Layout.Iface).
func OpenIface(mem []byte, ofs int64) (*Iface, error) {
	size := int64(len(mem))
	if ofs < 0 || ofs%8 != 0 || ofs > size-ifHeaderSize {
		return nil, fmt.Errorf("interface offset %d outside port memory of %d bytes", ofs, len(mem))
	}
	if !aligned8(mem) {
		return nil, errors.New("port memory is not 8-byte aligned")
	}
	h := ifHeaderAt(mem, ofs)
	if magic, version := h.Magic, h.Version; magic != Magic || version != Version {
		return nil, fmt.Errorf("port memory has magic %#x version %d, want %#x version %d", magic, version, Magic, Version)
	}
	ntx, nrx := h.TxRings, h.RxRings
	if ntx > 2*MaxRings || nrx > 2*MaxRings || ntx+nrx == 0 {
		return nil, fmt.Errorf("interface with %d tx and %d rx rings", ntx, nrx)
	}
	f := &Iface{mem: mem, hdr: h, kind: h.Kind, ntx: int(ntx), nrx: int(nrx), bufSize: h.BufSize, numBufs: h.NumBufs}
	bufOfs, memSize := h.BufOfs, h.MemSize
	// numBufs*bufSize < 2^48: no overflow once bufSize is checked.
	if memSize != size || f.bufSize < MinBufSize || f.bufSize > MaxBufSize ||
		bufOfs < 0 || bufOfs > size || int64(f.numBufs)*int64(f.bufSize) > size-bufOfs {
		return nil, errors.New("port memory header does not describe this memory")
	}
	n := f.ntx + f.nrx
	if int64(n)*2*8 > size-ofs-ifHeaderSize {
		return nil, errors.New("interface ring table outside port memory")
	}
	f.name = cString(h.Name[:])
	f.bufs, f.bufOfs = mem[bufOfs:bufOfs+int64(f.numBufs)*int64(f.bufSize)], bufOfs
	rel := int64sAt(mem, ofs+ifHeaderSize, 2*n)
	for i := range n {
		ro, co, err := f.checkRing(ofs, rel[i], rel[n+i], bufOfs)
		if err != nil {
			return nil, fmt.Errorf("ring %d: %w", i, err)
		}
		f.ringOfs = append(f.ringOfs, ro)
		f.ctlOfs = append(f.ctlOfs, co)
	}
	return f, nil
}

// within checks that the size bytes at relative offset rel from the
// interface at ofs lie inside the memory, 8-byte aligned, and returns
// their offset in the memory.
func (f *Iface) within(ofs, rel, size int64) (int64, bool) {
	mem := int64(len(f.mem))
	// ofs is in [0, mem], so neither bound overflows.
	if rel < -ofs || rel > mem-ofs-size || (ofs+rel)%8 != 0 {
		return 0, false
	}
	return ofs + rel, true
}

// checkRing reads the control block at relative offset crel from the
// interface at ofs and the netmap header of the ring at relative offset
// rel, once, checks them against the interface and the memory, and
// records the ring's slot count and first buffer. It returns the ring's
// and the control block's offsets in the memory.
func (f *Iface) checkRing(ofs, rel, crel, bufOfs int64) (ro, co int64, err error) {
	ro, okRing := f.within(ofs, rel, ringHeaderSize)
	co, okCtl := f.within(ofs, crel, ctlSize)
	if !okRing || !okCtl {
		return 0, 0, errors.New("outside port memory")
	}
	rh := ringHeaderAt(f.mem, co)
	nm := netmapRingAt(f.mem, ro)
	num, first := rh.NumSlots, rh.FirstBuf
	if num < MinSlots || num > MaxSlots || slotSize*int64(num) > int64(len(f.mem))-ro-ringHeaderSize ||
		rh.BufOfs != bufOfs-ro || rh.BufSize != f.bufSize || rh.NumBufs != f.numBufs ||
		first < reservedBufs || uint64(first)+uint64(num) > uint64(f.numBufs) {
		return 0, 0, errors.New("control block does not describe this memory")
	}
	if nm.NumSlots != num || nm.BufOfs != rh.BufOfs || nm.BufSize != rh.BufSize {
		return 0, 0, errors.New("netmap ring header does not match its control block")
	}
	f.nums = append(f.nums, num)
	f.first = append(f.first, first)
	return ro, co, nil
}

// Iface returns a view of interface i of a region laid out as l, built
// from the layout alone: the side that owns the memory reads nothing the
// other side could have written. mem must be the region l describes.
func (l *Layout) Iface(mem []byte, i int) (*Iface, error) {
	if int64(len(mem)) < l.Size || i < 0 || i >= len(l.Ifaces) {
		return nil, fmt.Errorf("interface %d of a %d-byte layout over %d bytes of memory", i, l.Size, len(mem))
	}
	fl := &l.Ifaces[i]
	f := &Iface{
		mem: mem, hdr: ifHeaderAt(mem, fl.Ofs), kind: fl.Kind, ntx: fl.TxRings, nrx: fl.RxRings,
		ringOfs: fl.RingOfs, ctlOfs: fl.CtlOfs, nums: fl.Slots, first: fl.FirstBufs,
		bufs:   mem[l.BufOfs : l.BufOfs+int64(l.NumBufs)*int64(l.BufSize)],
		bufOfs: l.BufOfs, bufSize: l.BufSize, numBufs: l.NumBufs,
	}
	return f, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Name returns the interface's name.
func (f *Iface) Name() string { return f.name }

// Kind returns the interface's kind (Iface* constants).
func (f *Iface) Kind() uint32 { return f.kind }

// NumRings returns the number of rings of direction d.
func (f *Iface) NumRings(d Direction) int {
	if d == RX {
		return f.nrx
	}
	return f.ntx
}

// BufSize returns the size of each buffer.
func (f *Iface) BufSize() int { return int(f.bufSize) }

// NumBufs returns the number of buffers in the pool, reserved ones included.
func (f *Iface) NumBufs() uint32 { return f.numBufs }

// BufsHeadAt returns the bufs_head word of the netmap_if at ofs in mem (a
// binding's, as valed's open reply places it): where the binding's chain
// of extra buffers starts. It fails for an offset outside mem.
func BufsHeadAt(mem []byte, ofs int64) (*atomic.Uint32, error) {
	if ofs < 0 || ofs%8 != 0 || ofs > int64(len(mem))-nifHeaderSize || !aligned8(mem) {
		return nil, fmt.Errorf("netmap_if offset %d outside port memory of %d bytes", ofs, len(mem))
	}
	return &netmapIfAt(mem, ofs).BufsHead, nil
}

func (f *Iface) ringIndex(d Direction, i int) int {
	if d == RX {
		return f.ntx + i
	}
	return i
}

func (f *Iface) header(d Direction, i int) *RingHeader {
	return ringHeaderAt(f.mem, f.ctlOfs[f.ringIndex(d, i)])
}

func (f *Iface) netmapRing(d Direction, i int) *NetmapRing {
	return netmapRingAt(f.mem, f.ringOfs[f.ringIndex(d, i)])
}

func (f *Iface) slots(d Direction, i int) []Slot {
	ri := f.ringIndex(d, i)
	return slotsAt(f.mem, f.ringOfs[ri]+ringHeaderSize, f.nums[ri])
}

// Hot returns how many bytes from the start of the memory this interface
// uses from the first frame on (see Layout.Hot): the headers and rings, and
// the buffers its rings start with.
func (f *Iface) Hot() int64 {
	end := uint32(reservedBufs)
	for i, n := range f.nums {
		end = max(end, f.first[i]+n)
	}
	return min(f.bufOfs+int64(end)*int64(f.bufSize), int64(len(f.mem)))
}

// maxLen is the largest length a slot can carry.
func (f *Iface) maxLen() uint32 { return min(f.bufSize, 0xffff) }
