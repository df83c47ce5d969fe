package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// DPDK's virtio-user driver (dpdk-testpmd, from Debian's dpdk-dev) on a
// vhost-user port of vale0, moving traffic to and from pkt-gen.

// testpmd starts dpdk-testpmd with a virtio-user port on sock in the given
// forwarding mode; it runs until stopped with stop.
func testpmd(t testing.TB, sock, mode string, extra ...string) *interactive {
	t.Helper()
	return startTestpmd(t, mode, append([]string{"-l", "0,1", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
		"--file-prefix", fmt.Sprintf("vale-test-%d", nsSeq.Add(1)),
		"--vdev", "net_virtio_user0,path=" + sock + ",queue_size=1024" + queuesArg(extra),
		"--", "-i", "--auto-start", "--forward-mode=" + mode, "--nb-cores=1", "--total-num-mbufs=8192",
		"--rxd=1024", "--txd=1024"}, extra...))
}

// rxPackets asks testpmd for port 0's counters and returns its
// RX-packets.
func (tp *interactive) rxPackets() uint64 {
	m := rxPacketsRE.FindStringSubmatch(tp.cmd("show port stats 0", "TX-packets"))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseUint(m[1], 10, 64)
	return v
}

// stopTestpmd stops testpmd's forwarding (it then prints its totals), ends
// it and returns its output.
func stopTestpmd(t testing.TB, tp *interactive) string {
	t.Helper()
	tp.cmd("stop", "Accumulated forward statistics")
	tp.cmd("quit", "")
	return tp.p.Out.String()
}

var forwardStatsRE = regexp.MustCompile(`(?s)Forward statistics for port 0.*?RX-packets: (\d+)\s+RX-dropped: (\d+)\s+RX-total: \d+.*?TX-packets: (\d+)`)

var rxPacketsRE = regexp.MustCompile(`RX-packets:\s+(\d+)`)

// portTotals reads testpmd's closing forward statistics of port 0.
func portTotals(t testing.TB, out string) (rx, tx uint64) {
	t.Helper()
	m := forwardStatsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no forward statistics in testpmd's output:\n%s", testutil.Tail(out, 40))
	}
	rx, _ = strconv.ParseUint(m[1], 10, 64)
	tx, _ = strconv.ParseUint(m[3], 10, 64)
	return rx, tx
}

// waitConnected waits until valed shows the vhost-user port with its
// queues enabled.
func waitConnected(t testing.TB, d *daemon, port string) {
	t.Helper()
	testutil.WaitFor(t, port+" to connect", func() bool {
		st := d.portStats(t, port)
		return st != nil && strings.Contains(st.State, "queues=1/1")
	})
}

// testpmd txonly -> virtio-user -> vale0 -> pkt-gen -f rx.
func TestVirtioUserToPktgen(t *testing.T) { virtioUserToPktgen(t, "") }

// virtioUserToPktgen runs testpmd txonly on a virtio-user device with
// devargs into pkt-gen -f rx, which must get exactly the frames it waits for.
func virtioUserToPktgen(t *testing.T, devargs string) {
	d := startValed(t)
	sock := filepath.Join(t.TempDir(), "vu.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vu", "-vhost-user", sock)
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rx", "-n", "200000")
	d.waitPort(t, "vale0:b")
	tp := testpmd(t, sock+devargs, "txonly", "--eth-peer=0,ff:ff:ff:ff:ff:ff")
	rxOut := rx.Wait(60 * time.Second)
	if p, b := totals(t, rxOut); p != 200000 || b != 200000*64 {
		t.Errorf("pkt-gen received %d frames, %d bytes (testpmd sends 64-byte frames)", p, b)
	}
	out := stopTestpmd(t, tp)
	_, sent := portTotals(t, out)
	st := d.portStats(t, "vale0:vu")
	t.Logf("testpmd sent %d frames; vale0:vu took %d", sent, st.Stats.TxPackets)
	if sent < 200000 {
		t.Errorf("testpmd reports %d frames sent", sent)
	}
}

// pkt-gen -f tx -> vale0 -> virtio-user -> testpmd rxonly: exact count.
func TestPktgenToVirtioUser(t *testing.T) { pktgenToVirtioUser(t, "") }

