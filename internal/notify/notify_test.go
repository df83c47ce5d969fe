package notify

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestAnswerOnce(t *testing.T) {
	var w Word
	var a Answer
	if a.Due(&w) {
		t.Fatal("an awake side (ticket 0) is due")
	}
	tk := NewTickets()
	t1 := tk.Next()
	w.Store(t1)
	if !a.Due(&w) {
		t.Fatal("a new ticket is not due")
	}
	if a.Due(&w) {
		t.Fatal("a ticket is due twice")
	}
	w.Store(tk.Next())
	if !a.Due(&w) {
		t.Fatal("the next ticket is not due")
	}
	z := Tickets{last: ^uint32(0)}
	if z.Next() == 0 {
		t.Fatal("ticket 0 handed out")
	}
}

// within fails the test if fn does not return within d.
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		fn()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s blocked", what)
	}
}

// fullCounter returns an eventfd whose counter is at the maximum a write
// can reach, with O_NONBLOCK cleared as a hostile holder would leave it,
// and a second descriptor of the same description (the hostile holder's).
func fullCounter(t *testing.T) (fd, other int) {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	other, err = unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd); unix.Close(other) })
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], 0xfffffffffffffffe)
	if _, err := unix.Write(other, b[:]); err != nil {
		t.Fatal(err)
	}
	return fd, other
}

func TestSignalFullCounterNonblocking(t *testing.T) {
	fd, _ := fullCounter(t)
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	within(t, 2*time.Second, "Signal on a full counter", func() { Signal(fd) })
	if !Drain(fd) {
		t.Fatal("a full counter does not read as signalled")
	}
}

func TestSignalFullCounterClearedNonblock(t *testing.T) {
	if err := EnableKernelSignals(); err != nil {
		t.Fatal(err)
	}
	fd, other := fullCounter(t) // blocking, as the other holder left it
	within(t, 2*time.Second, "Signal on a full blocking counter", func() {
		for range 3 * aioEvents { // past a reap or two
			Signal(fd)
		}
	})
	var b [8]byte
	if n, err := unix.Read(other, b[:]); err != nil || n != 8 || binary.LittleEndian.Uint64(b[:]) != ^uint64(0) {
		t.Fatalf("counter after saturating signals: %d %v %#x", n, err, b)
	}
	// And on an ordinary counter, each signal counts.
	within(t, 2*time.Second, "Signal", func() {
		for range 1000 {
			Signal(fd)
		}
	})
	if _, err := unix.Read(other, b[:]); err != nil || binary.LittleEndian.Uint64(b[:]) != 1000 {
		t.Fatalf("counter after 1000 signals: %v %d", err, binary.LittleEndian.Uint64(b[:]))
	}
}

func TestDrainClearedNonblock(t *testing.T) {
	e, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := unix.SetNonblock(e.FD(), false); err != nil { // the other holder's doing
		t.Fatal(err)
	}
	within(t, 2*time.Second, "Drain of an empty blocking eventfd", func() {
		if e.Drain() {
			t.Error("an empty eventfd drains as signalled")
		}
	})
	e.Signal()
	if !e.Drain() {
		t.Fatal("a signal was lost")
	}
}

// TestWaitClearedNonblock waits on an eventfd whose other holder cleared
// O_NONBLOCK and steals wake-ups: Wait parks in the poller, never in read,
// so it wakes on each signal that is left to it and returns when closed.
func TestWaitClearedNonblock(t *testing.T) {
	e, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(e.FD(), false)
	e.Signal()
	within(t, 2*time.Second, "Wait on a signalled eventfd", func() {
		if err := e.Wait(); err != nil {
			t.Error(err)
		}
	})
	// A thief drains every signal; the waiter must stay parked, then
	// return when the eventfd closes.
	waited := make(chan error, 1)
	go func() { waited <- e.Wait() }()
	for range 100 {
		e.Signal()
		Drain(e.FD())
	}
	// The waiter is parked again after the stolen signals, or won one of
	// them and returned.
	testutil.WaitFor(t, "the waiter to park or return", func() bool {
		return len(waited) > 0 || testutil.Parked("notify.(*Eventfd).Wait")
	})
	e.Close()
	select {
	case err := <-waited:
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Wait did not return after Close: it is blocked in read")
	}
}

func TestWaitWakesOnSignal(t *testing.T) {
	e, err := NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for range 50 {
		done := make(chan error, 1)
		go func() { done <- e.Wait() }()
		e.Signal()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("a signal did not wake the waiter")
		}
	}
}

func TestAdopt(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	if _, err := Adopt(p[0], "kick"); err == nil {
		t.Fatal("a pipe was adopted as an eventfd")
	}
	if _, err := unix.FcntlInt(uintptr(p[0]), unix.F_GETFD, 0); err != unix.EBADF {
		t.Fatal("a refused descriptor was left open")
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Adopt(fd, "kick")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.Signal()
	if err := e.Wait(); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkSignal(b *testing.B) {
	e, err := NewEventfd()
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.Run("write", func(b *testing.B) {
		kernel.Store(nil)
		for b.Loop() {
			e.Signal()
		}
	})
	b.Run("kernel", func(b *testing.B) {
		if err := EnableKernelSignals(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			e.Signal()
		}
	})
}

func TestSet(t *testing.T) {
	efs, err := NewEventfds(3)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseAll(efs)
	s, err := NewSet(FDs(efs))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if woke, err := s.Wait(time.Now().Add(10 * time.Millisecond)); woke || err != nil {
		t.Fatalf("Wait with nothing signalled: %v %v", woke, err)
	}
	if time.Since(start) < 10*time.Millisecond {
		t.Fatal("Wait returned before its deadline")
	}
	efs[2].Signal()
	efs[0].Signal()
	within(t, 2*time.Second, "Wait on a signalled set", func() {
		if woke, err := s.Wait(time.Time{}); !woke || err != nil {
			t.Errorf("Wait = %v, %v", woke, err)
		}
	})
	if efs[0].Drain() || efs[2].Drain() {
		t.Fatal("Wait left a counter it woke on")
	}
	done := make(chan error, 1)
	go func() { _, err := s.Wait(time.Time{}); done <- err }()
	testutil.WaitParked(t, "notify.(*Set).Wait")
	efs[1].Signal()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { _, err := s.Wait(time.Time{}); done <- err }()
	testutil.WaitParked(t, "notify.(*Set).Wait")
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Wait did not return after Close")
	}
}
