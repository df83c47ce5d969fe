package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// needTools fails the test when one of the external tools it checks files
// with is missing: these tests prove that real tools read what vale writes,
// so they must not pass silently without them.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not found: install Debian's tcpdump and tshark packages (.ci/run does): %v", n, err)
		}
	}
}

// toolOutput runs an external tool and returns its standard output.
func toolOutput(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// wireFrame is a frame as tshark reports it.
type wireFrame struct {
	len, capLen int
	ns          int64  // timestamp, ns since the epoch
	data        string // payload after the Ethernet header, hex (only for unknown ethertypes)
}

// tsharkFrames reads a capture file with tshark.
func tsharkFrames(t testing.TB, file string) []wireFrame {
	t.Helper()
	out := toolOutput(t, "tshark", "-r", file, "-T", "fields", "-E", "separator=/t",
		"-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.time_epoch", "-e", "data.data")
	var frames []wireFrame
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			t.Fatalf("tshark %s: unexpected line %q", file, l)
		}
		w := wireFrame{len: int(atoi(t, f[0])), capLen: int(atoi(t, f[1])), ns: epochNs(t, f[2])}
		if len(f) > 3 {
			w.data = f[3]
		}
		frames = append(frames, w)
	}
	return frames
}

// epochNs converts tshark's "seconds.fraction" to ns without rounding.
func epochNs(t testing.TB, s string) int64 {
	t.Helper()
	sec, frac, _ := strings.Cut(s, ".")
	frac = (frac + "000000000")[:9]
	return int64(atoi(t, sec))*1e9 + int64(atoi(t, frac))
}

var tcpdumpLenRE = regexp.MustCompile(`, length (\d+)`)

// tcpdumpLengths reads a capture file with tcpdump -e and returns the
// length of each frame.
func tcpdumpLengths(t testing.TB, file string) []int {
	t.Helper()
	out := toolOutput(t, "tcpdump", "-r", file, "-nn", "-e")
	var lens []int
	for _, l := range strings.Split(out, "\n") {
		if l == "" || l[0] == ' ' || l[0] == '\t' {
			continue // continuation lines (hex of unknown protocols)
		}
		m := tcpdumpLenRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("tcpdump %s: no length in %q", file, l)
		}
		n, _ := strconv.Atoi(m[1])
		lens = append(lens, n)
	}
	return lens
}

var capturedRE = regexp.MustCompile(`Captured (\d+) frames (\d+) bytes in [0-9.]+ seconds to (.*)\n`)

// captured parses nm-capture's summary: frames, bytes and files.
func captured(t testing.TB, out string) (frames, bytes uint64, files []string) {
	t.Helper()
	m := capturedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary in nm-capture output:\n%s", out)
	}
	return atoi(t, m[1]), atoi(t, m[2]), strings.Split(m[3], ", ")
}

// checkFile checks a capture file with tshark and tcpdump: frame count,
// byte total, snap length, timestamps in [from, to] and not all whole
// microseconds.
func checkFile(t testing.TB, file string, frames, bytes uint64, snap int, from, to time.Time) {
	t.Helper()
	wf := tsharkFrames(t, file)
	var sum uint64
	sub := false
	for i, f := range wf {
		sum += uint64(f.len)
		if want := min(f.len, snap); f.capLen != want {
			t.Fatalf("%s frame %d: %d of %d bytes captured, want %d", file, i+1, f.capLen, f.len, want)
		}
		if f.ns < from.UnixNano() || f.ns > to.UnixNano() || i > 0 && f.ns < wf[i-1].ns {
			t.Fatalf("%s frame %d: timestamp %d not in order within [%d, %d]", file, i+1, f.ns, from.UnixNano(), to.UnixNano())
		}
		if f.ns%1000 != 0 {
			sub = true
		}
	}
	if uint64(len(wf)) != frames || sum != bytes {
		t.Errorf("tshark reads %d frames %d bytes in %s, want %d and %d", len(wf), sum, file, frames, bytes)
	}
	if frames > 10 && !sub {
		t.Errorf("%s: every timestamp is a whole microsecond: nanoseconds lost", file)
	}
	lens := tcpdumpLengths(t, file)
	sum = 0
	for _, l := range lens {
		sum += uint64(l)
	}
	if uint64(len(lens)) != frames || sum != bytes {
		t.Errorf("tcpdump reads %d frames %d bytes in %s, want %d and %d", len(lens), sum, file, frames, bytes)
	}
}

// fileMagic returns the first four bytes of a file.
func fileMagic(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil || len(b) < 4 {
		t.Fatalf("%s: %v (%d bytes)", file, err, len(b))
	}
	return b[:4]
}

var (
	magicPcapNs = []byte{0x4d, 0x3c, 0xb2, 0xa1} // nanosecond pcap, little endian
	magicPcapNG = []byte{0x0a, 0x0d, 0x0d, 0x0a}
)

