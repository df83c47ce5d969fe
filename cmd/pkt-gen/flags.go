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
	"github.com/valeswitch/vale/ports/portname"
)

// function is what pkt-gen -f does: how each thread runs it, what the
// totals count, and the summary it prints after them.
type function struct {
	name    string
	sender  bool // builds frames of its own
	burst   int  // default batch per sync (netmap's)
	verb    string
	run     func(t *thread) error
	summary func(threads []*thread) // nil: none
}

// The functions, as netmap's pkt-gen names them (their run and summary
// are set in init: they refer to the functions themselves).
var (
	fnRx    = &function{name: "rx", burst: 512, verb: "Received"}
	fnTx    = &function{name: "tx", sender: true, burst: 512, verb: "Sent"}
	fnPing  = &function{name: "ping", sender: true, burst: 1, verb: "Transactions"}
	fnPong  = &function{name: "pong", burst: 1, verb: "Transactions"}
	fnTxSeq = &function{name: "txseq", sender: true, burst: 512, verb: "Sent"}
	fnRxSeq = &function{name: "rxseq", burst: 512, verb: "Received"}
)

// functions are the functions by name.
var functions = map[string]*function{}

func init() {
	fnRx.run, fnTx.run, fnPing.run, fnPong.run, fnTxSeq.run, fnRxSeq.run =
		(*thread).rx, (*thread).tx, (*thread).ping, (*thread).pong, (*thread).tx, (*thread).rx
	fnPing.summary, fnRxSeq.summary = pingSummary, seqSummary
	for _, f := range []*function{fnRx, fnTx, fnPing, fnPong, fnTxSeq, fnRxSeq} {
		functions[f.name] = f
	}
}

