package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/valeswitch/vale/internal/pkt"
	"github.com/valeswitch/vale/ports/nmport"
)

// pingPayload is what ping puts in the UDP payload: a sequence number and
// the send time (ns on the monotonic clock, two words).
const pingPayload = 12

// maxRTTs bounds the samples kept for percentiles.
const maxRTTs = 1 << 24

// ping sends one frame at a time and waits for its echo from a pong.
func (t *thread) ping() error {
	c := t.cfg
	tx, rx := t.port.TxRing(0), t.port.RxRing(0)
	if len(t.port.TxRings()) == 0 || len(t.port.RxRings()) == 0 {
		return fmt.Errorf("ping needs a TX and an RX ring")
	}
	base := time.Now()
	t.start = base
	var seq uint32
	lastPrint := base
	var intCount, intMin, intMax, intSum uint64
	intMin = ^uint64(0)
	for !t.cancel.Load() && (c.count == 0 || uint64(seq) < c.count) {
		if _, err := t.port.Poll(nmport.PollOut, pollTimeout); err != nil {
			return err
		}
		if tx.Space() == 0 {
			continue
		}
		s := tx.Slot(tx.Head())
		buf := t.putHdr(tx.Buf(s.BufIdx))
		pkt.Build(buf, &t.frame)
		sent := time.Since(base)
		pkt.SetPayload32(buf, 0, seq)
		pkt.SetPayload32(buf, 4, uint32(uint64(sent)>>32))
		pkt.SetPayload32(buf, 8, uint32(uint64(sent)))
		if c.opts&optDump != 0 {
			fmt.Fprint(os.Stderr, hex.Dump(buf[:c.length]))
		}
		s.Len, s.Flags = uint16(t.hdr+c.length), 0
		tx.Advance(1)
		if err := t.port.TxSync(); err != nil {
			return err
		}
		answered := false
		deadline := time.Now().Add(time.Second)
		for !answered && !t.cancel.Load() && time.Now().Before(deadline) {
			ev, err := t.port.Poll(nmport.PollIn, time.Until(deadline))
			if err != nil {
				return err
			}
			if ev == 0 {
				break
			}
			for !rx.Empty() {
				b := t.frameOf(rx.Packet(rx.Head()))
				if len(b) >= pkt.HeadersLen+pingPayload && pkt.Payload32(b, 0) == seq {
					at := uint64(pkt.Payload32(b, 4))<<32 | uint64(pkt.Payload32(b, 8))
					rtt := uint64(time.Since(base)) - at
					if len(t.rtt.rtts) < maxRTTs {
						t.rtt.rtts = append(t.rtt.rtts, uint32(min(rtt, 1<<32-1)))
					}
					intCount++
					intSum += rtt
					intMin, intMax = min(intMin, rtt), max(intMax, rtt)
					answered = true
				}
				rx.Advance(1)
			}
		}
		if answered {
			t.account(1, uint64(c.length))
		} else {
			t.rtt.lost++
		}
		seq++
		if now := time.Now(); now.Sub(lastPrint) >= time.Second {
			if intCount > 0 {
				logf("count %d RTT: min %d av %d max %d ns", intCount, intMin, intSum/intCount, intMax)
			} else {
				logf("count 0: no answer (is pkt-gen -f pong running on the other port?)")
			}
			intCount, intSum, intMax, intMin = 0, 0, 0, ^uint64(0)
			lastPrint = now
		}
	}
	t.end = time.Now()
	return nil
}

func pingSummary(threads []*thread) {
	t := threads[0]
	if len(t.rtt.rtts) == 0 {
		fmt.Printf("RTT: no answers, %d lost\n", t.rtt.lost)
		return
	}
	s := slices.Clone(t.rtt.rtts)
	slices.Sort(s)
	var total uint64
	for _, v := range s {
		total += uint64(v)
	}
	pct := func(p float64) uint32 { return s[min(len(s)-1, int(p*float64(len(s))))] }
	fmt.Printf("RTT over %d packets: min %d av %d max %d ns, %d lost\n", len(s), s[0], total/uint64(len(s)), s[len(s)-1], t.rtt.lost)
	fmt.Printf("RTT percentiles: 50%% %d ns, 90%% %d ns, 99%% %d ns, 99.9%% %d ns\n", pct(0.5), pct(0.9), pct(0.99), pct(0.999))
}

// putHdr writes an empty virtio-net header (no offload) at the start of
// buf, when the port has headers, and returns the rest of buf for the
// frame.
func (t *thread) putHdr(buf []byte) []byte {
	clear(buf[:t.hdr])
	return buf[t.hdr:]
}

// frameOf returns the frame of a received slot, after the port's header.
func (t *thread) frameOf(b []byte) []byte { return b[min(len(b), t.hdr):] }

// pong answers every frame it receives with the same frame, addresses and
// ports swapped.
func (t *thread) pong() error {
	c := t.cfg
	if len(t.port.TxRings()) == 0 || len(t.port.RxRings()) == 0 {
		return fmt.Errorf("pong needs a TX and an RX ring")
	}
	tx, rx := t.port.TxRing(0), t.port.RxRing(0)
	var answered uint64
	for !t.cancel.Load() && (c.count == 0 || answered < c.count) {
		ev, err := t.port.Poll(nmport.PollIn, pollTimeout)
		if err != nil {
			return err
		}
		if ev == 0 {
			continue
		}
		if t.start.IsZero() {
			t.start = time.Now()
		}
		var n, bytes uint64
		for !rx.Empty() {
			in := rx.Packet(rx.Head())
			if c.opts&optDump != 0 {
				fmt.Fprint(os.Stderr, hex.Dump(in))
			}
			in = t.frameOf(in)
			if tx.Space() > 0 {
				s := tx.Slot(tx.Head())
				buf := t.putHdr(tx.Buf(s.BufIdx))
				// ARP requests and ICMP echo requests for pong's address
				// (-s) get a host's answer, so that ping works against it;
				// anything else comes back with addresses swapped.
				length := pkt.Answer(in, buf, t.frame.SrcMAC, t.frame.SrcIP)
				if length == 0 {
					length = len(in)
					copy(buf[:length], in)
					pkt.Reply(buf[:length])
				}
				s.Len, s.Flags = uint16(t.hdr+length), 0
				tx.Advance(1)
				n++
				bytes += uint64(length)
			}
			rx.Advance(1)
		}
		if err := t.port.TxSync(); err != nil {
			return err
		}
		answered += n
		t.end = time.Now()
		t.account(n, bytes)
	}
	return nil
}
