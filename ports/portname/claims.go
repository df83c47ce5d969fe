package portname

import (
	"fmt"
	"syscall"

	"github.com/valeswitch/vale/ports"
)

// Selection says which rings a binding takes: TX rings [TxFirst, TxLast) and
// RX rings [RxFirst, RxLast).
type Selection struct {
	TxFirst, TxLast int
	RxFirst, RxLast int
	Exclusive       bool
}

// SelectRings turns the ring part of a port name into a Selection for an
// interface with ntx TX and nrx RX rings.
func SelectRings(n *Name, ntx, nrx int) (Selection, error) {
	s := Selection{TxLast: ntx, RxLast: nrx, Exclusive: n.Flags&FlagExclusive != 0}
	if n.Mode == RegOneNIC {
		if n.Ring >= ntx && n.Ring >= nrx {
			return Selection{}, fmt.Errorf("%s: ring %d out of range (the port has %d tx and %d rx rings)", n.PortName(), n.Ring, ntx, nrx)
		}
		s.TxFirst, s.TxLast = min(n.Ring, ntx), min(n.Ring+1, ntx)
		s.RxFirst, s.RxLast = min(n.Ring, nrx), min(n.Ring+1, nrx)
	}
	if n.Flags&FlagRxOnly != 0 {
		s.TxFirst, s.TxLast = 0, 0
	}
	if n.Flags&FlagTxOnly != 0 {
		s.RxFirst, s.RxLast = 0, 0
	}
	return s, nil
}

// Bound returns the selected rings as ports.Bound.
func (s Selection) Bound() ports.Bound {
	return ports.Bound{TxFirst: s.TxFirst, TxLast: s.TxLast, RxFirst: s.RxFirst, RxLast: s.RxLast}
}

// Notify returns the ring pairs whose eventfds the binding sleeps on: the
// union of its TX and RX ranges.
func (s Selection) Notify() (first, last int) {
	switch {
	case s.TxFirst == s.TxLast:
		return s.RxFirst, s.RxLast
	case s.RxFirst == s.RxLast:
		return s.TxFirst, s.TxLast
	}
	return min(s.TxFirst, s.RxFirst), max(s.TxLast, s.RxLast)
}

// Claims records which bindings hold which rings of an interface, to
// enforce exclusive binding (netmap's /x). It is not safe for concurrent use.
type Claims struct {
	ntx   int
	count []int
	excl  []bool
}

// NewClaims tracks the rings of an interface with ntx TX and nrx RX rings.
func NewClaims(ntx, nrx int) *Claims {
	return &Claims{ntx: ntx, count: make([]int, ntx+nrx), excl: make([]bool, ntx+nrx)}
}

func (c *Claims) rings(s Selection) []int {
	var idx []int
	for i := s.TxFirst; i < s.TxLast; i++ {
		idx = append(idx, i)
	}
	for i := s.RxFirst; i < s.RxLast; i++ {
		idx = append(idx, c.ntx+i)
	}
	return idx
}

// Take claims the rings of s. An exclusive selection fails if anyone holds
// one of its rings, and any selection fails on a ring held exclusively.
func (c *Claims) Take(name string, s Selection) error {
	if s.TxFirst < 0 || s.TxLast > c.ntx || s.TxFirst > s.TxLast ||
		s.RxFirst < 0 || s.RxLast > len(c.count)-c.ntx || s.RxFirst > s.RxLast {
		return fmt.Errorf("%s: ring selection out of range", name)
	}
	idx := c.rings(s)
	for _, i := range idx {
		if c.excl[i] || (s.Exclusive && c.count[i] > 0) {
			return fmt.Errorf("%s: rings busy (bound exclusively, or /x asked and already bound): %w", name, syscall.EBUSY)
		}
	}
	for _, i := range idx {
		c.count[i]++
		c.excl[i] = s.Exclusive
	}
	return nil
}

// Release gives back the rings of s.
func (c *Claims) Release(s Selection) {
	for _, i := range c.rings(s) {
		c.count[i]--
		if c.count[i] == 0 {
			c.excl[i] = false
		}
	}
}
