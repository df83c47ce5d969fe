package afxdp

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds every unsafe operation of the package: views of the
// kernel-shared ring memory and the socket options x/sys/unix has no typed
// wrapper for.

// mapRing maps one ring of an AF_XDP socket: n entries of entrySize bytes at
// page offset pgoff, with the index and flag positions off the kernel gave.
// It returns the ring and the memory of its entries.
func mapRing(fd int, pgoff int64, off unix.XDPRingOffset, n, entrySize uint32) (ring, []byte, error) {
	size := off.Desc + uint64(n)*uint64(entrySize)
	mem, err := unix.Mmap(fd, pgoff, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring{}, nil, fmt.Errorf("map ring: %w", err)
	}
	r := ring{mask: n - 1, size: n, mapping: mem}
	var ok bool
	if r.producer, ok = atomicAt(mem, off.Producer); ok {
		if r.consumer, ok = atomicAt(mem, off.Consumer); ok {
			r.flags, ok = atomicAt(mem, off.Flags)
		}
	}
	if !ok || off.Desc%8 != 0 {
		unix.Munmap(mem)
		return ring{}, nil, fmt.Errorf("map ring: kernel gave offsets %+v outside a %d-byte mapping", off, size)
	}
	return r, mem[off.Desc:], nil
}

// atomicAt returns the 32-bit word at off in mem, if it lies inside and is
// aligned.
func atomicAt(mem []byte, off uint64) (*atomic.Uint32, bool) {
	if off%4 != 0 || off+4 > uint64(len(mem)) {
		return nil, false
	}
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off])), true
}

// addrsView views b (at least n*8 bytes, 8-aligned) as n UMEM addresses.
func addrsView(b []byte, n uint32) []uint64 {
	_ = b[uint64(n)*8-1]
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n)
}

// descsView views b (at least n*16 bytes, 8-aligned) as n descriptors.
func descsView(b []byte, n uint32) []unix.XDPDesc {
	_ = b[uint64(n)*uint64(unsafe.Sizeof(unix.XDPDesc{}))-1]
	return unsafe.Slice((*unix.XDPDesc)(unsafe.Pointer(&b[0])), n)
}

// registerUMEM registers mem as the socket's UMEM, in frames of frameSize.
func registerUMEM(fd int, mem []byte, frameSize uint32) error {
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&mem[0]))),
		Len:  uint64(len(mem)),
		Size: frameSize,
	}
	return setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg))
}

func setsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), size, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// getsockopt reads option opt into p, which must be exactly size bytes: a
// kernel that answers with another size has another layout.
func getsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	n := uint32(size)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return errno
	}
	if uintptr(n) != size {
		return fmt.Errorf("kernel answered %d bytes, want %d", n, size)
	}
	return nil
}

func mmapOffsets(fd int) (unix.XDPMmapOffsets, error) {
	var off unix.XDPMmapOffsets
	err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off))
	return off, err
}

// options returns the socket's XDP_OPTIONS flags (XDP_OPTIONS_ZEROCOPY).
func options(fd int) (uint32, error) {
	var flags uint32
	err := getsockopt(fd, unix.XDP_OPTIONS, unsafe.Pointer(&flags), unsafe.Sizeof(flags))
	return flags, err
}

func statistics(fd int) (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	err := getsockopt(fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	return st, err
}

// xdpMaxTxSkbBudget is XDP_MAX_TX_SKB_BUDGET (Linux 6.17): how many frames
// one sendto moves in copy mode (32 by default).
const xdpMaxTxSkbBudget = 9

// setTxBudget raises the copy-mode TX budget where the kernel has the
// option; older kernels keep their 32 frames per call.
func setTxBudget(fd int, n uint32) {
	setsockopt(fd, xdpMaxTxSkbBudget, unsafe.Pointer(&n), unsafe.Sizeof(n))
}
