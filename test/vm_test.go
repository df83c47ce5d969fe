package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// Two QEMU guests on vhost-user ports of vale0 (one where valed listens,
// one where QEMU listens and valed connects) ping each other and move a
// file over TCP with the guests' default offloads on (checksum offload and
// TSO: their frames cross the switch as 64 KiB segments with partial
// checksums); the receiver checks its MD5.
func TestGuestsTCP(t *testing.T) { guestsTCP(t, "split,", nil, nil) }

// TestGuestsTCPPacked is TestGuestsTCP over packed virtqueues, the client
// without offloads (the switch segments and checksums the server's TSO
// frames for it). QEMU 7.2 has no in_order property: the in-order layouts
// are tested with DPDK's virtio-user.
func TestGuestsTCPPacked(t *testing.T) {
	guestsTCP(t, "packed,", []string{"packed=on"},
		[]string{"packed=on", "csum=off", "guest_csum=off", "host_tso4=off", "host_tso6=off", "guest_tso4=off", "guest_tso6=off"})
}

// guestsTCP runs the two guests of TestGuestsTCP with more properties of
// their NICs; both ports must list the ring kind kind.
func guestsTCP(t *testing.T, kind string, serverOpts, clientOpts []string) {
	needGuest(t)
	d := startValed(t)
	dir := t.TempDir()
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vma", "-vhost-user", sockA)
	server := bootGuest(t, "a", sockA, false, "52:54:00:00:00:0a", "10.88.0.1/24", `
dd if=/dev/urandom of=/www/data bs=1024 count=4096 2>/dev/null
echo "DATA-MD5 $(md5sum /www/data | cut -d' ' -f1)"
httpd -p 80 -h /www
echo SERVER-READY
sleep 600`, serverOpts...)
	client := bootGuest(t, "b", sockB, true, "52:54:00:00:00:0b", "10.88.0.2/24", `
ping -c 3 -W 10 10.88.0.1 && echo PING-OK
for i in 1 2 3 4 5 6 7 8 9 10; do
	if wget -q -O /tmp/data http://10.88.0.1/data; then break; fi
	sleep 1
done
echo "GOT-MD5 $(md5sum /tmp/data | cut -d' ' -f1) $(wc -c < /tmp/data)"
cat /sys/class/net/eth0/statistics/tx_packets /sys/class/net/eth0/statistics/rx_packets
sleep 600`, clientOpts...)
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vmb", "-vhost-user", sockB, "-vhost-client")
	sent := server.waitLine(t, `DATA-MD5 ([0-9a-f]{32})`, 3*time.Minute)[1]
	server.waitLine(t, `SERVER-READY`, time.Minute)
	client.waitLine(t, `PING-OK`, 3*time.Minute)
	got := client.waitLine(t, `GOT-MD5 ([0-9a-f]{32}) (\d+)`, 3*time.Minute)
	if got[1] != sent || got[2] != "4194304" {
		t.Fatalf("the client got %s bytes with MD5 %s; the server sent 4194304 with %s", got[2], got[1], sent)
	}
	st := d.portStats(t, "vale0:vma")
	if st == nil || st.Kind != "vhost-user" || !strings.Contains(st.State, "connected,"+kind) {
		t.Fatalf("vale0:vma listed as %v", st)
	}
	if stb := d.portStats(t, "vale0:vmb"); stb == nil || !strings.Contains(stb.State, "connected,"+kind) {
		t.Fatalf("vale0:vmb listed as %v", stb)
	}
	// The server's frames crossed as TSO segments: far fewer frames than
	// the ~2,900 MTU-sized ones 4 MiB take.
	frames, bytes := st.Stats.TxPackets, st.Stats.TxBytes
	t.Logf("the server sent %d frames, %d bytes (%.0f bytes a frame); state %s", frames, bytes, float64(bytes)/float64(frames), st.State)
	if bytes < 4<<20 || frames > 2000 {
		t.Errorf("the server's 4 MiB took %d frames: no segmentation offload through the switch", frames)
	}
}

// A guest pings a VALE port served by pkt-gen -f pong.
func TestGuestPingsPong(t *testing.T) {
	needGuest(t)
	d := startValed(t)
	sock := filepath.Join(t.TempDir(), "vm.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vm", "-vhost-user", sock)
	start(t, d.sock, "pkt-gen", "-i", "vale0:pong", "-f", "pong", "-s", "10.88.0.100")
	d.waitPort(t, "vale0:pong")
	g := bootGuest(t, "pinger", sock, false, "52:54:00:00:00:0c", "10.88.0.5/24", `
ping -c 5 -W 10 10.88.0.100 | tail -2`)
	m := g.waitLine(t, `(\d+) packets transmitted, (\d+) packets received`, 3*time.Minute)
	if m[2] != "5" {
		t.Fatalf("%s of 5 pings answered", m[2])
	}
}

