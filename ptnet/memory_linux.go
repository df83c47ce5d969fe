package ptnet

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

// memTable is the frontend's memory as SET_MEM_TABLE describes it: each
// region mapped from the descriptor that came with it.
type memTable struct {
	regions []mappedRegion
	// sealed says whether every region's file is sealed against shrinking
	// (QEMU's memory-backend-memfd seals by default). A file that can shrink
	// can make any access to the mapping fault, so frames from such memory
	// are copied out under a recover before the switch sees them.
	sealed bool
}

type mappedRegion struct {
	memRegion
	mapping []byte // the whole mmap (from file offset 0), for munmap
	mem     []byte // the region itself: mapping[mmapOffset:]
}

// mapTable maps the regions of a memory table, one descriptor each. It
// takes the descriptors (and closes them: the mappings outlive them).
func mapTable(regions []memRegion, fds []int) (_ *memTable, err error) {
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if len(fds) != len(regions) {
		return nil, fmt.Errorf("memory table: %d regions, %d descriptors", len(regions), len(fds))
	}
	t := &memTable{sealed: true}
	defer func() {
		if err != nil {
			t.unmap()
		}
	}()
	for i, r := range regions {
		if r.size == 0 || r.size > math.MaxInt64/2 || r.guestAddr > math.MaxUint64-r.size ||
			r.userAddr > math.MaxUint64-r.size || r.mmapOffset > math.MaxInt64/2 {
			return nil, fmt.Errorf("memory region %d: guest %#x user %#x size %#x offset %#x does not fit an address space",
				i, r.guestAddr, r.userAddr, r.size, r.mmapOffset)
		}
		if err := checkMemoryFile(fds[i]); err != nil {
			return nil, fmt.Errorf("memory region %d: %w", i, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fds[i], &st); err != nil {
			return nil, fmt.Errorf("memory region %d: %w", i, err)
		}
		end := r.mmapOffset + r.size
		if st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Size) < end {
			return nil, fmt.Errorf("memory region %d: %d bytes at offset %d of a %d-byte file", i, r.size, r.mmapOffset, st.Size)
		}
		m, err := unix.Mmap(fds[i], 0, int(end), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("map memory region %d (%d bytes): %w", i, end, err)
		}
		t.regions = append(t.regions, mappedRegion{memRegion: r, mapping: m, mem: m[r.mmapOffset:end:end]})
		if seals, err := unix.FcntlInt(uintptr(fds[i]), unix.F_GET_SEALS, 0); err != nil || seals&unix.F_SEAL_SHRINK == 0 {
			t.sealed = false
		}
	}
	return t, nil
}

// checkMemoryFile accepts the files guest memory lives in (memfds and
// files on tmpfs, hugetlbfs files), and nothing else: a page fault in a
// mapping of a file elsewhere (FUSE, a network file system) may wait for
// whoever serves that file, with valed's thread stuck in it.
func checkMemoryFile(fd int) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return err
	}
	switch fs.Type {
	case unix.TMPFS_MAGIC, unix.HUGETLBFS_MAGIC:
		return nil
	}
	return fmt.Errorf("memory file on a file system of type %#x: want a memfd, tmpfs or hugetlbfs", fs.Type)
}

// slice returns guest memory [addr, addr+n) if one region holds it.
func (t *memTable) slice(addr, n uint64) ([]byte, bool) {
	for i := range t.regions {
		r := &t.regions[i]
		if addr >= r.guestAddr && addr-r.guestAddr < r.size && n <= r.size-(addr-r.guestAddr) {
			o := addr - r.guestAddr
			return r.mem[o : o+n : o+n], true
		}
	}
	return nil, false
}

// user returns the memory at frontend (user) address addr, if one region
// holds it: vring addresses are given that way.
func (t *memTable) user(addr, n uint64) ([]byte, bool) {
	for i := range t.regions {
		r := &t.regions[i]
		if addr >= r.userAddr && addr-r.userAddr < r.size && n <= r.size-(addr-r.userAddr) {
			o := addr - r.userAddr
			return r.mem[o : o+n : o+n], true
		}
	}
	return nil, false
}

// guestAddr translates a frontend (user) address to a guest physical one,
// if one region holds it.
func (t *memTable) guestAddr(addr uint64) (uint64, bool) {
	for i := range t.regions {
		r := &t.regions[i]
		if addr >= r.userAddr && addr-r.userAddr < r.size {
			return r.guestAddr + (addr - r.userAddr), true
		}
	}
	return 0, false
}

// size returns the bytes mapped.
func (t *memTable) size() uint64 {
	var n uint64
	for _, r := range t.regions {
		n += r.size
	}
	return n
}

func (t *memTable) unmap() {
	for _, r := range t.regions {
		unix.Munmap(r.mapping)
	}
	t.regions = nil
}

func (t *memTable) stable() bool { return t.sealed }

// mapLog maps the dirty log SET_LOG_BASE gives: size bytes at offset of fd,
// a memfd or a tmpfs file as guest memory is. It takes the descriptor.
func mapLog(fd int, size, offset uint64) (*dirtyLog, error) {
	defer unix.Close(fd)
	if size == 0 || size > maxLogBytes || size%4 != 0 || offset%4 != 0 || offset > math.MaxInt64/2 {
		return nil, fmt.Errorf("dirty log of %d bytes at offset %d (want 4-byte multiples, at most %d bytes)", size, offset, maxLogBytes)
	}
	if err := checkMemoryFile(fd); err != nil {
		return nil, fmt.Errorf("dirty log: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("dirty log: %w", err)
	}
	end := offset + size
	if uint64(st.Size) < end {
		return nil, fmt.Errorf("dirty log: %d bytes at offset %d of a %d-byte file", size, offset, st.Size)
	}
	m, err := unix.Mmap(fd, 0, int(end), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map the dirty log (%d bytes): %w", end, err)
	}
	return &dirtyLog{bits: m[offset:end:end], mapping: m}, nil
}

func (l *dirtyLog) unmap() {
	if l != nil && l.mapping != nil {
		unix.Munmap(l.mapping)
		l.mapping, l.bits = nil, nil
	}
}
