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

// ErrClosed is returned by Wait once the eventfd is closed.
var ErrClosed = errors.New("eventfd closed")

// Eventfd is an eventfd that valed waits on, and may share with a client
// or a frontend. Wait must not be called by two goroutines at once; Signal,
// Drain and Close may be called from any goroutine.
type Eventfd struct {
	fd     int
	file   *os.File // registered with Go's poller, for Wait
	rc     syscall.RawConn
	closed atomic.Bool

	// Wait's state, set up once so that waiting does not allocate.
	waitFn  func(fd uintptr) bool
	waitErr error
	buf     [8]byte
}

// NewEventfd creates an eventfd.
func NewEventfd() (*Eventfd, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	return wrap(fd, "eventfd")
}

// NewEventfds creates n eventfds.
func NewEventfds(n int) ([]*Eventfd, error) {
	efs := make([]*Eventfd, 0, n)
	for range n {
		e, err := NewEventfd()
		if err != nil {
			CloseAll(efs)
			return nil, err
		}
		efs = append(efs, e)
	}
	return efs, nil
}

// Adopt takes over a descriptor received from someone else (a vhost-user
// frontend's kick, call or error descriptor). It must be an eventfd: any
// other kind of file could make reads or writes wait. On error the
// descriptor is closed.
func Adopt(fd int, name string) (*Eventfd, error) {
	if err := checkEventfd(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	// The description is shared: setting O_NONBLOCK affects the other
	// holder too, but only registers the descriptor with Go's poller; reads
	// here never rely on it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return wrap(fd, name)
}

// checkEventfd reports whether fd is an eventfd.
func checkEventfd(fd int) error {
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return fmt.Errorf("descriptor %d: %w", fd, err)
	}
	if link != "anon_inode:[eventfd]" {
		return fmt.Errorf("descriptor is %s, not an eventfd", link)
	}
	return nil
}

func wrap(fd int, name string) (*Eventfd, error) {
	e := &Eventfd{fd: fd, file: os.NewFile(uintptr(fd), name)}
	rc, err := e.file.SyscallConn()
	if err != nil {
		e.file.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	e.rc = rc
	e.waitFn = func(fd uintptr) bool {
		_, err := readNoWait(int(fd), e.buf[:])
		switch err {
		case nil:
			return true
		case unix.EAGAIN:
			return false // Go's poller waits for the next signal
		}
		e.waitErr = err
		return true
	}
	return e, nil
}

// FD returns the descriptor, to hand to the other side.
func (e *Eventfd) FD() int { return e.fd }

// Signal adds one to the counter; see the package function.
func (e *Eventfd) Signal() { Signal(e.fd) }

// Wait parks the calling goroutine until the counter is not zero, and
// resets it. It returns ErrClosed once Close was called.
func (e *Eventfd) Wait() error {
	e.waitErr = nil
	if err := e.rc.Read(e.waitFn); err != nil {
		if e.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("wait on eventfd: %w", err)
	}
	if e.waitErr != nil {
		return fmt.Errorf("read eventfd: %w", e.waitErr)
	}
	return nil
}

// WaitUntil is Wait with a deadline: it reports false, with no error, when
// the deadline passes first.
func (e *Eventfd) WaitUntil(deadline time.Time) (bool, error) {
	if err := e.file.SetReadDeadline(deadline); err != nil {
		if e.closed.Load() {
			return false, ErrClosed
		}
		return false, err
	}
	err := e.Wait()
	e.file.SetReadDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false, nil
	}
	return err == nil, err
}

// Drain resets the counter without waiting, and reports whether it was
// signalled.
func (e *Eventfd) Drain() bool { return Drain(e.fd) }

// Close closes the descriptor; a goroutine in Wait returns ErrClosed.
func (e *Eventfd) Close() error {
	e.closed.Store(true)
	return e.file.Close()
}

// CloseAll closes eventfds.
func CloseAll(efs []*Eventfd) {
	for _, e := range efs {
		e.Close()
	}
}

// FDs returns the descriptors of eventfds.
func FDs(efs []*Eventfd) []int {
	fds := make([]int, len(efs))
	for i, e := range efs {
		fds[i] = e.fd
	}
	return fds
}

// Drain resets the counter of eventfd fd without waiting, whatever the
// flags of its description, and reports whether it was signalled.
func Drain(fd int) bool {
	var b [8]byte
	n, err := readNoWait(fd, b[:])
	return err == nil && n == 8
}

// Signal adds one to the counter of eventfd fd, waking whoever sleeps on
// it. It never blocks: a counter already at its maximum counts as
// signalled, and with kernel signals enabled (EnableKernelSignals) the
// kernel adds the one itself, so that a description whose O_NONBLOCK the
// other holder cleared cannot block either. Errors (a closed descriptor,
// a peer gone) are ignored: nobody is left to wake.
func Signal(fd int) {
	if k := kernel.Load(); k != nil && k.signal(fd) == nil {
		return
	}
	writeOne(fd) // EAGAIN: the counter is full, which wakes the reader
}
