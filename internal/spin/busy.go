package spin

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Polling is how a port's ring workers wait for frames: netmap's
// VALE_POLLING_ENABLE (vale-ctl -p) makes them poll without ever sleeping,
// optionally each on a CPU of its own; otherwise they poll for an adaptive
// window of at most Window before sleeping.
type Polling struct {
	Busy   bool          // poll, never sleep
	CPUs   []int         // with Busy: ring i's worker runs on CPUs[i % len(CPUs)]; none: unpinned
	Window time.Duration // without Busy: the largest adaptive window (0 never polls)
}

// String describes the polling for listings: "busy", "busy cpus 0,1",
// "200µs" or "off".
func (p Polling) String() string {
	switch {
	case p.Busy && len(p.CPUs) > 0:
		return fmt.Sprintf("busy cpus %s", joinInts(p.CPUs))
	case p.Busy:
		return "busy"
	case p.Window > 0:
		return p.Window.String()
	}
	return "off"
}

// Describe is String for listings, empty when the worker never polls.
func (p Polling) Describe() string {
	if !p.Busy && p.Window <= 0 {
		return ""
	}
	return p.String()
}

func joinInts(v []int) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(x)
	}
	return s
}

// Validate checks the CPUs against those valed may run on.
func (p Polling) Validate() error {
	for _, c := range p.CPUs {
		if !cpuAllowed(c) {
			return fmt.Errorf("cpu %d is not one valed may run on (it has %d)", c, runtime.NumCPU())
		}
	}
	if p.Window < 0 {
		return fmt.Errorf("negative poll window %v", p.Window)
	}
	return nil
}

// Mode holds a port's Polling: set from any goroutine, applied by each ring
// worker in its own goroutine (Worker), since only a thread can pin itself.
type Mode struct{ p atomic.Pointer[Polling] }

// NewMode returns a Mode holding p.
func NewMode(p Polling) *Mode {
	m := &Mode{}
	m.Set(p)
	return m
}

// Set changes the polling; workers apply it when they next look.
func (m *Mode) Set(p Polling) { m.p.Store(&p) }

// Get returns the current polling.
func (m *Mode) Get() Polling { return *m.p.Load() }

// Worker is one ring worker's side of a Mode: its adaptive Poller, and the
// polling it last applied to its thread.
type Worker struct {
	Poller
	ring   int
	seen   *Polling
	pinned bool
}

// NewWorker returns the worker of ring ring.
func NewWorker(ring int) *Worker { return &Worker{ring: ring} }

// Changed reports whether m holds a polling the worker has not applied.
func (w *Worker) Changed(m *Mode) bool { return m.p.Load() != w.seen }

// Apply brings the worker up to date with m, pinning or unpinning the
// calling goroutine's thread; it must be called from the worker's own
// goroutine. It reports whether the worker polls without sleeping.
func (w *Worker) Apply(m *Mode) bool {
	p := m.p.Load()
	if p == w.seen {
		return p.Busy
	}
	w.seen = p
	w.Max = p.Window
	if p.Busy && len(p.CPUs) > 0 {
		if !w.pinned {
			runtime.LockOSThread()
			w.pinned = true
		}
		pinThread(p.CPUs[w.ring%len(p.CPUs)])
	} else if w.pinned {
		unpinThread()
		runtime.UnlockOSThread()
		w.pinned = false
	}
	return p.Busy
}

// Busy polls ready until it returns true, yielding the processor between
// looks as Poll does, without a deadline: the caller's ready must also
// report a stop or a change of polling.
func Busy(ready func() bool) {
	for {
		for range 4 {
			if ready() {
				return
			}
			runtime.Gosched()
		}
		yield()
	}
}
