package spin

import (
	"log/slog"

	"golang.org/x/sys/unix"
)

// startCPUs is the affinity valed started with, which unpinned threads get
// back.
var startCPUs = func() unix.CPUSet {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		set.Zero()
		for c := range 1024 {
			set.Set(c)
		}
	}
	return set
}()

// pinThread runs the calling thread on cpu only.
func pinThread(cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		slog.Warn("pin a polling worker", "cpu", cpu, "err", err)
	}
}

// unpinThread gives the calling thread the CPUs valed started with.
func unpinThread() {
	set := startCPUs
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		slog.Warn("unpin a polling worker", "err", err)
	}
}

// cpuAllowed reports whether valed may run on cpu.
func cpuAllowed(cpu int) bool { return cpu >= 0 && cpu < 1024 && startCPUs.IsSet(cpu) }