type config struct {
	ifname     string
	socket     string
	fn         *function
	v6         bool
	length     int // frame length (maximum when random)
	minLength  int // minimum random length, 0 if fixed
	count      uint64
	burst      int
	rate       float64
	srcMAC     net.HardwareAddr
	dstMAC     net.HardwareAddr
	srcMACText string // -S as given ("" until the port's own is known)
	dstMACText string
	src, dst   addrRange
	srcText    string
	dstText    string
	opts       options
	template   []byte // -P: the frame to send, nil otherwise
	frags      int    // -F: fragments per frame
	fragSize   int    // -M: bytes per fragment, 0 = a buffer
	vnetHdr    int    // -H: the virtio-net header to set, -1 = the port's
	reportMs   int
	wait       time.Duration
	exitIdle   bool
	threads    int
	cpu        int // -a: the first thread's CPU, -1 = no pinning
	cpus       int // -c, as netmap prints it (0 resolved to all)
	cpuSpread  int // CPUs the pinned threads wrap around
	framing    int // bits added per frame to the raw rate (-B)
	normalize  bool
	verbose    bool
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

// family is -4 or -6: the flag given last wins, as with netmap's getopt.
type family struct {
	v6   *bool
	want bool
}

func (f family) String() string   { return "" }
func (f family) IsBoolFlag() bool { return true }
func (f family) Set(s string) error {
	on, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if on {
		*f.v6 = f.want
	}
	return nil
}

// flagValues are pkt-gen's flags as given.
type flagValues struct {
	lens                                                     lengths
	ifname, fn, smac, dmac, src, dst, socket, pcap           string
	count                                                    uint64
	burst, reportMs, wait, threads, cpu, cpus, frags, fragSz int
	vnetHdr                                                  int
	rate                                                     float64
	v6                                                       bool
	opts                                                     options
	rubbish, randSrc, randDst, dump, stats, indirect         bool
	exitIdle, framing, noNorm, verb, cpusSet                 bool
}

// defineFlags defines pkt-gen's flags into v.
func defineFlags(fs *flag.FlagSet, v *flagValues) {
	fs.StringVar(&v.ifname, "i", "", "port to use, e.g. vale0:a (a name without prefix gets netmap:)")
	fs.StringVar(&v.fn, "f", "rx", "function: tx, rx, ping, pong, txseq, rxseq")
	fs.Uint64Var(&v.count, "n", 0, "frames (transactions for ping/pong) to send or receive; 0 = forever")
	fs.IntVar(&v.burst, "b", 0, "batch per sync (default 512, 1 for ping/pong)")
	fs.Float64Var(&v.rate, "R", 0, "rate limit in frames per second (rx: read no faster, a slow receiver)")
	fs.Var(family{&v.v6, false}, "4", "IPv4/UDP frames (the default)")
	fs.Var(family{&v.v6, true}, "6", "IPv6/UDP frames")
	fs.StringVar(&v.smac, "S", "", "source MAC (default: the port's own)")
	fs.StringVar(&v.dmac, "D", "ff:ff:ff:ff:ff:ff", "destination MAC")
	fs.StringVar(&v.src, "s", "", "source address[:port][-address[:port]] (default 10.0.0.1, with -6 fd00::1; IPv6: [group@][addr]:port)")
	fs.StringVar(&v.dst, "d", "", "destination address[:port][-address[:port]] (default 10.1.0.1, with -6 fd01::1)")
	fs.BoolVar(&v.randSrc, "z", false, "random source address and port (-o 512)")
	fs.BoolVar(&v.randDst, "Z", false, "random destination address and port (-o 1024)")
	fs.StringVar(&v.pcap, "P", "", "send the first frame of this pcap or pcapng file (its length; -l is ignored)")
	fs.IntVar(&v.frags, "F", 1, "fragments (slots chained with NS_MOREFRAG) per frame, 1 to 63")
	fs.IntVar(&v.fragSz, "M", 0, "at most this many bytes per fragment (default: a buffer)")
	fs.IntVar(&v.vnetHdr, "H", -1, "virtio-net header of 0, 10 or 12 bytes before each frame, set on the port (PORT_HDR_SET); default: the port's (PORT_HDR_GET)")
	fs.BoolVar(&v.rubbish, "r", false, "rubbish: send the buffers as they are, without writing frames (-o 256)")
	fs.BoolVar(&v.stats, "A", false, "add the sliding mean and standard deviation of pps to the reports (-o 2048)")
	fs.BoolVar(&v.indirect, "I", false, "NS_INDIRECT slots: not supported (valed cannot read pkt-gen's memory)")
	fs.Var(&v.opts, "o", "option bits (netmap's): 1 prefetch, 2 access, 4 copy, 8 memcpy, 16 timestamp, 32 indirect, 64 dump, 256 rubbish, 512 random src, 1024 random dst, 2048 pps stats, 4096 update checksums")
	fs.IntVar(&v.reportMs, "T", 1000, "report interval in milliseconds")
	fs.IntVar(&v.wait, "w", 0, "seconds to wait before starting (link wait)")
	fs.BoolVar(&v.exitIdle, "W", false, "rx: exit after one second without traffic")
	fs.IntVar(&v.threads, "p", 1, "threads, one ring each")
	fs.IntVar(&v.cpu, "a", -1, "pin thread i to CPU a+i (modulo -c)")
	fs.IntVar(&v.cpus, "c", 1, "CPUs to use, 0 = all: pinned threads (-a) wrap around them")
	fs.BoolVar(&v.framing, "B", false, "count 24 bytes of Ethernet framing (preamble, IFG, CRC) in the raw rate")
	fs.BoolVar(&v.dump, "X", false, "hexdump frames (-o 64)")
	fs.BoolVar(&v.noNorm, "N", false, "do not scale numbers with unit prefixes")
	fs.BoolVar(&v.verb, "v", false, "verbose")
	fs.StringVar(&v.socket, "sock", "", "valed control socket (default $VALE_SOCK or /run/vale/valed.sock)")
	fs.Var(&v.lens, "l", "frame length without CRC (default 60, 62 with -6); given twice, random lengths between the two")
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("pkt-gen", flag.ContinueOnError)
	var v flagValues
	defineFlags(fs, &v)
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
	fs.Visit(func(f *flag.Flag) { v.cpusSet = v.cpusSet || f.Name == "c" })
	c := &config{
		socket: v.socket, count: v.count, rate: v.rate, v6: v.v6, frags: v.frags, fragSize: v.fragSz,
		vnetHdr:  v.vnetHdr,
		reportMs: v.reportMs, exitIdle: v.exitIdle, threads: v.threads, cpu: v.cpu,
		normalize: !v.noNorm, verbose: v.verb, srcText: v.src, dstText: v.dst,
		wait: time.Duration(v.wait) * time.Second,
	}
	if v.ifname == "" {
		return nil, errors.New("missing -i port")
	}
	c.ifname = cli.PortName(v.ifname)
	f, ok := functions[v.fn]
	if !ok {
		return nil, fmt.Errorf("unknown function %q (tx, rx, ping, pong, txseq, rxseq)", v.fn)
	}
	c.fn = f
	if v.framing {
		c.framing = 24 * 8
	}
	for _, step := range []func(*flagValues) error{
		c.setOptions, c.setLengths, c.checkCounts, c.setCPUs, c.setFragments, c.setVnetHdr, c.setAddresses,
		c.setTemplate,
	} {
		if err := step(&v); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// setLengths sets the frame length, or the range of random lengths, from
// -l given once or twice, checked against what the function needs.
func (c *config) setLengths(v *flagValues) error {
	l := layoutOf(c.v6)
	c.length = max(60, l.payload)
	switch len(v.lens) {
	case 1:
		c.length = v.lens[0]
	case 2:
		c.length, c.minLength = max(v.lens[0], v.lens[1]), min(v.lens[0], v.lens[1])
	}
	shortest := c.length
	if c.minLength != 0 {
		shortest = c.minLength
	}
	switch {
	case shortest < l.payload || c.length > 65535:
		return fmt.Errorf("frame length must be in [%d, 65535]", l.payload)
	case (c.fn == fnPing || c.fn == fnPong) && c.v6:
		return fmt.Errorf("%s works with IPv4 only (netmap's does not support IPv6 either)", c.fn.name)
	case c.fn == fnPing && shortest < pkt.HeadersLen+pingPayload:
		return fmt.Errorf("ping needs frames of at least %d bytes", pkt.HeadersLen+pingPayload)
	case c.fn == fnTxSeq && shortest < l.payload+4:
		return fmt.Errorf("txseq needs frames of at least %d bytes", l.payload+4)
	case c.opts&optTimestamp != 0 && c.fn.sender && shortest < l.payload+stampOff+stampLen:
		return fmt.Errorf("-o %d (timestamp) needs frames of at least %d bytes", optTimestamp, l.payload+stampOff+stampLen)
	}
	return nil
}

// checkCounts sets the burst (-b, or the function's default) and checks
// it, the rate, the threads and the report interval.
func (c *config) checkCounts(v *flagValues) error {
	c.burst = v.burst
	if c.burst == 0 {
		c.burst = c.fn.burst
	}
	f := c.fn
	switch {
	case c.burst < 1 || c.burst > ports.MaxSlots:
		return fmt.Errorf("-b %d out of range [1, %d]", c.burst, ports.MaxSlots)
	case c.rate < 0:
		return errors.New("-R must not be negative")
	case c.threads < 1 || c.threads > ports.MaxRings:
		return fmt.Errorf("-p %d out of range [1, %d]", c.threads, ports.MaxRings)
	case c.threads > 1 && (f == fnPing || f == fnPong || f == fnTxSeq || f == fnRxSeq):
		return fmt.Errorf("%s works with one thread only", f.name)
	case c.reportMs < 10:
		return errors.New("-T must be at least 10 ms")
	}
	return nil
}

// setAddresses parses the MAC addresses and the address ranges.
func (c *config) setAddresses(v *flagValues) error {
	var err error
	if v.smac != "" {
		if c.srcMAC, err = net.ParseMAC(v.smac); err != nil || len(c.srcMAC) != 6 {
			return fmt.Errorf("-S: %q is not a MAC address", v.smac)
		}
		c.srcMACText = v.smac
	}
	if c.dstMAC, err = net.ParseMAC(v.dmac); err != nil || len(c.dstMAC) != 6 {
		return fmt.Errorf("-D: %q is not a MAC address", v.dmac)
	}
	c.dstMACText = v.dmac
	if c.srcText == "" {
		c.srcText = map[bool]string{false: "10.0.0.1", true: "fd00::1"}[c.v6]
	}
	if c.dstText == "" {
		c.dstText = map[bool]string{false: "10.1.0.1", true: "fd01::1"}[c.v6]
	}
	if c.src, err = parseRange(c.srcText, c.v6, 1234); err != nil {
		return fmt.Errorf("-s: %w", err)
	}
	if c.dst, err = parseRange(c.dstText, c.v6, 4321); err != nil {
		return fmt.Errorf("-d: %w", err)
	}
	return nil
}

// threadName returns the port name thread i opens: the name as given for a
// single thread, the name with ring suffix "-i" otherwise (as netmap's
// pkt-gen binds one ring per thread).
func threadName(cfg *config, i int) (string, error) {
	if cfg.threads == 1 {
		return cfg.ifname, nil
	}
	n, err := portname.ParseName(cfg.ifname)
	if err != nil {
		return "", err
	}
	if n.Mode != portname.RegAllNIC {
		return "", fmt.Errorf("-p %d needs a port name without ring selection", cfg.threads)
	}
	n.Mode, n.Ring = portname.RegOneNIC, i
	return n.String(), nil
}
