package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/vale/wire"
)

// Wireshark's extcap interface and pcap streams: tshark and tcpdump capture
// from vale's ports through nm-capture.

// wiresharkEnv makes a home directory whose personal extcap directory holds
// (a link to) nm-capture and returns the environment for tshark with it and
// valed's socket. Running as root, tshark ignores WIRESHARK_EXTCAP_DIR, but
// it scans the personal directory: the one `tshark -G folders` names
// (Wireshark 4.1 and later), else ~/.config/wireshark/extcap (4.0).
func wiresharkEnv(t testing.TB, sock string) []string {
	t.Helper()
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "HOME" && k != "VALE_SOCK" && !strings.HasPrefix(k, "XDG_") && !strings.HasPrefix(k, "WIRESHARK_") {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home, "VALE_SOCK="+sock)
	dir := filepath.Join(home, ".config", "wireshark", "extcap")
	out := envOutput(t, env, "tshark", "-G", "folders")
	if m := regexp.MustCompile(`(?m)^Personal Extcap path:\s*(\S.*)$`).FindStringSubmatch(out); m != nil {
		dir = strings.TrimSpace(m[1])
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(binDir, "nm-capture"), filepath.Join(dir, "nm-capture")); err != nil {
		t.Fatal(err)
	}
	return env
}

