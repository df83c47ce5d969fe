package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
)

const million = 1_000_000

// Exact-count tests send at a rate the receiver sustains with a wide margin
// into RX rings of 4096 slots: 16 ms of traffic at 250 kpps, so that the
// scheduling hiccups of a busy two-core machine (a few ms, measured) lose
// nothing. Throughput is measured by make bench, not here.
const (
	exactRate = "250000"
	bigRx     = "@conf:rx-slots=4096"
)

// TestExactCount moves a million frames from one pkt-gen to another through
// valed, rate-limited so that nothing has a reason to drop, and checks every
// count: pkt-gen's on both sides and valed's own.
func TestExactCount(t *testing.T) {
	d := startValed(t)
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rx", "-n", fmt.Sprint(million))
	d.waitPort(t, "vale0:b")
	txOut := d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(million), "-R", exactRate)
	rxOut := rx.Wait(60 * time.Second)
	if p, b := totals(t, txOut); p != million || b != 60*million {
		t.Errorf("sender reports %d packets %d bytes", p, b)
	}
	if p, b := totals(t, rxOut); p != million || b != 60*million {
		t.Errorf("receiver reports %d packets %d bytes", p, b)
	}
	for _, want := range []string{"Sending on vale0:a: 1 queues, 1 threads and 1 cpus.", "Speed: ", "avg_batch", "min_space"} {
		if !strings.Contains(txOut, want) {
			t.Errorf("sender output lacks %q:\n%s", want, txOut)
		}
	}
}

// TestSequence sends numbered frames with txseq and checks with rxseq that
// none is missing or out of order.
func TestSequence(t *testing.T) {
	d := startValed(t)
	// Hold both ports (without their rings pkt-gen uses) so that valed's
	// counters outlive the pkt-gen processes.
	d.open(t, "vale0:b/T"+bigRx)
	d.open(t, "vale0:a/R")
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rxseq", "-n", fmt.Sprint(million))
	d.waitPort(t, "vale0:b")
	d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "txseq", "-n", fmt.Sprint(million), "-R", exactRate, "-l", "60", "-l", "128")
	out := rx.Wait(60 * time.Second)
	if p, _ := totals(t, out); p != million {
		t.Errorf("receiver got %d frames", p)
	}
	if !strings.Contains(out, "Sequence check: 0 gaps (0 frames missing), 0 out of order") {
		t.Errorf("sequence check failed:\n%s", out)
	}
	st := d.portStats(t, "vale0:b")
	if st.Stats.RxPackets != uint64(million) || st.Stats.DropFull != 0 {
		t.Errorf("valed counts for vale0:b: %v", st)
	}
	if st := d.portStats(t, "vale0:a"); st.Stats.TxPackets != uint64(million) {
		t.Errorf("valed counts for vale0:a: %v", st)
	}
}

// client wraps a port opened by the test for frame-level checks.
type client struct {
	t   testing.TB
	p   *nmport.Port
	mac net.HardwareAddr
}

func newClient(t testing.TB, d *daemon, name, mac string) *client {
	m, _ := net.ParseMAC(mac)
	return &client{t: t, p: d.open(t, name), mac: m}
}

// send transmits one frame to dst carrying tag.
func (c *client) send(dst net.HardwareAddr, tag string) {
	c.t.Helper()
	r := c.p.TxRing(0)
	if _, err := c.p.Poll(nmport.PollOut, time.Second); err != nil {
		c.t.Fatal(err)
	}
	s := r.Slot(r.Head())
	b := r.Buf(s.BufIdx)
	n := copy(b, dst)
	n += copy(b[n:], c.mac)
	n += copy(b[n:], []byte{0x88, 0xb5})
	n += copy(b[n:], tag)
	for n < 60 {
		b[n] = 0
		n++
	}
	s.Len, s.Flags = uint16(n), 0
	r.Advance(1)
	if err := c.p.TxSync(); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the tags of the frames that arrive within wait.
func (c *client) recv(wait time.Duration) []string {
	c.t.Helper()
	var tags []string
	deadline := time.Now().Add(wait)
	for {
		ev, err := c.p.Poll(nmport.PollIn, max(time.Until(deadline), 0)) // negative would wait forever
		if err != nil {
			c.t.Fatal(err)
		}
		if ev == 0 {
			return tags
		}
		r := c.p.RxRing(0)
		for !r.Empty() {
			f := r.Packet(r.Head())
			tags = append(tags, string(bytes.TrimRight(f[14:], "\x00")))
			r.Advance(1)
		}
	}
}

// expect checks that exactly the frames want arrive: it waits up to wait
// for them (the whole wait when none is expected), then takes whatever else
// is already there.
func (c *client) expect(wait time.Duration, want ...string) {
	c.t.Helper()
	var got []string
	deadline := time.Now().Add(wait)
	for len(got) < len(want) || len(want) == 0 {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		more := c.recv(min(left, 20*time.Millisecond))
		got = append(got, more...)
	}
	got = append(got, c.recv(0)...)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		c.t.Errorf("%s received %q, want %q", c.p.Name(), got, want)
	}
}

