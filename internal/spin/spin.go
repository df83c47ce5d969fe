// Package spin decides how long a waiter polls shared memory before going to
// sleep on an eventfd. The poll window adapts to how soon work used to arrive,
// as KVM's adaptive halt-polling does: a sleep that ended within the maximum
// window grows the window (polling would have caught it without a wake-up),
// a longer sleep shrinks it. Busy pipelines thus stop paying a sleep and a
// wake-up per batch, while idle waiters go back to sleeping at once.
package spin

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// yield gives the CPU to another runnable thread, if any. It never waits,
// so it is made raw: entering a system call the usual way may wake Go's
// monitor thread, which costs more than the yield.
func yield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// minWindow is the first non-zero window, and the smallest one kept.
const minWindow = 10 * time.Microsecond

// Poller holds one waiter's poll window. The zero value never polls until
// Max is set.
type Poller struct {
	Max time.Duration // largest window; 0 disables polling
	// Solo says the poller's goroutine is the only busy one of its
	// processor (a client's): it lets the others run only every
	// goschedEvery. Otherwise (valed's workers, which share processors
	// with each other) it gives way at every look.
	Solo   bool
	window time.Duration
}

// Window returns the current poll window.
func (p *Poller) Window() time.Duration { return p.window }

// Poll calls ready until it returns true or the window (cut at deadline, if
// not zero) passes, yielding the processor between checks. It reports
// whether ready returned true.
func (p *Poller) Poll(ready func() bool, deadline time.Time) bool {
	if p.window <= 0 {
		return false
	}
	end := time.Now().Add(p.window)
	if !deadline.IsZero() && deadline.Before(end) {
		end = deadline
	}
	var g gosched
	for {
		for range 4 {
			if ready() {
				return true
			}
			if !p.Solo {
				runtime.Gosched()
			}
		}
		// Let any other runnable thread of this CPU go first: on a machine
		// with fewer cores than busy processes, polling must not keep the
		// producer it waits for off the CPU.
		yield()
		now := time.Now()
		if now.After(end) {
			return false
		}
		if p.Solo {
			g.maybe(now)
		}
	}
}

// goschedEvery is how often a solo poller lets the other goroutines of its
// processor run. Not at every look: with an idle processor, Go's Gosched
// wakes another thread to take the goroutine over and parks this one, two
// thread switches a look, which cost a client more than its polling saves
// (the Go pkt-gen pair ran at 11 Mpps with them, 14.7 without).
const goschedEvery = 50 * time.Microsecond

// gosched calls runtime.Gosched at most once every goschedEvery.
type gosched struct{ last time.Time }

func (g *gosched) maybe(now time.Time) {
	if g.last.IsZero() {
		g.last = now
	} else if now.Sub(g.last) >= goschedEvery {
		runtime.Gosched()
		g.last = time.Now()
	}
}

// Slept records a sleep of d that followed an unsuccessful Poll and adapts
// the window.
func (p *Poller) Slept(d time.Duration) {
	if p.Max <= 0 {
		p.window = 0
		return
	}
	if d <= p.Max {
		p.window = min(max(2*p.window, minWindow), p.Max)
		return
	}
	p.window /= 2
	if p.window < minWindow {
		p.window = 0
	}
}