// envOutput runs a command with env and returns its standard output; it
// fails the test if the command fails or takes over a minute.
func envOutput(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// monitorsOf returns the monitors valed lists for port.
func monitorsOf(t testing.TB, d *daemon, port string) []wire.MonitorInfo {
	t.Helper()
	var ms []wire.MonitorInfo
	for _, m := range d.listing(t, "").Monitors {
		if m.Target == port {
			ms = append(ms, m)
		}
	}
	return ms
}

// waitMonitor waits until port has one monitor, of directions dirs.
func waitMonitor(t testing.TB, d *daemon, port, dirs string) {
	t.Helper()
	testutil.WaitFor(t, "a /"+dirs+" monitor of "+port, func() bool {
		ms := monitorsOf(t, d, port)
		if len(ms) > 1 || len(ms) == 1 && ms[0].Dirs != dirs {
			t.Fatalf("monitors of %s: %+v, want one /%s", port, ms, dirs)
		}
		return len(ms) == 1
	})
}

// waitNoMonitor waits until valed lists no monitor of port: the capture
// released it.
func waitNoMonitor(t testing.TB, d *daemon, port string) {
	t.Helper()
	testutil.WaitFor(t, "the monitor of "+port+" to go", func() bool { return len(monitorsOf(t, d, port)) == 0 })
}

// TestExtcapInterfaces checks that tshark, with nm-capture in its extcap
// directory, lists valed's ports and pipe ends as capture interfaces of
// link type Ethernet, and that without valed nm-capture lists none and
// still succeeds.
func TestExtcapInterfaces(t *testing.T) {
	needTools(t, "tshark")
	d := startValed(t)
	for _, p := range []string{"vale0:a", "vale0:b", "vale1:x", "netmap:p{7"} {
		d.open(t, p)
	}
	env := wiresharkEnv(t, d.sock)
	out := envOutput(t, env, "tshark", "-D")
	for _, want := range []string{"vale0:a (vale port vale0:a)", "vale0:b (vale port vale0:b)", "vale1:x (vale port vale1:x)",
		"netmap:p{7 (pipe master end netmap:p{7)", "netmap:p}7 (pipe slave end netmap:p}7)"} {
		if !regexp.MustCompile(`(?m)^\d+\. ` + regexp.QuoteMeta(want) + `$`).MatchString(out) {
			t.Errorf("tshark -D does not list %q:\n%s", want, out)
		}
	}
	if out := envOutput(t, env, "tshark", "-i", "vale0:a", "-L"); !strings.Contains(out, "EN10MB (Ethernet)") {
		t.Errorf("tshark -i vale0:a -L:\n%s", out)
	}

	// No valed: the version line only, the reason on stderr, status 0.
	cmd := exec.Command(filepath.Join(binDir, "nm-capture"), "--extcap-interfaces", "--extcap-version=4.0")
	gone := filepath.Join(t.TempDir(), "none.sock")
	cmd.Env = append(os.Environ(), "VALE_SOCK="+gone)
	var stderr testutil.LockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil || !regexp.MustCompile(`^extcap \{version=[^}]+\}.*\n$`).Match(stdout) || !strings.Contains(stderr.String(), gone) {
		t.Errorf("nm-capture --extcap-interfaces without valed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr.String())
	}
}

// TestExtcapCapture captures live with tshark -i: exactly the frames sent,
// both directions by default and one when Wireshark's option says so; the
// monitor goes when tshark stops, after -c or after -a duration with no
// traffic at all.
func TestExtcapCapture(t *testing.T) {
	needTools(t, "tshark", "capinfos")
	d := startValed(t)
	dir := t.TempDir()
	const n = 500
	start(t, d.sock, "pkt-gen", "-i", "vale0:a", "-f", "rx")
	d.waitPort(t, "vale0:a")
	// vale0:b exists before tshark starts (its /T binding takes no
	// frames): tshark only captures from interfaces the extcap lists.
	d.open(t, "vale0:b/T")
	env := wiresharkEnv(t, d.sock)

	t.Run("both directions", func(t *testing.T) {
		file := filepath.Join(dir, "rt.pcapng")
		ts := launchTshark(t, env, "-i", "vale0:a", "-c", fmt.Sprint(n), "-w", file)
		waitMonitor(t, d, "vale0:a", "rt")
		d.run(t, time.Minute, "pkt-gen", "-i", "vale0:b", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate)
		ts.Wait(time.Minute)
		checkTsharkCapture(t, file, n)
		waitNoMonitor(t, d, "vale0:a")
	})

	t.Run("direction t", func(t *testing.T) {
		file := filepath.Join(dir, "t.pcapng")
		opt := "extcap." + extcapPrefName(t, env, "vale0:b") + ".direction:t"
		ts := launchTshark(t, env, "-o", opt, "-i", "vale0:b", "-c", fmt.Sprint(n), "-w", file)
		waitMonitor(t, d, "vale0:b", "t")
		d.run(t, time.Minute, "pkt-gen", "-i", "vale0:b", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate)
		ts.Wait(time.Minute)
		checkTsharkCapture(t, file, n)
		waitNoMonitor(t, d, "vale0:b")
	})

	t.Run("no traffic", func(t *testing.T) {
		file := filepath.Join(dir, "idle.pcapng")
		ts := launchTshark(t, env, "-i", "vale0:a", "-a", "duration:2", "-w", file)
		waitMonitor(t, d, "vale0:a", "rt")
		ts.Wait(time.Minute)
		checkTsharkCapture(t, file, 0)
		waitNoMonitor(t, d, "vale0:a")
	})
}

// launchTshark starts tshark (quiet) with env and args.
func launchTshark(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command("tshark", append([]string{"-Q"}, args...)...)
	cmd.Env = env
	return launch(t, "tshark "+strings.Join(args, " "), cmd, nil)
}

// extcapPrefName returns the name under which Wireshark keeps an extcap
// interface's options (-o extcap.NAME.direction:t), as tshark lists them.
func extcapPrefName(t testing.TB, env []string, iface string) string {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(iface, "_"))
	prefs := envOutput(t, env, "tshark", "-G", "currentprefs")
	if !strings.Contains(prefs, "extcap."+name+".direction:") {
		t.Fatalf("tshark lists no option extcap.%s.direction:\n%s", name, testutil.Tail(prefs, 40))
	}
	return name
}

var capinfosRE = regexp.MustCompile(`Number of packets:\s*(\d+)\n`)

// checkTsharkCapture checks that capinfos and tshark count n frames of
// pkt-gen's (60 bytes each) in file.
func checkTsharkCapture(t testing.TB, file string, n int) {
	t.Helper()
	out := toolOutput(t, "capinfos", "-c", "-M", file)
	m := capinfosRE.FindStringSubmatch(out)
	if m == nil || atoi(t, m[1]) != uint64(n) {
		t.Errorf("capinfos %s, want %d packets:\n%s", file, n, out)
	}
	frames := tsharkFrames(t, file)
	for i, f := range frames {
		if f.len != 60 || f.capLen != 60 {
			t.Fatalf("%s frame %d: %d of %d bytes, want pkt-gen's 60", file, i+1, f.capLen, f.len)
		}
	}
	if len(frames) != n {
		t.Errorf("tshark reads %d frames in %s, want %d", len(frames), file, n)
	}
}

// TestExtcapFifo runs nm-capture as Wireshark does, into a fifo. Stopped
// by SIGTERM, it exits 0, says nothing (Wireshark takes anything on stderr
// for an error) and the fifo holds a pcap stream of every frame; when the
// reader closes the fifo, it stops by itself, traffic or not.
func TestExtcapFifo(t *testing.T) {
	needTools(t, "capinfos", "tshark")
	d := startValed(t)
	const n = 300
	start(t, d.sock, "pkt-gen", "-i", "vale0:a", "-f", "rx")
	d.waitPort(t, "vale0:a")
	dir := t.TempDir()
	capture := func(t *testing.T, name, dirs string) (*proc, string) {
		fifo := filepath.Join(dir, name)
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		p := start(t, d.sock, "nm-capture", "--capture", "--extcap-interface", "vale0:a", "--fifo", fifo,
			"--extcap-control-in", filepath.Join(dir, name+".in"), "--extcap-control-out", filepath.Join(dir, name+".out"), "--direction", dirs)
		return p, fifo
	}

	t.Run("SIGTERM", func(t *testing.T) {
		p, fifo := capture(t, "term", "r")
		read := make(chan []byte, 1)
		go func() {
			b, _ := os.ReadFile(fifo) // until nm-capture closes it
			read <- b
		}()
		waitMonitor(t, d, "vale0:a", "r")
		d.run(t, time.Minute, "pkt-gen", "-i", "vale0:b", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate)
		waitCaptured(t, d, "vale0:a", n)
		p.Cmd.Process.Signal(syscall.SIGTERM)
		if out := p.Wait(30 * time.Second); out != "" {
			t.Errorf("nm-capture as an extcap wrote %q", out)
		}
		file := filepath.Join(dir, "term.pcap")
		if err := os.WriteFile(file, <-read, 0o644); err != nil {
			t.Fatal(err)
		}
		checkTsharkCapture(t, file, n)
		waitNoMonitor(t, d, "vale0:a")
	})

	t.Run("reader closes", func(t *testing.T) {
		p, fifo := capture(t, "closed", "rt")
		f, err := os.Open(fifo)
		if err != nil {
			t.Fatal(err)
		}
		header := make([]byte, 24)
		_, err = io.ReadFull(f, header)
		f.Close()
		if err != nil {
			t.Fatalf("reading the pcap header: %v", err)
		}
		if out := p.Wait(30 * time.Second); out != "" {
			t.Errorf("nm-capture as an extcap wrote %q", out)
		}
		waitNoMonitor(t, d, "vale0:a")
	})
}

// TestCapturePipe writes pcap streams to standard output (-w -) for
// tcpdump -r -: tcpdump reads exactly what nm-capture -c wrote, and
// nm-capture stops cleanly when tcpdump -c closes the pipe first, whether
// frames still come (EPIPE) or not.
func TestCapturePipe(t *testing.T) {
	needTools(t, "tcpdump")
	d := startValed(t)
	const n = 200
	cases := []struct {
		name         string
		sw           string // switch, one per case
		send         int    // frames sent
		capArgs      []string
		tcpdumpCount int // tcpdump -c; 0: read to the end
	}{
		{"nm-capture -c", "vale1", n, []string{"-c", fmt.Sprint(n)}, 0},
		{"tcpdump -c, exact", "vale2", n, nil, n},
		{"tcpdump -c, more sent", "vale3", 3 * n, nil, n},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port := c.sw + ":a"
			start(t, d.sock, "pkt-gen", "-i", port, "-f", "rx")
			d.waitPort(t, port)
			nm, td := startPipeline(t, d, append([]string{"-i", port + "/rt", "-w", "-"}, c.capArgs...), c.tcpdumpCount)
			waitMonitor(t, d, port, "rt")
			d.run(t, time.Minute, "pkt-gen", "-i", c.sw+":b", "-f", "tx", "-n", fmt.Sprint(c.send), "-R", capRate)
			out := td.Wait(time.Minute)
			if got := strings.Count(out, " IP 10.0.0.1.1234 > 10.1.0.1.4321: UDP"); got != n {
				t.Errorf("tcpdump read %d frames, want %d:\n%s", got, n, testutil.Tail(out, 20))
			}
			summary := nm.Wait(30 * time.Second)
			frames, _, files := captured(t, summary)
			if frames < n || c.tcpdumpCount == 0 && frames != n || len(files) != 1 || files[0] != "-" {
				t.Errorf("nm-capture reports %d frames to %q, want %d to -", frames, files, n)
			}
			if lines := strings.Split(strings.TrimSpace(summary), "\n"); len(lines) != 1 {
				t.Errorf("nm-capture said more than its summary:\n%s", summary)
			}
			waitNoMonitor(t, d, port)
		})
	}
}