// TestLearningAndFlooding checks the learning bridge with three clients:
// unknown destinations reach both others, learned ones only the right port,
// broadcast everyone else, and nothing goes back to its sender.
func TestLearningAndFlooding(t *testing.T) {
	d := startValed(t)
	a := newClient(t, d, "vale0:a", "02:00:00:00:00:0a")
	b := newClient(t, d, "vale0:b", "02:00:00:00:00:0b")
	c := newClient(t, d, "vale0:c", "02:00:00:00:00:0c")
	const settle = 300 * time.Millisecond

	a.send(b.mac, "a->b unknown")
	b.expect(settle, "a->b unknown")
	c.expect(settle, "a->b unknown")
	a.expect(settle)

	b.send(a.mac, "b->a")
	a.expect(settle, "b->a")
	c.expect(settle)
	b.expect(settle)

	a.send(b.mac, "a->b learned")
	b.expect(settle, "a->b learned")
	c.expect(settle)

	c.send(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "broadcast")
	a.expect(settle, "broadcast")
	b.expect(settle, "broadcast")
	c.expect(settle)
}

// TestKilledSender kills a sender with SIGKILL in the middle of a stream:
// valed keeps forwarding between other ports, the dead port disappears, and
// its name can be opened again.
func TestKilledSender(t *testing.T) {
	d := startValed(t)
	// The victim streams to a sink whose address the switch knows, so its
	// frames do not reach the ports under test.
	sink := newClient(t, d, "vale0:sink", "02:00:00:00:00:99")
	sink.send(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "learn me")
	victim := start(t, d.sock, "pkt-gen", "-i", "vale0:victim", "-f", "tx", "-D", "02:00:00:00:00:99")
	d.waitPort(t, "vale0:victim")
	testutil.WaitFor(t, "the victim to send", func() bool {
		st := d.portStats(t, "vale0:victim")
		return st != nil && st.Stats.TxPackets != 0
	})
	const n = 200000
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:y"+bigRx, "-f", "rxseq", "-n", fmt.Sprint(n))
	d.waitPort(t, "vale0:y")
	tx := start(t, d.sock, "pkt-gen", "-i", "vale0:x", "-f", "txseq", "-n", fmt.Sprint(n), "-R", exactRate)
	testutil.WaitFor(t, "the good pair's frames to flow", func() bool {
		st := d.portStats(t, "vale0:y")
		return st != nil && st.Stats.RxPackets != 0
	})
	if err := victim.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.Done
	testutil.WaitFor(t, "the killed port to go", func() bool { return d.portStats(t, "vale0:victim") == nil })
	tx.Wait(60 * time.Second)
	out := rx.Wait(60 * time.Second)
	if p, _ := totals(t, out); p != n {
		t.Errorf("receiver got %d frames, want %d", p, n)
	}
	if !strings.Contains(out, "Sequence check: 0 gaps (0 frames missing), 0 out of order") {
		t.Errorf("sequence broken:\n%s", out)
	}
	if d.proc.Exited() {
		t.Fatal("valed died")
	}
	// The name is free again.
	d.run(t, 20*time.Second, "pkt-gen", "-i", "vale0:victim", "-f", "tx", "-n", "100")
}

