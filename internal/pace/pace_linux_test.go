package pace

import (
	"testing"
	"time"
)

// WaitUntil never returns before the point it waits for.
func TestWaitUntilNotEarly(t *testing.T) {
	Prepare()
	c := NewClock(time.Now())
	for _, d := range []time.Duration{0, 10 * time.Microsecond, 200 * time.Microsecond, 2 * time.Millisecond} {
		at := c.Now() + int64(d)
		c.WaitUntil(at, func() bool { return false })
		if now := c.Now(); now < at {
			t.Fatalf("wait of %v returned %d ns early", d, at-now)
		}
	}
}

// A stop function that says yes ends a long wait early.
func TestWaitUntilStops(t *testing.T) {
	c := NewClock(time.Now())
	at := c.Now() + int64(time.Hour)
	c.WaitUntil(at, func() bool { return true })
	if c.Now() >= at {
		t.Fatal("stopped wait ran to its end")
	}
}

// Sleep returns at once when told to stop, and sleeps at least d otherwise.
func TestSleep(t *testing.T) {
	t0 := time.Now()
	Sleep(time.Hour, func() bool { return true })
	Sleep(5*time.Millisecond, func() bool { return false })
	if time.Since(t0) < 5*time.Millisecond {
		t.Fatal("Sleep returned before its duration")
	}
}
