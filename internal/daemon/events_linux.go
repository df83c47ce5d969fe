package daemon

import (
	"encoding/json"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/vale/wire"
)

// Bounds of what may wait for one client. Past them, events for it are
// dropped (and logged) rather than allowed to grow valed or to block it. A
// dropped event is safe: a client keeps its own mapping and descriptors of
// a monitor it still feeds; the monitor only misses frames, or gets frames
// nobody reads.
const (
	maxQueuedEvents = 256
	maxQueuedFDs    = 1024
)

// event is a message for a client, with copies of the descriptors that go
// with it (closed once sent, or when the session ends).
type event struct {
	msg wire.Event
	fds []int
}

// eventQueue holds the events of one session. Queueing never blocks; one
// goroutine sends them in order once the open reply is out, each send
// bounded by ctl.SendTimeout (a client that does not read is dropped);
// whatever is still queued when the session ends is closed, never sent.
type eventQueue struct {
	mu      sync.Mutex
	pending []event
	fds     int // descriptors held by pending
	closed  bool
	wake    chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

// push queues e, taking its descriptors; it reports false (and closes
// them) when the queue is full or closed.
func (q *eventQueue) push(e event) bool {
	q.mu.Lock()
	ok := !q.closed && len(q.pending) < maxQueuedEvents && q.fds+len(e.fds) <= maxQueuedFDs
	if ok {
		q.pending = append(q.pending, e)
		q.fds += len(e.fds)
	}
	q.mu.Unlock()
	if !ok {
		closeFDs(e.fds)
		return false
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// next waits for the next event; false once the queue is closed.
func (q *eventQueue) next() (event, bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return event{}, false
		}
		if len(q.pending) > 0 {
			e := q.pending[0]
			q.pending = q.pending[1:]
			q.fds -= len(e.fds)
			q.mu.Unlock()
			return e, true
		}
		q.mu.Unlock()
		<-q.wake
	}
}

// run sends the queued events on c until the queue closes or a send
// fails, which drops the client.
func (q *eventQueue) run(c *ctl.Conn) {
	for {
		e, ok := q.next()
		if !ok {
			return
		}
		body, err := json.Marshal(e.msg)
		if err == nil {
			err = c.Send(ctl.Reply{Body: body}, e.fds...)
		}
		closeFDs(e.fds)
		if err != nil {
			c.Close()
			q.close()
			return
		}
	}
}

// close ends the queue: the descriptors still queued are closed and the
// sender stops.
func (q *eventQueue) close() {
	q.mu.Lock()
	pending := q.pending
	q.pending, q.fds, q.closed = nil, 0, true
	q.mu.Unlock()
	for _, e := range pending {
		closeFDs(e.fds)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// dupFDs returns copies of fds, owned by the caller.
func dupFDs(fds []int) ([]int, error) {
	dups := make([]int, 0, len(fds))
	for _, fd := range fds {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeFDs(dups)
			return nil, err
		}
		dups = append(dups, nfd)
	}
	return dups, nil
}

// sendEventLocked queues an event for s. fds are duplicated, so the caller
// keeps its own. Called with d.mu held; never blocks.
func (d *Daemon) sendEventLocked(s *session, msg wire.Event, fds []int) {
	dups, err := dupFDs(fds)
	if err != nil {
		d.log.Error("duplicate descriptors for an event", "error", err)
		s.conn.Close()
		return
	}
	if !s.events.push(event{msg: msg, fds: dups}) {
		d.log.Warn("client does not read its events; event dropped", "pid", s.cred.PID, "uid", s.cred.UID, "port", s.holding)
	}
}