// A guest and a network namespace attached over AF_XDP exchange files over
// TCP both ways: the guest's TSO segments with partial checksums are cut
// and checksummed by the switch for the veth, which takes no offloads.
func TestGuestTCPToNamespace(t *testing.T) {
	needGuest(t)
	needCommands(t, "ip", "ethtool")
	sw, a := newNetNS(t, "sw"), newNetNS(t, "a")
	veth(t, a, "pA", sw, "vA")
	a.run(t, "ip", "addr", "add", "10.88.0.50/24", "dev", "pA")
	bb := filepath.Join(guestCache, "busybox")
	www := t.TempDir()
	a.sh(t, "dd if=/dev/urandom of="+www+"/up bs=1024 count=2048 2>/dev/null")
	upMD5 := strings.Fields(a.sh(t, bb+" md5sum "+www+"/up"))[0]
	httpd := exec.Command("ip", "netns", "exec", a.name, bb, "httpd", "-f", "-p", "8080", "-h", www)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { httpd.Process.Kill(); httpd.Wait() }()

	d := startValedIn(t, sw)
	d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vA", "-mode", "native")
	sock := filepath.Join(t.TempDir(), "vm.sock")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vm", "-vhost-user", sock)
	g := bootGuest(t, "g", sock, false, "52:54:00:00:00:0d", "10.88.0.1/24", `
dd if=/dev/urandom of=/www/down bs=1024 count=2048 2>/dev/null
echo "DOWN-MD5 $(md5sum /www/down | cut -d' ' -f1)"
httpd -p 80 -h /www
for i in 1 2 3 4 5 6 7 8 9 10; do
	if wget -q -O /tmp/up http://10.88.0.50:8080/up; then break; fi
	sleep 1
done
echo "UP-MD5 $(md5sum /tmp/up | cut -d' ' -f1)"
sleep 600`)
	down := g.waitLine(t, `DOWN-MD5 ([0-9a-f]{32})`, 3*time.Minute)[1]
	if got := g.waitLine(t, `UP-MD5 ([0-9a-f]{32})`, 3*time.Minute)[1]; got != upMD5 {
		t.Errorf("the guest downloaded MD5 %s, the namespace served %s", got, upMD5)
	}
	var out string
	var err error
	testutil.Eventually(10*time.Second, func() bool {
		out, err = a.try("sh", "-c", bb+" wget -q -O - http://10.88.0.1/down | "+bb+" md5sum")
		return err == nil
	})
	if err != nil || strings.Fields(out)[0] != down {
		t.Fatalf("the namespace downloaded %q (%v); the guest served MD5 %s", out, err, down)
	}
	st := d.portStats(t, "vale0:vm")
	t.Logf("guest port: %v", st)
}

// valed killed under a running guest: QEMU reports the link down to the
// guest, reconnects (reconnect=1) once a new valed serves the socket, and
// the guest's traffic flows again.
func TestGuestReconnect(t *testing.T) {
	needGuest(t)
	sockDir := t.TempDir()
	vsock := filepath.Join(sockDir, "valed.sock")
	sock := filepath.Join(sockDir, "vm.sock")
	serve := func() *daemon {
		d := startValedAt(t, nil, vsock)
		d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vm", "-vhost-user", sock)
		start(t, d.sock, "pkt-gen", "-i", "vale0:pong", "-f", "pong", "-s", "10.88.0.100")
		d.waitPort(t, "vale0:pong")
		return d
	}
	d := serve()
	g := bootGuestChardev(t, "r", "socket,id=c0,path="+sock+",reconnect=1", "52:54:00:00:00:0e", "10.88.0.6/24", `
while true; do
	ping -c 1 -W 1 10.88.0.100 >/dev/null && echo PONG-OK
	echo "LINK $(cat /sys/class/net/eth0/operstate)"
	sleep 1
done`)
	_, at := g.waitLineAfter(t, `PONG-OK`, 0, 3*time.Minute)
	d.Cmd.Process.Kill()
	<-d.Done
	_, at = g.waitLineAfter(t, `LINK down`, at, time.Minute)
	serve()
	_, at = g.waitLineAfter(t, `LINK up`, at, time.Minute)
	g.waitLineAfter(t, `PONG-OK`, at, time.Minute)
}

