package main

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/pkt"
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

	frame pkt.Frame // ping and pong: their IPv4 frame
	hdr   int       // the virtio-net header before each frame in the slots
	frags fragPlan  // tx: how frames are cut into slots
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
	closeAll := func() {
		for _, t := range threads {
			t.port.Close()
		}
	}
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
		closeAll()
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
		if err := t.prepare(); err != nil {
			closeAll()
			return nil, err
		}
	}
	return threads, nil
}

// prepare sets what the thread's frames are made of: addresses, and how
// tx cuts them into slots.
func (t *thread) prepare() error {
	cfg := t.cfg
	srcMAC := cfg.srcMAC
	if srcMAC == nil {
		srcMAC = t.port.MAC()
	}
	if cfg.srcMACText == "" {
		cfg.srcMACText = srcMAC.String()
	}
	t.frame = pkt.Frame{
		SrcMAC: srcMAC, DstMAC: cfg.dstMAC,
		SrcIP: cfg.src.addr(cfg.src.lo), DstIP: cfg.dst.addr(cfg.dst.lo),
		SrcPort: cfg.src.loPort, DstPort: cfg.dst.loPort,
		Len: cfg.length,
	}
	if err := t.setVnetHdr(); err != nil {
		return err
	}
	maxLen := t.port.RxRing(0).MaxLen()
	cut := (cfg.fn == fnTx || cfg.fn == fnTxSeq) && (cfg.frags > 1 || cfg.fragSize > 0)
	if cfg.fn.sender && t.hdr+cfg.length > maxLen && !cut {
		// netmap's pkt-gen would cut such frames by itself; asking for it
		// keeps a typo in -l from sending chains.
		return fmt.Errorf("frame length %d (and a header of %d) larger than the port's buffers (%d): cut frames into slots with -F or -M",
			cfg.length, t.hdr, maxLen)
	}
	if cfg.fn == fnTx || cfg.fn == fnTxSeq {
		var err error
		t.frags, err = planFragments(t.hdr+cfg.length, cfg.frags, cfg.fragSize, maxLen)
		return err
	}
	return nil
}

// setVnetHdr sets the port's virtio-net header as -H asks (the first
// thread: the length is the port's) or, without -H, learns the header the
// port has, as netmap's pkt-gen does. A port without headers (a pipe, a
// monitor) has none.
func (t *thread) setVnetHdr() error {
	cfg := t.cfg
	if cfg.vnetHdr >= 0 && t.id == 0 {
		if err := t.port.SetVnetHdrLen(cfg.vnetHdr); err != nil {
			return fmt.Errorf("-H %d: %w", cfg.vnetHdr, err)
		}
	}
	n, err := t.port.VnetHdrLen()
	switch {
	case err != nil && cfg.vnetHdr > 0:
		return fmt.Errorf("-H %d: %w", cfg.vnetHdr, err)
	case err != nil:
		n = 0
		if cfg.verbose {
			logf("no virtio-net header: %v", err)
		}
	case n > 0 && t.id == 0:
		logf("Port requires %d bytes of virtio-net header", n)
	}
	t.hdr = n
	return nil
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
	if cpu := t.cfg.pinCPU(t.id); cpu >= 0 {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			logf("cannot pin thread %d to cpu %d: %v", t.id, cpu, err)
		}
	}
	t.err = t.cfg.fn.run(t)
	if t.end.IsZero() {
		t.end = time.Now()
	}
}
