package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/valeswitch/vale/ptnet/vhostuser"
	"golang.org/x/sys/unix"
)

// The fuzzer's own constants (the protocol's are in package vhostuser).
const (
	maxRequest   = 45 // past the last one valed knows
	guestMemSize = 1 << 20
	guestAddr    = 0x100000000
	userAddr     = 0x7f0000000000
)

// fuzzVhost runs sessions against the vhost-user socket until until: each
// a random mix of a plausible setup (features, memory, rings) and
// arbitrary messages (every request number, payloads of the right size,
// truncated, oversized or random, headers with bad flags, descriptors of
// every kind), rings laid out anywhere in or across the memory, available
// rings full of garbage, kicks, memory shrunk under the mapping.
func fuzzVhost(path string, rng *rand.Rand, until time.Time) error {
	sessions, msgs := 0, 0
	for time.Now().Before(until) {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		f := newVhostFuzz(c, rng)
		msgs += f.session(until)
		f.close()
		sessions++
	}
	fmt.Printf("vhost: %d sessions, %d messages\n", sessions, msgs)
	return nil
}

type vhostFuzz struct {
	c       *net.UnixConn
	rng     *rand.Rand
	memfd   int
	mapping []byte // the memory mapped, for munmap
	mem     []byte // the memory still safe to write: nil once shrunk
	fds     []int  // descriptors to close at the end
	rings   [4]fuzzRing
}

// fuzzRing is where the fuzzer put virtqueue q, to drive it.
type fuzzRing struct {
	num               uint32
	desc, avail, used uint64 // offsets in the memory
	kick              int
	availIdx          uint16
}

