package ptnet

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/valeswitch/vale/ptnet/vhostuser"
)

// guestMemory gives access to the frontend's memory by guest physical
// address.
type guestMemory interface {
	// slice returns the n bytes at guest address addr, if they lie inside
	// one region of the memory table.
	slice(addr, n uint64) ([]byte, bool)
}

// Split virtqueue layout (virtio 1.x, 2.7): descriptor table of 16-byte
// entries; available ring: flags, idx, ring[num] (u16), used_event; used
// ring: flags, idx, ring[num] of {id u32, len u32}, avail_event.
//
// Packed layout (2.8): one ring of 16-byte descriptors {addr u64, len u32,
// id u16, flags u16} that the driver makes available and the device
// overwrites with used ones, in ring order, each side with a wrap counter;
// a chain is consecutive descriptors; two event suppression areas
// {off_wrap u16, flags u16}, the driver's (read here: when to call) and the
// device's (written here: when to kick).

// Ring errors: each stops the queue it happens on.
var (
	errIndexJump   = errors.New("available index jumped further than the ring size")
	errBadHead     = errors.New("descriptor index beyond the ring")
	errChainLoop   = errors.New("descriptor chain loops or is longer than the ring")
	errBadAddr     = errors.New("descriptor outside the guest's memory")
	errDirection   = errors.New("descriptor of the wrong direction")
	errIndirect    = errors.New("indirect descriptor (not negotiated)")
	errChainTooBig = errors.New("descriptor chain too long for a frame")
)

// cursor is a position in the available entries: in a split ring the
// free-running available index, in a packed one a ring slot and the wrap
// counter the driver marks it with.
type cursor struct {
	idx  uint16
	wrap bool
}

// chain is one available descriptor chain, as take found it.
type chain struct {
	at    cursor // where it was taken (to give it back)
	head  uint16 // its first descriptor: table index (split), ring slot (packed)
	id    uint16 // what its used entry names: the head (split), the buffer id (packed)
	ndesc uint16 // ring slots it takes (packed; 1 in a split ring)
}

// virtq is the device side of one virtqueue: views of its parts in guest
// memory and the device's own positions. It is not safe for concurrent
// use; its owner serialises access.
type virtq struct {
	num      uint16
	packed   bool
	desc     []byte
	avail    []byte // split: the available ring; packed: the driver's event area
	used     []byte // split: the used ring; packed: the device's event area
	eventIdx bool

	next      cursor // the next available entry to take
	availSeen uint16 // split: the available index last read
	usedIdx   uint16 // next used entry to fill (packed: its ring slot)
	usedWrap  bool   // packed: the device's wrap counter at usedIdx
	usedFlags uint16 // the device-written flags of the used ring (packed: of its event area)

	signalled      uint16 // used index at the last call
	signalledValid bool

	// log, while the frontend logs dirty pages (a live migration), records
	// the device's writes to the ring: usedGPA and descGPA are the guest
	// addresses of the parts it writes (the used ring or the device's event
	// area, and a packed ring's descriptors).
	log              *dirtyLog
	usedGPA, descGPA uint64
}

// setup checks a ring's geometry and views: each view must hold its part
// with every field the negotiated features give it.
func (q *virtq) setup(num uint16, packed bool, desc, avail, used []byte, eventIdx bool) error {
	if num == 0 || num&(num-1) != 0 {
		return fmt.Errorf("ring size %d is not a power of two", num)
	}
	d, a, u := ringSizes(num, packed, eventIdx)
	if uint64(len(desc)) < d || uint64(len(avail)) < a || uint64(len(used)) < u {
		return fmt.Errorf("ring of %d entries does not fit its memory (%d/%d/%d bytes for %d/%d/%d)",
			num, len(desc), len(avail), len(used), d, a, u)
	}
	if !vhostuser.Aligned4(avail) || !vhostuser.Aligned4(used) || (packed && !vhostuser.Aligned4(desc)) {
		return errors.New("ring parts not 4-byte aligned")
	}
	q.num, q.packed, q.desc, q.avail, q.used, q.eventIdx = num, packed, desc, avail, used, eventIdx
	return nil
}

