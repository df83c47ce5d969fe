package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/valeswitch/vale/internal/cli"
	"github.com/valeswitch/vale/internal/pkt"
	"github.com/valeswitch/vale/ports"
)

type function int

const (
	fnRx function = iota
	fnTx
	fnPing
	fnPong
	fnTxSeq
	fnRxSeq
)

var functions = map[string]function{
	"rx": fnRx, "tx": fnTx, "ping": fnPing, "pong": fnPong, "txseq": fnTxSeq, "rxseq": fnRxSeq,
}

// sender reports whether the function builds frames of its own.
func (f function) sender() bool { return f == fnTx || f == fnTxSeq || f == fnPing }

// defaultBurst is netmap's default batch per function.
func (f function) defaultBurst() int {
	if f == fnPing || f == fnPong {
		return 1
	}
	return 512
}

type config struct {
	ifname    string
	socket    string
	fn        function
	length    int // frame length (maximum when random)
	minLength int // minimum random length, 0 if fixed
	count     uint64
	burst     int
	rate      float64
	srcMAC    net.HardwareAddr
	dstMAC    net.HardwareAddr
	src, dst  pkt.Range
	srcText   string
	dstText   string
	randSrc   bool
	randDst   bool
	reportMs  int
	wait      time.Duration
	exitIdle  bool
	threads   int
	cpu       int
	framing   int // bits added per frame to the raw rate (-B)
	dump      bool
	normalize bool
	verbose   bool
}

// lengths collects -l, which may be given twice.
type lengths []int

