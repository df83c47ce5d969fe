// Package shmem creates the memory valed shares with clients: regions in
// sealed memfds.
package shmem

import (
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Region is a sealed memfd mapped into valed.
type Region struct {
	Mem []byte
	FD  int
}

// NewRegion creates a zeroed region of size bytes. The memfd is sealed
// against shrinking and growing, so no client can make valed's mapping fault.
func NewRegion(name string, size int64) (*Region, error) {
	fd, err := unix.MemfdCreate("vale:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("create memory of %s: %w", name, err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("size memory of %s: %w", name, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seal memory of %s: %w", name, err)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("map memory of %s: %w", name, err)
	}
	return &Region{Mem: mem, FD: fd}, nil
}

// Populate makes the first n bytes of mem (a shared mapping) present now,
// writable, rather than page by page at first use: a first lap through
// fresh rings otherwise costs a page fault every two frames, enough to
// make a receiver fall behind and lose frames. Then it touches them (see
// Touch). Errors are ignored (old kernels lack MADV_POPULATE_WRITE; the
// pages then come at first use).
func Populate(mem []byte, n int64) {
	n = min(n, int64(len(mem)))
	if n <= 0 {
		return
	}
	unix.Madvise(mem[:n], unix.MADV_POPULATE_WRITE)
	Touch(mem[:n])
}

// Touch reads a byte of every page of mem. Under a hypervisor that
// shadows the guest's page tables, a process's first access to a page
// leaves the guest even when the guest's page table maps it (about 5 us a
// page on the machines vale is developed on, where a first lap through
// 1024 fresh frames then took 10 ms and a NIC's receive ring overflowed);
// one access of any kind makes later reads and writes cheap. Touch only
// reads, so memory another process is writing is left as it is.
func Touch(mem []byte) {
	var sum byte
	for i := 0; i < len(mem); i += pageSize {
		sum += mem[i]
	}
	touched.Store(uint32(sum)) // keeps the reads
}

var (
	pageSize = unix.Getpagesize()
	touched  atomic.Uint32
)

// Close unmaps the region and closes the memfd. Clients that mapped it keep
// their mappings.
func (r *Region) Close() error {
	err := unix.Munmap(r.Mem)
	unix.Close(r.FD)
	return err
}