// ringSizes returns the bytes of a ring's three parts.
func ringSizes(num uint16, packed, eventIdx bool) (desc, avail, used uint64) {
	if packed {
		return vhostuser.PackedRingSizes(num)
	}
	return vhostuser.RingSizes(num, eventIdx)
}

// setNext moves the next entry to take to c.
func (q *virtq) setNext(c cursor) {
	q.next = c
	q.availSeen = c.idx
}

// base returns where the ring stands, as GET_VRING_BASE answers: the next
// available index (split); the next available slot and wrap counter, and
// the used ones above them (packed).
func (q *virtq) base() uint32 {
	if !q.packed {
		return uint32(q.next.idx)
	}
	enc := func(idx uint16, wrap bool) uint32 {
		if wrap {
			idx |= 0x8000
		}
		return uint32(idx)
	}
	return enc(q.next.idx, q.next.wrap) | enc(q.usedIdx, q.usedWrap)<<16
}

// advance returns c moved n ring slots on (packed).
func (q *virtq) advance(c cursor, n uint16) cursor {
	c.idx += n
	if c.idx >= q.num {
		c.idx -= q.num
		c.wrap = !c.wrap
	}
	return c
}

// availIdx reads the driver's available index (split).
func (q *virtq) availIdx() uint16 { return uint16(vhostuser.Load32(q.avail, 0) >> 16) }

// availFlags reads the driver's available-ring flags (split).
func (q *virtq) availFlags() uint16 { return uint16(vhostuser.Load32(q.avail, 0)) }

// refresh reads how far the driver has made entries available (split; a
// packed ring's descriptors say it themselves). take sees no more than the
// last refresh found: a round takes what was there when it started.
func (q *virtq) refresh() error {
	if q.packed {
		return nil
	}
	seen := q.availIdx()
	if seen-q.next.idx > q.num {
		return errIndexJump
	}
	q.availSeen = seen
	return nil
}

// take returns the chain available at c, if any, and moves c past it.
func (q *virtq) take(c *cursor) (chain, bool, error) {
	if q.packed {
		return q.takePacked(c)
	}
	if c.idx == q.availSeen {
		return chain{}, false, nil
	}
	off := 4 + 2*int(c.idx&(q.num-1))
	h := binary.LittleEndian.Uint16(q.avail[off:])
	if h >= q.num {
		return chain{}, false, errBadHead
	}
	ch := chain{at: *c, head: h, id: h, ndesc: 1}
	c.idx++
	return ch, true, nil
}

// takePacked is take on a packed ring: the chain's head descriptor says
// whether it is available (its flags read first, atomically, and the rest
// after), its last one gives the buffer id.
func (q *virtq) takePacked(c *cursor) (chain, bool, error) {
	w := vhostuser.Load32(q.desc, int(c.idx)*vhostuser.DescSize+12)
	flags := uint16(w >> 16)
	if !vhostuser.PackedAvailable(flags, c.wrap) {
		return chain{}, false, nil
	}
	ch := chain{at: *c, head: c.idx, id: uint16(w), ndesc: 1}
	for flags&vhostuser.DescFNext != 0 {
		if ch.ndesc == q.num {
			return chain{}, false, errChainLoop
		}
		d := q.desc[int(q.advance(*c, ch.ndesc).idx)*vhostuser.DescSize:]
		ch.id = binary.LittleEndian.Uint16(d[12:])
		flags = binary.LittleEndian.Uint16(d[14:])
		ch.ndesc++
	}
	*c = q.advance(*c, ch.ndesc)
	return ch, true, nil
}

// availableAt reports whether the entry at c is available.
func (q *virtq) availableAt(c cursor) bool {
	if q.packed {
		w := vhostuser.Load32(q.desc, int(c.idx)*vhostuser.DescSize+12)
		return vhostuser.PackedAvailable(uint16(w>>16), c.wrap)
	}
	return q.availIdx() != c.idx
}

