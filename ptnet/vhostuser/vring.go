package vhostuser

// Split virtqueue layout (virtio 1.x, 2.7).
const (
	DescSize = 16

	DescFNext     = 1
	DescFWrite    = 2
	DescFIndirect = 4

	AvailFNoInterrupt = 1 // VRING_AVAIL_F_NO_INTERRUPT
	UsedFNoNotify     = 1 // VRING_USED_F_NO_NOTIFY

	MaxQueueSize = 32768 // the largest ring size
)

// RingSizes returns the bytes the parts of a ring of num entries take in
// memory (virtio 1.x, 2.7): the descriptor table, the available ring
// (flags, idx, ring) and the used ring (flags, idx, ring), each followed by
// its event field (used_event, avail_event) when the event index was
// negotiated.
func RingSizes(num uint16, eventIdx bool) (desc, avail, used uint64) {
	n := uint64(num)
	desc, avail, used = DescSize*n, 4+2*n, 4+8*n
	if eventIdx {
		avail += 2
		used += 2
	}
	return desc, avail, used
}
