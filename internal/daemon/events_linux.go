package daemon

import (
	"encoding/json"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/ports"
)

// eventQueue is how many events may wait for a client. Past that, events
// for it are dropped (and logged) rather than allowed to block valed or to
// let another client's monitor churn disconnect it. A dropped event is safe:
// a client keeps its own mapping and descriptors of a monitor it still
// feeds; the monitor only misses frames, or gets frames nobody reads.
const eventQueue = 1024

// event is a message for a client, with copies of the descriptors that go
// with it (closed once sent).
type event struct {
	msg ports.Event
	fds []int
}

// startEvents makes s able to receive events. Call it with d.mu held,
// before s registers as a feeder; runEvents starts sending once the open
// reply is out.
func (s *session) startEvents() {
	s.events = make(chan event, eventQueue)
}

// runEvents sends the events of queue q (s.events when it started) in
// order until the queue closes.
func (s *session) runEvents(q <-chan event) {
	for e := range q {
		body, err := json.Marshal(e.msg)
		if err == nil {
			err = s.conn.Send(ctl.Reply{Body: body}, e.fds...)
		}
		for _, fd := range e.fds {
			unix.Close(fd)
		}
		if err != nil {
			s.conn.Close()
		}
	}
}

// sendEventLocked queues an event for s. fds are duplicated, so the caller
// keeps its own. Called with d.mu held; never blocks.
func (d *Daemon) sendEventLocked(s *session, msg ports.Event, fds []int) {
	if s.events == nil {
		return
	}
	var dups []int
	for _, fd := range fds {
		nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, x := range dups {
				unix.Close(x)
			}
			d.log.Error("duplicate descriptor for an event", "error", err)
			s.conn.Close()
			return
		}
		dups = append(dups, nfd)
	}
	select {
	case s.events <- event{msg: msg, fds: dups}:
	default:
		for _, x := range dups {
			unix.Close(x)
		}
		d.log.Warn("client does not read its events; event dropped", "pid", s.pid, "port", s.holding)
	}
}

// stopEventsLocked ends s's event queue.
func (s *session) stopEventsLocked() {
	if s.events != nil {
		close(s.events)
		s.events = nil
	}
}

// addFeederLocked registers s as a client whose syncs feed the monitors of
// interface key, and sends it the monitors already there.
func (d *Daemon) addFeederLocked(s *session, key string) {
	s.feeds = key
	set := d.feeders[key]
	if set == nil {
		set = map[*session]struct{}{}
		d.feeders[key] = set
	}
	set[s] = struct{}{}
	for _, m := range d.clientMons[key] {
		d.sendEventLocked(s, ports.Event{Monitor: &m.event}, m.eventFDs)
	}
}

// removeFeederLocked forgets s as a feeder.
func (d *Daemon) removeFeederLocked(s *session) {
	if s.feeds == "" {
		return
	}
	if set := d.feeders[s.feeds]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(d.feeders, s.feeds)
		}
	}
	s.feeds = ""
}

// announceLocked sends a monitor event to every client feeding key.
func (d *Daemon) announceLocked(key string, ev ports.MonitorEvent, fds []int) {
	for s := range d.feeders[key] {
		d.sendEventLocked(s, ports.Event{Monitor: &ev}, fds)
	}
}
