package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/pkt"
	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports/nmport"
	"github.com/valeswitch/vale/ports/shm"
)

// The isolation tests of issue 11. Each runs a class of attack against a
// real valed, from processes of another user (or, for vhost-user, a
// frontend), while a good sender and receiver on the same switch exchange
// goodFrames frames. In every case: the receiver gets exactly those frames,
// in order; vale-ctl -l answers within 2 s throughout; once the attackers
// are gone, valed holds no more goroutines or descriptors than before; and
// valed is still running.

const (
	goodFrames = 100_000
	goodRate   = "25000"
	attackTime = 6 * time.Second
)

func TestHostileFill(t *testing.T) {
	h := startHostile(t)
	h.attack("fill", "-port", "vale0:fill")
	h.attack("fill", "-port", "vale1:fill")
	killed := h.attack("fill", "-port", "vale0:killed")
	killed.Killed = true
	h.run(func() {
		time.Sleep(attackTime / 3)
		killed.Cmd.Process.Kill() // valed must not stay stuck on what it left
	})
}

func TestHostileNonblock(t *testing.T) {
	h := startHostile(t)
	h.attack("nonblock", "-port", "vale0:nb")
	h.attack("nonblock", "-port", "vale1:nb")
	h.run(nil)
}

func TestHostileScribble(t *testing.T) {
	h := startHostile(t)
	h.attack("scribble", "-port", "vale0:scr1")
	h.attack("scribble", "-port", "vale0:scr2")
	h.run(func() {
		h.d.waitPort(t, "vale0:scr1")
		// Zero-copy and copy monitors of the scribbled port: valed maps
		// their rings in memory the scribbler writes.
		h.attack("monchurn", "-port", "vale0:scr1")
	})
	if !strings.Contains(h.d.Out.String(), "ring reset after a client violation") {
		t.Error("valed reset no ring of the scribblers")
	}
}

func TestHostileNoRead(t *testing.T) {
	h := startHostile(t)
	h.attack("noread", "-port", "vale0:deaf")
	h.attack("replyfill", "-port", "vale0:full")
	h.run(func() {
		h.d.waitPort(t, "vale0:deaf")
		h.attack("monchurn", "-port", "vale0:deaf") // events for the deaf client
	})
}

func TestHostileChurn(t *testing.T) {
	h := startHostile(t)
	a := h.attack("churn", "-port", "vale0:ch", "-conns", "300")
	h.attack("churn", "-port", "vale2:ch", "-conns", "300")
	h.run(nil)
	m := regexp.MustCompile(`churn: (\d+) ports opened, (\d+) refused`).FindStringSubmatch(a.Out.String())
	if m == nil {
		t.Fatalf("churn reported nothing:\n%s", a.Out.String())
	}
	if refused, _ := strconv.Atoi(m[2]); refused == 0 {
		t.Error("no request of the churning user was refused: its limits do not hold")
	}
	if !strings.Contains(h.d.Out.String(), "too many control connections") {
		t.Error("valed never refused a connection past the user's limit")
	}
}

func TestHostileVhostUser(t *testing.T) {
	h := startHostile(t)
	dir := t.TempDir()
	for _, p := range []string{"vu1", "vu2"} {
		sock := filepath.Join(dir, p+".sock")
		h.d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:"+p, "-vhost-user", sock, "-queues", "2")
		h.attackAsRoot("vhost", "-vhost", sock)
	}
	h.run(nil)
	for _, p := range []string{"vu1", "vu2"} {
		h.d.run(t, 10*time.Second, "vale-ctl", "-d", "vale0:"+p)
	}
	h.checkBaseline()
}

// TestHostileUserNamespace is the take-over of issue 11: a user who is
// root only in a user namespace of its own asks for a host interface.
func TestHostileUserNamespace(t *testing.T) {
	needCommands(t, "unshare", "ip")
	h := startHostile(t)
	h.run(func() {
		out, err := h.asNobody(context.Background(), "unshare", "-Ur", filepath.Join(h.bin, "vale-ctl"), "-n", "evil0").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Errorf("unshare -Ur vale-ctl -n evil0: %v\n%s", err, out)
		}
	})
	if err := exec.Command("ip", "link", "show", "evil0").Run(); err == nil {
		exec.Command("ip", "link", "del", "evil0").Run()
		t.Fatal("valed created a host interface for a user namespace's root")
	}
}

