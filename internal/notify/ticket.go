package notify

import (
	"math/rand/v2"
	"sync/atomic"
)

// Word is a ticket word in shared memory: 0 while its owner is awake, its
// current sleep ticket while it sleeps or is about to.
type Word = atomic.Uint32

// Tickets hands out a sleeper's tickets. The zero value starts at 1; use
// NewTickets for a binding that may follow another on the same rings.
type Tickets struct{ last uint32 }

// NewTickets returns tickets starting at a random value, so that a new
// binding does not repeat a ticket the other side answered for an earlier
// one (it would not be answered again).
func NewTickets() Tickets { return Tickets{last: rand.Uint32()} }

// Next returns a fresh ticket, never 0.
func (t *Tickets) Next() uint32 {
	t.last++
	if t.last == 0 {
		t.last = 1
	}
	return t.last
}

// Answer remembers the last ticket answered on one word. The zero value is
// ready to use; it is not safe for concurrent use (each word has one
// answering side, which serialises its calls).
type Answer struct{ last uint32 }

// Due reads the ticket in w once and reports whether the sleeper asks for a
// signal: a ticket that is not 0 and was not answered before. A ticket
// reported due counts as answered.
func (a *Answer) Due(w *Word) bool {
	t := w.Load()
	if t == 0 || t == a.last {
		return false
	}
	a.last = t
	return true
}

// Kick signals the eventfd fd if the ticket in w is due (see Due).
func (a *Answer) Kick(w *Word, fd int) {
	if a.Due(w) {
		Signal(fd)
	}
}
