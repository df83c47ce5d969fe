package testutil

import (
	"bytes"
	"runtime"
	"testing"
)

// WaitParked waits until a goroutine whose stack holds a call of fn (a
// function name as the runtime prints it, e.g. "notify.(*Eventfd).Wait")
// is parked: waiting on I/O, a channel, a select, a lock or a condition. A
// test that wakes a sleeper uses it to know the sleeper sleeps, instead of
// giving it time.
func WaitParked(t testing.TB, fn string) {
	t.Helper()
	WaitFor(t, fn+" to be parked", func() bool { return Parked(fn) })
}

// parkedStates are the goroutine states of a goroutine that waits.
var parkedStates = [][]byte{
	[]byte("[IO wait"), []byte("[chan receive"), []byte("[chan send"), []byte("[select"),
	[]byte("[sync.Cond.Wait"), []byte("[sync.Mutex.Lock"), []byte("[semacquire"), []byte("[sleep"),
}

// Parked reports whether a goroutine whose stack holds a call of fn is
// parked.
func Parked(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, _, _ := bytes.Cut(g, []byte("\n"))
		if !bytes.Contains(g, []byte(fn+"(")) {
			continue
		}
		for _, st := range parkedStates {
			if bytes.Contains(header, st) {
				return true
			}
		}
	}
	return false
}
