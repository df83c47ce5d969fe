package spin

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestWindowAdapts(t *testing.T) {
	p := Poller{Max: 100 * time.Microsecond}
	if p.Poll(func() bool { return true }, time.Time{}) {
		t.Fatal("a fresh poller polled")
	}
	// Short sleeps: polling would have caught them, the window grows to Max.
	for range 10 {
		p.Slept(30 * time.Microsecond)
	}
	if p.Window() != p.Max {
		t.Fatalf("window %v after short sleeps, want %v", p.Window(), p.Max)
	}
	if !p.Poll(func() bool { return true }, time.Time{}) {
		t.Fatal("poll did not see a ready condition")
	}
	start := time.Now()
	if p.Poll(func() bool { return false }, time.Time{}) {
		t.Fatal("poll reported readiness that never came")
	}
	if time.Since(start) < p.Max {
		t.Error("poll gave up before its window")
	}
	// Long sleeps: the window shrinks back to zero.
	for range 10 {
		p.Slept(time.Second)
	}
	if p.Window() != 0 {
		t.Fatalf("window %v after long sleeps", p.Window())
	}
	// Disabled.
	q := Poller{}
	q.Slept(time.Microsecond)
	if q.Window() != 0 {
		t.Error("a poller with no Max grew")
	}
}

func TestPollRespectsDeadline(t *testing.T) {
	p := Poller{Max: time.Second}
	p.Slept(time.Microsecond)
	for p.Window() < p.Max {
		p.Slept(time.Microsecond)
	}
	start := time.Now()
	p.Poll(func() bool { return false }, start.Add(5*time.Millisecond))
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("poll ran %v past a 5ms deadline", d)
	}
}

// TestPollLetsGoroutinesRun checks that a solo poller on the only
// processor still lets the goroutine it waits for run, long before Go's
// preemption (10 ms of spinning) would, though it does not give way at
// every look. It counts looks rather than time: a stalled machine does not
// make them.
func TestPollLetsGoroutinesRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, solo := range []bool{false, true} {
		var flag atomic.Bool
		go flag.Store(true)
		looks := 0
		ready := func() bool {
			looks++
			return flag.Load()
		}
		p := Poller{Max: time.Second, Solo: solo, window: time.Second}
		if !p.Poll(ready, time.Time{}) {
			t.Fatal("Poll gave up before the goroutine ran")
		}
		// 50 us between Goscheds is a few hundred looks; 10 ms, tens of
		// thousands. A shared poller gives way at once.
		if looks > 5000 || !solo && looks > 2 {
			t.Errorf("solo %v: the goroutine ran after %d looks", solo, looks)
		}
	}
}
