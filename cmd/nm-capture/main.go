// Command nm-capture writes what a vale port, pipe end or monitor receives
// to a pcap or pcapng file or stream, with nanosecond timestamps; it is
// also Wireshark's capture interface to vale (an extcap).
//
// Usage:
//
//	nm-capture -i PORT -w FILE|- [-F pcap|pcapng] [-s snaplen] [-c count]
//	           [-G duration] [-C megabytes] [-sock path] [-q]
//
// PORT is any name the client library opens ("vale0:mon", "netmap:p}1",
// "vale0:a/rt"); a name without a "netmap:" or "vale" prefix gets
// "netmap:", as with pkt-gen. The format follows FILE's extension (.pcapng
// is pcapng, anything else pcap) unless -F says otherwise. -s keeps at most
// that many bytes of each frame (default 262144, 0 = whole frames), -c
// stops after that many frames, -G after that long (Go duration syntax), and
// -C starts a new file when the current one exceeds that many millions of
// bytes, as tcpdump does: FILE, then FILE1, FILE2, ...
//
// -w - writes a pcap (or -F pcapng) stream to standard output, for
// tcpdump -r - or tshark -r -: each batch of frames is flushed as it comes,
// and the reader closing the pipe ends the capture cleanly (exit status 0),
// with or without traffic. -C does not go with -w -.
//
// Each frame is stamped with its delivery time, which valed (or the sending
// pipe end) writes in the RX slot's ptr field, or with the time it was read
// when that is 0. SIGINT and SIGTERM stop the capture cleanly, with what
// the rings already hold. Once a second a progress line goes to stderr
// (unless -q); at the end
//
//	Captured N frames B bytes in T seconds to FILE[, FILE1, ...]
//
// goes to stdout (to stderr with -w -), B counting whole frames whatever
// the snap length.
//
// # Wireshark
//
// In Wireshark's extcap directory (make install links it there), nm-capture
// answers Wireshark's calls: --extcap-interfaces lists the ports and pipe
// ends valed has (asking it as vale-ctl -l does; with no valed, none, and
// the reason on stderr), --extcap-dlts says Ethernet, --extcap-config
// offers valed's socket (--sock), the direction (--direction rt, r or t)
// and the snap length (--snaplen), and
//
//	nm-capture --capture --extcap-interface vale0:a --fifo FIFO [--direction rt]
//
// opens the copy monitor vale0:a/rt and writes pcap into FIFO until
// Wireshark closes it or sends SIGTERM, which releases the monitor. So
// tshark -i vale0:a captures from vale0:a. Capture filters are refused
// (use a display filter); toolbar control pipes are accepted and unused.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valeswitch/vale/internal/cli"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
	"github.com/valeswitch/vale/ports/portname"
)

type config struct {
	port     string
	file     string // "-": standard output
	format   string
	snaplen  int
	count    uint64
	duration time.Duration
	rotate   int64 // bytes, 0 = never
	socket   string
	quiet    bool
	ring     int            // -B: slots of a copy monitor's rings, 0 = the port's
	summary  *os.File       // where the closing line goes; nil: nowhere (extcap)
	extcap   *extcapRequest // nil unless Wireshark runs nm-capture as an extcap
}

// captureFlags are the flags of a capture run from the command line.
type captureFlags struct {
	port, file, format, socket string
	snaplen                    int
	count                      uint64
	duration                   time.Duration
	rotate                     float64
	quiet                      bool
	ring                       int
}

// define registers the capture flags on fs.
func (f *captureFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&f.port, "i", "", "port to capture from, e.g. vale0:mon (a name without prefix gets netmap:)")
	fs.StringVar(&f.file, "w", "", "file to write; - writes a pcap stream to standard output")
	fs.StringVar(&f.format, "F", "", "file format, pcap or pcapng (default: from the file's extension)")
	fs.IntVar(&f.snaplen, "s", maxSnap, "bytes kept of each frame; 0 = whole frames")
	fs.IntVar(&f.snaplen, "snaplen", maxSnap, "the same as -s")
	fs.Uint64Var(&f.count, "c", 0, "stop after this many frames; 0 = no limit")
	fs.DurationVar(&f.duration, "G", 0, "stop after this long (e.g. 10s); 0 = no limit")
	fs.Float64Var(&f.rotate, "C", 0, "start a new file when the current one exceeds this many millions of bytes; 0 = never")
	fs.StringVar(&f.socket, "sock", "", "valed control socket (default $VALE_SOCK or /run/vale/valed.sock)")
	fs.BoolVar(&f.quiet, "q", false, "no progress lines")
	fs.IntVar(&f.ring, "B", ports.MaxSlots, "slots of a copy monitor's rings, room for the bursts the writer falls behind on (tcpdump's -B); 0 = the port's ring size")
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("nm-capture", flag.ContinueOnError)
	var f captureFlags
	var x extcapFlags
	f.define(fs)
	x.define(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: nm-capture -i port -w file|- [flags]\n       nm-capture --extcap-interfaces|--extcap-dlts|--extcap-config|--capture ... (Wireshark's extcap)\n\nWrite the frames a port receives to a pcap or pcapng file.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if x.requested(set) {
		return x.request(&f, set)
	}
	for _, name := range extcapOnly {
		if set[name] {
			return nil, fmt.Errorf("-%s goes with Wireshark's --capture (add /r, /t or /rt to the port name instead)", name)
		}
	}
	return f.config()
}