// TestGarbageClient has a client write garbage into its rings: it gets an
// error, and valed and other ports go on working.
func TestGarbageClient(t *testing.T) {
	d := startValed(t)
	const n = 300000
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:good_rx"+bigRx, "-f", "rx", "-n", fmt.Sprint(n))
	d.waitPort(t, "vale0:good_rx")
	tx := start(t, d.sock, "pkt-gen", "-i", "vale0:good_tx", "-f", "tx", "-n", fmt.Sprint(n), "-R", exactRate)

	bad := d.open(t, "vale0:bad")
	r := bad.TxRing(0)
	// 1. A slot pointing at a buffer that does not exist.
	s := r.Slot(r.Head())
	s.BufIdx, s.Len = 0xdeadbeef, 60
	r.Advance(1)
	if err := bad.TxSync(); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	var re *ports.RingError
	testutil.WaitFor(t, "the reset to be reported", func() bool {
		err := bad.TxSync()
		return errors.As(err, &re)
	})
	if re.Reason != ports.ResetBadBufIdx || !strings.Contains(re.Error(), "buffer index 3735928559") {
		t.Errorf("error %v", re)
	}
	// 2. Random bytes over every ring and slot the application can write,
	// and an absurd head. Each sync must fail or succeed, never hang or
	// crash anything.
	mem := bad.Mem()
	base := uintptr(unsafe.Pointer(&mem[0]))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		for _, r := range []*ports.Ring{bad.TxRing(0), bad.RxRing(0)} {
			off := int(uintptr(unsafe.Pointer(r.Header())) - base)
			for j := off + 64; j < off+128; j++ { // the application-written line
				mem[j] = byte(rng.Uint32())
			}
			for j := off + 256; j < off+256+16*int(r.NumSlots()); j++ { // the slots
				mem[j] = byte(rng.Uint32())
			}
		}
		bad.TxSync()
		bad.RxSync()
		// Wake the switch: valed looks at the ring when it is kicked.
		bad.Poll(nmport.PollIn|nmport.PollOut, 10*time.Millisecond)
	}
	tx.Wait(60 * time.Second)
	out := rx.Wait(60 * time.Second)
	if p, _ := totals(t, out); p != n {
		t.Errorf("good receiver got %d frames, want %d", p, n)
	}
	st := d.portStats(t, "vale0:bad")
	if st == nil || st.Stats.Resets == 0 {
		t.Errorf("no reset counted for the bad port: %v", st)
	}
	if !strings.Contains(d.proc.Out.String(), "ring reset after a client violation") {
		t.Error("valed did not log the violation")
	}
	if d.proc.Exited() {
		t.Fatal("valed died")
	}
	// A well-behaved client still gets through.
	d.run(t, 20*time.Second, "pkt-gen", "-i", "vale0:after", "-f", "tx", "-n", "1000")
}

// waitReceived waits until valed has delivered want(i) frames to each
// port vale0:pI.
func waitReceived(t testing.TB, d *daemon, want func(i int) uint64) {
	t.Helper()
	testutil.WaitFor(t, "every port to receive its frames", func() bool {
		for _, p := range d.listing(t, "vale0").Ports {
			var i int
			if _, err := fmt.Sscanf(p.Name, "vale0:p%d", &i); err == nil && p.Stats.RxPackets < want(i) {
				return false
			}
		}
		return true
	})
}

// TestManyPorts opens 254 ports on one switch (netmap's limit) at once and
// checks that traffic among some of them still works.
func TestManyPorts(t *testing.T) {
	d := startValed(t, "-slots", "64")
	const n = 254
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = newClient(t, d, fmt.Sprintf("vale0:p%d", i), fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff))
	}
	if st := d.portStats(t, fmt.Sprintf("vale0:p%d", n-1)); st == nil || st.Index != n-1 {
		t.Fatalf("last port: %v", st)
	}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	cs[0].send(bcast, "hello")
	for _, c := range cs[1:] {
		c.expect(5*time.Second, "hello")
	}
	// Some pairs announce themselves, then talk: once learned, each frame
	// goes to its peer only.
	var pairs [][2]int
	for i := 10; i+1 < n; i += 37 {
		pairs = append(pairs, [2]int{i, i + 1})
	}
	announcer := map[int]bool{}
	for _, pr := range pairs {
		cs[pr[0]].send(bcast, "announce")
		cs[pr[1]].send(bcast, "announce")
		announcer[pr[0]], announcer[pr[1]] = true, true
	}
	// Every port gets the "hello" (but its sender) and every announcement
	// (but its own).
	received := func(i int) uint64 {
		n := uint64(len(announcer))
		if announcer[i] {
			n--
		}
		if i != 0 {
			n++
		}
		return n
	}
	waitReceived(t, d, received)
	for _, c := range cs {
		c.recv(0)
	}
	want := map[int]string{}
	for _, pr := range pairs {
		cs[pr[0]].send(cs[pr[1]].mac, fmt.Sprint("to ", pr[1]))
		cs[pr[1]].send(cs[pr[0]].mac, fmt.Sprint("to ", pr[0]))
		want[pr[0]], want[pr[1]] = fmt.Sprint("to ", pr[0]), fmt.Sprint("to ", pr[1])
	}
	waitReceived(t, d, func(i int) uint64 {
		if announcer[i] {
			return received(i) + 1
		}
		return received(i)
	})
	for i, c := range cs {
		got := strings.Join(c.recv(0), ",")
		if got != want[i] {
			t.Errorf("port %d got %q, want %q", i, got, want[i])
		}
	}
}