// startPipeline starts nm-capture with args, its standard output piped
// into tcpdump -n -r - (with -c count unless 0). nm-capture's proc holds
// its standard error only.
func startPipeline(t *testing.T, d *daemon, args []string, count int) (nm, td *proc) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	tdArgs := []string{"-n", "-r", "-"}
	if count > 0 {
		tdArgs = append(tdArgs, "-c", fmt.Sprint(count))
	}
	tcmd := exec.Command("tcpdump", tdArgs...)
	tcmd.Stdin = r
	td = launch(t, "tcpdump "+strings.Join(tdArgs, " "), tcmd, nil)

	ncmd := exec.Command(filepath.Join(binDir, "nm-capture"), append(args, "-q")...)
	ncmd.Env = append(os.Environ(), "VALE_SOCK="+d.sock)
	nm = &proc{T: t, Name: "nm-capture " + strings.Join(args, " "), Cmd: ncmd, Done: make(chan struct{})}
	ncmd.Stdout, ncmd.Stderr = w, &nm.Out
	if err := ncmd.Start(); err != nil {
		t.Fatalf("start nm-capture: %v", err)
	}
	go func() {
		nm.Err = ncmd.Wait()
		close(nm.Done)
	}()
	t.Cleanup(func() {
		if !nm.Exited() {
			ncmd.Process.Kill()
			<-nm.Done
		}
	})
	return nm, td
}