// TestUserLimits holds a user to the limits of valed's configuration, and
// keeps a restricted switch to the groups it names, with clear errors.
func TestUserLimits(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "valed.toml")
	writeFile(t, cfg, `
[limits]
connections = 5
ports = 2
switches = 1
pipes = 1
extra_bufs = 8
region_mib = 32

[[switches]]
name = "vale9"
groups = ["4"]

[[switches]]
name = "vale8"
lossless = true
`)
	h := startHostile(t, "-c", cfg)
	os.Chmod(filepath.Dir(cfg), 0o755)
	restrictedSwitch(t, h)
	losslessAsNobody(t, h)

	h.hold(t, "vale0:l1") // one switch, one port, one connection
	h.refused(t, "too many switches: uid 65534 holds 1 already, its limit (limits.switches", "pkt-gen", "-i", "vale5:x", "-f", "tx", "-n", "1")
	h.refused(t, "limits.region_mib", "pkt-gen", "-i", "vale0:big@conf:rings=16,slots=4096", "-f", "tx", "-n", "1")
	h.refused(t, "limits.extra_bufs", "hostile", "-mode", "open", "-port", "vale0:xb", "-extra", "100")
	if out, err := h.asNobody(context.Background(), filepath.Join(h.bin, "hostile"), "-mode", "open", "-port", "vale0:xb", "-extra", "8").CombinedOutput(); err != nil {
		t.Errorf("8 extra buffers: %v\n%s", err, out)
	}
	h.hold(t, "vale0:l2")
	h.refused(t, "too many ports: uid 65534 holds 2 already, its limit (limits.ports", "pkt-gen", "-i", "vale0:l3", "-f", "tx", "-n", "1")
	h.hold(t, "netmap:np{1")
	h.refused(t, "too many pipes", "pkt-gen", "-i", "netmap:np{2", "-f", "tx", "-n", "1")
	h.hold(t, "vale0:l1/rt")
	h.hold(t, "vale0:l2/r")
	h.refused(t, "too many control connections: uid 65534 holds 5 already, its limit (limits.connections", "vale-ctl", "-l")
	// Root is not limited.
	for i := range 4 {
		h.d.open(t, fmt.Sprintf("vale%d:root%d", 10+i, i))
	}
}

// restrictedSwitch checks switch vale9, open only to root,
// CAP_NET_ADMIN and group 4.
func restrictedSwitch(t *testing.T, h *hostile) {
	h.d.open(t, "vale9:root")
	h.refused(t, "switch vale9 admits only", "pkt-gen", "-i", "vale9:x", "-f", "tx", "-n", "10")
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--groups=4", "--inh-caps=-all",
		filepath.Join(h.bin, "pkt-gen"), "-sock", h.d.sock, "-i", "vale9:x", "-f", "tx", "-n", "10").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Sent 10 packets") {
		t.Errorf("a member of group 4 on vale9: %v\n%s", err, out)
	}
	testutil.WaitFor(t, "vale9:x to go", func() bool { return h.d.portStats(t, "vale9:x") == nil })
}

// losslessAsNobody checks that a port of its own lossless, which would let
// a slow reader hold back every sender's floods, is refused on a switch
// that drops, unless root asks, and allowed on a lossless switch.
func losslessAsNobody(t *testing.T, h *hostile) {
	h.refused(t, "only root or CAP_NET_ADMIN may make a port lossless on switch vale0", "pkt-gen", "-i", "vale0:slow@conf:lossless=1", "-f", "rx", "-n", "1")
	for _, port := range []string{"vale8:x@conf:lossless=1", "vale0:x@conf:lossless=0"} {
		if out, err := h.asNobody(context.Background(), filepath.Join(h.bin, "pkt-gen"), "-i", port, "-f", "tx", "-n", "10").CombinedOutput(); err != nil {
			t.Errorf("%s as nobody: %v\n%s", port, err, out)
		}
		testutil.WaitFor(t, port+" to go", func() bool { return h.d.portStats(t, strings.Split(port, "@")[0]) == nil })
	}
}

// hold has nobody (with groups, if given) hold port open with a receiver
// that runs until the test ends.
func (h *hostile) hold(t *testing.T, port string, groups ...string) {
	t.Helper()
	args := []string{"--reuid=65534", "--regid=65534", "--clear-groups"}
	if len(groups) > 0 {
		args = []string{"--reuid=65534", "--regid=65534", "--groups=" + strings.Join(groups, ",")}
	}
	cmd := exec.Command("setpriv", append(args, "--inh-caps=-all", filepath.Join(h.bin, "pkt-gen"), "-i", port, "-f", "rx")...)
	cmd.Env = append(os.Environ(), "VALE_SOCK="+h.d.sock)
	launch(t, "pkt-gen -i "+port+" (held)", cmd, nil)
	testutil.WaitFor(t, port+" to be held", func() bool {
		return strings.Contains(h.d.run(t, 10*time.Second, "vale-ctl", "-l"), strings.Split(port, "@")[0])
	})
}

