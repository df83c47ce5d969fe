// Package testutil holds what the project's tests share: waiting on a
// condition instead of sleeping, and running the project's commands as
// processes that end with the test.
package testutil

import (
	"testing"
	"time"
)

// DefaultWait is how long WaitFor waits: long enough for a loaded 2-CPU
// machine, short enough that a hung test fails well before its package's
// timeout.
const DefaultWait = 20 * time.Second

// pollEvery is how often WaitFor looks at its condition.
const pollEvery = 5 * time.Millisecond

// WaitFor waits until cond holds, and fails the test (naming what it
// waited for) if it does not within DefaultWait.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, DefaultWait, what, cond)
}

// WaitForWithin is WaitFor with its own limit.
func WaitForWithin(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(limit, cond) {
		t.Fatalf("timed out after %v waiting for %s", limit, what)
	}
}

// Eventually reports whether cond holds within limit, looking every few
// milliseconds.
func Eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}
