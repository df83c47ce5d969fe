package testutil

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a process a test started: its command, its output (stdout and
// stderr together) and, once it exits, its error.
type Proc struct {
	T      testing.TB
	Name   string
	Cmd    *exec.Cmd
	Out    LockedBuffer
	Done   chan struct{} // closed when the process has exited
	Err    error         // how it exited, once Done is closed
	Killed bool          // the test kills it on purpose
}

// Launch starts cmd, collecting its output, and at the end of the test
// stops it (with stop if given, else SIGKILL) and logs the end of its
// output if the test failed.
func Launch(t testing.TB, name string, cmd *exec.Cmd, stop func(*Proc)) *Proc {
	t.Helper()
	p := &Proc{T: t, Name: name, Cmd: cmd, Done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.Out, &p.Out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.Err = cmd.Wait()
		close(p.Done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			if stop != nil {
				stop(p)
			} else {
				cmd.Process.Kill()
				<-p.Done
			}
		}
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, Tail(p.Out.String(), 200))
		}
	})
	return p
}

// Wait waits for the process to exit and fails the test if it does not
// within timeout (it then gets SIGQUIT, for a Go program's stacks) or exits
// with an error. It returns the output.
func (p *Proc) Wait(timeout time.Duration) string {
	p.T.Helper()
	select {
	case <-p.Done:
	case <-time.After(timeout):
		p.Cmd.Process.Signal(syscall.SIGQUIT)
		<-p.Done
		p.T.Fatalf("%s did not finish within %v:\n%s", p.Name, timeout, p.Out.String())
	}
	if p.Err != nil {
		p.T.Fatalf("%s failed: %v\n%s", p.Name, p.Err, p.Out.String())
	}
	return p.Out.String()
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// LockedBuffer collects a process's output; it may be read while written.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends to the buffer.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Tail returns the last lines of s.
func Tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