// capRate is the rate of the capture tests' traffic: with receive rings of
// 4096 slots, 80 ms of it fit in a ring, far more than the scheduling
// hiccups of six processes on two cores.
const capRate = "50000"

// TestCaptureFormats captures the same traffic as pcap and pcapng, whole and
// with a snap length, and checks the files with tcpdump and tshark.
func TestCaptureFormats(t *testing.T) {
	needTools(t, "tshark", "tcpdump")
	d := startValed(t)
	dir := t.TempDir()
	const n = 10000
	cases := []struct {
		port, file string
		args       []string
		snap       int
		magic      []byte
	}{
		{"vale0:cap1", "all.pcap", nil, 1 << 30, magicPcapNs},
		{"vale0:cap2", "all.pcapng", nil, 1 << 30, magicPcapNG},
		{"vale0:cap3", "snap.out", []string{"-F", "pcapng", "-s", "100"}, 100, magicPcapNG},
		{"vale0:cap4", "snap.pcapng", []string{"-F", "pcap", "-s", "64"}, 64, magicPcapNs},
		{"vale0:cap5", "whole.pcap", []string{"-s", "0"}, 1 << 30, magicPcapNs},
	}
	from := time.Now()
	var caps []*proc
	for _, c := range cases {
		args := append([]string{"-i", c.port + bigRx, "-w", filepath.Join(dir, c.file), "-c", fmt.Sprint(n), "-q"}, c.args...)
		caps = append(caps, start(t, d.sock, "nm-capture", args...))
	}
	for _, c := range cases {
		d.waitPort(t, c.port)
		// Hold the port (its TX ring only) so that valed's counters
		// outlive nm-capture.
		d.open(t, c.port+"/T")
	}
	txOut := d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate, "-l", "60", "-l", "1000")
	sentPkts, sentBytes := totals(t, txOut)
	if sentPkts != n {
		t.Fatalf("pkt-gen sent %d frames", sentPkts)
	}
	for i, c := range cases {
		out := caps[i].Wait(30 * time.Second)
		frames, nbytes, files := captured(t, out)
		file := filepath.Join(dir, c.file)
		if frames != n || nbytes != sentBytes || len(files) != 1 || files[0] != file {
			t.Errorf("%s: nm-capture reports %d frames %d bytes to %q, want %d %d %s", c.port, frames, nbytes, files, n, sentBytes, file)
		}
		if m := fileMagic(t, file); !bytes.Equal(m, c.magic) {
			t.Errorf("%s starts with % x, want % x", file, m, c.magic)
		}
		checkFile(t, file, n, sentBytes, c.snap, from, time.Now())
		if st := d.portStats(t, c.port); st.Stats.DropFull != 0 || st.Stats.RxPackets != uint64(n) {
			t.Errorf("valed counts for %s: %v", c.port, st)
		}
	}
}

// TestCaptureLimits checks -c, -G, -C rotation (pcap and pcapng) and a stop
// by SIGINT and SIGTERM, all on the same traffic.
func TestCaptureLimits(t *testing.T) {
	needTools(t, "tshark", "tcpdump")
	d := startValed(t)
	dir := t.TempDir()
	const n, size = 1000, 1000
	const limit = 100_000 // -C 0.1
	path := func(f string) string { return filepath.Join(dir, f) }
	type capture struct {
		port string
		args []string
		p    *proc
	}
	caps := []*capture{
		{port: "vale0:count", args: []string{"-w", path("count.pcap"), "-c", "300"}},
		{port: "vale0:time", args: []string{"-w", path("time.pcapng"), "-G", "3s"}},
		{port: "vale0:rot", args: []string{"-w", path("rot.pcap"), "-C", "0.1"}},
		{port: "vale0:rotng", args: []string{"-w", path("rot.pcapng"), "-C", "0.1"}},
		{port: "vale0:int", args: []string{"-w", path("int.pcap")}},
		{port: "vale0:term", args: []string{"-w", path("term.pcapng")}},
	}
	from := time.Now()
	for _, c := range caps {
		c.p = start(t, d.sock, "nm-capture", append([]string{"-i", c.port + bigRx}, c.args...)...)
	}
	for _, c := range caps {
		d.waitPort(t, c.port)
	}
	d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate, "-l", fmt.Sprint(size))
	all := uint64(n * size)

	// -c: exactly 300 frames.
	out := caps[0].p.Wait(30 * time.Second)
	if f, b, _ := captured(t, out); f != 300 || b != 300*size {
		t.Errorf("-c 300: captured %d frames %d bytes", f, b)
	}
	checkFile(t, path("count.pcap"), 300, 300*size, 1<<30, from, time.Now())

	// -G: stops by itself, with everything sent before.
	out = caps[1].p.Wait(30 * time.Second)
	if f, b, _ := captured(t, out); f != n || b != all {
		t.Errorf("-G 3s: captured %d frames %d bytes", f, b)
	}
	checkFile(t, path("time.pcapng"), n, all, 1<<30, from, time.Now())

	// SIGINT and SIGTERM: a clean stop, the file complete.
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		c := caps[4+i]
		waitCaptured(t, d, c.port, n)
		c.p.Cmd.Process.Signal(sig)
		out := c.p.Wait(30 * time.Second)
		f, b, files := captured(t, out)
		if f != n || b != all {
			t.Errorf("%v: captured %d frames %d bytes", sig, f, b)
		}
		checkFile(t, files[0], n, all, 1<<30, from, time.Now())
	}

	// -C: FILE, FILE1, FILE2, ... together hold everything; a new file
	// starts once the current one exceeds the limit (10 files or so).
	for _, c := range caps[2:4] {
		waitCaptured(t, d, c.port, n)
		c.p.Cmd.Process.Signal(syscall.SIGINT)
		out := c.p.Wait(30 * time.Second)
		f, b, files := captured(t, out)
		if f != n || b != all {
			t.Errorf("%s: captured %d frames %d bytes", c.port, f, b)
		}
		checkRotated(t, c.port, c.args[1], files, n, size, limit)
	}
}

