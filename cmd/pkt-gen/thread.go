package main

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/pace"
	"github.com/valeswitch/vale/internal/pkt"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
)

// noSpace is what min_space shows when nothing was measured (netmap's 99999).
const noSpace = 99999

// pollTimeout bounds each wait so that threads notice cancellation.
const pollTimeout = 100 * time.Millisecond

type counters struct {
	pkts, bytes, events uint64
}

// thread is one pkt-gen worker with its own binding of the port.
type thread struct {
	id       int
	cfg      *config
	port     *nmport.Port
	cancel   *atomic.Bool
	finished chan struct{}
	err      error

	pkts, bytes, events atomic.Uint64
	minSpace            atomic.Int64
	done                atomic.Bool
	start, end          time.Time

	frame pkt.Frame
	rng   *rand.Rand

	// limit is this thread's share of -n for senders (0 = forever);
	// receivers share claimed, so -n counts frames over all threads.
	limit   uint64
	claimed *atomic.Uint64

	seq seqCheck  // rxseq: what the sequence numbers showed
	rtt pingStats // ping: the round trips
}

// seqCheck is what rxseq found in the sequence numbers of one thread.
type seqCheck struct {
	gaps, missing, reorders uint64
}

// pingStats are the round trips ping measured.
type pingStats struct {
	rtts []uint32
	lost uint64
}

func openThreads(cfg *config) ([]*thread, error) {
	var threads []*thread
	for i := range cfg.threads {
		name, err := threadName(cfg, i)
		if err == nil {
			var p *nmport.Port
			p, err = nmport.Open(name, &nmport.Options{Socket: cfg.socket})
			if err == nil {
				t := &thread{id: i, cfg: cfg, port: p, finished: make(chan struct{})}
				openRand(t)
				t.minSpace.Store(noSpace)
				threads = append(threads, t)
				continue
			}
		}
		for _, t := range threads {
			t.port.Close()
		}
		return nil, err
	}
	claimed := new(atomic.Uint64)
	for _, t := range threads {
		t.claimed = claimed
		if cfg.count > 0 {
			t.limit = cfg.count / uint64(cfg.threads)
			if uint64(t.id) < cfg.count%uint64(cfg.threads) {
				t.limit++
			}
		}
		t.frame = pkt.Frame{
			SrcMAC: cfg.srcMAC, DstMAC: cfg.dstMAC,
			SrcIP: pkt.Addr(cfg.src.First), DstIP: pkt.Addr(cfg.dst.First),
			SrcPort: cfg.src.FirstPort, DstPort: cfg.dst.FirstPort,
			Len: cfg.length,
		}
		if t.frame.SrcMAC == nil {
			t.frame.SrcMAC = t.port.MAC()
		}
		if cfg.srcMAC == nil {
			cfg.srcMAC = t.frame.SrcMAC
		}
		if max := t.port.RxRing(0).MaxLen(); cfg.length > max {
			for _, t := range threads {
				t.port.Close()
			}
			return nil, fmt.Errorf("frame length %d larger than the port's buffers (%d)", cfg.length, max)
		}
	}
	return threads, nil
}

// openRand gives the thread its own random source.
func openRand(t *thread) {
	t.rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(t.id)))
}

func (t *thread) snapshot() counters {
	return counters{pkts: t.pkts.Load(), bytes: t.bytes.Load(), events: t.events.Load()}
}

func (t *thread) account(pkts, bytes uint64) {
	t.pkts.Add(pkts)
	t.bytes.Add(bytes)
	t.events.Add(1)
}

func (t *thread) noteSpace(space uint32) {
	if int64(space) < t.minSpace.Load() {
		t.minSpace.Store(int64(space))
	}
}

func (t *thread) run() {
	defer close(t.finished)
	defer t.done.Store(true)
	if t.cfg.cpu >= 0 {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(t.cfg.cpu + t.id)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			logf("cannot pin thread %d to cpu %d: %v", t.id, t.cfg.cpu+t.id, err)
		}
	}
	t.err = t.cfg.fn.run(t)
	if t.end.IsZero() {
		t.end = time.Now()
	}
}

// editor applies the per-frame changes the flags ask for: lengths, address
// ranges, random addresses, sequence numbers.
type editor struct {
	t                  *thread
	perFrame           bool
	srcIP, dstIP       uint32
	srcPort, dstPort   uint16
	stepSrc, stepDst   bool
	seq                uint32
	randomLen, withSeq bool
}

func newEditor(t *thread) *editor {
	c := t.cfg
	e := &editor{t: t, srcIP: c.src.First, dstIP: c.dst.First, srcPort: c.src.FirstPort, dstPort: c.dst.FirstPort}
	e.stepSrc = !c.src.Single() || c.randSrc
	e.stepDst = !c.dst.Single() || c.randDst
	e.randomLen = c.minLength != 0
	e.withSeq = c.fn == fnTxSeq
	e.perFrame = e.stepSrc || e.stepDst || e.randomLen || e.withSeq
	return e
}

