// Command nmreplay replays a pcap or pcapng trace through a vale port,
// emulating a link of given bandwidth, delay and loss, as netmap's
// nmreplay does.
//
// Usage:
//
//	nmreplay [-v] [-D delay] [-B bw] [-L loss] [-b burst] [-w wait] [-n loops]
//	         [-k] [-sock path] -f file.pcap -i port
//
//	-B bps | constant,bps | ether,bps | real[,speedup]
//	        bandwidth: transmit time 8*len/bps, 8*(len+24)/bps (Ethernet
//	        framing), or the trace's own gaps divided by speedup (0 < speedup
//	        <= 1000); bps takes k/K, m/M, g/G (powers of 1000). No -B: as fast
//	        as the port takes the frames.
//	-D dt | constant,dt | uniform,dmin,dmax | exp,dmin,davg
//	        delay added to each packet, never reordering them; times take
//	        s, m, u, n (a bare number is seconds).
//	-L x | plr,x | ber,x
//	        packet loss rate, or bit error rate (a packet of len bytes is lost
//	        with probability 1-(1-ber)^(8*len)).
//	-b burst  frames per TX sync at most (default 128; outside 1..8192: 1024)
//	-w wait   seconds to wait before sending (default 0)
//	-n loops  passes over the trace (default 1; 0 = until interrupted)
//	-k        keep going when the trace has a truncated or corrupt record:
//	          send the records before it (default: send nothing)
//
// The whole trace is read and checked before anything is sent; a bad record
// is reported with its number (1-based) and byte offset, and a frame larger
// than the port's buffers is an error. A port name without a "netmap:" or
// "vale" prefix gets "netmap:". Once a second a line on stderr gives the
// frames and bytes sent in the interval, the rate, and the loss so far
// against the nominal one; the totals go to stdout at the end:
//
//	Sent N packets B bytes in T seconds (R pps, S bps); lost L of M (actual X, nominal Y)
//
// See package internal/replay for the link model.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valeswitch/vale/internal/cli"
	"github.com/valeswitch/vale/internal/pace"
	"github.com/valeswitch/vale/internal/replay"
	"github.com/valeswitch/vale/ports/nmport"
)

type config struct {
	file    string
	port    string
	socket  string
	bw      replay.Bandwidth
	delay   replay.Delay
	loss    *replay.Loss
	burst   int
	wait    time.Duration
	loops   uint64
	keep    bool
	verbose bool
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("nmreplay", flag.ContinueOnError)
	var (
		file    = fs.String("f", "", "pcap or pcapng trace to replay")
		port    = fs.String("i", "", "port to send on, e.g. vale0:a (a name without prefix gets netmap:)")
		bw      = fs.String("B", "", "bandwidth: bps, constant,bps, ether,bps or real[,speedup]")
		delay   = fs.String("D", "", "delay: dt, constant,dt, uniform,dmin,dmax or exp,dmin,davg")
		loss    = fs.String("L", "", "loss: x, plr,x or ber,x")
		burst   = fs.Int("b", 128, "frames per TX sync at most (outside 1..8192: 1024)")
		wait    = fs.Float64("w", 0, "seconds to wait before sending")
		loops   = fs.Uint64("n", 1, "passes over the trace; 0 = until interrupted")
		keep    = fs.Bool("k", false, "send the records before a truncated or corrupt one instead of nothing")
		verbose = fs.Bool("v", false, "verbose")
		socket  = fs.String("sock", "", "valed control socket (default $VALE_SOCK or /run/vale/valed.sock)")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nmreplay [-v] [-D delay] [-B bw] [-L loss] [-b burst] [-w wait] [-n loops] [-k] -f file.pcap -i port\n\nReplay a trace through a vale port, emulating a link.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := &config{file: *file, socket: *socket, burst: *burst, loops: *loops, keep: *keep, verbose: *verbose}
	if c.file == "" {
		return nil, errors.New("missing -f file")
	}
	if *port == "" {
		return nil, errors.New("missing -i port")
	}
	c.port = *port
	c.port = cli.PortName(c.port)
	var err error
	if c.bw, err = replay.ParseBandwidth(*bw); err != nil {
		return nil, fmt.Errorf("-B: %w", err)
	}
	if c.delay, err = replay.ParseDelay(*delay); err != nil {
		return nil, fmt.Errorf("-D: %w", err)
	}
	if c.loss, err = replay.ParseLoss(*loss); err != nil {
		return nil, fmt.Errorf("-L: %w", err)
	}
	if c.burst < 1 || c.burst > 8192 {
		c.burst = 1024 // as netmap
	}
	if *wait < 0 || *wait > 3600 || math.IsNaN(*wait) {
		return nil, fmt.Errorf("-w %v out of range [0, 3600]", *wait)
	}
	c.wait = time.Duration(*wait * float64(time.Second))
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "nmreplay:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "nmreplay:", err)
		os.Exit(1)
	}
}