// descriptor returns descriptor k of a chain: its buffer's address,
// length and flags, and the index of the next one (split).
func (q *virtq) descriptor(ch chain, i, k uint16) (addr uint64, length uint32, flags, next uint16) {
	if q.packed {
		i = q.advance(cursor{idx: ch.head}, k).idx
	}
	d := q.desc[int(i)*vhostuser.DescSize : int(i)*vhostuser.DescSize+vhostuser.DescSize]
	addr = binary.LittleEndian.Uint64(d)
	length = binary.LittleEndian.Uint32(d[8:])
	if !q.packed {
		return addr, length, binary.LittleEndian.Uint16(d[12:]), binary.LittleEndian.Uint16(d[14:])
	}
	// The chain's length was fixed when it was taken.
	flags = binary.LittleEndian.Uint16(d[14:]) &^ vhostuser.DescFNext
	if k+1 < ch.ndesc {
		flags |= vhostuser.DescFNext
	}
	return addr, length, flags, 0
}

// single returns the buffer of a chain of one descriptor and its guest
// address, checked as walk checks it; ok is false for a longer chain.
func (q *virtq) single(mem guestMemory, ch chain, writable bool) (addr uint64, b []byte, ok bool, err error) {
	addr, length, flags, _ := q.descriptor(ch, ch.head, 0)
	switch {
	case flags&vhostuser.DescFNext != 0:
		return 0, nil, false, nil
	case flags&vhostuser.DescFIndirect != 0:
		return 0, nil, false, errIndirect
	case (flags&vhostuser.DescFWrite != 0) != writable:
		return 0, nil, false, errDirection
	}
	if b, ok = mem.slice(addr, uint64(length)); !ok {
		return 0, nil, false, errBadAddr
	}
	return addr, b, true, nil
}

// walk visits the buffers of a chain, with their guest addresses: readable
// ones for a transmit queue, writable ones for a receive queue. It stops
// the walk and returns an error for anything a well-behaved driver does
// not do. max bounds the bytes of the chain.
func (q *virtq) walk(mem guestMemory, ch chain, writable bool, max int, fn func(addr uint64, buf []byte)) (int, error) {
	total := 0
	i := ch.head
	for k := uint16(0); ; k++ {
		if k == q.num {
			return 0, errChainLoop
		}
		addr, length, flags, next := q.descriptor(ch, i, k)
		if flags&vhostuser.DescFIndirect != 0 {
			return 0, errIndirect
		}
		if (flags&vhostuser.DescFWrite != 0) != writable {
			return 0, errDirection
		}
		if length > 0 {
			if total += int(length); total > max {
				return 0, errChainTooBig
			}
			b, ok := mem.slice(addr, uint64(length))
			if !ok {
				return 0, errBadAddr
			}
			fn(addr, b)
		}
		if flags&vhostuser.DescFNext == 0 {
			return total, nil
		}
		if next >= q.num {
			return 0, errBadHead
		}
		i = next
	}
}

// putUsed marks a chain used with length bytes written; publishUsed makes
// the entries marked so far visible to the driver. In a packed ring each
// entry is visible once its flags are written, id and length before them.
func (q *virtq) putUsed(ch chain, length uint32) {
	if q.packed {
		off := int(q.usedIdx) * vhostuser.DescSize
		binary.LittleEndian.PutUint32(q.desc[off+8:], length)
		vhostuser.Store32(q.desc, off+12, uint32(ch.id)|uint32(vhostuser.PackedUsedFlags(q.usedWrap))<<16)
		u := q.advance(cursor{q.usedIdx, q.usedWrap}, ch.ndesc)
		q.usedIdx, q.usedWrap = u.idx, u.wrap
		return
	}
	off := 4 + 8*int(q.usedIdx&(q.num-1))
	binary.LittleEndian.PutUint32(q.used[off:], uint32(ch.head))
	binary.LittleEndian.PutUint32(q.used[off+4:], length)
	q.usedIdx++
}

// prefetchUsed asks for the cache line of the used entry k entries on,
// for writing, when that entry starts a line (split: 8 entries a line;
// packed: the descriptor, 4 a line).
func (q *virtq) prefetchUsed(k uint16) {
	if q.packed {
		u := q.advance(cursor{q.usedIdx, q.usedWrap}, k%q.num).idx
		if u%4 == 0 {
			vhostuser.PrefetchW(&q.desc[int(u)*vhostuser.DescSize], nil)
		}
		return
	}
	if u := (q.usedIdx + k) & (q.num - 1); u%8 == 0 {
		vhostuser.PrefetchW(&q.used[4+8*int(u)], nil)
	}
}