// config checks the capture flags and returns the capture they ask for.
func (f *captureFlags) config() (*config, error) {
	c := &config{file: f.file, snaplen: f.snaplen, count: f.count, duration: f.duration, socket: f.socket, quiet: f.quiet,
		ring: f.ring, summary: os.Stdout}
	if f.port == "" {
		return nil, errors.New("missing -i port")
	}
	if c.ring != 0 && (c.ring < ports.MinSlots || c.ring > ports.MaxSlots) {
		return nil, fmt.Errorf("-B %d out of range [%d, %d] (0: the port's)", c.ring, ports.MinSlots, ports.MaxSlots)
	}
	c.port = cli.PortName(f.port)
	if c.file == "" {
		return nil, errors.New("missing -w file")
	}
	if err := c.setFormat(f.format); err != nil {
		return nil, err
	}
	if err := c.setLimits(f.rotate); err != nil {
		return nil, err
	}
	if c.file == stdoutName {
		if c.rotate > 0 {
			return nil, errors.New("-C rotates files: not with -w -")
		}
		c.summary = os.Stderr // standard output carries the frames
	}
	return c, nil
}

// setFormat sets the file format from -F, or from the file's extension.
func (c *config) setFormat(format string) error {
	switch format {
	case "":
		c.format = fmtPcap
		if strings.EqualFold(filepath.Ext(c.file), ".pcapng") {
			c.format = fmtPcapNG
		}
	case fmtPcap, fmtPcapNG:
		c.format = format
	default:
		return fmt.Errorf("-F %q: want pcap or pcapng", format)
	}
	return nil
}

// setLimits checks the snap length and -G, and sets the rotation size from
// -C (millions of bytes).
func (c *config) setLimits(rotate float64) error {
	if c.snaplen < 0 || c.snaplen > maxSnap {
		return fmt.Errorf("-s %d out of range [0, %d]", c.snaplen, maxSnap)
	}
	if c.duration < 0 {
		return errors.New("-G must not be negative")
	}
	if rotate < 0 || math.IsNaN(rotate) || rotate > 1e12 {
		return fmt.Errorf("-C %v out of range", rotate)
	}
	c.rotate = int64(rotate * 1e6)
	return nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "nm-capture:", err)
		os.Exit(2)
	}
	// A reader that closes the pipe (tcpdump -c, Wireshark) makes writes
	// fail with EPIPE, which ends the capture cleanly, instead of killing
	// nm-capture.
	signal.Ignore(syscall.SIGPIPE)
	if cfg.extcap != nil && cfg.extcap.op != opCapture {
		os.Exit(cfg.extcap.answer(os.Stdout, os.Stderr))
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "nm-capture:", err)
		os.Exit(1)
	}
}

// withRing gives a copy monitor's name the ring size -B asks for, unless
// the name sets one itself (@conf:slots or rx-slots). Other names (ports,
// pipe ends, zero-copy monitors, whose slots are the port's) stay as they
// are.
func withRing(name string, slots int) string {
	n, err := portname.ParseName(name)
	if err != nil || slots == 0 || !n.IsMonitor() || n.Flags&portname.FlagZCopyMon != 0 || n.Conf.Slots != 0 || n.Conf.RxSlots != 0 {
		return name
	}
	if !slices.Contains(n.Options, "conf") {
		return fmt.Sprintf("%s@conf:rx-slots=%d", name, slots) // the name as the user wrote it
	}
	n.Conf.RxSlots = uint32(slots)
	return n.String()
}

// stats are what the progress lines and the summary show.
type stats struct {
	frames, bytes atomic.Uint64
}

