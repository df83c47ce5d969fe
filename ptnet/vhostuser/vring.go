package vhostuser

// Virtqueue layouts (virtio 1.x): split (2.7) and packed (2.8).
const (
	DescSize = 16 // a descriptor, in either layout

	DescFNext     = 1
	DescFWrite    = 2
	DescFIndirect = 4

	AvailFNoInterrupt = 1 // VRING_AVAIL_F_NO_INTERRUPT
	UsedFNoNotify     = 1 // VRING_USED_F_NO_NOTIFY

	// Packed descriptors: the driver makes one available with AVAIL equal
	// to its wrap counter and USED the opposite; the device marks it used
	// with both equal to its own.
	DescFAvail = 1 << 7
	DescFUsed  = 1 << 15

	// Event suppression flags of a packed ring (the driver's and the
	// device's areas alike: off_wrap, then flags, 16 bits each).
	EventFEnable  = 0
	EventFDisable = 1
	EventFDesc    = 2 // notify at the descriptor off_wrap names (event index)

	MaxQueueSize = 32768 // the largest ring size
)

// RingSizes returns the bytes the parts of a split ring of num entries
// take in memory (virtio 1.x, 2.7): the descriptor table, the available
// ring (flags, idx, ring) and the used ring (flags, idx, ring), each
// followed by its event field (used_event, avail_event) when the event
// index was negotiated.
func RingSizes(num uint16, eventIdx bool) (desc, avail, used uint64) {
	n := uint64(num)
	desc, avail, used = DescSize*n, 4+2*n, 4+8*n
	if eventIdx {
		avail += 2
		used += 2
	}
	return desc, avail, used
}

// PackedRingSizes returns the bytes the parts of a packed ring of num
// entries take (virtio 1.x, 2.8): the descriptor ring and the driver's and
// the device's event suppression areas.
func PackedRingSizes(num uint16) (desc, driver, device uint64) {
	return DescSize * uint64(num), 4, 4
}

// PackedAvailable reports whether a packed descriptor with flags is
// available to a device whose wrap counter is wrap.
func PackedAvailable(flags uint16, wrap bool) bool {
	return (flags&DescFAvail != 0) == wrap && (flags&DescFUsed != 0) != wrap
}

// PackedUsedFlags returns the AVAIL and USED bits of a descriptor used
// with wrap counter wrap.
func PackedUsedFlags(wrap bool) uint16 {
	if wrap {
		return DescFAvail | DescFUsed
	}
	return 0
}
