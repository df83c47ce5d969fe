package pipes

import (
	"fmt"
	"time"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/ports"
)

// PeerError reports that the other end of a pipe wrote something the
// protocol does not allow. The end repaired its own view and goes on.
type PeerError struct {
	Port string
	Dir  ports.Direction
	Ring int
	What string
}

// Error describes the violation.
func (e *PeerError) Error() string {
	return fmt.Sprintf("%s %s ring %d: pipe peer broke the ring contract: %s", e.Port, e.Dir, e.Ring, e.What)
}

// Observer is told about the frames moving through an end, for monitors (see
// package monitor). Each call covers slots [from, to) of the end's ring r.
type Observer interface {
	TxSent(ring int, r *ports.Ring, from, to uint32)      // handed to the peer
	TxCompleted(ring int, r *ports.Ring, from, to uint32) // given back by the peer
	RxArrived(ring int, r *ports.Ring, from, to uint32)   // received from the peer
	RxReleased(ring int, r *ports.Ring, from, to uint32)  // released by the application
	Active() bool
}

// End is one end of a pipe as its client drives it: its own rings and the
// peer's. It implements the client's sync operations for pipe ends.
type End struct {
	observer       Observer
	port           string
	tx, rx         []*ports.Ring // own rings, shared with the client's port
	peerTx, peerRx []*ports.Ring // the peer's rings: only headers and slots are used
	txHw, rxHw     []uint32      // TX slots handed to the peer; RX slots given back
	notifyFirst    int
	peerFDs        []int           // the peer's eventfds, by ring pair from notifyFirst
	txAnswer       []notify.Answer // the sleep tickets of the peer's RX ring i
	rxAnswer       []notify.Answer // the sleep tickets of the peer's TX ring i
}

// NewEnd joins the rings of one end (tx, rx) with the peer's interface.
// peerFDs holds the peer's eventfds for ring pairs [notifyFirst, ...).
func NewEnd(tx, rx []*ports.Ring, peer *ports.Iface, port string, notifyFirst int, peerFDs []int) (*End, error) {
	if peer.NumRings(ports.RX) != len(tx) || peer.NumRings(ports.TX) != len(rx) {
		return nil, fmt.Errorf("%s: pipe ends do not mirror each other (%d/%d rings against %d/%d)",
			port, len(tx), len(rx), peer.NumRings(ports.TX), peer.NumRings(ports.RX))
	}
	e := &End{port: port, tx: tx, rx: rx, notifyFirst: notifyFirst, peerFDs: peerFDs,
		txHw: make([]uint32, len(tx)), rxHw: make([]uint32, len(rx)),
		txAnswer: make([]notify.Answer, len(tx)), rxAnswer: make([]notify.Answer, len(rx))}
	for i, r := range tx {
		p := peer.Ring(ports.RX, i, port)
		if p.NumSlots() != r.NumSlots() {
			return nil, fmt.Errorf("%s: tx ring %d has %d slots, the peer's rx ring %d slots", port, i, r.NumSlots(), p.NumSlots())
		}
		e.peerRx = append(e.peerRx, p)
		// Resume where a previous binding of this end stopped.
		e.txHw[i] = resume(r.Header().Hwcur(), r.PublishedHead(), r.NumSlots())
	}
	for i, r := range rx {
		p := peer.Ring(ports.TX, i, port)
		if p.NumSlots() != r.NumSlots() {
			return nil, fmt.Errorf("%s: rx ring %d has %d slots, the peer's tx ring %d slots", port, i, r.NumSlots(), p.NumSlots())
		}
		e.peerTx = append(e.peerTx, p)
		e.rxHw[i] = resume(r.Header().Hwcur(), r.PublishedHead(), r.NumSlots())
	}
	return e, nil
}

// SetObserver makes the end report its traffic to o.
func (e *End) SetObserver(o Observer) { e.observer = o }

func (e *End) observed() bool { return e.observer != nil && e.observer.Active() }

