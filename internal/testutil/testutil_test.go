package testutil

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	var n atomic.Int32
	if !Eventually(time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("a condition that comes true was not seen")
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("condition looked at %d times, want 3 (it stops once true)", got)
	}
	start := time.Now()
	if Eventually(30*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds was reported true")
	}
	if waited := time.Since(start); waited < 30*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("gave up after %v, want about 30ms", waited)
	}
}

// fatalRecorder records a Fatalf instead of ending the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
}

func TestWaitForFails(t *testing.T) {
	r := &fatalRecorder{TB: t}
	WaitForWithin(r, 10*time.Millisecond, "nothing", func() bool { return false })
	if r.msg == "" {
		t.Fatal("WaitFor did not fail the test on a condition that never held")
	}
	r.msg = ""
	WaitForWithin(r, time.Second, "something", func() bool { return true })
	if r.msg != "" {
		t.Fatal("WaitFor failed on a condition that held")
	}
}

func parkHere(c chan struct{}) { <-c }

func TestWaitParked(t *testing.T) {
	if Parked("testutil.parkHere") {
		t.Fatal("a function nobody called is parked")
	}
	c := make(chan struct{})
	go parkHere(c)
	WaitParked(t, "testutil.parkHere")
	close(c)
	if !Eventually(time.Second, func() bool { return !Parked("testutil.parkHere") }) {
		t.Fatal("a goroutine that returned is still parked")
	}
}
