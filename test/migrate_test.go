package e2e

import (
	"bufio"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// A guest migrates live while it pings and downloads over TCP through
// vale0: QEMU moves it from a QEMU on port vale0:src to one started with
// -incoming on vale0:dst (both on this host, over a unix socket). The
// source's vhost-user port logs what it writes into the guest's memory
// (without the dirty log QEMU refuses to migrate a vhost-user NIC at all);
// the destination resumes the rings where the source stopped them; the
// switch learns the guest's new port from QEMU's RARP. The guest keeps its
// TCP connection (the download, slowed to span the migration, arrives whole
// with its MD5) and loses no more pings than the switchover's downtime
// holds.
func TestGuestLiveMigration(t *testing.T) { liveMigration(t) }

// TestGuestLiveMigrationPacked is TestGuestLiveMigration on packed
// virtqueues: the ring positions handed over carry the wrap counters.
func TestGuestLiveMigrationPacked(t *testing.T) { liveMigration(t, "packed=on") }

// liveMigration migrates a guest whose NIC has properties devOpts.
func liveMigration(t *testing.T, devOpts ...string) {
	needGuest(t)
	d := startValed(t)
	dir := t.TempDir()
	sock := func(n string) string { return filepath.Join(dir, n) }
	for _, p := range []string{"peer", "src", "dst"} {
		d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:"+p, "-vhost-user", sock(p+".sock"))
	}
	peer := bootGuest(t, "peer", sock("peer.sock"), false, "52:54:00:00:02:01", "10.88.0.1/24", slowServer)
	initrd := filepath.Join(dir, "initrd.gz")
	initramfs(t, initrd, "10.88.0.2/24", `
for i in $(seq 60); do wget -q -O /tmp/probe http://10.88.0.1/chunk && break; sleep 1; done
ping -i 0.1 10.88.0.1 >/tmp/ping 2>&1 &
PING=$!
`+slowDownload+`
kill -INT $PING
sleep 1
tail -2 /tmp/ping
sleep 600`)
	const mac = "52:54:00:00:02:02"
	srcMon, dstMon, mig := sock("src.mon"), sock("dst.mon"), sock("migrate.sock")
	src := startGuest(t, "src", append(guestArgs(initrd, "socket,id=c0,path="+sock("src.sock"), mac, devOpts...),
		"-monitor", "unix:"+srcMon+",server=on,wait=off"))
	dst := startGuest(t, "dst", append(guestArgs(initrd, "socket,id=c0,path="+sock("dst.sock"), mac, devOpts...),
		"-monitor", "unix:"+dstMon+",server=on,wait=off", "-incoming", "unix:"+mig))

	sent := peer.waitLine(t, `DATA-MD5 ([0-9a-f]{32})`, 3*time.Minute)[1]
	peer.waitLine(t, `SERVER-READY`, time.Minute)
	src.waitLine(t, `WGET-START`, 3*time.Minute)
	testutil.WaitFor(t, "the destination's monitor", func() bool { return hmpTry(dstMon, "info status") != "" })
	time.Sleep(2 * time.Second) // the download under way
	hmp(t, srcMon, "migrate_set_parameter max-bandwidth 1G")
	hmp(t, srcMon, "migrate -d unix:"+mig)
	var info string
	testutil.WaitForWithin(t, 2*time.Minute, "the migration to complete", func() bool {
		info = hmp(t, srcMon, "info migrate")
		if strings.Contains(info, "Migration status: failed") || strings.Contains(info, "Migration status: cancelled") {
			t.Fatalf("migration failed:\n%s\nvaled:\n%s", info, testutil.Tail(d.Out.String(), 20))
		}
		return strings.Contains(info, "Migration status: completed")
	})
	downtime := 0
	if m := regexp.MustCompile(`downtime: (\d+) ms`).FindStringSubmatch(info); m != nil {
		downtime, _ = strconv.Atoi(m[1])
	}
	t.Logf("migration: downtime %d ms; %s", downtime, regexp.MustCompile(`total time: \d+ ms`).FindString(info))
	if !strings.Contains(hmp(t, dstMon, "info status"), "running") {
		t.Fatal("the destination is not running after the migration")
	}

	got := dst.waitLine(t, `GOT-MD5 ([0-9a-f]{32}) `, 3*time.Minute)[1]
	if got != sent {
		t.Fatalf("the migrated guest downloaded MD5 %s; the peer sent %s", got, sent)
	}
	if strings.Contains(src.Out.String(), "GOT-MD5") {
		t.Fatal("the download ended before the migration: nothing was tested")
	}
	m := dst.waitLine(t, `(\d+) packets transmitted, (\d+) packets received`, time.Minute)
	tx, _ := strconv.Atoi(m[1])
	rx, _ := strconv.Atoi(m[2])
	// One ping in 100 ms: the switchover's downtime, plus the round trip
	// of a ping in flight at either end of it.
	if lost, most := tx-rx, downtime/100+3; lost > most {
		t.Errorf("%d of %d pings lost across a %d ms switchover (at most %d expected)", lost, tx, downtime, most)
	} else {
		t.Logf("%d of %d pings lost across a %d ms switchover", lost, tx, downtime)
	}
	if !strings.Contains(d.Out.String(), `msg="dirty page log set" port=vale0:src`) {
		t.Error("the source's port never got a dirty log")
	}
	st := d.portStats(t, "vale0:dst")
	if len(devOpts) > 0 && (st == nil || !strings.Contains(st.State, "packed,")) {
		t.Errorf("vale0:dst is not on packed rings: %v", st)
	}
	if st == nil || !strings.Contains(st.State, "rarp=") {
		t.Errorf("vale0:dst sent no RARP for the guest: %v", st)
	}
	t.Logf("vale0:dst: %s", st.State)
}

// slowServer is a guest script that serves, at /cgi-bin/slow, 64 KiB
// every 0.25 s for 15 s (a TCP connection long enough to span what a test
// does to the switch meanwhile), prints the MD5 of the whole as DATA-MD5
// and SERVER-READY once it serves.
var slowServer = `
mkdir -p /www/cgi-bin
dd if=/dev/urandom of=/www/chunk bs=1024 count=64 2>/dev/null
printf '#!/bin/sh\necho "Content-Type: application/octet-stream"\necho\nfor i in $(seq 60); do cat /www/chunk; sleep 0.25; done\n' > /www/cgi-bin/slow
chmod 755 /www/cgi-bin/slow
echo "DATA-MD5 $(for i in $(seq 60); do cat /www/chunk; done | md5sum | cut -d' ' -f1)"
httpd -p 80 -h /www
echo SERVER-READY
sleep 600`

// slowDownload is the part of a guest script that downloads slowServer's
// data from 10.88.0.1 once it serves (WGET-START when the download
// starts) and prints its MD5 and size as GOT-MD5.
const slowDownload = `
for i in $(seq 60); do wget -q -O /tmp/probe http://10.88.0.1/chunk && break; sleep 1; done
echo WGET-START
wget -q -O /tmp/data http://10.88.0.1/cgi-bin/slow
echo "GOT-MD5 $(md5sum /tmp/data | cut -d' ' -f1) $(wc -c < /tmp/data)"`

// hmp runs a command on a QEMU human monitor socket and returns its
// output.
func hmp(t testing.TB, path, cmd string) string {
	t.Helper()
	out := hmpTry(path, cmd)
	if out == "" {
		t.Fatalf("monitor %s: no answer to %q", path, cmd)
	}
	return out
}

// hmpTry is hmp, "" when the monitor does not answer.
func hmpTry(path, cmd string) string {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	prompt := func() (string, bool) {
		var b strings.Builder
		for !strings.HasSuffix(b.String(), "(qemu) ") {
			ch, err := r.ReadByte()
			if err != nil {
				return b.String(), false
			}
			b.WriteByte(ch)
		}
		return b.String(), true
	}
	if _, ok := prompt(); !ok {
		return ""
	}
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return ""
	}
	out, ok := prompt()
	if !ok {
		return ""
	}
	return out
}
