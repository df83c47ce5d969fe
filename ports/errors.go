package ports

import (
	"errors"
	"fmt"
)

// ResetReason says why the switch reset a ring.
type ResetReason uint32

// Reasons for a ring reset. The values are part of the shared-memory ABI.
const (
	ResetNone      ResetReason = iota
	ResetBadHead               // head outside [last head, tail]
	ResetBadCur                // cur outside [head, tail]
	ResetBadBufIdx             // slot buffer index outside [2, num_bufs)
	ResetBadLen                // slot length larger than a buffer
	ResetBadFlags              // slot flags the switch does not accept (NS_INDIRECT)
	ResetLongChain             // more than MaxFrags slots chained with NS_MOREFRAG
	numResetReasons
)

var resetReasonNames = [...]string{
	ResetNone:      "no reset",
	ResetBadHead:   "head out of range",
	ResetBadCur:    "cur out of range",
	ResetBadBufIdx: "buffer index out of range",
	ResetBadLen:    "slot length larger than the buffer",
	ResetBadFlags:  "unsupported slot flags",
	ResetLongChain: "fragment chain too long",
}

// String names the reason.
func (r ResetReason) String() string {
	if r < numResetReasons {
		return resetReasonNames[r]
	}
	return fmt.Sprintf("reset reason %d", uint32(r))
}

// RingError reports that the switch found a ring in a state that breaks the
// ring contract and reset it. The ring is usable again once the error has been
// returned: head and cur are back at Head, and the slots that were invalid
// point at their original buffers with length 0.
type RingError struct {
	Port   string      // port name
	Dir    Direction   // ring direction
	Ring   int         // ring index within its direction
	Reason ResetReason // what was wrong
	Slot   uint32      // slot that was wrong, for slot errors
	Value  uint32      // offending value: index, length or flags
	Head   uint32      // head and cur the ring was reset to
	Tail   uint32      // tail at the time of the reset
	Limit  uint32      // upper bound the value broke, where one applies
}

// Error describes the violation and the reset.
func (e *RingError) Error() string {
	where := fmt.Sprintf("%s %s ring %d", e.Port, e.Dir, e.Ring)
	switch e.Reason {
	case ResetBadHead:
		return fmt.Sprintf("%s: reset by the switch: head %d not in [%d, %d]", where, e.Value, e.Head, e.Tail)
	case ResetBadCur:
		return fmt.Sprintf("%s: reset by the switch: cur %d not in [head, %d]", where, e.Value, e.Tail)
	case ResetBadBufIdx:
		return fmt.Sprintf("%s: reset by the switch: slot %d buffer index %d not in [2, %d)", where, e.Slot, e.Value, e.Limit)
	case ResetBadLen:
		return fmt.Sprintf("%s: reset by the switch: slot %d length %d larger than %d", where, e.Slot, e.Value, e.Limit)
	case ResetBadFlags:
		return fmt.Sprintf("%s: reset by the switch: slot %d flags %#x not supported (NS_INDIRECT cannot cross processes)", where, e.Slot, e.Value)
	case ResetLongChain:
		return fmt.Sprintf("%s: reset by the switch: slot %d ends a chain of more than %d fragments", where, e.Slot, MaxFrags)
	}
	return fmt.Sprintf("%s: reset by the switch: %v", where, e.Reason)
}

// ErrStopped is returned by the switch-side port operations after Stop.
var ErrStopped = errors.New("port stopped")
