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

// virtq is the device side of one split virtqueue: views of its three
// parts in guest memory and the device's own indexes. It is not safe for
// concurrent use; its owner serialises access.
type virtq struct {
	num      uint16
	desc     []byte
	avail    []byte
	used     []byte
	eventIdx bool

	lastAvail uint16 // next available entry to take
	usedIdx   uint16 // next used entry to fill
	usedFlags uint16 // the device-written flags of the used ring

	signalled      uint16 // used index at the last call
	signalledValid bool
}

// setup checks a ring's geometry and views: each view must hold its part
// with every field the negotiated features give it.
func (q *virtq) setup(num uint16, desc, avail, used []byte, eventIdx bool) error {
	if num == 0 || num&(num-1) != 0 {
		return fmt.Errorf("ring size %d is not a power of two", num)
	}
	d, a, u := vhostuser.RingSizes(num, eventIdx)
	if uint64(len(desc)) < d || uint64(len(avail)) < a || uint64(len(used)) < u {
		return fmt.Errorf("ring of %d entries does not fit its memory (%d/%d/%d bytes for %d/%d/%d)",
			num, len(desc), len(avail), len(used), d, a, u)
	}
	if !vhostuser.Aligned4(avail) || !vhostuser.Aligned4(used) {
		return errors.New("available or used ring not 4-byte aligned")
	}
	q.num, q.desc, q.avail, q.used, q.eventIdx = num, desc, avail, used, eventIdx
	return nil
}

// availIdx reads the driver's available index.
func (q *virtq) availIdx() uint16 { return uint16(vhostuser.Load32(q.avail, 0) >> 16) }

// availFlags reads the driver's available-ring flags.
func (q *virtq) availFlags() uint16 { return uint16(vhostuser.Load32(q.avail, 0)) }

// pending returns how many entries the driver has made available.
func (q *virtq) pending() (uint16, error) {
	n := q.availIdx() - q.lastAvail
	if n > q.num {
		return 0, errIndexJump
	}
	return n, nil
}

// head returns the descriptor index of available entry lastAvail+i.
func (q *virtq) head(i uint16) (uint16, error) {
	off := 4 + 2*int((q.lastAvail+i)&(q.num-1))
	h := binary.LittleEndian.Uint16(q.avail[off:])
	if h >= q.num {
		return 0, errBadHead
	}
	return h, nil
}

// walk visits the buffers of the chain that starts at descriptor head:
// readable ones for a transmit queue, writable ones for a receive queue.
// It stops the walk and returns an error for anything a well-behaved
// driver does not do. max bounds the bytes of the chain.
func (q *virtq) walk(mem guestMemory, head uint16, writable bool, max int, fn func([]byte)) (int, error) {
	total := 0
	i := head
	for n := uint16(0); ; n++ {
		if n == q.num {
			return 0, errChainLoop
		}
		d := q.desc[int(i)*vhostuser.DescSize : int(i)*vhostuser.DescSize+vhostuser.DescSize]
		addr := binary.LittleEndian.Uint64(d)
		length := binary.LittleEndian.Uint32(d[8:])
		flags := binary.LittleEndian.Uint16(d[12:])
		next := binary.LittleEndian.Uint16(d[14:])
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
			fn(b)
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

// putUsed writes a used entry; publishUsed makes the entries written so
// far visible to the driver.
func (q *virtq) putUsed(head uint16, length uint32) {
	off := 4 + 8*int(q.usedIdx&(q.num-1))
	binary.LittleEndian.PutUint32(q.used[off:], uint32(head))
	binary.LittleEndian.PutUint32(q.used[off+4:], length)
	q.usedIdx++
}

func (q *virtq) publishUsed() {
	vhostuser.Store32(q.used, 0, uint32(q.usedFlags)|uint32(q.usedIdx)<<16)
}

// needsSignal reports whether the driver wants a call for the entries used
// since the last one, by its used_event (event index) or its flags.
func (q *virtq) needsSignal() bool {
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

// enableKicks asks the driver to kick for the next available entry (and
// is followed by a fence, so that the caller's look at the available index
// cannot miss an entry made available in between).
func (q *virtq) enableKicks() { q.enableKicksAfter(q.lastAvail) }

// enableKicksAfter asks the driver to kick when it makes entry idx (or
// later) available, as enableKicks does for the next one.
func (q *virtq) enableKicksAfter(idx uint16) {
	if q.eventIdx {
		vhostuser.Store16(q.used, 4+8*int(q.num), idx)
	} else {
		q.usedFlags &^= vhostuser.UsedFNoNotify
		q.publishUsed()
	}
	vhostuser.Fence()
}

// disableKicks asks the driver not to kick (without event index; with it,
// an avail_event left behind does the same).
func (q *virtq) disableKicks() {
	if !q.eventIdx && q.usedFlags&vhostuser.UsedFNoNotify == 0 {
		q.usedFlags |= vhostuser.UsedFNoNotify
		q.publishUsed()
	}
}
