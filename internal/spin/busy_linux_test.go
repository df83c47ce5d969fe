package spin

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWorkerPins checks that a worker applying busy polling on a CPU runs
// its thread there only, and that going back to sleeping gives the thread
// the CPUs valed started with.
func TestWorkerPins(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		m := NewMode(Polling{Window: 50 * time.Microsecond})
		w := NewWorker(1)
		if w.Apply(m) || w.Max != 50*time.Microsecond {
			t.Error("an adaptive window applied as busy polling")
		}
		cpus := []int{0}
		if runtime.NumCPU() > 1 {
			cpus = []int{0, 1}
		}
		m.Set(Polling{Busy: true, CPUs: cpus})
		if !w.Changed(m) || !w.Apply(m) || w.Changed(m) {
			t.Error("busy polling not applied once")
		}
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &set); err != nil {
			t.Error(err)
			return
		}
		if want := cpus[1%len(cpus)]; set.Count() != 1 || !set.IsSet(want) {
			t.Errorf("ring 1's worker runs on %d cpus, want cpu %d only", set.Count(), want)
		}
		m.Set(Polling{})
		if w.Apply(m) {
			t.Error("still busy")
		}
		if err := unix.SchedGetaffinity(0, &set); err != nil || set.Count() != startCPUs.Count() {
			t.Errorf("unpinned thread runs on %d cpus, want %d (%v)", set.Count(), startCPUs.Count(), err)
		}
	}()
	<-done
}

func TestPollingValidate(t *testing.T) {
	if err := (Polling{Busy: true, CPUs: []int{4096}}).Validate(); err == nil {
		t.Error("cpu 4096 accepted")
	}
	if got := (Polling{Busy: true, CPUs: []int{0, 1}}).String(); got != "busy cpus 0,1" {
		t.Errorf("String %q", got)
	}
	if got := (Polling{}).Describe(); got != "" {
		t.Errorf("Describe %q", got)
	}
}