func (q *virtq) publishUsed() {
	if !q.packed {
		vhostuser.Store32(q.used, 0, uint32(q.usedFlags)|uint32(q.usedIdx)<<16)
	}
	q.logRing()
}

// logRing records, while dirty pages are logged, the device's writes to
// the ring since the last record: its whole used ring (split) or its
// descriptors and event area (packed), a few pages at most, once a round.
func (q *virtq) logRing() {
	if q.log == nil {
		return
	}
	q.log.mark(q.usedGPA, uint64(len(q.used)))
	if q.packed {
		q.log.mark(q.descGPA, uint64(len(q.desc)))
	}
}

// logWrite records, while dirty pages are logged, a write of n bytes the
// device made to the buffer at guest address addr.
func (q *virtq) logWrite(addr uint64, n int) {
	if q.log != nil {
		q.log.mark(addr, uint64(n))
	}
}

// needsSignal reports whether the driver wants a call for the entries used
// since the last one, by its used_event (event index) or its flags.
func (q *virtq) needsSignal() bool {
	if q.packed {
		return q.needsSignalPacked()
	}
	if !q.eventIdx {
		return q.availFlags()&vhostuser.AvailFNoInterrupt == 0
	}
	old, valid := q.signalled, q.signalledValid
	q.signalled, q.signalledValid = q.usedIdx, true
	if !valid {
		return true
	}
	ev := vhostuser.Load16(q.avail, 4+2*int(q.num))
	return q.usedIdx-ev-1 < q.usedIdx-old
}

// needsSignalPacked reads the driver's event area: calls enabled,
// disabled, or wanted once the used entries pass the slot it names
// (counted in the device's lap: an older lap's slot lies num behind).
func (q *virtq) needsSignalPacked() bool {
	w := vhostuser.Load32(q.avail, 0)
	offWrap, flags := uint16(w), uint16(w>>16)
	old, valid := q.signalled, q.signalledValid
	q.signalled, q.signalledValid = q.usedIdx, true
	if flags != vhostuser.EventFDesc || !q.eventIdx {
		return flags != vhostuser.EventFDisable
	}
	if !valid {
		return true
	}
	now, off := q.usedIdx, offWrap&0x7fff
	if now <= old {
		old -= q.num
	}
	if (offWrap>>15 == 1) != q.usedWrap {
		off -= q.num
	}
	return now-off-1 < now-old
}

// enableKicks asks the driver to kick for the next available entry (and
// is followed by a fence, so that the caller's look at the available index
// cannot miss an entry made available in between).
func (q *virtq) enableKicks() { q.enableKicksAt(q.next) }

// enableKicksAt asks the driver to kick when it makes the entry at c (or
// a later one) available, as enableKicks does for the next one.
func (q *virtq) enableKicksAt(c cursor) {
	if q.packed {
		q.usedFlags = 0 // the device's event flags: not disabled
	}
	switch {
	case q.packed && q.eventIdx:
		offWrap := c.idx
		if c.wrap {
			offWrap |= 1 << 15
		}
		vhostuser.Store32(q.used, 0, uint32(offWrap)|vhostuser.EventFDesc<<16)
	case q.packed:
		vhostuser.Store32(q.used, 0, vhostuser.EventFEnable<<16)
	case q.eventIdx:
		vhostuser.Store16(q.used, 4+8*int(q.num), c.idx)
	default:
		q.usedFlags &^= vhostuser.UsedFNoNotify
		q.publishUsed()
	}
	q.logRing()
	vhostuser.Fence()
}

// disableKicks asks the driver not to kick (split with event index: an
// avail_event left behind does the same).
func (q *virtq) disableKicks() {
	switch {
	case q.packed && q.usedFlags != vhostuser.EventFDisable:
		q.usedFlags = vhostuser.EventFDisable
		vhostuser.Store32(q.used, 0, vhostuser.EventFDisable<<16)
		q.logRing()
	case !q.packed && !q.eventIdx && q.usedFlags&vhostuser.UsedFNoNotify == 0:
		q.usedFlags |= vhostuser.UsedFNoNotify
		q.publishUsed() // logs the ring
	}
}
