package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
	"github.com/valeswitch/vale/vale/wire"
)

// monitorClient reads a monitor: it returns the tags of the frames that
// arrived, by ring.
func monitorTags(t testing.TB, p *nmport.Port, want int, wait time.Duration) map[int][]string {
	t.Helper()
	got := map[int][]string{}
	total := 0
	deadline := time.Now().Add(wait)
	for total < want || want == 0 {
		ev, err := p.Poll(nmport.PollIn, max(time.Until(deadline), 0))
		if err != nil {
			t.Fatal(err)
		}
		if ev == 0 {
			break
		}
		for _, r := range p.RxRings() {
			for !r.Empty() {
				f := r.Packet(r.Head())
				got[r.ID()] = append(got[r.ID()], strings.TrimRight(string(f[14:]), "\x00"))
				total++
				r.Advance(1)
			}
		}
	}
	return got
}

// TestCopyMonitors checks that /t, /r and /rt monitors see exactly the
// frames their port sends and receives, on the documented rings.
func TestCopyMonitors(t *testing.T) {
	d := startValed(t)
	a := newClient(t, d, "vale0:a", "02:00:00:00:00:0a")
	b := newClient(t, d, "vale0:b", "02:00:00:00:00:0b")
	mt := d.open(t, "vale0:a/t")
	mr := d.open(t, "vale0:a/r")
	mrt := d.open(t, "vale0:a/rt")
	mb := d.open(t, "vale0:b/r")
	if mt.Kind() != "monitor" || len(mt.TxRings()) != 0 || len(mrt.RxRings()) != 2 {
		t.Fatalf("monitor kinds and rings: %s %d %d", mt.Kind(), len(mt.TxRings()), len(mrt.RxRings()))
	}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for i := range 5 {
		a.send(bcast, fmt.Sprint("a", i))
	}
	for i := range 3 {
		b.send(a.mac, fmt.Sprint("b", i))
	}
	b.expect(2*time.Second, "a0", "a1", "a2", "a3", "a4")
	a.expect(2*time.Second, "b0", "b1", "b2")

	check := func(name string, p *nmport.Port, want map[int][]string) {
		t.Helper()
		n := 0
		for _, v := range want {
			n += len(v)
		}
		got := monitorTags(t, p, n, 2*time.Second)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s saw %v, want %v", name, got, want)
		}
	}
	sent := []string{"a0", "a1", "a2", "a3", "a4"}
	received := []string{"b0", "b1", "b2"}
	check("vale0:a/t", mt, map[int][]string{0: sent})
	check("vale0:a/r", mr, map[int][]string{0: received})
	check("vale0:a/rt", mrt, map[int][]string{0: sent, 1: received})
	check("vale0:b/r", mb, map[int][]string{0: sent})

	out := d.run(t, 10*time.Second, "vale-ctl", "-l")
	for _, want := range []string{"vale0:a/t#1", "vale0:a/rt#3", "MONITOR"} {
		if !strings.Contains(out, want) {
			t.Errorf("vale-ctl -l lacks %q:\n%s", want, out)
		}
	}
}

// TestSlowMonitor attaches a monitor nobody reads: it loses frames, counted,
// and the monitored traffic is neither slowed nor blocked.
func TestSlowMonitor(t *testing.T) {
	d := startValed(t)
	const n = 200000
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rx", "-n", fmt.Sprint(n))
	d.waitPort(t, "vale0:b")
	d.open(t, "vale0:b/r@conf:slots=64") // never read
	d.open(t, "vale0:b/r")               // never read either
	d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", exactRate)
	if p, _ := totals(t, rx.Wait(60*time.Second)); p != n {
		t.Errorf("monitored port received %d frames, want %d", p, n)
	}
	mons := d.listing(t, "").Monitors
	if len(mons) != 2 {
		t.Fatalf("valed lists %d monitors, want 2: %+v", len(mons), mons)
	}
	for _, m := range mons {
		copied, lost := uint64(m.Copied), m.Lost
		if !strings.HasPrefix(m.Name, "vale0:b/r#") || copied+lost != n || (copied != 63 && copied != 4095) { // the second monitor mirrors the port's 4096 slots
			t.Errorf("%s: copied %d lost %d, want a full ring copied and the rest of %d lost", m.Name, copied, lost, n)
		}
	}
}

// TestMonitorErrors covers what is refused, and a monitor outliving its port.
func TestMonitorErrors(t *testing.T) {
	d := startValed(t)
	for _, tt := range []struct{ name, want string }{
		{"vale0:nope/t", "no such port vale0:nope to monitor"},
		{"vale0:a-1/t", "a monitor of some rings only"},
		{"vale0:a/tx", "binding flags on a monitor"},
	} {
		if out := d.runFail(t, "pkt-gen", "-i", tt.name, "-f", "rx", "-n", "1"); !strings.Contains(out, tt.want) {
			t.Errorf("%s: %s, want %q", tt.name, out, tt.want)
		}
	}
	if out := d.runFail(t, "pkt-gen", "-i", "vale0:m/t", "-f", "tx", "-n", "1"); !strings.Contains(out, "no such port") {
		t.Errorf("transmit on a monitor of nothing: %s", out)
	}
	p := newClient(t, d, "vale0:gone", "02:00:00:00:00:01")
	m := d.open(t, "vale0:gone/rt")
	p.p.Close()
	testutil.WaitFor(t, "the monitor to be orphaned", func() bool {
		return strings.Contains(d.run(t, 10*time.Second, "vale-ctl", "-l"), "orphaned")
	})
	if _, err := m.Poll(nmport.PollIn, 10*time.Millisecond); err != nil {
		t.Errorf("poll on an orphaned monitor: %v", err)
	}
}