// edit prepares buf (which holds a frame built from the template) for the
// next send and returns its length.
func (e *editor) edit(buf []byte) int {
	c := e.t.cfg
	n := c.length
	if e.randomLen {
		n = c.minLength + e.t.rng.IntN(c.length-c.minLength+1)
		pkt.SetLen(buf, n)
	}
	if e.stepSrc || e.stepDst {
		e.step()
		pkt.SetSrcIP(buf, e.srcIP)
		pkt.SetDstIP(buf, e.dstIP)
		pkt.SetSrcPort(buf, e.srcPort)
		pkt.SetDstPort(buf, e.dstPort)
	}
	if e.withSeq {
		pkt.SetPayload32(buf, 0, e.seq)
		e.seq++
	}
	return n
}

// step moves to the next address/port combination: an odometer whose
// fastest wheel is the source port, then the source address, the
// destination port and the destination address. Random wheels draw within
// their range, or anywhere when the range is a single value.
func (e *editor) step() {
	c, r := e.t.cfg, e.t.rng
	if c.randSrc {
		e.srcIP, e.srcPort = randomIn(r, c.src)
	} else if e.stepSrc {
		if e.srcPort < c.src.LastPort {
			e.srcPort++
			return
		}
		e.srcPort = c.src.FirstPort
		if e.srcIP < c.src.Last {
			e.srcIP++
			return
		}
		e.srcIP = c.src.First
	}
	if c.randDst {
		e.dstIP, e.dstPort = randomIn(r, c.dst)
	} else if e.stepDst {
		if e.dstPort < c.dst.LastPort {
			e.dstPort++
			return
		}
		e.dstPort = c.dst.FirstPort
		if e.dstIP < c.dst.Last {
			e.dstIP++
			return
		}
		e.dstIP = c.dst.First
	}
}

func randomIn(r *rand.Rand, rg pkt.Range) (uint32, uint16) {
	if rg.Single() {
		return r.Uint32(), uint16(r.Uint32())
	}
	return rg.First + uint32(r.Int64N(int64(rg.Last-rg.First)+1)),
		rg.FirstPort + uint16(r.IntN(int(rg.LastPort-rg.FirstPort)+1))
}

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

// tx sends frames until the count is reached or the user interrupts.
func (t *thread) tx() error {
	c := t.cfg
	rings := t.port.TxRings()
	ed := newEditor(t)
	for _, r := range rings {
		for i := range r.NumSlots() {
			pkt.Build(r.Buf(r.Slot(i).BufIdx), &t.frame)
		}
	}
	if c.dump {
		fmt.Fprint(os.Stderr, hex.Dump(t.frameBytes(rings[0])))
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
		var n, bytes uint64
		for _, r := range rings {
			space := r.Space()
			t.noteSpace(space)
			h := r.Head()
			for k := uint32(0); k < space && budget > 0; k++ {
				s := r.Slot(h)
				l := c.length
				if ed.perFrame || s.Flags&ports.NS_BUF_CHANGED != 0 {
					buf := r.Buf(s.BufIdx)
					if s.Flags&ports.NS_BUF_CHANGED != 0 {
						pkt.Build(buf, &t.frame)
					}
					l = ed.edit(buf)
				}
				s.Len = uint16(l)
				s.Flags = 0
				bytes += uint64(l)
				h = r.Next(h)
				n++
				budget--
			}
			r.SetHead(h)
			r.SetCur(h)
		}
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

func (t *thread) frameBytes(r *ports.Ring) []byte {
	return r.Buf(r.Slot(r.Head()).BufIdx)[:t.cfg.length]
}

// rx receives frames until the count is reached, the user interrupts, or
// (with -W) the traffic stops.
func (t *thread) rx() error {
	c := t.cfg
	rings := t.port.RxRings()
	seqs := make([]struct {
		next uint32
		seen bool
	}, len(rings))
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
			if c.count != 0 {
				avail = t.claim(avail)
			}
			h := r.Head()
			for k := uint32(0); k < avail; k++ {
				s := r.Slot(h)
				bytes += uint64(s.Len)
				if c.fn == fnRxSeq || c.dump {
					b := r.Packet(h)
					if c.dump {
						fmt.Fprint(os.Stderr, hex.Dump(b))
					}
					if c.fn == fnRxSeq && len(b) >= pkt.HeadersLen+4 {
						t.seq.check(&seqs[ri].next, &seqs[ri].seen, pkt.Payload32(b, 0), c.verbose)
					}
				}
				h = r.Next(h)
			}
			n += uint64(avail)
			r.SetHead(h)
			r.SetCur(h)
		}
		if n > 0 {
			t.end = time.Now()
			t.account(n, bytes)
		}
	}
	return t.port.RxSync()
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
