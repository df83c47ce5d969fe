package e2e

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// Flow control through the switch (issue 12): no loss below capacity in
// the default (dropping) mode, none at all in lossless mode, and a stuck
// lossless receiver dropped to after its timeout.

// exactSeq sends n numbered frames from vale0:a at rate (0: as fast as it
// can) to a receiver on vale0:b opened as rxName, and checks that every
// frame arrives, in order, with nothing dropped.
func exactSeq(t *testing.T, d *daemon, n int, rate string, rxName string, rxArgs ...string) (tx, rx string) {
	t.Helper()
	r := start(t, d.sock, "pkt-gen", append([]string{"-i", rxName, "-f", "rxseq", "-n", strconv.Itoa(n)}, rxArgs...)...)
	d.waitPort(t, "vale0:b")
	args := []string{"-i", "vale0:a", "-f", "txseq", "-n", strconv.Itoa(n)}
	if rate != "" {
		args = append(args, "-R", rate)
	}
	tx = d.run(t, 2*time.Minute, "pkt-gen", args...)
	rx = r.Wait(time.Minute)
	if p, _ := totals(t, rx); p != uint64(n) {
		t.Errorf("rate %s: received %d of %d frames", rate, p, n)
	}
	if !strings.Contains(rx, "Sequence check: 0 gaps (0 frames missing), 0 out of order") {
		t.Errorf("rate %s: sequence broken:\n%s", rate, testutil.Tail(rx, 20))
	}
	return tx, rx
}

// In the default mode, with default geometry, numbered frames at 1, 2 and
// 5 Mpps all arrive, in order.
func TestDropModeRates(t *testing.T) {
	d := startValed(t, "-log-level", "info")
	for _, rate := range []string{"1000000", "2000000", "5000000"} {
		tx, _ := exactSeq(t, d, 1_000_000, rate, "vale0:b")
		t.Logf("rate %s: %s", rate, strings.TrimSpace(grepLine(tx, "Speed:")))
		testutil.WaitFor(t, "vale0:b to go", func() bool { return d.portStats(t, "vale0:b") == nil })
	}
}

// On a lossless switch, a sender that does not pace itself delivers every
// frame; so does one sending to a receiver that reads at a fifth of the
// rate, which it is held back to.
func TestLosslessExact(t *testing.T) {
	d := startValed(t, "-lossless", "-log-level", "info")
	tx, _ := exactSeq(t, d, 1_000_000, "", "vale0:b")
	t.Logf("unpaced: %s", strings.TrimSpace(grepLine(tx, "Speed:")))
	testutil.WaitFor(t, "vale0:b to go", func() bool { return d.portStats(t, "vale0:b") == nil })

	hold := d.open(t, "vale0:a/R") // keeps the sender's counters
	_ = hold
	tx, _ = exactSeq(t, d, 200_000, "", "vale0:b", "-R", "100000")
	t.Logf("into a receiver reading 100 Kpps: %s", strings.TrimSpace(grepLine(tx, "Speed:")))
	if st := d.portStats(t, "vale0:a"); st == nil || st.Stats.Waits == 0 {
		t.Errorf("the sender never waited for the slow receiver: %v", st)
	}
}