// resume returns the consumption point a reopened end continues from: the
// one published, if it is in the ring, else head (nothing in flight).
func resume(hw, head, n uint32) uint32 {
	if hw >= n {
		return head
	}
	return hw
}

// wake signals the peer's eventfd for ring pair i if the peer published a
// sleep ticket not answered yet.
func (e *End) wake(h *ports.RingHeader, a *notify.Answer, i int) {
	if j := i - e.notifyFirst; j >= 0 && j < len(e.peerFDs) {
		a.Kick(h.AppTicket(), e.peerFDs[j])
	}
}

// TxSync hands the slots filled on TX ring i to the peer and refreshes tail
// with what the peer gave back.
func (e *End) TxSync(i int) error {
	r, pr := e.tx[i], e.peerRx[i]
	if err := r.Prologue(); err != nil {
		return err
	}
	r.Publish()
	hw, head := e.txHw[i], r.Head()
	if hw != head {
		if e.observed() {
			e.observer.TxSent(i, r, hw, head)
		}
		ts := time.Now().UnixNano()
		complete, k := hw, hw
		for k != head {
			s := r.Slot(k)
			d := *s
			if d.Flags&ports.NS_BUF_CHANGED != 0 {
				s.Flags &^= ports.NS_BUF_CHANGED
			}
			d.Ptr = uint64(ts)
			*pr.Slot(k) = d
			k = r.Next(k)
			if d.Flags&ports.NS_MOREFRAG == 0 {
				complete = k
			}
		}
		e.txHw[i] = head
		r.Header().SetHwcur(head)
		ph := pr.Header()
		if complete != hw {
			ph.SetTimestamp(ts)
			ph.SetTail(complete) // only whole frames
			e.wake(ph, &e.txAnswer[i], i)
		}
	}
	// The peer gives slots back up to one behind its RX consumption point:
	// tail may only move forward, and never past what was handed over.
	t := r.Header().Tail()
	if !r.Between(r.Tail(), t, r.Prev(head)) {
		return &PeerError{Port: e.port, Dir: ports.TX, Ring: i, What: fmt.Sprintf("tail %d outside [%d, %d] (ignored)", t, r.Tail(), r.Prev(head))}
	}
	if t != r.Tail() && e.observed() {
		// With one slot always empty, the slots the peer took are
		// [tail+1, new tail+1).
		e.observer.TxCompleted(i, r, r.Next(r.Tail()), r.Next(t))
	}
	r.UpdateTail(t)
	return nil
}

// RxSync gives the slots released on RX ring i back to the peer and exposes
// what the peer sent since.
func (e *End) RxSync(i int) error {
	r, pt := e.rx[i], e.peerTx[i]
	if err := r.Prologue(); err != nil {
		return err
	}
	r.Publish()
	hw, head := e.rxHw[i], r.Head()
	if hw != head {
		if e.observed() {
			e.observer.RxReleased(i, r, hw, head)
		}
		// The peer's TX slot still names the buffer the RX slot borrowed,
		// unless the application swapped it (and said so).
		for k := hw; k != head; k = r.Next(k) {
			if s := r.Slot(k); s.Flags&ports.NS_BUF_CHANGED != 0 {
				*pt.Slot(k) = *s
				s.Flags &^= ports.NS_BUF_CHANGED
			}
		}
		e.rxHw[i] = head
		r.Header().SetHwcur(head)
		ph := pt.Header()
		ph.SetTail(r.Prev(head))
		e.wake(ph, &e.rxAnswer[i], i)
	}
	// The peer may expose frames up to one slot behind what was released.
	t := r.Header().Tail()
	if !r.Between(r.Tail(), t, r.Prev(head)) {
		return &PeerError{Port: e.port, Dir: ports.RX, Ring: i, What: fmt.Sprintf("tail %d outside [%d, %d] (ignored)", t, r.Tail(), r.Prev(head))}
	}
	if t != r.Tail() && e.observed() {
		e.observer.RxArrived(i, r, r.Tail(), t)
	}
	r.UpdateTail(t)
	return nil
}
