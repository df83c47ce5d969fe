package main

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Go's timers wake about a millisecond late on these machines, far too
// coarse for departures microseconds apart. The sender runs on a thread of
// its own whose timer slack is 1 ns and sleeps with nanosleep, which then
// wakes some tens of microseconds late: the clock learns by how much and
// wakes that much early, then spins on the clock (yielding the CPU between
// looks, so that the switch and the receiver sharing a core keep running)
// for the last stretch.

// Bounds of the sleeping.
const (
	spinBelow    = 50 * time.Microsecond // shorter waits only spin
	initialLate  = 50 * time.Microsecond // lateness assumed before any is measured
	maxLateGuess = time.Millisecond      // largest lateness believed
)

// preciseSleeps prepares the calling goroutine's thread for short sleeps.
func preciseSleeps() {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}

// clock measures time from a start and waits for points in it.
type clock struct {
	start time.Time
	late  time.Duration // how late nanosleep wakes, averaged
}

func newClock(start time.Time) *clock { return &clock{start: start, late: initialLate} }

// now returns the time since the start in nanoseconds.
func (c *clock) now() int64 { return int64(time.Since(c.start)) }

// waitUntil returns at time at (ns since the start) or soon after, or
// earlier if stop returns true.
func (c *clock) waitUntil(at int64, stop func() bool) {
	left := time.Duration(at - c.now())
	if nap := left - c.late; left > spinBelow && nap > 0 {
		ts := unix.NsecToTimespec(int64(nap))
		t0 := time.Now()
		unix.Nanosleep(&ts, nil)
		over := min(max(time.Since(t0)-nap, 0), maxLateGuess)
		c.late += (over - c.late) / 8
	}
	for i := 0; c.now() < at; i++ {
		if i%64 == 63 && stop() {
			return
		}
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// sleep pauses for d (for -w), waking early if stop returns true.
func sleep(d time.Duration, stop func() bool) {
	end := time.Now().Add(d)
	for !stop() {
		left := time.Until(end)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 50*time.Millisecond))
	}
}
