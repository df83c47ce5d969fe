package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/vishvananda/netns"
)

// Network namespaces made by the tests: names unique per run (the test
// process's pid and a counter), removed at the end of each test.

var nsSeq atomic.Int32

// netNS is a network namespace made for one test.
type netNS struct {
	name string
}

// newNetNS makes a namespace with its loopback up and IPv6 off (so that no
// neighbour discovery or router solicitation adds frames to exact counts).
func newNetNS(t testing.TB, tag string) *netNS {
	t.Helper()
	ns := &netNS{name: fmt.Sprintf("vale%d-%d-%s", os.Getpid(), nsSeq.Add(1), tag)}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s (the end-to-end tests need root and iproute2)", ns.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns.name, err, out)
		}
	})
	ns.sh(t, "ip link set lo up")
	ns.sh(t, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

// run runs a command in the namespace and returns its output; it fails the
// test if the command fails.
func (ns *netNS) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := ns.try(name, args...)
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", ns.name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command in the namespace.
func (ns *netNS) try(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sh runs a shell command line in the namespace.
func (ns *netNS) sh(t testing.TB, line string) string {
	t.Helper()
	return ns.run(t, "sh", "-c", line)
}

// veth makes a veth pair with end aName in a and end bName in b, both up.
func veth(t testing.TB, a *netNS, aName string, b *netNS, bName string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "add", aName, "netns", a.name, "type", "veth", "peer", "name", bName, "netns", b.name).CombinedOutput(); err != nil {
		t.Fatalf("create veth %s/%s: %v\n%s", aName, bName, err, out)
	}
	a.run(t, "ip", "link", "set", aName, "up")
	b.run(t, "ip", "link", "set", bName, "up")
}

// do runs f with the calling goroutine's thread in the namespace.
func (ns *netNS) do(t testing.TB, f func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns.name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	f()
}

// startValedIn starts valed in the namespace, on a socket of its own.
func startValedIn(t testing.TB, ns *netNS, args ...string) *daemon {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "valed.sock")
	return startValedAt(t, ns, sock, args...)
}

// startValedAt starts valed in the namespace (nil: the test's own) on
// socket sock (to start one again where a killed one was).
func startValedAt(t testing.TB, ns *netNS, sock string, args ...string) *daemon {
	t.Helper()
	os.Remove(sock)
	all := append([]string{filepath.Join(binDir, "valed"), "-sock", sock, "-log-level", "debug"}, args...)
	where := "the test's namespace"
	if ns != nil {
		all = append([]string{"ip", "netns", "exec", ns.name}, all...)
		where = ns.name
	}
	p := launch(t, "valed in "+where, exec.Command(all[0], all[1:]...), func(p *proc) {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Done:
			if p.Err != nil {
				t.Errorf("valed exited with %v after SIGTERM", p.Err)
			}
		case <-time.After(10 * time.Second):
			p.Cmd.Process.Kill()
			<-p.Done
			t.Errorf("valed did not stop on SIGTERM")
		}
	})
	d := &daemon{proc: p, sock: sock}
	testutil.WaitFor(t, "valed to listen", func() bool {
		_, err := os.Stat(sock)
		return err == nil || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("valed exited at start:\n%s", p.Out.String())
	}
	return d
}

// needCommands fails the test when a command it drives is missing.
func needCommands(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not found: install it (.ci/run installs iproute2, iputils-ping, iperf3 and ethtool): %v", n, err)
		}
	}
}