// valed killed in the middle of a TCP download between two guests (QEMU
// with reconnect=1 on both): QEMU sets the rings up again on the new
// valed from where they stood (SET_VRING_BASE, the used ring; QEMU's
// virtio-net does not use VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD), the
// descriptors in flight at the kill included, and the download completes
// whole: the guests' TCP connection survives the switch's restart.
//
// Split rings only: after a backend's crash QEMU 7.2 sets a packed ring up
// again from where it started, not where it stood (it keeps no position of
// its own for a packed ring, and its virtio-net does not use the in-flight
// region that would say where), so neither valed nor DPDK's vhost can
// resume one.
func TestGuestReconnectMidTransfer(t *testing.T) { reconnectMidTransfer(t) }

func reconnectMidTransfer(t *testing.T, devOpts ...string) {
	needGuest(t)
	dir := t.TempDir()
	vsock := filepath.Join(dir, "valed.sock")
	sock := func(p string) string { return filepath.Join(dir, p+".sock") }
	serve := func() *daemon {
		d := startValedAt(t, nil, vsock)
		for _, p := range []string{"a", "b"} {
			d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:"+p, "-vhost-user", sock(p))
		}
		return d
	}
	d := serve()
	chardev := func(p string) string { return "socket,id=c0,path=" + sock(p) + ",reconnect=1" }
	server := bootGuestChardev(t, "a", chardev("a"), "52:54:00:00:03:01", "10.88.0.1/24", slowServer, devOpts...)
	client := bootGuestChardev(t, "b", chardev("b"), "52:54:00:00:03:02", "10.88.0.2/24", slowDownload+`
sleep 600`, devOpts...)
	sent := server.waitLine(t, `DATA-MD5 ([0-9a-f]{32})`, 3*time.Minute)[1]
	_, at := client.waitLineAfter(t, `WGET-START`, 0, 3*time.Minute)
	time.Sleep(2 * time.Second) // the download under way
	d.Cmd.Process.Kill()
	<-d.Done
	if strings.Contains(client.Out.String()[at:], "GOT-MD5") {
		t.Fatal("the download ended before valed was killed: nothing was tested")
	}
	d = serve()
	got, _ := client.waitLineAfter(t, `GOT-MD5 ([0-9a-f]{32}) (\d+)`, at, 3*time.Minute)
	if got[1] != sent || got[2] != "3932160" {
		t.Fatalf("the client got %s bytes with MD5 %s across valed's restart; the server sent 3932160 with %s", got[2], got[1], sent)
	}
	for _, p := range []string{"vale0:a", "vale0:b"} {
		if st := d.portStats(t, p); st == nil || !strings.Contains(st.State, "connected") {
			t.Errorf("%s after the restart: %v", p, st)
		}
	}
}

// BenchmarkGuestToGuest moves 64 MiB over TCP from one QEMU guest to
// another through vale0 and reports the rate the receiver saw. Under TCG
// it measures the emulator as much as the switch: a functional figure.
func BenchmarkGuestToGuest(b *testing.B) {
	for range b.N {
		benchGuests(b)
	}
}

func benchGuests(b *testing.B) {
	tb := testing.TB(b)
	needGuest(tb)
	d := startValed(tb)
	dir := b.TempDir()
	sockA, sockB := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	d.run(tb, 10*time.Second, "vale-ctl", "-a", "vale0:vma", "-vhost-user", sockA)
	d.run(tb, 10*time.Second, "vale-ctl", "-a", "vale0:vmb", "-vhost-user", sockB)
	bootGuest(tb, "a", sockA, false, "52:54:00:00:01:0a", "10.89.0.1/24", `
dd if=/dev/zero of=/www/data bs=1M count=64 2>/dev/null
httpd -p 80 -h /www
echo SERVER-READY
sleep 600`)
	c := bootGuest(tb, "b", sockB, false, "52:54:00:00:01:0b", "10.89.0.2/24", `
sleep 3
for i in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 2 10.89.0.1 >/dev/null && break; done
s=$(cut -d' ' -f1 /proc/uptime)
wget -q -O /dev/null http://10.89.0.1/data
e=$(cut -d' ' -f1 /proc/uptime)
echo "ELAPSED $s $e"`)
	m := c.waitLine(tb, `ELAPSED ([0-9.]+) ([0-9.]+)`, 10*time.Minute)
	var s, e float64
	fmt.Sscan(m[1], &s)
	fmt.Sscan(m[2], &e)
	if e <= s {
		b.Fatalf("elapsed %s..%s", m[1], m[2])
	}
	mbps := 64 * 8 * 1.048576 / (e - s)
	b.ReportMetric(mbps, "Mbit/s")
	fmt.Printf("guest to guest: 64 MiB in %.2f s, %.0f Mbit/s\n", e-s, mbps)
}
