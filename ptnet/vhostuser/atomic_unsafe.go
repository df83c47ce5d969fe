package vhostuser

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Go has no 16-bit atomics and no standalone Fence. The virtqueue's 16-bit
// indexes are read and written as the aligned 32-bit words that hold them
// (the caller maps 2 bytes beyond the event fields for this), which on a
// little-endian machine puts the field at offset 4k in the low half.

// Aligned4 reports whether b starts on a 4-byte boundary.
func Aligned4(b []byte) bool { return len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 }

func word(b []byte, off int) *atomic.Uint32 {
	_ = b[off+3]
	return (*atomic.Uint32)(unsafe.Pointer(&b[off]))
}

// Load32 atomically reads the aligned word at off.
func Load32(b []byte, off int) uint32 { return word(b, off).Load() }

// Store32 atomically writes the aligned word at off.
func Store32(b []byte, off int, v uint32) { word(b, off).Store(v) }

// Load16 reads the 16-bit field at off (2-aligned) atomically, through the
// word that holds it when that word lies in b, else with a plain load
// after a Fence.
func Load16(b []byte, off int) uint16 {
	if off%4 == 0 && off+4 <= len(b) {
		return uint16(Load32(b, off))
	}
	if off%4 == 2 {
		return uint16(Load32(b, off-2) >> 16)
	}
	Fence()
	return binary.LittleEndian.Uint16(b[off:])
}

// Store16 writes the 16-bit field at off, keeping the other half of its
// word, with a compare-and-swap on the word when it lies in b.
func Store16(b []byte, off int, v uint16) {
	base, shift := off, 0
	if off%4 == 2 {
		base, shift = off-2, 16
	}
	if off%2 != 0 || base+4 > len(b) {
		binary.LittleEndian.PutUint16(b[off:], v)
		Fence()
		return
	}
	w := word(b, base)
	for {
		old := w.Load()
		nw := old&^(0xffff<<shift) | uint32(v)<<shift
		if w.CompareAndSwap(old, nw) {
			return
		}
	}
}

// Or32 atomically sets the bits of mask in the aligned word at off.
func Or32(b []byte, off int, mask uint32) { word(b, off).Or(mask) }

var fenceWord atomic.Uint32

// Fence orders the plain memory accesses before it against those after it
// (a locked instruction on amd64).
func Fence() { fenceWord.Add(1) }
