// Package pace waits for points in time precisely on machines where Go's
// timers wake a millisecond late: on a thread of its own whose timer slack
// is 1 ns, with nanosleep, then a short spin.
package pace

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Go's timers wake about a millisecond late on these machines, far too
// coarse for departures microseconds apart. A paced sender runs on a thread
// of its own whose timer slack is 1 ns and sleeps with nanosleep, which then
// wakes some tens of microseconds late: the clock learns by how much and
// wakes that much early, then spins on the clock (yielding the CPU between
// looks, so that the switch and the receiver sharing a core keep running)
// for the last stretch.

// Bounds of the sleeping.
const (
	spinBelow    = 50 * time.Microsecond // shorter waits only spin
	initialLate  = 50 * time.Microsecond // lateness assumed before any is measured
	maxLateGuess = time.Millisecond      // largest lateness believed
	maxNap       = 50 * time.Millisecond // longest sleep between looks at stop
)

// Prepare readies the calling goroutine's thread for short sleeps: it locks
// the goroutine to the thread and sets the thread's timer slack to 1 ns.
func Prepare() {
	runtime.LockOSThread()
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}

// Clock measures time from a start and waits for points in it. Use it from
// a goroutine that called Prepare.
type Clock struct {
	start time.Time
	late  time.Duration // how late nanosleep wakes, averaged
}

// NewClock returns a clock counting from start.
func NewClock(start time.Time) *Clock { return &Clock{start: start, late: initialLate} }

// Now returns the time since the start in nanoseconds.
func (c *Clock) Now() int64 { return int64(time.Since(c.start)) }

// WaitUntil returns at time at (ns since the start) or soon after, or
// earlier if stop returns true.
func (c *Clock) WaitUntil(at int64, stop func() bool) {
	for {
		left := time.Duration(at - c.Now())
		nap := left - c.late
		if left <= spinBelow || nap <= 0 {
			break
		}
		if nap > maxNap {
			// A long wait sleeps in pieces so that stop is seen.
			time.Sleep(maxNap)
			if stop() {
				return
			}
			continue
		}
		ts := unix.NsecToTimespec(int64(nap))
		t0 := time.Now()
		unix.Nanosleep(&ts, nil)
		over := min(max(time.Since(t0)-nap, 0), maxLateGuess)
		c.late += (over - c.late) / 8
		break
	}
	for i := 0; c.Now() < at; i++ {
		if i%64 == 63 && stop() {
			return
		}
		unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) // raw: it never waits
	}
}

// Sleep pauses for d, waking early if stop returns true.
func Sleep(d time.Duration, stop func() bool) {
	end := time.Now().Add(d)
	for !stop() {
		left := time.Until(end)
		if left <= 0 {
			return
		}
		time.Sleep(min(left, 50*time.Millisecond))
	}
}
