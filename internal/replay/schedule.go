package replay

import (
	"math"
	"math/rand/v2"
)

// Scheduler computes departure times packet by packet (see the package
// doc for the model). The zero value is not usable; use NewScheduler.
type Scheduler struct {
	bw    Bandwidth
	delay Delay
	loss  *Loss
	rng   *rand.Rand

	qout  float64 // queue exit time of the last packet, ns
	tx    float64 // departure time of the last packet, ns
	carry float64 // Real: trace gaps of lost packets not yet spent

	// Counters, for reports.
	Packets  uint64  // packets scheduled, lost ones included
	Lost     uint64  // packets lost
	Expected float64 // sum of the loss probabilities of those packets
}

// NewScheduler returns a scheduler for the given parameters. loss may be
// nil (no loss); rng draws losses and delays.
func NewScheduler(bw Bandwidth, delay Delay, loss *Loss, rng *rand.Rand) *Scheduler {
	if loss == nil {
		loss = &Loss{}
	}
	return &Scheduler{bw: bw, delay: delay, loss: loss, rng: rng}
}

// Paced reports whether departures depend on time at all; when not, every
// packet is due at once and Next always returns 0 for kept packets.
func (s *Scheduler) Paced() bool {
	return s.bw.Mode != Unlimited || s.delay.Mode != NoDelay && (s.delay.Min != 0 || s.delay.Max != 0)
}

// Next schedules a packet of n bytes whose timestamp is gap nanoseconds
// after the previous packet's (0 for the first packet of each pass over the
// trace). It returns the departure time in nanoseconds from the start, or
// lost = true if the loss model drops the packet.
func (s *Scheduler) Next(n int, gap int64) (at int64, lost bool) {
	s.Packets++
	if s.loss.Mode != NoLoss {
		p := s.loss.Prob(n)
		s.Expected += p
		if p > 0 && s.rng.Float64() < p {
			s.Lost++
			if s.bw.Mode == Real {
				s.carry += float64(max(gap, 0))
			}
			return 0, true
		}
	}
	tt := s.bw.TxTime(n, float64(max(gap, 0))+s.carry)
	s.carry = 0
	s.qout += tt
	t := s.qout + s.delay.Sample(s.rng)
	s.tx = max(t, s.tx+tt)
	return int64(math.Round(s.tx)), false
}

// LossRates returns the actual and the nominal (expected) fraction of
// packets lost so far.
func (s *Scheduler) LossRates() (actual, nominal float64) {
	if s.Packets == 0 {
		return 0, 0
	}
	return float64(s.Lost) / float64(s.Packets), s.Expected / float64(s.Packets)
}
