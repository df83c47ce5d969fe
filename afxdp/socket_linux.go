package afxdp

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/valeswitch/vale/internal/shmem"
	"golang.org/x/sys/unix"
)

// socketConfig describes one AF_XDP socket.
type socketConfig struct {
	ifindex   int
	queue     int
	ringSize  uint32 // RX, TX and completion descriptors; the fill ring has twice as many
	frameSize uint32 // bytes per UMEM frame, a power of two in [2048, page size]
	zeroCopy  bool   // bind in zero-copy mode (fails where the driver cannot)
}

// socket is one AF_XDP socket bound to one queue of an interface, with a
// UMEM of its own: frames [0, 2*ringSize) circulate between the fill and RX
// rings, frames [2*ringSize, 3*ringSize) between the TX and completion
// rings.
type socket struct {
	fd        int
	file      *os.File // the socket in Go's poller, to wait for RX without a thread
	raw       syscall.RawConn
	umem      []byte
	frameSize uint32
	rxFrames  uint32 // frames of the RX side
	fill      addrRing
	comp      addrRing
	rx        descRing
	tx        descRing
	zeroCopy  bool
	queue     int
}

// newSocket creates, sets up and binds a socket.
func newSocket(c socketConfig) (_ *socket, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("create AF_XDP socket: %w%s", err, permissionHint(err))
	}
	s := &socket{fd: fd, frameSize: c.frameSize, queue: c.queue, rxFrames: 2 * c.ringSize}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	frames := 3 * c.ringSize
	s.umem, err = unix.Mmap(-1, 0, int(frames*c.frameSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("allocate UMEM of %d frames: %w", frames, err)
	}
	if err := registerUMEM(fd, s.umem, c.frameSize); err != nil {
		return nil, fmt.Errorf("register UMEM of %d bytes: %w%s", len(s.umem), err, memlockHint(err))
	}
	shmem.Touch(s.umem) // a first lap through the frames would take too long
	for _, o := range []struct {
		opt int
		n   uint32
	}{
		{unix.XDP_UMEM_FILL_RING, 2 * c.ringSize},
		{unix.XDP_UMEM_COMPLETION_RING, c.ringSize},
		{unix.XDP_RX_RING, c.ringSize},
		{unix.XDP_TX_RING, c.ringSize},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, o.opt, int(o.n)); err != nil {
			return nil, fmt.Errorf("size ring (option %d) to %d: %w", o.opt, o.n, err)
		}
	}
	off, err := mmapOffsets(fd)
	if err != nil {
		return nil, fmt.Errorf("read ring offsets: %w", err)
	}
	if err := s.mapRings(off, c.ringSize); err != nil {
		return nil, err
	}
	// Every RX frame starts in the fill ring, so that the kernel never
	// lacks one and a release always finds room.
	for i := range s.rxFrames {
		s.fill.addrs[i] = uint64(i) * uint64(c.frameSize)
	}
	s.fill.submit(s.rxFrames)

	flags := uint16(unix.XDP_USE_NEED_WAKEUP)
	if c.zeroCopy {
		flags |= unix.XDP_ZEROCOPY
	} else {
		flags |= unix.XDP_COPY
	}
	if err := bindQueue(fd, &unix.SockaddrXDP{Flags: flags, Ifindex: uint32(c.ifindex), QueueID: uint32(c.queue)}); err != nil {
		return nil, fmt.Errorf("bind AF_XDP socket to queue %d: %w%s", c.queue, err, bindHint(err, c.zeroCopy))
	}
	opts, err := options(fd)
	if err != nil {
		return nil, fmt.Errorf("read socket options: %w", err)
	}
	s.zeroCopy = opts&unix.XDP_OPTIONS_ZEROCOPY != 0
	setTxBudget(fd, c.ringSize)
	s.file = os.NewFile(uintptr(fd), fmt.Sprintf("xsk-%d-%d", c.ifindex, c.queue))
	if s.raw, err = s.file.SyscallConn(); err != nil {
		return nil, fmt.Errorf("poll AF_XDP socket: %w", err)
	}
	return s, nil
}

func (s *socket) mapRings(off unix.XDPMmapOffsets, n uint32) error {
	var err error
	var b []byte
	if s.fill.ring, b, err = mapRing(s.fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, 2*n, 8); err != nil {
		return fmt.Errorf("fill %w", err)
	}
	s.fill.addrs = addrsView(b, 2*n)
	if s.comp.ring, b, err = mapRing(s.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, n, 8); err != nil {
		return fmt.Errorf("completion %w", err)
	}
	s.comp.addrs = addrsView(b, n)
	if s.rx.ring, b, err = mapRing(s.fd, unix.XDP_PGOFF_RX_RING, off.Rx, n, 16); err != nil {
		return fmt.Errorf("rx %w", err)
	}
	s.rx.descs = descsView(b, n)
	if s.tx.ring, b, err = mapRing(s.fd, unix.XDP_PGOFF_TX_RING, off.Tx, n, 16); err != nil {
		return fmt.Errorf("tx %w", err)
	}
	s.tx.descs = descsView(b, n)
	return nil
}

