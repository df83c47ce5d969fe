// Command pkt-gen generates and receives traffic on vale ports, with
// netmap's pkt-gen flags and output.
//
// Usage:
//
//	pkt-gen -i port [-f tx|rx|ping|pong|txseq|rxseq] [-l len [-l minlen]] [-n count]
//	        [-b burst] [-R pps] [-4|-6] [-S mac] [-D mac] [-s range] [-d range]
//	        [-z] [-Z] [-P file] [-F frags] [-M size] [-r] [-o bits] [-A] [-T ms]
//	        [-w s] [-W] [-p threads] [-a cpu] [-c cpus] [-B] [-X] [-N] [-v]
//
// A range is addr[:port][-addr[:port]]; an IPv6 address followed by a port
// goes in brackets, and may start with the 16-bit group the range varies,
// as in netmap: 7@[2001:db8::1]:1000-[2001:db8::9]:1009.
//
// A port name without a "netmap:" or "vale" prefix gets "netmap:", as with
// netmap. The default function is rx. Every -T milliseconds it prints
//
//	X Mpps [avg/std A/S pps](N pkts Y Gbps in U usec) B avg_batch M min_space
//
// (the part in brackets with -A) and at the end the totals and the average
// speed.
package main

import (
	"fmt"
	"math"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valeswitch/vale/internal/cli"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "pkt-gen:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "pkt-gen:", err)
		os.Exit(1)
	}
}

func run(cfg *config) error {
	threads, err := openThreads(cfg)
	if err != nil {
		return err
	}
	defer func() {
		for _, t := range threads {
			t.port.Close()
		}
	}()
	queues := 0
	for _, t := range threads {
		if cfg.fn.sender {
			queues += len(t.port.TxRings())
		} else {
			queues += len(t.port.RxRings())
		}
	}
	verb := "Working on"
	switch {
	case cfg.fn == fnTx || cfg.fn == fnTxSeq:
		verb = "Sending on"
	case cfg.fn == fnRx || cfg.fn == fnRxSeq:
		verb = "Receiving from"
	}
	fmt.Printf("%s %s: %d queues, %d threads and %d cpus.\n", verb, cfg.ifname, queues, cfg.threads, cfg.cpus)
	if cfg.fn == fnTx || cfg.fn == fnTxSeq {
		fmt.Printf("%s -> %s (%s -> %s)\n", cfg.srcText, cfg.dstText, cfg.srcMACText, cfg.dstMACText)
	}
	if s := cfg.opts.special(); s != "" {
		logf("--- SPECIAL OPTIONS:%s", s)
	}
	if cfg.wait > 0 {
		logf("Wait %d secs for link to come up...", int(cfg.wait/time.Second))
		time.Sleep(cfg.wait)
	}

	var cancel atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		logf("received control-C on thread %p", &cancel)
		cancel.Store(true)
		signal.Stop(sig)
	}()

	for _, t := range threads {
		t.cancel = &cancel
		go t.run()
	}
	report(cfg, threads)
	for _, t := range threads {
		<-t.finished
	}
	var firstErr error
	for _, t := range threads {
		if t.err != nil && firstErr == nil {
			firstErr = t.err
		}
	}
	final(cfg, threads)
	return firstErr
}

// report prints the per-interval line until every thread is done.
func report(cfg *config, threads []*thread) {
	interval := time.Duration(cfg.reportMs) * time.Millisecond
	prevT := time.Now()
	var prev counters
	var win ppsWindow
	for {
		done := 0
		wait := interval
		for wait > 0 {
			step := min(wait, 50*time.Millisecond)
			time.Sleep(step)
			wait -= step
			done = 0
			for _, t := range threads {
				if t.done.Load() {
					done++
				}
			}
			if done == len(threads) {
				break
			}
		}
		now := time.Now()
		usec := now.Sub(prevT).Microseconds()
		var cur counters
		minSpace := int64(0)
		for _, t := range threads {
			c := t.snapshot()
			cur.pkts += c.pkts
			cur.bytes += c.bytes
			cur.events += c.events
			minSpace += t.minSpace.Swap(noSpace)
		}
		if usec >= 10000 {
			x := counters{pkts: cur.pkts - prev.pkts, bytes: cur.bytes - prev.bytes, events: cur.events - prev.events}
			logf("%s", win.line(cfg, x, usec, minSpace))
			prev, prevT = cur, now
		}
		if done == len(threads) {
			return
		}
	}
}

