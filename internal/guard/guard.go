// Package guard is the last line of defence on the paths that read memory
// a client or a guest can write. Those paths check everything they read;
// should a check be missing, the runtime error it leads to (an index out of
// range, a fault in a mapping the other side shrank) must stop the ring or
// end the session it happened on, with a log line, and never end valed.
//
// Use it in a deferred function:
//
//	defer func() {
//		if r := recover(); r != nil {
//			err = guard.Error(r)
//		}
//	}()
package guard

import (
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync/atomic"
)

// internal counts the runtime errors turned into errors.
var internal atomic.Uint64

// Internal returns how many runtime errors Error has turned into errors
// since valed started: each is a missing check, worth a bug report.
func Internal() uint64 { return internal.Load() }

// Error turns the value a recover returned into an error: a memory fault
// (with debug.SetPanicOnFault set on the goroutine) or a runtime error,
// which is logged with its stack. Any other panic is not ours to hide and
// goes on.
func Error(r any) error {
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		if _, isRuntime := r.(runtime.Error); isRuntime {
			return fmt.Errorf("memory fault at %#x", f.Addr())
		}
	}
	if e, ok := r.(runtime.Error); ok {
		internal.Add(1)
		slog.Error("internal error on a path that reads client or guest memory; its ring or session stops",
			"error", e, "stack", string(debug.Stack()))
		return fmt.Errorf("internal error: %w", e)
	}
	panic(r)
}