// txFrameAddrs returns the addresses of the TX side's frames.
func (s *socket) txFrameAddrs() []uint64 {
	var addrs []uint64
	for i := s.rxFrames; i < s.rxFrames+s.tx.size; i++ {
		addrs = append(addrs, uint64(i)*uint64(s.frameSize))
	}
	return addrs
}

// frame returns the UMEM bytes [addr, addr+n) if they lie inside one frame.
func (s *socket) frame(addr uint64, n uint32) ([]byte, bool) {
	base := addr &^ uint64(s.frameSize-1)
	if addr+uint64(n) > base+uint64(s.frameSize) || base >= uint64(len(s.umem)) {
		return nil, false
	}
	return s.umem[addr : addr+uint64(n)], true
}

// frameBase returns the start of the frame that holds addr.
func (s *socket) frameBase(addr uint64) uint64 { return addr &^ uint64(s.frameSize-1) }

// kickTx asks the kernel to transmit what the TX ring holds. In copy mode
// every call moves at most the kernel's TX budget, so it calls again while
// the kernel says there is more (EAGAIN), reclaiming completions between
// calls through reclaim. Errors are transient (a full device queue, a link
// going down) and the frames stay queued for the next kick.
func (s *socket) kickTx(reclaim func()) {
	if s.zeroCopy && !s.tx.needWakeup() {
		return
	}
	for range 64 {
		err := unix.Sendto(s.fd, nil, unix.MSG_DONTWAIT, nil)
		if err == nil || !errors.Is(err, unix.EAGAIN) {
			return
		}
		reclaim()
		if s.tx.free(s.tx.size) == s.tx.size {
			return
		}
	}
}

// kickFill wakes a zero-copy driver that ran out of fill frames.
func (s *socket) kickFill() {
	if s.zeroCopy && s.fill.needWakeup() {
		unix.Recvfrom(s.fd, nil, unix.MSG_DONTWAIT)
	}
}

// waitRx blocks until the RX ring has descriptors, done returns true, or
// the socket's read deadline passes.
func (s *socket) waitRx(done func() bool) error {
	return s.raw.Read(func(uintptr) bool { return done() || s.rx.available(1) > 0 })
}

// interrupt makes a waitRx in progress return (with a deadline error).
func (s *socket) interrupt() { s.file.SetReadDeadline(time.Unix(1, 0)) }

// resume undoes interrupt.
func (s *socket) resume() { s.file.SetReadDeadline(time.Time{}) }

// stats returns the kernel's counters for the socket.
func (s *socket) stats() (unix.XDPStatistics, error) { return statistics(s.fd) }

func (s *socket) close() {
	for _, r := range []*ring{&s.fill.ring, &s.comp.ring, &s.rx.ring, &s.tx.ring} {
		if r.mapping != nil {
			unix.Munmap(r.mapping)
			r.mapping = nil
		}
	}
	if s.file != nil {
		s.file.Close()
	} else if s.fd >= 0 {
		unix.Close(s.fd)
	}
	s.fd = -1
	if s.umem != nil {
		unix.Munmap(s.umem)
		s.umem = nil
	}
}

func permissionHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (AF_XDP needs CAP_NET_RAW and CAP_NET_ADMIN: run valed as root)"
	}
	return ""
}

func memlockHint(err error) string {
	if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOBUFS) {
		return " (the UMEM is locked memory: raise RLIMIT_MEMLOCK, e.g. LimitMEMLOCK=infinity in the unit or ulimit -l unlimited, or give valed CAP_IPC_LOCK)"
	}
	return ""
}

// bindQueue binds fd to its queue. The kernel releases the buffer pool of
// a socket closed on the queue a little after the close (in a work item),
// and refuses a bind meanwhile with EBUSY: a queue just detached is tried
// again for a while before the error stands.
func bindQueue(fd int, sa *unix.SockaddrXDP) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := unix.Bind(fd, sa)
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func bindHint(err error, zeroCopy bool) string {
	switch {
	case errors.Is(err, unix.EBUSY):
		return " (another AF_XDP socket is bound to that queue)"
	case zeroCopy && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPROTONOSUPPORT)):
		return " (the driver has no zero-copy AF_XDP support)"
	case errors.Is(err, unix.EINVAL):
		return " (no such queue on the interface?)"
	}
	return ""
}