// statsWindow is the number of reports -A averages over (netmap's).
const statsWindow = 15

// ppsWindow holds the rates of the last reports, for -A.
type ppsWindow struct {
	pps [statsWindow]int64
	i   int
}

// line returns the report of an interval of usec microseconds in which x
// happened: netmap's, with -A the sliding mean and standard deviation of the
// rate over the reports that saw traffic.
func (w *ppsWindow) line(cfg *config, x counters, usec, minSpace int64) string {
	pps := float64(x.pkts) * 1e6 / float64(usec)
	bps := (float64(x.bytes)*8 + float64(x.pkts)*float64(cfg.framing)) * 1e6 / float64(usec)
	abs := 0.0
	if x.events > 0 {
		abs = float64(x.pkts) / float64(x.events)
	}
	stats := ""
	if cfg.opts&optPPSStats != 0 {
		avg, std := w.add(int64(math.Round(pps)))
		stats = fmt.Sprintf("[avg/std %s/%s pps]", norm(avg, cfg.normalize), norm(std, cfg.normalize))
	}
	return fmt.Sprintf("%spps %s(%spkts %sbps in %d usec) %.2f avg_batch %d min_space",
		norm(pps, cfg.normalize), stats, norm(float64(x.pkts), cfg.normalize), norm(bps, cfg.normalize), usec, abs, minSpace)
}

// add records a report's rate and returns the mean and the (population)
// standard deviation of the non-zero rates in the window.
func (w *ppsWindow) add(pps int64) (avg, std float64) {
	w.pps[w.i] = pps
	w.i = (w.i + 1) % statsWindow
	n := 0
	for _, v := range w.pps {
		if v != 0 {
			avg += float64(v)
			n++
		}
	}
	if n == 0 {
		return 0, 0
	}
	avg /= float64(n)
	for _, v := range w.pps {
		if v != 0 {
			std += (float64(v) - avg) * (float64(v) - avg)
		}
	}
	return avg, math.Sqrt(std / float64(n))
}

// final prints netmap's closing lines.
func final(cfg *config, threads []*thread) {
	var tot counters
	var first, last time.Time
	for _, t := range threads {
		c := t.snapshot()
		tot.pkts += c.pkts
		tot.bytes += c.bytes
		tot.events += c.events
		if !t.start.IsZero() && (first.IsZero() || t.start.Before(first)) {
			first = t.start
		}
		if t.end.After(last) {
			last = t.end
		}
	}
	if cfg.fn.summary != nil {
		cfg.fn.summary(threads)
	}
	msg := cfg.fn.verb
	if tot.pkts == 0 {
		fmt.Printf("%s nothing.\n", msg)
		return
	}
	delta := last.Sub(first).Seconds()
	size := tot.bytes / tot.pkts
	fmt.Printf("%s %d packets %d bytes %d events %d bytes each in %.2f seconds.\n", msg, tot.pkts, tot.bytes, tot.events, size, delta)
	if delta <= 0 {
		delta = 1e-6
	}
	pps := float64(tot.pkts) / delta
	bw := 8 * float64(tot.bytes) / delta
	raw := (8*float64(tot.bytes) + float64(tot.pkts)*float64(cfg.framing)) / delta
	abs := 0.0
	if tot.events > 0 {
		abs = float64(tot.pkts) / float64(tot.events)
	}
	fmt.Printf("Speed: %spps Bandwidth: %sbps (raw %sbps). Average batch: %.2f pkts\n",
		norm(pps, cfg.normalize), norm(bw, cfg.normalize), norm(raw, cfg.normalize), abs)
}

// norm prints v with a unit prefix (K, M, G, T), as netmap's norm().
var norm = cli.Norm

// logf prints a timestamped diagnostic line on stderr, as netmap's D().
func logf(format string, args ...any) {
	now := time.Now()
	fmt.Fprintf(os.Stderr, "%03d.%06d main_thread "+format+"\n",
		append([]any{now.Unix() % 1000, now.Nanosecond() / 1000}, args...)...)
}