// A lossless port chosen by name on a dropping switch, whose reader stops:
// after the stuck timeout the switch drops what it has for it (counted),
// and its sender goes on; when the reader comes back, it is lossless again.
func TestLosslessStuckReceiver(t *testing.T) {
	d := startValed(t, "-stuck-timeout", "100ms")
	hold := d.open(t, "vale0:b/T@conf:lossless=1")
	_ = hold
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b", "-f", "rx")
	testutil.WaitFor(t, "vale0:b in lossless mode", func() bool {
		st := d.portStats(t, "vale0:b")
		return st != nil && st.Mode == "lossless"
	})
	if err := rx.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer rx.Cmd.Process.Signal(syscall.SIGCONT)
	out := d.run(t, time.Minute, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", "100000", "-R", "200000")
	if p, _ := totals(t, out); p != 100000 {
		t.Errorf("the sender to a stopped receiver sent %d frames", p)
	}
	st := d.portStats(t, "vale0:b")
	if stuck := st.Stats.DropStuck; stuck == 0 || st.Stats.DropFull != 0 {
		t.Errorf("a stopped lossless receiver: %v", st)
	}
	rx.Cmd.Process.Signal(syscall.SIGCONT)
	before := st.Stats.RxPackets
	stuckBefore := st.Stats.DropStuck
	d.run(t, time.Minute, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", "100000")
	testutil.WaitFor(t, "the receiver to get the second burst", func() bool {
		return d.portStats(t, "vale0:b").Stats.RxPackets == before+100000
	})
	if st := d.portStats(t, "vale0:b"); st.Stats.DropStuck != stuckBefore {
		t.Errorf("frames dropped once the receiver came back: %v", st)
	}
}

// DPDK's virtio-user sender (testpmd txonly, unpaced) into a lossless
// vhost-user port, and a receiver reading 500 Kpps: every frame testpmd
// reports sent arrives. The guest's queue stays full, as with a real NIC.
// Then the receiver stops reading: after the stuck timeout the switch
// drops for it (counted) and the guest's frames flow again.
func TestLosslessVhostSource(t *testing.T) {
	d := startValed(t, "-lossless", "-stuck-timeout", "100ms")
	sock := filepath.Join(t.TempDir(), "vu.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vu", "-vhost-user", sock)
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b", "-f", "rx", "-R", "500000")
	d.waitPort(t, "vale0:b")
	tp := startTestpmdInteractive(t, sock, "txonly", "--eth-peer=0,ff:ff:ff:ff:ff:ff")
	waitConnected(t, d, "vale0:vu")
	sent := tp.burst(2 * time.Second)
	// Every frame testpmd enqueued is in the guest's queue or beyond: wait
	// until valed has taken them all and delivered them.
	testutil.WaitFor(t, "every frame to be delivered", func() bool {
		return d.portStats(t, "vale0:b").Stats.RxPackets >= sent
	})
	st := d.portStats(t, "vale0:b")
	if got := st.Stats.RxPackets; got != sent || st.Stats.DropFull != 0 || st.Stats.DropStuck != 0 {
		t.Errorf("testpmd sent %d frames; the receiver's port: %v", sent, st)
	}
	if vu := d.portStats(t, "vale0:vu"); vu.Stats.Waits == 0 {
		t.Errorf("the guest was never held back: %v", vu)
	}
	t.Logf("testpmd sent %d frames in 2 s into a receiver reading 500 Kpps", sent)

	if err := rx.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer rx.Cmd.Process.Signal(syscall.SIGCONT)
	taken := d.portStats(t, "vale0:vu").Stats.TxPackets
	more := tp.burst(time.Second)
	testutil.WaitFor(t, "the frames for the stopped receiver to be dropped", func() bool {
		return d.portStats(t, "vale0:vu").Stats.TxPackets >= taken+more
	})
	st = d.portStats(t, "vale0:b")
	if st.Stats.DropStuck == 0 || st.Stats.DropFull != 0 {
		t.Errorf("a stopped lossless receiver: %v", st)
	}
	t.Logf("into the stopped receiver testpmd sent %d frames in 1 s; vale0:b: %v", more, st)
	tp.cmd("quit", "")
}

// burst has testpmd forward for d and returns how many frames it sent.
func (tp *interactive) burst(d time.Duration) uint64 {
	tp.t.Helper()
	tp.cmd("start", "forwards packets on")
	time.Sleep(d)
	_, sent := portTotals(tp.t, tp.cmd("stop", "Accumulated forward statistics"))
	return sent
}

// interactive is a dpdk-testpmd driven through its command line.
type interactive struct {
	t     testing.TB
	p     *proc
	stdin io.WriteCloser
}

// startTestpmdInteractive starts dpdk-testpmd with a virtio-user port on
// sock, waiting for commands (forwarding not started), its lcores on CPU 1.
func startTestpmdInteractive(t *testing.T, sock, mode string, extra ...string) *interactive {
	t.Helper()
	return startTestpmd(t, mode, append([]string{"--lcores", "0@1,1@1", "--no-huge", "-m", "1024", "--no-pci", "--no-shconf",
		"--file-prefix", fmt.Sprintf("vale-test-%d", nsSeq.Add(1)),
		"--vdev", "net_virtio_user0,path=" + sock + ",queue_size=1024",
		"--", "-i", "--forward-mode=" + mode, "--nb-cores=1", "--total-num-mbufs=32768", "--burst=32",
		"--rxd=1024", "--txd=1024"}, extra...))
}

// startTestpmd runs dpdk-testpmd (forwarding mode, for its name) with args,
// which make it interactive (-i), and waits for its prompt. It is driven
// through its standard input: its main lcore waits there, where with
// --stats-period it would busy-wait between prints on a CPU others need.
func startTestpmd(t testing.TB, mode string, args []string) *interactive {
	t.Helper()
	needCommands(t, "dpdk-testpmd")
	// Line-buffered: into a pipe, testpmd's answers would wait in stdio's
	// buffer until it exits.
	cmd := exec.Command("stdbuf", append([]string{"-oL", "dpdk-testpmd"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	tp := &interactive{t: t, stdin: stdin}
	tp.p = launch(t, "dpdk-testpmd -i "+mode, cmd, func(p *proc) {
		stdin.Close()
		p.Cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.Done:
		case <-time.After(20 * time.Second):
			p.Cmd.Process.Kill()
			<-p.Done
		}
	})
	testutil.WaitFor(t, "testpmd's prompt", func() bool { return strings.Contains(tp.p.Out.String(), "testpmd>") })
	return tp
}

// cmd sends a command and returns what testpmd printed for it, once that
// includes want. (Its prompt is no sign of an answer: without a terminal,
// testpmd prints it before it has read the command.)
func (tp *interactive) cmd(c, want string) string {
	tp.t.Helper()
	before := len(tp.p.Out.String())
	fmt.Fprintln(tp.stdin, c)
	if c == "quit" {
		tp.p.Wait(30 * time.Second)
		return tp.p.Out.String()[before:]
	}
	testutil.WaitFor(tp.t, "testpmd to answer "+c, func() bool {
		return strings.Contains(tp.p.Out.String()[before:], want)
	})
	return tp.p.Out.String()[before:]
}

// grepLine returns the first line of out containing s.
func grepLine(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
