package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/valeswitch/vale/internal/pace"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
)

// rxRing is what rx remembers of one ring between syncs.
type rxRing struct {
	inChain bool   // the last slot taken had NS_MOREFRAG: the frame goes on
	next    uint32 // rxseq: the sequence number expected
	seen    bool   // rxseq: a sequence number was seen
}

// rx receives frames until the count is reached, the user interrupts, or
// (with -W) the traffic stops. A frame in several slots chained with
// NS_MOREFRAG counts once, with the bytes of all its slots (less the
// virtio-net header the port puts before each frame).
func (t *thread) rx() error {
	c := t.cfg
	rings := t.port.RxRings()
	state := make([]rxRing, len(rings))
	for !t.cancel.Load() {
		ev, err := t.port.Poll(nmport.PollIn, time.Second)
		if err != nil {
			return err
		}
		if ev != 0 {
			break
		}
		logf("waiting for initial packets, poll returns 0 0")
	}
	t.start = time.Now()
	// With -R the receiver reads no faster than the rate: a slow receiver,
	// to test what senders do when it cannot keep up.
	lim := limiter{rate: c.rate / float64(c.threads), start: t.start}
	if lim.rate > 0 {
		pace.Prepare()
	}
	idle := time.Duration(0)
	for !t.cancel.Load() && (c.count == 0 || t.claimed.Load() < c.count) {
		ev, err := t.port.Poll(nmport.PollIn, pollTimeout)
		if err != nil {
			return err
		}
		if ev == 0 {
			idle += pollTimeout
			if c.exitIdle && idle >= time.Second {
				break
			}
			continue
		}
		idle = 0
		var n, bytes uint64
		for ri, r := range rings {
			avail := r.Space()
			t.noteSpace(r.NumSlots() - 1 - avail)
			if lim.rate > 0 {
				avail = uint32(lim.grant(int(avail)))
				lim.sent += uint64(avail)
			}
			f, b := t.take(r, &state[ri], avail)
			n += f
			bytes += b
		}
		if n > 0 || bytes > 0 {
			t.end = time.Now()
			t.account(n, bytes)
		}
	}
	return t.port.RxSync()
}

// take consumes up to avail slots of r (fewer when -n says enough) and
// returns the frames that ended in them and their bytes.
func (t *thread) take(r *ports.Ring, st *rxRing, avail uint32) (frames, bytes uint64) {
	c := t.cfg
	if c.count != 0 {
		avail = t.claimSlots(r, avail)
	}
	h := r.Head()
	for range avail {
		s := r.Slot(h)
		bytes += uint64(s.Len)
		if c.opts&optDump != 0 {
			fmt.Fprint(os.Stderr, hex.Dump(r.Packet(h)))
		}
		if !st.inChain {
			// A frame's first slot starts with the port's header.
			bytes -= uint64(min(int(s.Len), t.hdr))
			if c.fn == fnRxSeq && int(s.Len) >= t.hdr {
				if seq, ok := payloadWord(r.Packet(h)[t.hdr:], 0); ok {
					t.seq.check(&st.next, &st.seen, seq, c.verbose)
				}
			}
		}
		st.inChain = s.Flags&ports.NS_MOREFRAG != 0
		if !st.inChain {
			frames++
		}
		h = r.Next(h)
	}
	r.SetHead(h)
	r.SetCur(h)
	return frames, bytes
}

// claimSlots returns how many of the first avail slots of r to take when
// -n bounds the frames over all threads: it claims the frames that end in
// them and stops after the last frame claimed.
func (t *thread) claimSlots(r *ports.Ring, avail uint32) uint32 {
	ends := uint32(0)
	for k, h := uint32(0), r.Head(); k < avail; k, h = k+1, r.Next(h) {
		if r.Slot(h).Flags&ports.NS_MOREFRAG == 0 {
			ends++
		}
	}
	got := t.claim(ends)
	switch got {
	case ends:
		return avail
	case 0:
		return 0
	}
	for k, h := uint32(0), r.Head(); k < avail; k, h = k+1, r.Next(h) {
		if r.Slot(h).Flags&ports.NS_MOREFRAG == 0 {
			if got--; got == 0 {
				return k + 1
			}
		}
	}
	return avail
}

// claim takes up to want of the frames -n still allows, over all threads.
func (t *thread) claim(want uint32) uint32 {
	for {
		done := t.claimed.Load()
		if done >= t.cfg.count {
			return 0
		}
		n := min(uint64(want), t.cfg.count-done)
		if t.claimed.CompareAndSwap(done, done+n) {
			return uint32(n)
		}
	}
}

// check compares a received sequence number with the expected one.
func (c *seqCheck) check(next *uint32, seen *bool, seq uint32, verbose bool) {
	if !*seen {
		*seen = true
	} else if seq != *next {
		if delta := seq - *next; delta < 1<<31 {
			c.gaps++
			c.missing += uint64(delta)
			if c.gaps <= 10 || verbose {
				logf("Sequence GAP: exp %d found %d", *next, seq)
			}
		} else {
			c.reorders++
			if c.reorders <= 10 || verbose {
				logf("Sequence OUT OF ORDER: exp %d found %d", *next, seq)
			}
		}
	}
	*next = seq + 1
}

func seqSummary(threads []*thread) {
	var gaps, missing, reorders uint64
	for _, t := range threads {
		gaps += t.seq.gaps
		missing += t.seq.missing
		reorders += t.seq.reorders
	}
	fmt.Printf("Sequence check: %d gaps (%d frames missing), %d out of order\n", gaps, missing, reorders)
}
