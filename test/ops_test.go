package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports/nmport"
)

// Operating valed: configuration file, save and reload, metrics, access
// control, reopening after a restart.

// startValedConfig starts valed with configuration file path.
func startValedConfig(t testing.TB, path string, args ...string) *daemon {
	t.Helper()
	sock := filepath.Join(filepath.Dir(path), "valed.sock")
	return startValedAt(t, nil, sock, append([]string{"-c", path}, args...)...)
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A configuration file creates its interfaces and attachments at start,
// and valed refuses one with a bad key, naming file, line and key.
func TestConfigFile(t *testing.T) {
	needCommands(t, "ip")
	dir := t.TempDir()
	path := filepath.Join(dir, "valed.toml")
	writeFile(t, path, `
[log]
level = "debug"

[[interface]]
name = "vcfg0"

[[attach]]
port = "vale0:vcfg0"
`)
	d := startValedConfig(t, path)
	if st := d.portStats(t, "vale0:vcfg0"); st == nil || st.Kind != "tap" {
		t.Fatalf("the configured attachment is missing: %v", st)
	}
	d.stopWith(t, syscall.SIGTERM)
	if _, err := exec.Command("ip", "link", "show", "dev", "vcfg0").CombinedOutput(); err == nil {
		t.Error("vcfg0 outlived valed")
	}

	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, bad, "[ports]\nslots = 1024\nringz = 2\n")
	out, err := exec.Command(filepath.Join(binDir, "valed"), "-c", bad, "-sock", filepath.Join(dir, "x.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad+":3: ports.ringz: unknown key") {
		t.Errorf("valed with a bad key: %v\n%s", err, out)
	}
	writeFile(t, bad, "[ports]\nslots = 1024\n\n[switch]\nmax_ports = 99999\n")
	out, err = exec.Command(filepath.Join(binDir, "valed"), "-c", bad, "-sock", filepath.Join(dir, "x.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad+":5: switch.max_ports: 99999") {
		t.Errorf("valed with a bad value: %v\n%s", err, out)
	}
}

// stopWith signals valed and waits for it to exit.
func (d *daemon) stopWith(t testing.TB, sig syscall.Signal) {
	t.Helper()
	d.Cmd.Process.Signal(sig)
	select {
	case <-d.Done:
	case <-time.After(15 * time.Second):
		t.Fatal("valed did not stop")
	}
}

// vale-ctl -save writes what was attached at run time into the file; the
// next valed recreates it. With persist = true every change is saved.
func TestSaveAndRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "valed.toml")
	writeFile(t, path, "# the operator's comment\n[switch]\nmac_age = \"1m\"\n")
	d := startValedConfig(t, path)
	d.run(t, 10*time.Second, "vale-ctl", "-n", "vsave0", "-C", "128,128,2")
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale1:vsave0")
	d.run(t, 10*time.Second, "vale-ctl", "-save")
	b, _ := os.ReadFile(path)
	for _, want := range []string{"# the operator's comment", `mac_age = "1m"`, `name = "vsave0"`, "rings = 2", "slots = 128", `port = "vale1:vsave0"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("saved file lacks %q:\n%s", want, b)
		}
	}
	d.stopWith(t, syscall.SIGTERM)
	d = startValedConfig(t, path)
	if st := d.portStats(t, "vale1:vsave0"); st == nil || st.TxRings != 2 || st.RxRings != 2 {
		t.Fatalf("after restart: %v", st)
	}
	d.stopWith(t, syscall.SIGTERM)

	writeFile(t, path, "[state]\npersist = true\n")
	d = startValedConfig(t, path)
	d.run(t, 10*time.Second, "vale-ctl", "-n", "vsave1")
	b, _ = os.ReadFile(path)
	if !strings.Contains(string(b), `name = "vsave1"`) || !strings.Contains(string(b), "persist = true") {
		t.Errorf("persist: file is\n%s", b)
	}
	d.run(t, 10*time.Second, "vale-ctl", "-r", "vsave1")
	b, _ = os.ReadFile(path)
	if strings.Contains(string(b), "vsave1") {
		t.Errorf("persist: removed interface still saved:\n%s", b)
	}
}

// SIGHUP (and vale-ctl -reload) apply what changed in the file and leave
// alone the ports the change does not name.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "valed.toml")
	writeFile(t, path, "[[interface]]\nname = \"vrl0\"\n\n[[attach]]\nport = \"vale0:vrl0\"\n")
	d := startValedConfig(t, path)
	client := d.open(t, "vale0:client")
	before := d.portStats(t, "vale0:vrl0")
	writeFile(t, path, "[[interface]]\nname = \"vrl0\"\n\n[[attach]]\nport = \"vale0:vrl0\"\n\n[[interface]]\nname = \"vrl1\"\n\n[[attach]]\nport = \"vale0:vrl1\"\n")
	d.Cmd.Process.Signal(syscall.SIGHUP)
	d.waitPort(t, "vale0:vrl1")
	if after := d.portStats(t, "vale0:vrl0"); after.Index != before.Index {
		t.Errorf("an unchanged attachment was redone: %v -> %v", before, after)
	}
	writeFile(t, path, "[[interface]]\nname = \"vrl1\"\n\n[[attach]]\nport = \"vale0:vrl1\"\nslots = 64\n")
	d.run(t, 10*time.Second, "vale-ctl", "-reload")
	if st := d.portStats(t, "vale0:vrl0"); st != nil {
		t.Errorf("a removed attachment stayed: %v", st)
	}
	if st := d.portStats(t, "vale0:vrl1"); st == nil || st.TxSlots != 64 || st.RxSlots != 64 {
		t.Errorf("a changed attachment: %v", st)
	}
	if err := client.TxSync(); err != nil {
		t.Errorf("the client port was disturbed: %v", err)
	}
	if st := d.portStats(t, "vale0:client"); st == nil {
		t.Error("the client port is gone")
	}
	writeFile(t, path, "[ports]\nslots = 1\n")
	if out := d.runFail(t, "vale-ctl", "-reload"); !strings.Contains(out, "valed.toml:2: ports.slots") {
		t.Errorf("reload of a bad file: %s", out)
	}
}

// metric returns the value of the sample of name whose labels include
// every one of labels.
func metric(t testing.TB, text, name string, labels ...string) (float64, bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		ok := true
		for _, lb := range labels {
			if !strings.Contains(l, lb) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// scrape reads valed's metrics endpoint at addr.
func scrape(t testing.TB, addr string) string {
	t.Helper()
	var resp *http.Response
	var err error
	testutil.Eventually(5*time.Second, func() bool {
		resp, err = http.Get("http://" + addr + "/metrics")
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	return string(b)
}

// The Prometheus endpoint, scraped while traffic flows, counts what
// pkt-gen sent, exactly once it is done.
func TestMetrics(t *testing.T) {
	addr := freeAddr(t)
	d := startValed(t, "-metrics", addr)
	// Hold both ports (without the rings pkt-gen uses) so that their
	// counters outlive the pkt-gen processes.
	d.open(t, "vale0:b/T"+bigRx)
	d.open(t, "vale0:a/R")
	const n = 200000
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rx", "-n", fmt.Sprint(n))
	d.waitPort(t, "vale0:b")
	tx := start(t, d.sock, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", "100000")
	var mid float64
	testutil.WaitFor(t, "traffic", func() bool {
		v, _ := metric(t, scrape(t, addr), "vale_port_tx_packets_total", `port="vale0:a"`)
		mid = v
		return v > 0
	})
	if mid > n {
		t.Errorf("mid-traffic count %v above %d", mid, n)
	}
	tx.Wait(60 * time.Second)
	rx.Wait(60 * time.Second)
	text := scrape(t, addr)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vale_port_tx_packets_total", []string{`port="vale0:a"`, `kind="vale"`, `switch="vale0"`}, n},
		{"vale_port_tx_bytes_total", []string{`port="vale0:a"`}, 60 * n},
		{"vale_port_rx_packets_total", []string{`port="vale0:b"`}, n},
		{"vale_port_drops_total", []string{`port="vale0:b"`, `reason="dst_full"`}, 0},
		{"vale_switch_ports", []string{`switch="vale0"`}, 2},
	} {
		if v, ok := metric(t, text, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	for _, name := range []string{"vale_switch_batch_frames_bucket", "vale_switch_rounds_total", "vale_switch_mac_entries",
		"vale_port_ring_occupancy_frames", "go_goroutines", "process_open_fds"} {
		if _, ok := metric(t, text, name); !ok {
			t.Errorf("no %s in the scrape", name)
		}
	}
}

// A user without privileges, given the socket, opens ports of its own and
// nothing else: no attachments, no interfaces, not root's ports nor their
// monitors.
func TestAccessControl(t *testing.T) {
	needCommands(t, "setpriv")
	dir, err := os.MkdirTemp("", "vale-access-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bin")
	exec.Command("cp", "-r", binDir, bin).Run()
	os.Chmod(bin, 0o755)
	sock := filepath.Join(dir, "valed.sock")
	d := startValedAt(t, nil, sock, "-sock-mode", "0666")
	root := d.open(t, "vale0:root")
	_ = root
	// The C checker goes next to the binaries, where nobody can run it.
	nmcheck := filepath.Join(bin, "nmcheck-nobody")
	if b, err := os.ReadFile(cProgram(t, "nmcheck", false)); err != nil || os.WriteFile(nmcheck, b, 0o755) != nil {
		t.Fatalf("copy nmcheck: %v", err)
	}
	asNobody := func(name string, args ...string) (string, error) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", filepath.Join(bin, name)}, args...)...)
		cmd.Env = append(os.Environ(), "VALE_SOCK="+sock)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := asNobody("vale-ctl", "-l"); err != nil {
		t.Errorf("nobody cannot list: %v\n%s", err, out)
	}
	if out, err := asNobody("pkt-gen", "-i", "vale0:nobody", "-f", "tx", "-n", "1000"); err != nil || !strings.Contains(out, "Sent 1000 packets") {
		t.Errorf("nobody cannot use a port of its own: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"vale-ctl", "-n", "vnobody0"}, "permission denied"},
		{[]string{"vale-ctl", "-a", "vale0:lo"}, "permission denied"},
		{[]string{"vale-ctl", "-d", "vale0:root"}, "permission denied"},
		{[]string{"vale-ctl", "-save"}, "permission denied"},
		{[]string{"vale-ctl", "-p", "vale0:nobody"}, "permission denied"}, // busy polling burns a CPU
		{[]string{"pkt-gen", "-i", "vale0:root", "-f", "rx", "-n", "1"}, "vale0:root: permission denied: it belongs to uid 0"},
		{[]string{"pkt-gen", "-i", "vale0:root/rt", "-f", "rx", "-n", "1"}, "permission denied"},
		{[]string{"pkt-gen", "-i", "vale0:root/z", "-f", "rx", "-n", "1"}, "permission denied"},
	} {
		out, err := asNobody(c.args[0], c.args[1:]...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("nobody %v: %v, %q; want %q", c.args, err, strings.TrimSpace(out), c.want)
		}
	}
	if out, _ := asNobody("netmap/bin/vale-netmap", nmcheck, "polling", "vale0:root", "on"); !strings.Contains(out, "polling on 1\n") { // EPERM
		t.Errorf("nobody enabled polling through the C API: %s", out)
	}
	// Root may use anyone's ports.
	p := d.open(t, "vale0:nobody2")
	p.Close()
	// The default mode keeps everyone else out of the socket.
	sock2 := filepath.Join(dir, "private.sock")
	startValedAt(t, nil, sock2)
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", filepath.Join(bin, "vale-ctl"), "-sock", sock2, "-l")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("nobody on a 0600 socket: %v\n%s", err, out)
	}
}

// After valed restarts, a client's sync fails with ErrDisconnected and
// Reopen gives it a working port from the new valed.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "valed.sock")
	d := startValedAt(t, nil, sock)
	p, err := nmport.Open("vale0:re", &nmport.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	d.stopWith(t, syscall.SIGKILL)
	testutil.WaitFor(t, "the client to notice", func() bool { return p.TxSync() != nil })
	if err := p.TxSync(); !strings.Contains(err.Error(), nmport.ErrDisconnected.Error()) {
		t.Errorf("sync after valed died: %v", err)
	}
	d2 := startValedAt(t, nil, sock)
	np, err := p.Reopen(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer np.Close()
	if err := np.TxSync(); err != nil {
		t.Errorf("sync after reopen: %v", err)
	}
	if st := d2.portStats(t, "vale0:re"); st == nil {
		t.Error("the reopened port is not in the new valed")
	}
}