// refused runs command name as nobody, which must fail saying want.
func (h *hostile) refused(t *testing.T, want string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := h.asNobody(ctx, filepath.Join(h.bin, name), args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("%s %v: %v, %q; want %q", name, args, err, strings.TrimSpace(string(out)), want)
	}
}

// hostile is one attack case: valed, the good pair, and the attackers.
type hostile struct {
	t       *testing.T
	d       *daemon
	bin     string // binaries others may run
	metrics string
	g0, f0  int // valed's goroutines and descriptors before
	procs   []*proc
}

func startHostile(t *testing.T, args ...string) *hostile {
	t.Helper()
	needCommands(t, "setpriv")
	if os.Getuid() != 0 {
		t.Fatal("the isolation tests run attackers as another user: run them as root (sudo make test)")
	}
	dir, err := os.MkdirTemp("", "vale-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("cp", "-r", binDir, bin).CombinedOutput(); err != nil {
		t.Fatalf("copy the binaries: %v\n%s", err, out)
	}
	os.Chmod(bin, 0o755)
	h := &hostile{t: t, bin: bin, metrics: freeAddr(t)}
	h.d = startValedAt(t, nil, filepath.Join(dir, "valed.sock"),
		append([]string{"-sock-mode", "0666", "-metrics", h.metrics, "-log-level", "info"}, args...)...)
	warm := h.d.open(t, "vale0:warmup")
	warm.Close()
	testutil.WaitFor(t, "the warm-up port to go", func() bool { return h.d.portStats(t, "vale0:warmup") == nil })
	h.g0, h.f0 = h.usage()
	return h
}

// usage returns valed's goroutines and open descriptors.
func (h *hostile) usage() (goroutines, fds int) {
	g, _ := metric(h.t, scrape(h.t, h.metrics), "go_goroutines")
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.d.Cmd.Process.Pid))
	return int(g), len(ents)
}

func (h *hostile) asNobody(ctx context.Context, name string, args ...string) *exec.Cmd {
	all := append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", name}, args...)
	cmd := exec.CommandContext(ctx, "setpriv", all...)
	cmd.Env = append(os.Environ(), "VALE_SOCK="+h.d.sock)
	return cmd
}

// attack starts the hostile binary as user nobody in mode, for the attack
// time, with args.
func (h *hostile) attack(mode string, args ...string) *proc {
	p := h.attackFor(attackTime, mode, args...)
	h.procs = append(h.procs, p)
	return p
}

// attackFor starts the hostile binary as user nobody in mode for d.
func (h *hostile) attackFor(d time.Duration, mode string, args ...string) *proc {
	all := append([]string{"-mode", mode, "-d", d.String()}, args...)
	cmd := h.asNobody(context.Background(), filepath.Join(h.bin, "hostile"), all...)
	return launch(h.t, "hostile "+strings.Join(all, " "), cmd, nil)
}

// attackAsRoot starts the hostile binary as root: a vhost-user frontend,
// which reaches the sockets valed made.
func (h *hostile) attackAsRoot(mode string, args ...string) *proc {
	p := start(h.t, h.d.sock, "hostile", append([]string{"-mode", mode, "-d", attackTime.String()}, args...)...)
	h.procs = append(h.procs, p)
	return p
}

// run runs the good pair and the vale-ctl watch through the attack (and
// during, in parallel, what more the case does), then checks everything.
func (h *hostile) run(during func()) {
	t := h.t
	rx := openGoodRx(t, h.d)
	tx := start(t, h.d.sock, "pkt-gen", "-i", "vale0:good_tx", "-f", "txseq", "-D", rx.p.MAC().String(),
		"-n", strconv.Itoa(goodFrames), "-R", goodRate)
	stopWatch := h.watchValeCtl()
	if during != nil {
		during()
	}
	tx.Wait(2 * time.Minute)
	rx.wait(t, 30*time.Second)
	for _, p := range h.procs {
		select {
		case <-p.Done:
			t.Logf("%s: %s", p.Name, testutil.Tail(strings.TrimSpace(p.Out.String()), 1))
			if p.Err != nil && !p.Killed {
				t.Errorf("%s failed: %v\n%s", p.Name, p.Err, testutil.Tail(p.Out.String(), 20))
			}
		case <-time.After(attackTime + 20*time.Second):
			t.Errorf("%s did not end", p.Name)
			p.Cmd.Process.Kill()
		}
	}
	stopWatch()
	if h.d.Exited() {
		t.Fatalf("valed exited:\n%s", testutil.Tail(h.d.Out.String(), 50))
	}
	if strings.Contains(h.d.Out.String(), "panic") || strings.Contains(h.d.Out.String(), "internal error") {
		t.Errorf("valed logged a panic or an internal error:\n%s", testutil.Tail(h.d.Out.String(), 50))
	}
	rx.close()
	if !strings.Contains(t.Name(), "Vhost") {
		h.checkBaseline()
	}
}

