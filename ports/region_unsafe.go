package ports

import "unsafe"

// The views of port memory as netmap's structures. Each takes the byte at
// an offset the caller has checked against the memory and the layout, so
// the indexing below never goes out of bounds on a valid layout (and
// panics, never reads past the memory, on a bad one).

// aligned8 reports whether mem starts on an 8-byte boundary, as the
// atomic fields of the headers need.
func aligned8(mem []byte) bool { return uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 == 0 }

// ifHeaderAt is the interface header at ofs.
func ifHeaderAt(mem []byte, ofs int64) *ifHeader { return (*ifHeader)(unsafe.Pointer(&mem[ofs])) }

// netmapIfAt is netmap's struct netmap_if at ofs.
func netmapIfAt(mem []byte, ofs int64) *netmapIf { return (*netmapIf)(unsafe.Pointer(&mem[ofs])) }

// netmapRingAt is netmap's ring header at ofs.
func netmapRingAt(mem []byte, ofs int64) *NetmapRing {
	return (*NetmapRing)(unsafe.Pointer(&mem[ofs]))
}

// ringHeaderAt is the ring control block at ofs.
func ringHeaderAt(mem []byte, ofs int64) *RingHeader {
	return (*RingHeader)(unsafe.Pointer(&mem[ofs]))
}

// int64sAt is the n int64 values at ofs (an interface's ring offsets).
func int64sAt(mem []byte, ofs int64, n int) []int64 {
	return unsafe.Slice((*int64)(unsafe.Pointer(&mem[ofs])), n)
}

// slotsAt is the n slots at ofs (a ring's slot array).
func slotsAt[N int | uint32](mem []byte, ofs int64, n N) []Slot {
	return unsafe.Slice((*Slot)(unsafe.Pointer(&mem[ofs])), n)
}
