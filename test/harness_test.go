// Package e2e runs vale's real binaries together: valed, pkt-gen and
// vale-ctl as separate processes, plus clients written with the ports
// library in the test process itself.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports/nmport"
	"github.com/valeswitch/vale/vale/wire"
)

// binDir holds the binaries built for this run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vale-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/...", "./test/hostile")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		os.Exit(1)
	}
	// netmap's C API: lib/libvale-netmap.so, bin/vale-netmap and the .pc file.
	shim := exec.Command("tools/build-netmap.sh", filepath.Join(dir, "netmap"))
	shim.Dir = ".."
	shim.Stdout, shim.Stderr = os.Stderr, os.Stderr
	if err := shim.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building libvale-netmap.so (needs gcc):", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a started binary (see testutil.Proc).
type proc = testutil.Proc

// start runs binary name with args and kills it (if still running) at the
// end of the test.
func start(t testing.TB, sock, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = append(os.Environ(), "VALE_SOCK="+sock)
	return launch(t, name+" "+strings.Join(args, " "), cmd, nil)
}

// launch starts cmd for the test (see testutil.Launch).
func launch(t testing.TB, name string, cmd *exec.Cmd, stop func(*proc)) *proc {
	t.Helper()
	return testutil.Launch(t, name, cmd, stop)
}

// daemon is a valed started for one test, on its own socket.
type daemon struct {
	*proc
	sock string
}

func startValed(t testing.TB, args ...string) *daemon {
	t.Helper()
	return startValedAt(t, nil, filepath.Join(t.TempDir(), "valed.sock"), args...)
}

// run runs a binary to completion and returns its output.
func (d *daemon) run(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	return start(t, d.sock, name, args...).Wait(timeout)
}

// runFail runs a binary that must fail and returns its output.
func (d *daemon) runFail(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = append(os.Environ(), "VALE_SOCK="+d.sock)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("%s %v succeeded, want failure:\n%s", name, args, out)
	}
	return string(out)
}

// open opens a port with the client library.
func (d *daemon) open(t testing.TB, name string) *nmport.Port {
	t.Helper()
	p, err := nmport.Open(name, &nmport.Options{Socket: d.sock})
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// listing returns valed's listing of name ("" for everything), as
// vale-ctl -l -json prints it.
func (d *daemon) listing(t testing.TB, name string) *wire.ListReply {
	t.Helper()
	args := []string{"-l", "-json"}
	if name != "" {
		args = append(args, name)
	}
	out := d.run(t, 10*time.Second, "vale-ctl", args...)
	var l wire.ListReply
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("vale-ctl -l -json: %v\n%s", err, out)
	}
	return &l
}

// portStats returns what valed lists of port name (its counters in
// Stats), or nil if it is not listed.
func (d *daemon) portStats(t testing.TB, name string) *wire.PortInfo {
	t.Helper()
	for _, p := range d.listing(t, "").Ports {
		if p.Name == name {
			return &p
		}
	}
	return nil
}

func (d *daemon) waitPort(t testing.TB, name string) {
	t.Helper()
	testutil.WaitFor(t, name+" to exist", func() bool { return d.portStats(t, name) != nil })
}

var totalsRE = regexp.MustCompile(`(Sent|Received|Transactions) (\d+) packets (\d+) bytes`)

// totals extracts pkt-gen's closing "Sent|Received N packets B bytes" line.
func totals(t testing.TB, out string) (pkts, bytes uint64) {
	t.Helper()
	m := totalsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no totals in pkt-gen output:\n%s", out)
	}
	pkts, _ = strconv.ParseUint(m[2], 10, 64)
	bytes, _ = strconv.ParseUint(m[3], 10, 64)
	return pkts, bytes
}

func atoi(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return v
}