// checkBaseline waits until valed holds no more goroutines and descriptors
// than before the attack (small slack for the metrics server).
func (h *hostile) checkBaseline() {
	t := h.t
	testutil.WaitFor(t, "every port to go", func() bool {
		return strings.Contains(h.d.run(t, 10*time.Second, "vale-ctl", "-l"), "no switches")
	})
	var g, f int
	if !testutil.Eventually(20*time.Second, func() bool {
		g, f = h.usage()
		return g <= h.g0+3 && f <= h.f0+2
	}) {
		t.Fatalf("valed holds %d goroutines and %d descriptors after the attack, %d and %d before", g, f, h.g0, h.f0)
	}
}

// watchValeCtl runs vale-ctl -l over and over until stopped, and fails
// the test if an answer takes more than 2 s.
func (h *hostile) watchValeCtl() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var worst time.Duration
	var calls int
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			start := time.Now()
			c, ccancel := context.WithTimeout(ctx, 10*time.Second)
			cmd := exec.CommandContext(c, filepath.Join(binDir, "vale-ctl"), "-l")
			cmd.Env = append(os.Environ(), "VALE_SOCK="+h.d.sock)
			out, err := cmd.CombinedOutput()
			ccancel()
			el := time.Since(start)
			if ctx.Err() != nil {
				return
			}
			calls++
			worst = max(worst, el)
			if err != nil {
				h.t.Errorf("vale-ctl -l failed during the attack: %v\n%s", err, out)
			}
			select { // a probe every 200 ms
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		h.t.Logf("vale-ctl -l: %d calls during the attack, slowest %v", calls, worst)
		if worst > 2*time.Second {
			h.t.Errorf("vale-ctl -l took %v to answer during the attack", worst)
		}
		if calls == 0 {
			h.t.Error("vale-ctl -l never answered during the attack")
		}
	}
}

// goodRx is the good receiver: it counts the frames of the good sender
// (by source address) and checks their sequence numbers; frames from
// anyone else (an attacker's floods) are only counted.
type goodRx struct {
	p      *nmport.Port
	stop   chan struct{}
	done   chan struct{}
	got    int
	others int
	err    error
}

func openGoodRx(t *testing.T, d *daemon) *goodRx {
	t.Helper()
	p, err := nmport.Open("vale0:good_rx@conf:rx-slots=4096", &nmport.Options{Socket: d.sock})
	if err != nil {
		t.Fatal(err)
	}
	// One frame from the receiver teaches the switch where it is, so the
	// sender's frames go to it alone (not flooded to the attackers).
	tx := p.TxRing(0)
	s := tx.Slot(tx.Head())
	b := tx.Buf(s.BufIdx)
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:], p.MAC())
	b[12], b[13] = 0x88, 0xb5
	s.Len = 60
	tx.Advance(1)
	if err := p.TxSync(); err != nil {
		t.Fatal(err)
	}
	r := &goodRx{p: p, stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop(shm.DefaultMAC("vale0:good_tx").String())
	t.Cleanup(r.close)
	return r
}

func (r *goodRx) loop(from string) {
	defer close(r.done)
	var next uint32
	for r.got < goodFrames {
		select {
		case <-r.stop:
			return
		default:
		}
		if _, err := r.p.Poll(nmport.PollIn, time.Second); err != nil {
			r.err = err
			return
		}
		for _, ring := range r.p.RxRings() {
			for ring.Space() > 0 {
				f := ring.Packet(ring.Head())
				ring.Advance(1)
				if len(f) < pkt.HeadersLen+4 || net.HardwareAddr(f[6:12]).String() != from {
					r.others++
					continue
				}
				if seq := pkt.Payload32(f, 0); seq != next {
					r.err = fmt.Errorf("frame %d of the good sender has sequence number %d", next, seq)
					return
				}
				next++
				r.got++
			}
		}
	}
}

// close stops the receiver and closes its port.
func (r *goodRx) close() {
	select {
	case <-r.stop:
		return
	default:
	}
	close(r.stop)
	<-r.done
	r.p.Close()
}

func (r *goodRx) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		t.Fatalf("the good receiver got %d of %d frames (and %d from others)", r.got, goodFrames, r.others)
	}
	if r.err != nil || r.got != goodFrames {
		t.Fatalf("the good receiver got %d of %d frames: %v", r.got, goodFrames, r.err)
	}
	t.Logf("good pair: %d frames exactly, in order (%d frames from others ignored)", r.got, r.others)
}
