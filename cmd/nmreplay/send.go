package main

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/valeswitch/vale/internal/pace"
	"github.com/valeswitch/vale/internal/replay"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
)

// pollTimeout bounds each wait for TX room so that the sender notices a
// signal.
const pollTimeout = 100 * time.Millisecond

// sender replays a trace on one TX ring of a port: one ring, so that the
// switch cannot reorder what it sends.
type sender struct {
	port  *nmport.Port
	ring  *ports.Ring
	pkts  []replay.Packet
	sched *replay.Scheduler
	burst int
	loops uint64 // passes over the trace; 0 = forever
	stop  *atomic.Bool

	// The cursor: next packet of the trace and pass number.
	idx  int
	pass uint64

	// Counters the reporter reads.
	sent, bytes, batches atomic.Uint64
	packets, lost        atomic.Uint64 // scheduled (lost ones included) and lost
	expected             atomic.Uint64 // math.Float64bits of the expected losses
	first, last          time.Time     // first and last TxSync with frames
}

// next returns the next packet to send and its departure time in ns from
// the start, skipping the packets the loss model drops; ok is false at the
// end of the last pass.
func (s *sender) next() (p *replay.Packet, at int64, ok bool) {
	for {
		if s.idx == len(s.pkts) {
			s.pass++
			if s.loops > 0 && s.pass >= s.loops || s.stop.Load() {
				return nil, 0, false
			}
			s.idx = 0
		}
		p = &s.pkts[s.idx]
		var gap int64
		if s.idx > 0 {
			gap = p.Time - s.pkts[s.idx-1].Time
		}
		s.idx++
		at, lost := s.sched.Next(len(p.Data), gap)
		if !lost {
			return p, at, true
		}
	}
}

// publish makes the scheduler's counters visible to the reporter.
func (s *sender) publish() {
	s.packets.Store(s.sched.Packets)
	s.lost.Store(s.sched.Lost)
	s.expected.Store(math.Float64bits(s.sched.Expected))
}

// run sends until the trace (all its passes) is sent or stop is set. It
// runs on a thread of its own.
func (s *sender) run() error {
	pace.Prepare()
	paced := s.sched.Paced()
	stop := s.stop.Load
	clk := pace.NewClock(time.Now())
	r := s.ring
	p, at, ok := s.next()
	for ok && !stop() {
		var now int64
		if paced {
			if now = clk.Now(); at > now {
				s.publish()
				clk.WaitUntil(at, stop)
				continue
			}
		}
		space := r.Space()
		if space == 0 {
			if _, err := s.port.Poll(nmport.PollOut, pollTimeout); err != nil {
				return err
			}
			continue
		}
		var n, bytes uint64
		h := r.Head()
		for n < uint64(s.burst) && space > 0 && ok && (!paced || at <= now) {
			sl := r.Slot(h)
			sl.Len = uint16(copy(r.Buf(sl.BufIdx), p.Data))
			sl.Flags = 0
			bytes += uint64(sl.Len)
			h = r.Next(h)
			n++
			space--
			p, at, ok = s.next()
		}
		r.SetHead(h)
		r.SetCur(h)
		if err := s.port.TxSync(); err != nil {
			return err
		}
		s.last = time.Now()
		if s.first.IsZero() {
			s.first = s.last
		}
		s.sent.Add(n)
		s.bytes.Add(bytes)
		s.batches.Add(1)
		s.publish()
	}
	s.publish()
	return s.drain()
}

// drain waits (a little) until the switch has taken every frame sent.
func (s *sender) drain() error {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := s.port.TxSync(); err != nil {
			return err
		}
		if !s.ring.Pending() {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