// TestShutdown stops valed with SIGTERM: it exits cleanly, removes its
// socket, and clients see it gone on their next sync.
func TestShutdown(t *testing.T) {
	d := startValed(t)
	p := d.open(t, "vale0:a")
	if err := d.proc.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.proc.Done:
	case <-time.After(10 * time.Second):
		t.Fatal("valed did not stop")
	}
	if d.proc.Err != nil {
		t.Fatalf("valed exited with %v", d.proc.Err)
	}
	if _, err := os.Stat(d.sock); !os.IsNotExist(err) {
		t.Errorf("control socket still there: %v", err)
	}
	_, err := p.Poll(nmport.PollIn, 5*time.Second)
	if !errors.Is(err, nmport.ErrDisconnected) {
		t.Errorf("poll after shutdown: %v, want ErrDisconnected", err)
	}
	if err := p.TxSync(); !errors.Is(err, nmport.ErrDisconnected) {
		t.Errorf("sync after shutdown: %v, want ErrDisconnected", err)
	}
}

// TestPingPong measures round trips between pkt-gen ping and pong.
func TestPingPong(t *testing.T) {
	d := startValed(t)
	start(t, d.sock, "pkt-gen", "-i", "vale0:pong", "-f", "pong")
	d.waitPort(t, "vale0:pong")
	out := d.run(t, 30*time.Second, "pkt-gen", "-i", "vale0:ping", "-f", "ping", "-n", "2000")
	if !strings.Contains(out, "RTT over 2000 packets") || !strings.Contains(out, ", 0 lost") {
		t.Errorf("ping output:\n%s", out)
	}
	if !strings.Contains(out, "RTT percentiles: 50%") {
		t.Errorf("no percentiles:\n%s", out)
	}
}

// TestValeCtl checks the listing and geometry commands.
func TestValeCtl(t *testing.T) {
	d := startValed(t)
	if out := d.run(t, 10*time.Second, "vale-ctl"); !strings.Contains(out, "no switches") {
		t.Errorf("empty daemon lists:\n%s", out)
	}
	d.open(t, "vale0:a")
	d.open(t, "vale1:b@conf:rings=2,slots=256")
	if stats := d.run(t, 10*time.Second, "vale-ctl", "stats"); !strings.Contains(stats, "AVG_BATCH") {
		t.Errorf("vale-ctl stats:\n%s", stats)
	}
	out := d.run(t, 10*time.Second, "vale-ctl", "-l", "-v")
	// netmap's lines first, for scripts written for netmap's vale-ctl.
	if !strings.HasPrefix(out, "vale0:a bridge_idx 0 port_idx 0\nvale1:b bridge_idx 1 port_idx 0\n\n") {
		t.Errorf("vale-ctl -l does not start with netmap's lines:\n%s", out)
	}
	for _, want := range []string{"vale0:a  vale0", "vale1:b  vale1", "2/2    256/256", "MACS", "AVG_BATCH"} {
		if !strings.Contains(out, want) {
			t.Errorf("vale-ctl -l -v lacks %q:\n%s", want, out)
		}
	}
	if out := d.run(t, 10*time.Second, "vale-ctl", "-l", "vale1"); strings.Contains(out, "vale0:a") || !strings.Contains(out, "vale1:b") {
		t.Errorf("vale-ctl -l vale1:\n%s", out)
	}
	out = d.run(t, 10*time.Second, "vale-ctl", "-g", "vale1:b")
	for _, want := range []string{"vale1:b: port_idx 0", "tx_rings 2 rx_rings 2 tx_slots 256 rx_slots 256", "TX1 at offset", "RX1 at offset", "buffers at offset"} {
		if !strings.Contains(out, want) {
			t.Errorf("vale-ctl -g lacks %q:\n%s", want, out)
		}
	}
	if out := d.run(t, 10*time.Second, "vale-ctl", "-g", "vale2:new@conf:slots=64"); !strings.Contains(out, "not created yet") {
		t.Errorf("geometry of a port to be:\n%s", out)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-l", "vale0:nope"}, "no such port vale0:nope"},
		{[]string{"-g", "vale0:a^"}, "vale0:a^: no such host port"},
		{[]string{"-g", "vale0:a*"}, `host rings on a VALE port ("*") not supported`},
		{[]string{"-l", "bogus name"}, "neither a switch, a port nor a persistent interface"},
		{[]string{"-n", "vx", "-m", "1"}, "no netmap memory region"},
		{[]string{"-p", "vale0:a", "-window", "-1s"}, "-window goes with -p"},
	} {
		if out := d.runFail(t, "vale-ctl", tt.args...); !strings.Contains(out, tt.want) {
			t.Errorf("vale-ctl %v: %s, want %q", tt.args, out, tt.want)
		}
	}
}

