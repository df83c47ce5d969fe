package main

import (
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/pkt"
)

// TestOdometer checks the order in which -s/-d ranges are walked: source
// port fastest, then source address, destination port, destination address.
func TestOdometer(t *testing.T) {
	src, _ := pkt.ParseRange("10.0.0.1:1-10.0.0.2:2", 0)
	dst, _ := pkt.ParseRange("10.1.0.1:7-10.1.0.1:8", 0)
	cfg := &config{src: src, dst: dst, length: 60}
	th := &thread{cfg: cfg}
	e := newEditor(th)
	type state struct {
		sip   uint32
		sport uint16
		dport uint16
	}
	var got []state
	for range 9 {
		got = append(got, state{e.srcIP & 0xff, e.srcPort, e.dstPort})
		e.step()
	}
	want := []state{
		{1, 1, 7}, {1, 2, 7}, {2, 1, 7}, {2, 2, 7},
		{1, 1, 8}, {1, 2, 8}, {2, 1, 8}, {2, 2, 8},
		{1, 1, 7},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("step %d: %+v, want %+v (all: %+v)", i, got[i], want[i], got)
		}
	}
	if !e.perFrame {
		t.Error("ranges did not make frames change per send")
	}
}

func TestEditKeepsChecksums(t *testing.T) {
	src, _ := pkt.ParseRange("10.0.0.1:1-10.0.0.9:9", 0)
	dst, _ := pkt.ParseRange("10.1.0.1", 7)
	cfg := &config{src: src, dst: dst, length: 200, minLength: 60, fn: fnTxSeq, randDst: true}
	th := &thread{cfg: cfg}
	openRand(th)
	th.frame = pkt.Frame{SrcIP: pkt.Addr(src.First), DstIP: pkt.Addr(dst.First), Len: 200}
	e := newEditor(th)
	buf := make([]byte, 2048)
	pkt.Build(buf, &th.frame)
	for i := range 1000 {
		n := e.edit(buf)
		if n < 60 || n > 200 || !pkt.ValidChecksums(buf[:n]) {
			t.Fatalf("frame %d: length %d, checksums valid %v", i, n, pkt.ValidChecksums(buf[:n]))
		}
		if seq := pkt.Payload32(buf, 0); seq != uint32(i) {
			t.Fatalf("frame %d carries sequence %d", i, seq)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := limiter{rate: 0}
	if l.grant(512) != 512 {
		t.Error("unlimited limiter held frames back")
	}
	l = limiter{rate: 1e6, start: time.Now()}
	total := 0
	for time.Since(l.start) < 50*time.Millisecond {
		n := l.grant(64)
		l.sent += uint64(n)
		total += n
	}
	// 50 ms at 1 Mpps: about 50000 frames, never more than due.
	if total > 51000 || total < 20000 {
		t.Errorf("granted %d frames in 50 ms at 1 Mpps", total)
	}
}
