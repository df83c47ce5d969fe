package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/pace"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
)

// limiter spreads sends to hold a rate: it grants the frames due since the
// start, so sleeping longer than asked is caught up on the next call.
//
// Go's timers wake about a millisecond late on these machines, which at a
// million frames per second would send bursts of a thousand frames, as many
// as a whole receive ring holds. The limiter sleeps with nanosleep on a
// thread whose timer slack is 1 ns instead: tens of microseconds, and no
// core burnt busy-waiting as netmap's pkt-gen does.
type limiter struct {
	rate  float64 // frames per second, 0 = unlimited
	start time.Time
	sent  uint64
}

// minSleep is the shortest sleep of the limiter.
const minSleep = 100 * time.Microsecond

func (l *limiter) grant(want int) int {
	if l.rate == 0 {
		return want
	}
	due := uint64(time.Since(l.start).Seconds()*l.rate) + 1
	if due <= l.sent {
		// Sleep until a few frames are due, not one: a wake-up per frame
		// would cost more than the frames.
		next := l.start.Add(time.Duration(float64(l.sent) / l.rate * float64(time.Second)))
		ts := unix.NsecToTimespec(int64(max(time.Until(next), minSleep)))
		unix.Nanosleep(&ts, nil)
		return 0
	}
	return int(min(uint64(want), due-l.sent))
}

// sender puts tx's frames into slots, in one of three ways: edited in place
// in slot buffers that hold the frame from the start (the default); copied
// from a template edited for each frame, in one slot or a chain of
// fragments (-o 4 or 8, -F, -M, frames longer than a buffer); or not
// written at all (-r, rubbish: only the lengths are set).
type sender struct {
	t        *thread
	ed       *editor
	wire     []byte // what goes into the slots: the header (-H), then tmpl
	tmpl     []byte // the frame (the longest), or -P's
	hdr      int    // the virtio-net header's length (zero: no offload)
	copyEach bool
	rubbish  bool
}

func newSender(t *thread) *sender {
	c := t.cfg
	s := &sender{t: t, ed: newEditor(t), hdr: t.hdr, rubbish: c.opts&optRubbish != 0}
	s.copyEach = c.opts&(optCopy|optMemcpy) != 0 || t.frags.count > 1
	n := c.length
	if c.template != nil {
		n = len(c.template)
	}
	s.wire = make([]byte, s.hdr+n)
	s.tmpl = s.wire[s.hdr:]
	if c.template != nil {
		copy(s.tmpl, c.template)
	} else {
		s.ed.l.build(s.tmpl, s.ed.spec(t.frame.SrcMAC, c.dstMAC))
	}
	return s
}

// prefill writes the frame into every slot of rings, for in-place edits.
func (s *sender) prefill(rings []*ports.Ring) {
	if s.rubbish || s.copyEach {
		return
	}
	for _, r := range rings {
		for i := range r.NumSlots() {
			copy(r.Buf(r.Slot(i).BufIdx), s.wire)
		}
	}
}

// dump hexdumps the first frame (-X), with its header.
func (s *sender) dump(r *ports.Ring) {
	b := s.wire
	if s.rubbish {
		b = r.Buf(r.Slot(r.Head()).BufIdx)[:min(s.hdr+s.t.cfg.length, r.MaxLen())]
	}
	fmt.Fprint(os.Stderr, hex.Dump(b))
}

// put writes the next frame, after its header, into ring r from slot h
// and returns the slot after it, the slots it took and the frame's length.
func (s *sender) put(r *ports.Ring, h uint32) (next, used uint32, length int) {
	switch {
	case s.rubbish:
		n := s.ed.nextLen()
		next, used = s.chain(r, h, s.hdr+n, nil)
		return next, used, n
	case s.copyEach:
		n := s.t.cfg.length
		if s.ed.perFrame {
			n = s.ed.edit(s.tmpl)
		}
		next, used = s.chain(r, h, s.hdr+n, s.wire[:s.hdr+n])
		return next, used, n
	}
	slot := r.Slot(h)
	if slot.Flags&ports.NS_BUF_CHANGED != 0 {
		copy(r.Buf(slot.BufIdx), s.wire)
	}
	n := s.t.cfg.length
	if s.ed.perFrame {
		n = s.ed.edit(r.Buf(slot.BufIdx)[s.hdr:])
	}
	slot.Len, slot.Flags = uint16(s.hdr+n), 0
	return r.Next(h), 1, n
}

// chain puts n bytes into slots from h, cut as the thread's fragment plan
// says, all but the last flagged NS_MOREFRAG. data are the bytes, nil for
// rubbish (lengths only).
func (s *sender) chain(r *ports.Ring, h uint32, n int, data []byte) (next, used uint32) {
	for k, off := 0, 0; off < n; k++ {
		l := s.t.frags.next(k, n-off)
		slot := r.Slot(h)
		if data != nil {
			copy(r.Buf(slot.BufIdx), data[off:off+l])
		}
		off += l
		slot.Len, slot.Flags = uint16(l), 0
		if off < n {
			slot.Flags = ports.NS_MOREFRAG
		}
		h = r.Next(h)
		used++
	}
	return h, used
}

// tx sends frames until the count is reached or the user interrupts.
func (t *thread) tx() error {
	c := t.cfg
	rings := t.port.TxRings()
	s := newSender(t)
	s.prefill(rings)
	if c.opts&optDump != 0 {
		s.dump(rings[0])
	}
	lim := limiter{rate: c.rate / float64(c.threads), start: time.Now()}
	if lim.rate > 0 {
		pace.Prepare()
	}
	t.start = lim.start
	var sent uint64
	for !t.cancel.Load() && (t.limit == 0 || sent < t.limit) {
		ev, err := t.port.Poll(nmport.PollOut, pollTimeout)
		if err != nil {
			return err
		}
		if ev == 0 {
			continue
		}
		budget := c.burst
		if t.limit != 0 {
			budget = int(min(uint64(budget), t.limit-sent))
		}
		if budget = lim.grant(budget); budget == 0 {
			continue
		}
		n, bytes := t.fill(s, rings, budget)
		if err := t.port.TxSync(); err != nil {
			return err
		}
		sent += n
		lim.sent += n
		t.account(n, bytes)
	}
	t.end = time.Now()
	return t.drain(rings)
}

// fill puts up to budget frames into the rings and returns how many it put
// and their bytes. A frame goes in only when the ring has room for the most
// fragments a frame takes.
func (t *thread) fill(s *sender, rings []*ports.Ring, budget int) (n, bytes uint64) {
	need := uint32(t.frags.count)
	for _, r := range rings {
		space := r.Space()
		t.noteSpace(space)
		h := r.Head()
		for ; space >= need && budget > 0; budget-- {
			var used uint32
			var l int
			h, used, l = s.put(r, h)
			space -= used
			bytes += uint64(l)
			n++
		}
		r.SetHead(h)
		r.SetCur(h)
	}
	return n, bytes
}

// drain waits (a little) until the switch has taken every frame sent.
func (t *thread) drain(rings []*ports.Ring) error {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := t.port.TxSync(); err != nil {
			return err
		}
		pending := false
		for _, r := range rings {
			if r.Pending() {
				pending = true
			}
		}
		if !pending {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}