// TestBadInput checks that mistakes get a clear error naming what is wrong.
func TestBadInput(t *testing.T) {
	d := startValed(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-i", "vale0:a/q", "-f", "tx"}, "unrecognized flag 'q'"},
		{[]string{"-i", "vale0:a@conf:rings=99", "-f", "tx"}, "tx rings 99 out of range [1, 16]"},
		{[]string{"-i", "vale0:a@conf:slots=5000", "-f", "tx"}, "tx slots 5000 out of range"},
		{[]string{"-i", "eth0", "-f", "tx"}, "netmap:eth0: no such port"},
		{[]string{"-i", "vale0:a/rt", "-f", "rx"}, "no such port vale0:a to monitor"},
		{[]string{"-i", "vale0:a", "-f", "bogus"}, `unknown function "bogus"`},
		{[]string{"-i", "vale0:a", "-l", "3000", "-f", "tx"}, "larger than the port's buffers"},
		{[]string{"-i", "vale0:a", "-p", "2", "-f", "tx"}, "ring 1 out of range"},
	} {
		if out := d.runFail(t, "pkt-gen", tt.args...); !strings.Contains(out, tt.want) {
			t.Errorf("pkt-gen %v:\n%s\nwant %q", tt.args, out, tt.want)
		}
	}
	// Exclusive binding.
	d.open(t, "vale0:x/x")
	if out := d.runFail(t, "pkt-gen", "-i", "vale0:x", "-f", "rx", "-n", "1"); !strings.Contains(out, "rings busy") {
		t.Errorf("second open of an exclusive port: %s", out)
	}
	// A port that exists keeps its geometry.
	d.open(t, "vale0:g@conf:slots=128")
	if out := d.runFail(t, "pkt-gen", "-i", "vale0:g@conf:slots=256", "-f", "rx", "-n", "1"); !strings.Contains(out, "already exists") {
		t.Errorf("conflicting geometry: %s", out)
	}
	// A second valed on the same socket is refused.
	if out := d.runFail(t, "valed", "-sock", d.sock); !strings.Contains(out, "already listening") {
		t.Errorf("second valed: %s", out)
	}
}

// TestMultiRing runs pkt-gen with two threads on a two-ring port. The
// receiver is lossless: two senders, two receivers and the switch are five
// threads on this machine's two cores, and a receiver thread kept off a
// core for the 33 ms its ring holds at this rate loses frames in drop mode
// (with two busy loops beside it, 9 runs in 20 did; one receiver thread on
// one ring, 0 in 20). What this test checks is that each thread gets its
// own ring and all frames arrive.
func TestMultiRing(t *testing.T) {
	d := startValed(t)
	const n = 200000
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b@conf:rings=2,rx-slots=4096,lossless=1", "-f", "rx", "-p", "2", "-n", fmt.Sprint(n))
	d.waitPort(t, "vale0:b")
	out := d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a@conf:rings=2", "-f", "tx", "-p", "2", "-n", fmt.Sprint(n), "-R", exactRate)
	if !strings.Contains(out, "2 queues, 2 threads") {
		t.Errorf("sender output:\n%s", out)
	}
	if p, _ := totals(t, rx.Wait(60*time.Second)); p != n {
		t.Errorf("receiver got %d frames, want %d", p, n)
	}
}