func (l *lengths) String() string { return fmt.Sprint(*l) }
func (l *lengths) Set(s string) error {
	if len(*l) == 2 {
		return errors.New("-l given more than twice")
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a length", s)
	}
	*l = append(*l, v)
	return nil
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("pkt-gen", flag.ContinueOnError)
	var (
		lens     lengths
		ifname   = fs.String("i", "", "port to use, e.g. vale0:a (a name without prefix gets netmap:)")
		fn       = fs.String("f", "rx", "function: tx, rx, ping, pong, txseq, rxseq")
		count    = fs.Uint64("n", 0, "frames (transactions for ping/pong) to send or receive; 0 = forever")
		burst    = fs.Int("b", 0, "batch per sync (default 512, 1 for ping/pong)")
		rate     = fs.Float64("R", 0, "rate limit in frames per second (rx: read no faster, a slow receiver)")
		smac     = fs.String("S", "", "source MAC (default: the port's own)")
		dmac     = fs.String("D", "ff:ff:ff:ff:ff:ff", "destination MAC")
		src      = fs.String("s", "10.0.0.1", "source address[:port][-address[:port]]")
		dst      = fs.String("d", "10.1.0.1", "destination address[:port][-address[:port]]")
		randSrc  = fs.Bool("z", false, "random source address and port")
		randDst  = fs.Bool("Z", false, "random destination address and port")
		reportMs = fs.Int("T", 1000, "report interval in milliseconds")
		wait     = fs.Int("w", 0, "seconds to wait before starting (link wait)")
		exitIdle = fs.Bool("W", false, "rx: exit after one second without traffic")
		threads  = fs.Int("p", 1, "threads, one ring each")
		cpu      = fs.Int("a", -1, "pin thread i to CPU a+i")
		framing  = fs.Bool("B", false, "count 24 bytes of Ethernet framing (preamble, IFG, CRC) in the raw rate")
		dump     = fs.Bool("X", false, "hexdump frames")
		noNorm   = fs.Bool("N", false, "do not scale numbers with unit prefixes")
		verbose  = fs.Bool("v", false, "verbose")
		socket   = fs.String("sock", "", "valed control socket (default $VALE_SOCK or /run/vale/valed.sock)")
	)
	fs.Var(&lens, "l", "frame length without CRC (default 60); given twice, random lengths between the two")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: pkt-gen -i port [flags]\n\nGenerate or receive traffic on a vale port.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := &config{
		socket: *socket, count: *count, rate: *rate, randSrc: *randSrc, randDst: *randDst,
		reportMs: *reportMs, exitIdle: *exitIdle, threads: *threads, cpu: *cpu,
		dump: *dump, normalize: !*noNorm, verbose: *verbose, srcText: *src, dstText: *dst,
	}
	if *ifname == "" {
		return nil, errors.New("missing -i port")
	}
	c.ifname = *ifname
	c.ifname = cli.PortName(c.ifname)
	f, ok := functions[*fn]
	if !ok {
		return nil, fmt.Errorf("unknown function %q (tx, rx, ping, pong, txseq, rxseq)", *fn)
	}
	c.fn = f
	c.length = 60
	switch len(lens) {
	case 1:
		c.length = lens[0]
	case 2:
		c.length, c.minLength = max(lens[0], lens[1]), min(lens[0], lens[1])
	}
	if c.length < pkt.HeadersLen || c.length > 65535 || (c.minLength != 0 && c.minLength < pkt.HeadersLen) {
		return nil, fmt.Errorf("frame length must be in [%d, 65535]", pkt.HeadersLen)
	}
	if f == fnPing && c.length < pkt.HeadersLen+pingPayload {
		return nil, fmt.Errorf("ping needs frames of at least %d bytes", pkt.HeadersLen+pingPayload)
	}
	if f == fnTxSeq && c.length < pkt.HeadersLen+4 {
		return nil, fmt.Errorf("txseq needs frames of at least %d bytes", pkt.HeadersLen+4)
	}
	c.burst = *burst
	if c.burst == 0 {
		c.burst = f.defaultBurst()
	}
	if c.burst < 1 || c.burst > ports.MaxSlots {
		return nil, fmt.Errorf("-b %d out of range [1, %d]", c.burst, ports.MaxSlots)
	}
	if c.rate < 0 {
		return nil, errors.New("-R must not be negative")
	}
	if c.threads < 1 || c.threads > ports.MaxRings {
		return nil, fmt.Errorf("-p %d out of range [1, %d]", c.threads, ports.MaxRings)
	}
	if c.threads > 1 && (f == fnPing || f == fnPong || f == fnTxSeq || f == fnRxSeq) {
		return nil, fmt.Errorf("%s works with one thread only", *fn)
	}
	if c.reportMs < 10 {
		return nil, errors.New("-T must be at least 10 ms")
	}
	c.wait = time.Duration(*wait) * time.Second
	if *framing {
		c.framing = 24 * 8
	}
	var err error
	if *smac != "" {
		if c.srcMAC, err = net.ParseMAC(*smac); err != nil || len(c.srcMAC) != 6 {
			return nil, fmt.Errorf("-S: %q is not a MAC address", *smac)
		}
	}
	if c.dstMAC, err = net.ParseMAC(*dmac); err != nil || len(c.dstMAC) != 6 {
		return nil, fmt.Errorf("-D: %q is not a MAC address", *dmac)
	}
	if c.src, err = pkt.ParseRange(*src, 1234); err != nil {
		return nil, fmt.Errorf("-s: %w", err)
	}
	if c.dst, err = pkt.ParseRange(*dst, 4321); err != nil {
		return nil, fmt.Errorf("-d: %w", err)
	}
	return c, nil
}

// threadName returns the port name thread i opens: the name as given for a
// single thread, the name with ring suffix "-i" otherwise (as netmap's
// pkt-gen binds one ring per thread).
func threadName(cfg *config, i int) (string, error) {
	if cfg.threads == 1 {
		return cfg.ifname, nil
	}
	n, err := ports.ParseName(cfg.ifname)
	if err != nil {
		return "", err
	}
	if n.Mode != ports.RegAllNIC {
		return "", fmt.Errorf("-p %d needs a port name without ring selection", cfg.threads)
	}
	n.Mode, n.Ring = ports.RegOneNIC, i
	return n.String(), nil
}