// logf prints a diagnostic line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "nmreplay: "+format+"\n", args...)
}

// load reads the trace and decides what of it to send.
func load(cfg *config) (*replay.Trace, error) {
	tr, err := replay.Load(cfg.file)
	if err != nil {
		var re *replay.RecordError
		if !errors.As(err, &re) {
			return nil, err
		}
		switch {
		case !cfg.keep:
			return nil, fmt.Errorf("%w; nothing sent (-k sends the %d records before it)", err, len(tr.Packets))
		case len(tr.Packets) == 0:
			return nil, fmt.Errorf("%w; no record before it to send", err)
		}
		logf("warning: %v; sending the %d records before it", err, len(tr.Packets))
	}
	if tr.Snapped > 0 {
		logf("warning: %d records were captured shorter than they were on the wire; they are sent as captured", tr.Snapped)
	}
	return tr, nil
}

func run(cfg *config) error {
	tr, err := load(cfg)
	if err != nil {
		return err
	}
	p, err := nmport.Open(cfg.port, &nmport.Options{Socket: cfg.socket})
	if err != nil {
		return err
	}
	defer p.Close()
	rings := p.TxRings()
	if len(rings) == 0 {
		return fmt.Errorf("%s: no TX ring bound", cfg.port)
	}
	ring := rings[0]
	for i := range tr.Packets {
		if pk := &tr.Packets[i]; len(pk.Data) > ring.MaxLen() {
			return fmt.Errorf("%s: record %d at byte offset %d: frame of %d bytes larger than the port's buffers (%d); nothing sent",
				cfg.file, pk.Record, pk.Offset, len(pk.Data), ring.MaxLen())
		}
	}
	if cfg.verbose {
		first, last := tr.Packets[0].Time, tr.Packets[len(tr.Packets)-1].Time
		res := "microsecond"
		if tr.Nanos {
			res = "nanosecond"
		}
		logf("%s: %s with %s timestamps, %d packets, %d bytes, %.6f seconds; -B %s -D %s -L %s, burst %d",
			cfg.file, tr.Format, res, len(tr.Packets), tr.Bytes, float64(last-first)/1e9,
			orNone(cfg.bw.String()), orNone(cfg.delay.String()), orNone(cfg.loss.String()), cfg.burst)
	}

	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stop.Store(true)
		signal.Stop(sig)
	}()
	if cfg.wait > 0 {
		logf("waiting %v before sending", cfg.wait)
		pace.Sleep(cfg.wait, stop.Load)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	s := &sender{
		port: p, ring: ring, pkts: tr.Packets, burst: cfg.burst, loops: cfg.loops, stop: &stop,
		sched: replay.NewScheduler(cfg.bw, cfg.delay, cfg.loss, rng),
	}
	done := make(chan error, 1)
	go func() { done <- s.run() }()
	err = report(s, done)
	final(s)
	return err
}

// orNone returns s, or "none" if s is empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// report prints a line every second until the sender is done, and returns
// its error.
func report(s *sender, done <-chan error) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prevT := time.Now()
	var prevSent, prevBytes uint64
	for {
		select {
		case err := <-done:
			return err
		case now := <-tick.C:
			sent, bytes := s.sent.Load(), s.bytes.Load()
			dt := now.Sub(prevT).Seconds()
			actual, nominal := lossRates(s)
			logf("%d frames %d bytes in %.3f s: %spps %sbps; loss %.4f (nominal %.4f)",
				sent-prevSent, bytes-prevBytes, dt, norm(float64(sent-prevSent)/dt),
				norm(float64(bytes-prevBytes)*8/dt), actual, nominal)
			prevT, prevSent, prevBytes = now, sent, bytes
		}
	}
}

// lossRates returns the fraction of packets lost so far and the expected one.
func lossRates(s *sender) (actual, nominal float64) {
	n := s.packets.Load()
	if n == 0 {
		return 0, 0
	}
	return float64(s.lost.Load()) / float64(n), math.Float64frombits(s.expected.Load()) / float64(n)
}

// final prints the totals.
func final(s *sender) {
	sent, bytes := s.sent.Load(), s.bytes.Load()
	secs := s.last.Sub(s.first).Seconds()
	pps, bps := 0.0, 0.0
	if secs > 0 {
		pps, bps = float64(sent)/secs, float64(bytes)*8/secs
	}
	actual, nominal := lossRates(s)
	fmt.Printf("Sent %d packets %d bytes in %.6f seconds (%spps, %sbps); lost %d of %d (actual %.4f, nominal %.4f)\n",
		sent, bytes, secs, norm(pps), norm(bps), s.lost.Load(), s.packets.Load(), actual, nominal)
}

// norm prints v with a unit prefix, as netmap's tools do.
func norm(v float64) string { return cli.Norm(v, true) }