func run(cfg *config) error {
	p, err := nmport.Open(withRing(cfg.port, cfg.ring), &nmport.Options{Socket: cfg.socket})
	if err != nil {
		return err
	}
	defer p.Close()
	rings := p.RxRings()
	if len(rings) == 0 {
		return fmt.Errorf("%s: no RX ring bound", cfg.port)
	}
	// A monitor's rings are new: every drop they count is this capture's.
	// A port's or pipe end's count from before is not.
	var dropped0 uint64
	if n, err := portname.ParseName(cfg.port); err != nil || !n.IsMonitor() {
		for _, r := range rings {
			dropped0 += r.Header().Dropped()
		}
	}
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stop.Store(true)
		signal.Stop(sig)
	}()

	s := &sink{base: cfg.file, format: cfg.format, snaplen: cfg.snaplen, limit: cfg.rotate, ifname: p.Name()}
	if err := s.open(); err != nil {
		if s.closedByReader(err) {
			return nil // the reader left before the first frame
		}
		return err
	}

	var st stats
	start := time.Now()
	done := make(chan struct{})
	if !cfg.quiet {
		go progress(&st, start, done)
	}
	c := &capturer{cfg: cfg, port: p, rings: rings, sink: s, st: &st, stop: &stop}
	err = c.loop(start)
	if s.closedByReader(err) {
		err = nil
	}
	close(done)
	if e := p.RxSync(); err == nil && !errors.Is(e, nmport.ErrDisconnected) {
		err = e
	}
	if e := s.close(); err == nil {
		err = e
	}
	elapsed := time.Since(start)
	var dropped uint64
	for _, r := range rings {
		dropped += r.Header().Dropped()
	}
	if cfg.summary != nil {
		fmt.Fprintf(cfg.summary, "Captured %d frames %d bytes in %.3f seconds to %s\n",
			st.frames.Load(), st.bytes.Load(), elapsed.Seconds(), strings.Join(s.files, ", "))
		if d := dropped - dropped0; d > 0 {
			fmt.Fprintf(os.Stderr, "nm-capture: %d frames dropped because the receive ring was full\n", d)
		}
	}
	return err
}

// capturer is the receive loop's state.
type capturer struct {
	cfg   *config
	port  *nmport.Port
	rings []*ports.Ring
	sink  *sink
	st    *stats
	stop  *atomic.Bool
	frags []byte // a frame spanning several slots, gathered
	more  bool   // frags holds the start of a frame
	ts    int64  // delivery time of the frame in frags
}

// pollTimeout bounds each wait so that the loop notices a signal.
const pollTimeout = 100 * time.Millisecond

// loop receives until the count or duration is reached, the reader of a
// stream goes away, or a signal comes; after a signal it still takes what
// the rings hold.
func (c *capturer) loop(start time.Time) error {
	var deadline time.Time
	if c.cfg.duration > 0 {
		deadline = start.Add(c.cfg.duration)
	}
	for !c.full() {
		if c.stop.Load() {
			return c.pending()
		}
		timeout := pollTimeout
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			timeout = min(timeout, left)
		}
		ev, err := c.port.Poll(nmport.PollIn, timeout)
		if err != nil {
			return err
		}
		if ev == 0 {
			if c.sink.readerGone() {
				return nil
			}
			continue
		}
		if err := c.batch(); err != nil {
			return err
		}
	}
	return nil
}

// pending writes what the rings hold, without waiting.
func (c *capturer) pending() error {
	ev, err := c.port.Poll(nmport.PollIn, 0)
	if err != nil || ev == 0 || c.full() {
		return err
	}
	return c.batch()
}

// batch writes the frames of every ring and flushes a stream.
func (c *capturer) batch() error {
	now := time.Now().UnixNano()
	for _, r := range c.rings {
		if err := c.drain(r, now); err != nil {
			return err
		}
	}
	return c.sink.flush()
}

// full reports whether -c frames were captured.
func (c *capturer) full() bool {
	return c.cfg.count > 0 && c.st.frames.Load() >= c.cfg.count
}

// drain writes the frames in [head, tail) of r and releases their slots.
func (c *capturer) drain(r *ports.Ring, now int64) error {
	var n uint32
	var frames, bytes uint64
	defer func() {
		r.Advance(n)
		c.st.frames.Add(frames)
		c.st.bytes.Add(bytes)
	}()
	count := c.cfg.count
	done := c.st.frames.Load()
	for i, tail := r.Head(), r.Tail(); i != tail; i = r.Next(i) {
		if count > 0 && done+frames >= count {
			break
		}
		s := r.Slot(i)
		data := r.Packet(i)
		n++
		ts := int64(s.Ptr)
		if ts == 0 {
			ts = now
		}
		if s.Flags&ports.NS_MOREFRAG != 0 || c.more {
			if !c.more {
				c.frags, c.more, c.ts = c.frags[:0], true, ts
			}
			c.frags = append(c.frags, data...)
			if s.Flags&ports.NS_MOREFRAG != 0 {
				continue
			}
			data, ts, c.more = c.frags, c.ts, false
		}
		if err := c.sink.write(ts, data); err != nil {
			return err
		}
		frames++
		bytes += uint64(len(data))
	}
	return nil
}

// progress prints a line on stderr every second until done is closed.
func progress(st *stats, start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prevFrames, prevBytes uint64
	prevT := start
	for {
		select {
		case <-done:
			return
		case now := <-tick.C:
			f, b := st.frames.Load(), st.bytes.Load()
			dt := now.Sub(prevT).Seconds()
			fmt.Fprintf(os.Stderr, "nm-capture: %d frames %d bytes (%spps %sbps)\n",
				f, b, norm(float64(f-prevFrames)/dt), norm(float64(b-prevBytes)*8/dt))
			prevFrames, prevBytes, prevT = f, b, now
		}
	}
}

// norm prints v with a unit prefix, as netmap's tools do.
func norm(v float64) string { return cli.Norm(v, true) }