// waitCaptured waits until valed has delivered n frames to port, without
// a drop.
func waitCaptured(t *testing.T, d *daemon, port string, n int) {
	t.Helper()
	testutil.WaitFor(t, port+" to capture everything", func() bool {
		st := d.portStats(t, port)
		if st != nil && st.Stats.DropFull != 0 {
			t.Fatalf("valed counts for %s: %v", port, st)
		}
		return st != nil && st.Stats.RxPackets == uint64(n)
	})
}

// checkRotated checks the files of a capture rotated at -C limit bytes:
// base, base1, base2, ... (and no more), each past the limit by at most a
// record, together holding the n frames of size bytes, read alike by
// tshark and tcpdump.
func checkRotated(t *testing.T, port, base string, files []string, n, size, limit int) {
	t.Helper()
	all := uint64(n * size)
	if len(files) < 8 {
		t.Fatalf("%s: only %d files for %d bytes at -C 0.1: %q", port, len(files), all, files)
	}
	var frames, nbytes uint64
	for i, file := range files {
		want := base
		if i > 0 {
			want += fmt.Sprint(i)
		}
		if file != want {
			t.Errorf("file %d is %s, want %s", i, file, want)
		}
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		// A file grows past the limit by at most one record.
		if st.Size() > int64(limit+size+32) || i < len(files)-1 && st.Size() <= int64(limit) {
			t.Errorf("%s: %d bytes with -C limit %d", file, st.Size(), limit)
		}
		wf := tsharkFrames(t, file)
		for _, w := range wf {
			nbytes += uint64(w.len)
		}
		frames += uint64(len(wf))
		if got := len(tcpdumpLengths(t, file)); got != len(wf) {
			t.Errorf("%s: tcpdump reads %d frames, tshark %d", file, got, len(wf))
		}
	}
	if _, err := os.Stat(base + fmt.Sprint(len(files))); err == nil {
		t.Errorf("%s%d exists but is not reported", base, len(files))
	}
	if frames != uint64(n) || nbytes != all {
		t.Errorf("%s: the files hold %d frames %d bytes, want %d %d", port, frames, nbytes, n, all)
	}
}

// TestCaptureReportsDrops stops nm-capture while frames pass the port it
// monitors: its monitor ring fills and the switch drops what does not fit
// (the monitored port never waits). nm-capture then reads the ring's 1023
// frames and reports exactly the frames it lost; the file holds the 1023.
func TestCaptureReportsDrops(t *testing.T) {
	needTools(t, "capinfos")
	const n = 3000
	d := startValed(t)
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rx", "-n", fmt.Sprint(n))
	d.waitPort(t, "vale0:b")
	file := filepath.Join(t.TempDir(), "drops.pcap")
	capt := start(t, d.sock, "nm-capture", "-i", "vale0:b/r@conf:rx-slots=1024", "-w", file, "-c", "1023")
	d.waitListed(t, "vale0:b/r")
	if err := capt.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate)
	if p, _ := totals(t, rx.Wait(30*time.Second)); p != n {
		t.Fatalf("vale0:b received %d frames, want %d", p, n)
	}
	capt.Cmd.Process.Signal(syscall.SIGCONT)
	out := capt.Wait(30 * time.Second)
	got, _, _ := captured(t, out)
	m := regexp.MustCompile(`nm-capture: (\d+) frames dropped because the receive ring was full`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("nm-capture reports no drops:\n%s", out)
	}
	lost, _ := strconv.ParseUint(m[1], 10, 64)
	if got != 1023 || got+lost != n {
		t.Errorf("captured %d and lost %d frames, want 1023 (a ring of 1024 slots) and %d", got, lost, n-1023)
	}
	if c := strings.TrimSpace(toolOutput(t, "capinfos", "-c", "-M", "-T", "-r", file)); !strings.HasSuffix(c, "\t1023") {
		t.Errorf("capinfos reads %q, want 1023 frames", c)
	}
}
