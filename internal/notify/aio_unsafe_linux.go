package notify

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls here never wait, so they are made raw: Go's runtime is
// not told (entering a system call the usual way wakes its monitor thread
// when the process was idle, a context switch that costs more than the
// call).

// readNoWait reads from fd into b with RWF_NOWAIT: EAGAIN instead of
// waiting, whatever O_NONBLOCK says (eventfds and pipes honour it).
func readNoWait(fd int, b []byte) (int, error) {
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	n, _, e := unix.RawSyscall6(unix.SYS_PREADV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1,
		^uintptr(0), ^uintptr(0), unix.RWF_NOWAIT) // offset -1: the file position
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Kernel signals: an eventfd's counter can be raised by the kernel itself
// (eventfd_signal), which saturates at the maximum instead of blocking. A
// Linux AIO request with IOCB_FLAG_RESFD makes it do so when the request
// completes; a read of zero bytes from an empty memfd completes at once,
// inside io_submit. The completions are reaped in batches.

// iocb is struct iocb (linux/aio_abi.h) on a little-endian machine.
type iocb struct {
	_      uint64 // aio_data
	_      uint32 // aio_key
	_      int32  // aio_rw_flags
	opcode uint16
	_      int16 // aio_reqprio
	fildes uint32
	_      uint64 // aio_buf
	_      uint64 // aio_nbytes
	_      int64  // aio_offset
	_      uint64 // aio_reserved2
	flags  uint32
	resfd  uint32
}

// ioEvent is struct io_event.
type ioEvent struct {
	data, obj uint64
	res, res2 int64
}

const (
	iocbCmdPread  = 0
	iocbFlagResfd = 1
	aioEvents     = 256 // completions the context holds
	aioReapAt     = aioEvents / 2
)

// kernelSignaller raises eventfd counters through AIO completions.
type kernelSignaller struct {
	ctx     uintptr
	memfd   int
	pending atomic.Int32 // completions not reaped yet

	mu     sync.Mutex // one reaper at a time
	events [aioEvents]ioEvent
}

// request is what io_submit is given: the array of one pointer and the
// iocb it points to, kept together so that both live through the call.
type request struct {
	ptr *iocb
	cb  iocb
}

var requests = sync.Pool{New: func() any { r := &request{}; r.ptr = &r.cb; return r }}

var kernel atomic.Pointer[kernelSignaller]

// EnableKernelSignals makes Signal raise counters through the kernel, so
// that it never blocks even on a descriptor whose other holder cleared
// O_NONBLOCK and filled the counter. valed calls it at start; it costs one
// AIO context for the process. An error means the kernel offers no AIO
// (or its system-wide limit, fs.aio-max-nr, is reached): Signal then
// writes, which a hostile holder of a descriptor could block.
func EnableKernelSignals() error {
	if kernel.Load() != nil {
		return nil
	}
	k := &kernelSignaller{}
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, aioEvents, uintptr(unsafe.Pointer(&k.ctx)), 0); e != 0 {
		return fmt.Errorf("set up kernel signals (io_setup): %w", e)
	}
	fd, err := unix.MemfdCreate("vale-notify", unix.MFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, k.ctx, 0, 0)
		return fmt.Errorf("set up kernel signals: %w", err)
	}
	k.memfd = fd
	if err := k.signalOnce(-1); err != unix.EBADF && err != unix.EINVAL {
		k.destroy()
		return fmt.Errorf("set up kernel signals: io_submit answered %v for a bad descriptor", err)
	}
	if !kernel.CompareAndSwap(nil, k) {
		k.destroy()
	}
	return nil
}

// writeOne adds one to eventfd fd with a write (see Signal).
func writeOne(fd int) {
	one := uint64(1)
	unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&one)), 8)
}

func (k *kernelSignaller) destroy() {
	unix.Syscall(unix.SYS_IO_DESTROY, k.ctx, 0, 0)
	unix.Close(k.memfd)
}

// signal raises eventfd fd's counter by one.
func (k *kernelSignaller) signal(fd int) error {
	for range 2 {
		if k.pending.Add(1) > aioReapAt {
			k.reap()
		}
		err := k.signalOnce(fd)
		if err == nil {
			return nil
		}
		k.pending.Add(-1)
		if err != unix.EAGAIN {
			return err
		}
		k.reap() // the completion ring is full
	}
	return unix.EAGAIN
}

func (k *kernelSignaller) signalOnce(fd int) error {
	r := requests.Get().(*request)
	r.cb = iocb{opcode: iocbCmdPread, fildes: uint32(k.memfd), flags: iocbFlagResfd, resfd: uint32(fd)}
	_, _, e := unix.RawSyscall(unix.SYS_IO_SUBMIT, k.ctx, 1, uintptr(unsafe.Pointer(&r.ptr)))
	requests.Put(r)
	if e != 0 {
		return e
	}
	return nil
}

// reap collects the completions waiting in the context, without waiting.
func (k *kernelSignaller) reap() {
	k.mu.Lock()
	defer k.mu.Unlock()
	var zero unix.Timespec
	n, _, e := unix.RawSyscall6(unix.SYS_IO_GETEVENTS, k.ctx, 0, aioEvents,
		uintptr(unsafe.Pointer(&k.events[0])), uintptr(unsafe.Pointer(&zero)), 0)
	if e == 0 {
		k.pending.Add(-int32(n))
	}
}