// pktgenToVirtioUser sends frames from pkt-gen to testpmd rxonly on a
// virtio-user device with devargs, which must get every one.
func pktgenToVirtioUser(t *testing.T, devargs string) {
	d := startValed(t)
	sock := filepath.Join(t.TempDir(), "vu.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vu", "-vhost-user", sock)
	tp := testpmd(t, sock+devargs, "rxonly")
	waitConnected(t, d, "vale0:vu")
	testutil.WaitFor(t, "testpmd to forward", func() bool { return strings.Contains(tp.p.Out.String(), "forwards packets on") })
	const n = 100000
	// Bursts of 64 into a receive ring of 1024: nothing has a reason to drop.
	d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", "100000", "-b", "64")
	testutil.WaitFor(t, "the frames to reach testpmd", func() bool {
		st := d.portStats(t, "vale0:vu")
		return st.Stats.RxPackets+st.Stats.DropFull >= n
	})
	// Wait for testpmd's counters to show every frame (or give up and
	// report what arrived).
	testutil.Eventually(20*time.Second, func() bool { return tp.rxPackets() >= n })
	got, _ := portTotals(t, stopTestpmd(t, tp))
	if got != n {
		t.Errorf("testpmd received %d frames, want %d; vale0:vu: %v", got, n, d.portStats(t, "vale0:vu"))
	}
}

// Multiqueue: a port offering two queue pairs, testpmd using both.
func TestVirtioUserMultiqueue(t *testing.T) {
	d := startValed(t)
	sock := filepath.Join(t.TempDir(), "vu.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vu", "-vhost-user", sock, "-queues", "2")
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rx", "-n", "100000")
	d.waitPort(t, "vale0:b")
	tp := testpmd(t, sock, "txonly", "--eth-peer=0,ff:ff:ff:ff:ff:ff", "--rxq=2", "--txq=2")
	if p, _ := totals(t, rx.Wait(60*time.Second)); p != 100000 {
		t.Errorf("pkt-gen received %d frames", p)
	}
	st := d.portStats(t, "vale0:vu")
	if st.TxRings != 2 || st.RxRings != 2 || !strings.Contains(st.State, "queues=2/2") || !strings.Contains(st.State, "connected,split,v1,inorder,mrg,") || !strings.Contains(st.State, ",mq,") {
		t.Errorf("vale0:vu: %v", st)
	}
	stopTestpmd(t, tp)
}

// queuesArg gives the virtio-user device as many queue pairs as testpmd's
// --rxq asks for.
func queuesArg(extra []string) string {
	for _, a := range extra {
		if n, ok := strings.CutPrefix(a, "--rxq="); ok {
			return ",queues=" + n
		}
	}
	return ""
}

// virtioUserModes are the ring layouts of DPDK's virtio-user, by its
// devargs, and the start of the features valed then lists.
var virtioUserModes = []struct{ name, devargs, features string }{
	{"split", ",in_order=0", "connected,split,v1,mrg,"},
	{"split-inorder", ",in_order=1", "connected,split,v1,inorder,mrg,"},
	{"packed", ",packed_vq=1,in_order=0", "connected,packed,v1,mrg,"},
	{"packed-inorder", ",packed_vq=1,in_order=1", "connected,packed,v1,inorder,mrg,"},
}

// Each ring layout of DPDK's virtio-user, both directions: testpmd's
// transmit queue into pkt-gen, and pkt-gen into its receive queue, exact
// counts, with the layout the port then lists.
func TestVirtioUserRingModes(t *testing.T) {
	for _, m := range virtioUserModes {
		t.Run(m.name, func(t *testing.T) {
			t.Run("guest-tx", func(t *testing.T) { virtioUserToPktgen(t, m.devargs) })
			t.Run("guest-rx", func(t *testing.T) { pktgenToVirtioUser(t, m.devargs) })
			t.Run("features", func(t *testing.T) {
				d := startValed(t)
				sock := filepath.Join(t.TempDir(), "vu.sock")
				d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vu", "-vhost-user", sock)
				tp := testpmd(t, sock+m.devargs, "rxonly")
				waitConnected(t, d, "vale0:vu")
				if st := d.portStats(t, "vale0:vu"); !strings.HasPrefix(st.State, m.features) {
					t.Errorf("vale0:vu negotiated %q, want %q...", st.State, m.features)
				}
				stopTestpmd(t, tp)
			})
		})
	}
}