// frames reads what arrived on a monitor, by ring, with each frame's tag and
// whether it carries NS_TXMON.
func monitorFrames(t testing.TB, p *nmport.Port, want int, wait time.Duration) map[int][]string {
	t.Helper()
	got := map[int][]string{}
	total := 0
	deadline := time.Now().Add(wait)
	for total < want {
		ev, err := p.Poll(nmport.PollIn, max(time.Until(deadline), 0))
		if err != nil {
			t.Fatal(err)
		}
		if ev == 0 {
			break
		}
		for _, r := range p.RxRings() {
			for !r.Empty() {
				s := r.Slot(r.Head())
				tag := strings.TrimRight(string(r.Packet(r.Head())[14:]), "\x00")
				if s.Flags&ports.NS_TXMON != 0 {
					tag += "+txmon"
				}
				got[r.ID()] = append(got[r.ID()], tag)
				total++
				r.Advance(1)
			}
		}
	}
	// Release what was read (feeding the next monitor of a chain).
	if err := p.RxSync(); err != nil {
		t.Fatal(err)
	}
	return got
}

func waitMonitors(t testing.TB, p *nmport.Port, n int) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("%s to feed %d monitors", p.Name(), n), func() bool {
		p.TxSync()
		return p.Monitors() == n
	})
}

// TestZeroCopyMonitor chains two zero-copy monitors on a VALE port: TX
// frames reach them after completion (marked NS_TXMON), RX frames after the
// port's client released them, and the second level gets what the first
// released.
func TestZeroCopyMonitor(t *testing.T) {
	d := startValed(t)
	a := newClient(t, d, "vale0:a", "02:00:00:00:00:0a")
	b := newClient(t, d, "vale0:b", "02:00:00:00:00:0b")
	z1 := d.open(t, "vale0:b/z")
	z2 := d.open(t, "vale0:b/z")
	if z1.Kind() != wire.KindZeroCopyMonitor || len(z1.RxRings()) != 2 {
		t.Fatalf("zero-copy monitor %s with %d rings", z1.Kind(), len(z1.RxRings()))
	}
	waitMonitors(t, b.p, 1)
	waitMonitors(t, z1, 1)
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for i := range 4 {
		a.send(bcast, fmt.Sprint("in", i))
	}
	b.expect(2*time.Second, "in0", "in1", "in2", "in3") // reads and releases
	for i := range 3 {
		b.send(bcast, fmt.Sprint("out", i))
	}
	a.expect(2*time.Second, "out0", "out1", "out2")
	b.p.TxSync() // sees the completions
	want := map[int][]string{0: {"out0+txmon", "out1+txmon", "out2+txmon"}, 1: {"in0", "in1", "in2", "in3"}}
	if got := monitorFrames(t, z1, 7, 2*time.Second); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("level 1 saw %v, want %v", got, want)
	}
	if got := monitorFrames(t, z2, 7, 2*time.Second); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("level 2 saw %v, want %v", got, want)
	}
	// The port goes on working with the buffers it got in exchange.
	a.send(b.mac, "after")
	b.expect(2*time.Second, "after")
	if out := d.runFail(t, "pkt-gen", "-i", "vale0:b/z", "-f", "rx", "-n", "1"); !strings.Contains(out, "zero-copy monitor levels of vale0:b are taken") {
		t.Errorf("third level: %s", out)
	}
}

// TestPipeMonitors watches pipe ends with copy and zero-copy monitors, fed
// by the ends' own clients.
func TestPipeMonitors(t *testing.T) {
	d := startValed(t)
	m := newClient(t, d, "netmap:p{1", "02:00:00:00:00:01")
	mt := d.open(t, "netmap:p{1/t")
	s := newClient(t, d, "netmap:p}1", "02:00:00:00:00:02") // opened after the monitor: told at open
	sr := d.open(t, "netmap:p}1/r")
	sz := d.open(t, "netmap:p}1/z")
	waitMonitors(t, m.p, 1)
	waitMonitors(t, s.p, 2)
	for i := range 4 {
		m.send(s.mac, fmt.Sprint("f", i))
	}
	s.expect(2*time.Second, "f0", "f1", "f2", "f3")
	sent := []string{"f0", "f1", "f2", "f3"}
	if got := monitorFrames(t, mt, 4, 2*time.Second); fmt.Sprint(got) != fmt.Sprint(map[int][]string{0: sent}) {
		t.Errorf("master /t saw %v", got)
	}
	if got := monitorFrames(t, sr, 4, 2*time.Second); fmt.Sprint(got) != fmt.Sprint(map[int][]string{0: sent}) {
		t.Errorf("slave /r saw %v", got)
	}
	if got := monitorFrames(t, sz, 4, 2*time.Second); fmt.Sprint(got) != fmt.Sprint(map[int][]string{1: sent}) {
		t.Errorf("slave /z saw %v", got)
	}
	// A monitor that goes away stops being fed.
	mt.Close()
	waitMonitors(t, m.p, 0)
	m.send(s.mac, "more")
	s.expect(2*time.Second, "more")
}