func newVhostFuzz(c *net.UnixConn, rng *rand.Rand) *vhostFuzz {
	f := &vhostFuzz{c: c, rng: rng, memfd: -1}
	for i := range f.rings {
		f.rings[i].kick = -1
	}
	fd, err := unix.MemfdCreate("guest", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err == nil && unix.Ftruncate(fd, guestMemSize) == nil {
		f.memfd = fd
		f.mapping, _ = unix.Mmap(fd, 0, guestMemSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		f.mem = f.mapping
		if rng.IntN(2) == 0 {
			unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK)
		}
		for i := range f.mem {
			f.mem[i] = byte(rng.Uint32())
		}
	}
	return f
}

func (f *vhostFuzz) close() {
	f.c.Close()
	for _, fd := range f.fds {
		unix.Close(fd)
	}
	if f.mapping != nil {
		unix.Munmap(f.mapping)
	}
	if f.memfd >= 0 {
		unix.Close(f.memfd)
	}
}

// session sends messages until the backend hangs up, a number of them is
// reached, or time is up; it returns how many were sent.
func (f *vhostFuzz) session(until time.Time) int {
	go func() { // read whatever comes back, so that replies never block
		b := make([]byte, 4096)
		for {
			if _, err := f.c.Read(b); err != nil {
				return
			}
		}
	}()
	n := 0
	if f.rng.IntN(3) > 0 {
		n += f.setup()
		if f.rng.IntN(2) == 0 {
			time.Sleep(time.Millisecond) // idle, as a guest between bursts: the device looks at its rings
		}
	}
	for limit := f.rng.IntN(200); n < limit && time.Now().Before(until); n++ {
		var err error
		switch f.rng.IntN(12) {
		case 0:
			err = f.ring(f.rng.IntN(4))
		case 1, 2, 3, 4:
			f.traffic(f.rng.IntN(4))
		case 5:
			f.garbageRings()
			err = f.kick(f.rng.IntN(4))
		case 6:
			err = f.memTable()
		case 7:
			if f.memfd >= 0 && f.rng.IntN(8) == 0 {
				// Shrink the memory under valed's mapping (refused if
				// sealed); this side no longer touches it either.
				if unix.Ftruncate(f.memfd, int64(f.rng.IntN(guestMemSize))) == nil {
					f.mem = nil
				}
			}
		default:
			err = f.random()
		}
		if err != nil {
			return n
		}
	}
	return n
}

// setup sends a plausible start: features, owner, a memory table, rings.
func (f *vhostFuzz) setup() int {
	feats := f.rng.Uint64() & (1<<0 | 1<<1 | 1<<7 | 1<<11 | 1<<15 | 1<<29 | 1<<32)
	switch f.rng.IntN(4) {
	case 0:
		feats = f.rng.Uint64()
	case 1, 2:
		feats |= 1 << 29 // the event index: longer rings
	}
	f.send(vhostuser.ReqGetFeatures, vhostuser.FlagVersion, nil)
	f.send(vhostuser.ReqSetOwner, vhostuser.FlagVersion, nil)
	f.send(vhostuser.ReqSetFeatures, vhostuser.FlagVersion, vhostuser.U64(feats))
	f.memTable()
	n := 4
	for q := range 2 {
		f.ring(q)
		n += 4
	}
	return n
}

func (f *vhostFuzz) memTable() error {
	if f.memfd < 0 {
		return nil
	}
	p := make([]byte, 8+32)
	le := binary.LittleEndian
	le.PutUint32(p, 1)
	le.PutUint64(p[8:], guestAddr)
	le.PutUint64(p[16:], guestMemSize)
	le.PutUint64(p[24:], userAddr)
	return f.send(vhostuser.ReqSetMemTable, vhostuser.FlagVersion, p, f.memfd)
}

// ring sets up virtqueue q: mostly a layout that works (each queue in a
// 64 KiB area of its own), else a hostile one (any size, addresses at the
// edge of the memory, outside it, overlapping another queue's).
func (f *vhostFuzz) ring(q int) error {
	r := &f.rings[q]
	r.num = 2 << f.rng.IntN(8)
	base := uint64(q) * 0x10000
	r.desc, r.avail, r.used = base, base+0x2000, base+0x4000
	if f.rng.IntN(2) == 0 {
		f.hostileLayout(r)
	}
	r.availIdx = 0
	// A driver starts with empty rings: a device that sees nothing to do
	// waits for a kick, asking for it in the used ring's avail_event.
	f.zero(r.avail, 6+2*uint64(r.num))
	f.zero(r.used, 6+8*uint64(r.num))
	f.send(vhostuser.ReqSetVringNum, vhostuser.FlagVersion, vhostuser.State(uint32(q), r.num))
	a := make([]byte, 40)
	le := binary.LittleEndian
	le.PutUint32(a, uint32(q))
	le.PutUint64(a[8:], userAddr+r.desc)
	le.PutUint64(a[16:], userAddr+r.used)
	le.PutUint64(a[24:], userAddr+r.avail)
	f.send(vhostuser.ReqSetVringAddr, vhostuser.FlagVersion, a)
	f.send(vhostuser.ReqSetVringBase, vhostuser.FlagVersion, vhostuser.State(uint32(q), 0))
	call, _ := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	r.kick, _ = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	f.fds = append(f.fds, call, r.kick)
	f.send(vhostuser.ReqSetVringCall, vhostuser.FlagVersion, vhostuser.U64(uint64(q)), call)
	if err := f.send(vhostuser.ReqSetVringKick, vhostuser.FlagVersion, vhostuser.U64(uint64(q)), r.kick); err != nil {
		return err
	}
	return f.send(vhostuser.ReqSetVringEnable, vhostuser.FlagVersion, vhostuser.State(uint32(q), 1))
}

func (f *vhostFuzz) hostileLayout(r *fuzzRing) {
	n := uint64(r.num)
	sizes := []uint64{16 * n, 4 + 2*n, 6 + 2*n, 4 + 8*n, 6 + 8*n} // with and without the event fields
	pick := func() uint64 {
		switch f.rng.IntN(8) {
		case 0:
			return guestMemSize - uint64(f.rng.IntN(128)) // the edge
		case 4, 5, 6, 7: // ending exactly at the end of the memory, or 2 bytes short of it
			return guestMemSize - sizes[f.rng.IntN(len(sizes))] - 2*uint64(f.rng.IntN(2))
		case 1:
			return f.rng.Uint64() // anywhere
		case 2:
			return uint64(f.rng.IntN(0x40000)) // over another queue
		}
		return uint64(f.rng.IntN(guestMemSize))
	}
	switch f.rng.IntN(4) {
	case 0:
		r.desc = pick()
	case 1:
		r.avail = pick()
	case 2:
		r.used = pick()
	default:
		r.num = f.rng.Uint32()
	}
}

// traffic makes descriptors available on queue q, valid or not (any
// address and length, chains that loop or end beyond the ring, writable
// ones on the transmit queue), moves the available index (by a batch, or
// by more than the ring holds) and kicks.
func (f *vhostFuzz) traffic(q int) {
	r := &f.rings[q]
	if f.mem == nil || r.num == 0 || r.num > 256 || r.kick < 0 ||
		r.desc+16*256 > guestMemSize || r.avail+6+2*256 > guestMemSize {
		return
	}
	le := binary.LittleEndian
	for i := range r.num {
		d := f.mem[r.desc+16*uint64(i):]
		addr := guestAddr + uint64(f.rng.IntN(guestMemSize-2048))
		length, flags, next := uint32(60+f.rng.IntN(1500)), uint16(0), uint16(0)
		if q%2 == 0 {
			flags = 2 // writable: a receive buffer
		}
		if f.rng.IntN(8) == 0 { // garbage
			addr, length, flags, next = f.rng.Uint64(), f.rng.Uint32(), uint16(f.rng.Uint32()), uint16(f.rng.Uint32())
		} else if f.rng.IntN(4) == 0 { // a chain
			flags |= 1
			next = uint16(f.rng.IntN(int(r.num)))
		}
		le.PutUint64(d, addr)
		le.PutUint32(d[8:], length)
		le.PutUint16(d[12:], flags)
		le.PutUint16(d[14:], next)
	}
	n := 1 + f.rng.IntN(int(r.num))
	if f.rng.IntN(10) == 0 {
		n = f.rng.IntN(70000)
	}
	for range n {
		le.PutUint16(f.mem[r.avail+4+2*uint64(r.availIdx%uint16(r.num)):], uint16(f.rng.IntN(int(r.num)+1)))
		r.availIdx++
	}
	le.PutUint16(f.mem[r.avail+2:], r.availIdx)
	unix.Write(r.kick, one[:])
}

// zero clears n bytes at off, as far as they lie in the memory.
func (f *vhostFuzz) zero(off, n uint64) {
	if f.mem == nil || off >= uint64(len(f.mem)) {
		return
	}
	clear(f.mem[off:min(off+n, uint64(len(f.mem)))])
}

// garbageRings writes random bytes over part of the memory, where rings
// may lie.
func (f *vhostFuzz) garbageRings() {
	if f.mem == nil {
		return
	}
	off := f.rng.IntN(len(f.mem))
	for i := off; i < min(len(f.mem), off+f.rng.IntN(8192)); i++ {
		f.mem[i] = byte(f.rng.Uint32())
	}
}

func (f *vhostFuzz) kick(q int) error {
	fd, _ := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	f.fds = append(f.fds, fd)
	unix.Write(fd, one[:])
	return f.send(vhostuser.ReqSetVringKick, vhostuser.FlagVersion, vhostuser.U64(uint64(q)), fd)
}

// random sends an arbitrary message.
func (f *vhostFuzz) random() error {
	req := uint32(f.rng.IntN(maxRequest + 1))
	flags := uint32(1)
	switch f.rng.IntN(8) {
	case 0:
		flags = f.rng.Uint32()
	case 1:
		flags |= 1 << 3 // need reply
	}
	var p []byte
	switch f.rng.IntN(5) {
	case 0:
	case 1:
		p = make([]byte, 8)
	case 2:
		p = make([]byte, 40)
	case 3:
		p = make([]byte, f.rng.IntN(8192))
	default:
		p = make([]byte, f.rng.IntN(300))
	}
	for i := range p {
		p[i] = byte(f.rng.Uint32())
	}
	if len(p) >= 8 && f.rng.IntN(2) == 0 {
		binary.LittleEndian.PutUint32(p, uint32(f.rng.IntN(10)))
	}
	var fds []int
	for range f.rng.IntN(4) {
		fds = append(fds, f.anyFD())
	}
	if f.rng.IntN(10) == 0 {
		return f.truncated(req, flags, p)
	}
	return f.send(req, flags, p, fds...)
}

// anyFD returns a descriptor of some kind.
func (f *vhostFuzz) anyFD() int {
	var fd int
	switch f.rng.IntN(5) {
	case 0:
		fd, _ = unix.Eventfd(0, unix.EFD_CLOEXEC)
	case 1:
		var p [2]int
		unix.Pipe2(p[:], unix.O_CLOEXEC)
		f.fds = append(f.fds, p[1])
		fd = p[0]
	case 2:
		fd, _ = unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	case 3:
		fd, _ = unix.MemfdCreate("x", unix.MFD_CLOEXEC)
		unix.Ftruncate(fd, int64(f.rng.IntN(1<<16)))
	default:
		if f.memfd >= 0 {
			fd, _ = unix.Dup(f.memfd)
		} else {
			fd, _ = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		}
	}
	f.fds = append(f.fds, fd)
	return fd
}

// truncated sends a header announcing more payload than follows, then
// hangs up.
func (f *vhostFuzz) truncated(req, flags uint32, p []byte) error {
	b := vhostuser.Header(req, flags, uint32(len(p)+f.rng.IntN(100)+1))
	f.c.Write(append(b, p...))
	f.c.CloseWrite()
	return fmt.Errorf("hung up")
}

func (f *vhostFuzz) send(req, flags uint32, p []byte, fds ...int) error {
	b := append(vhostuser.Header(req, flags, uint32(len(p))), p...)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	f.c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _, err := f.c.WriteMsgUnix(b, oob, nil)
	return err
}
