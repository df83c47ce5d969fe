package notify

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Set is a set of eventfds a client sleeps on together. It waits in Go's
// poller, on an epoll descriptor holding the eventfds, rather than in a
// blocking system call: a goroutine blocked in ppoll keeps its thread in
// the kernel, and Go's runtime then hands its processor to another thread
// and keeps a watchdog waking every few tens of microseconds, which costs
// more than the wait on a machine with two cores. Wait must not be called
// by two goroutines at once.
type Set struct {
	file   *os.File // the epoll descriptor
	rc     syscall.RawConn
	events []unix.EpollEvent
	closed atomic.Bool

	waitFn func(fd uintptr) bool
	woke   bool
	err    error
}

// NewSet returns a set of the eventfds fds (which stay the caller's).
func NewSet(fds []int) (*Set, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create epoll set: %w", err)
	}
	for _, fd := range fds {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			unix.Close(ep)
			return nil, fmt.Errorf("add eventfd %d to the epoll set: %w", fd, err)
		}
	}
	if err := unix.SetNonblock(ep, true); err != nil {
		unix.Close(ep)
		return nil, err
	}
	s := &Set{file: os.NewFile(uintptr(ep), "vale-notify-set"), events: make([]unix.EpollEvent, max(len(fds), 1))}
	if s.rc, err = s.file.SyscallConn(); err != nil {
		s.file.Close()
		return nil, err
	}
	s.waitFn = func(ep uintptr) bool {
		n, err := unix.EpollWait(int(ep), s.events, 0)
		switch {
		case err == unix.EINTR:
			return false
		case err != nil:
			s.err = err
			return true
		case n == 0:
			return false // Go's poller waits for the set to become ready
		}
		for _, ev := range s.events[:n] {
			Drain(int(ev.Fd))
		}
		s.woke = true
		return true
	}
	return s, nil
}

// Wait sleeps until one of the eventfds is signalled (and resets the
// counters that were), or until deadline passes (the zero time waits
// forever). It reports whether it was signalled.
func (s *Set) Wait(deadline time.Time) (bool, error) {
	s.woke, s.err = false, nil
	if err := s.file.SetReadDeadline(deadline); err != nil {
		return false, s.closedOr(err)
	}
	err := s.rc.Read(s.waitFn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	if err != nil {
		return false, s.closedOr(err)
	}
	if s.err != nil {
		return false, fmt.Errorf("wait on eventfds: %w", s.err)
	}
	return s.woke, nil
}

func (s *Set) closedOr(err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("wait on eventfds: %w", err)
}

// Close releases the set; a goroutine in Wait returns ErrClosed.
func (s *Set) Close() error {
	s.closed.Store(true)
	return s.file.Close()
}
