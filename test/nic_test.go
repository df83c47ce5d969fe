package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/valeswitch/vale/internal/testutil"
	"github.com/vishvananda/netlink"
)

// Interfaces attached over AF_XDP, host ports and persistent interfaces,
// with real kernel traffic between network namespaces the tests make.

// xdpState returns what ip(8) says about the interface's XDP hook: "" if
// none, else "xdp" (native) or "xdpgeneric".
func xdpState(t testing.TB, ns *netNS, ifname string) string {
	t.Helper()
	out := ns.run(t, "ip", "-d", "link", "show", "dev", ifname)
	for _, f := range strings.Fields(out) {
		switch f {
		case "xdp", "xdpgeneric", "xdpdrv", "xdpoffload":
			return f
		}
	}
	return ""
}

var promiscRE = regexp.MustCompile(`promiscuity (\d+)`)

func promiscuity(t testing.TB, ns *netNS, ifname string) string {
	t.Helper()
	m := promiscRE.FindStringSubmatch(ns.run(t, "ip", "-d", "link", "show", "dev", ifname))
	if m == nil {
		t.Fatalf("ip -d link show %s: no promiscuity", ifname)
	}
	return m[1]
}

// gro returns the interface's generic-receive-offload setting ("on"/"off").
func gro(t testing.TB, ns *netNS, ifname string) string {
	t.Helper()
	for _, l := range strings.Split(ns.run(t, "ethtool", "-k", ifname), "\n") {
		if v, ok := strings.CutPrefix(l, "generic-receive-offload: "); ok {
			return strings.Fields(v)[0]
		}
	}
	t.Fatalf("ethtool -k %s: no GRO line", ifname)
	return ""
}

// ping pings addr from ns and reports whether every echo came back.
func ping(ns *netNS, addr string, count int) bool {
	out, err := ns.try("ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "2", addr)
	return err == nil && strings.Contains(out, fmt.Sprintf("%d received", count))
}

// iperf3 runs a TCP transfer of a second or two from client to server
// (address addr in server) and returns the bytes the server received.
func iperf3(t testing.TB, server *netNS, addr string, client *netNS) int64 {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", server.name, "iperf3", "-s", "-1", "-B", addr)
	var srvOut testutil.LockedBuffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Kill()
		srv.Wait()
	}()
	var out string
	var err error
	testutil.Eventually(5*time.Second, func() bool { // until the server listens
		out, err = client.try("iperf3", "-c", addr, "-t", "2", "-J")
		return !strings.Contains(out, "Connection refused")
	})
	if err != nil {
		t.Fatalf("iperf3 to %s: %v\n%s\nserver:\n%s", addr, err, out, srvOut.String())
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bytes int64   `json:"bytes"`
				Bps   float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	if res.Error != "" {
		t.Fatalf("iperf3: %s", res.Error)
	}
	t.Logf("iperf3 to %s: %d bytes, %.2f Gbit/s", addr, res.End.SumReceived.Bytes, res.End.SumReceived.Bps/1e9)
	return res.End.SumReceived.Bytes
}

// twoHosts makes a switch namespace with valed and two "hosts", each joined
// to the switch namespace by a veth pair: pA (10.77.0.1) <-> vA and
// pB (10.77.0.2) <-> vB.
func twoHosts(t testing.TB) (sw, a, b *netNS, d *daemon) {
	t.Helper()
	needCommands(t, "ip", "ping", "iperf3", "ethtool")
	sw, a, b = newNetNS(t, "sw"), newNetNS(t, "a"), newNetNS(t, "b")
	veth(t, a, "pA", sw, "vA")
	veth(t, b, "pB", sw, "vB")
	a.run(t, "ip", "addr", "add", "10.77.0.1/24", "dev", "pA")
	b.run(t, "ip", "addr", "add", "10.77.0.2/24", "dev", "pB")
	return sw, a, b, startValedIn(t, sw)
}

// Two namespaces talk through vale0, each attached by its veth, in both
// XDP modes: ping, and a TCP transfer with the senders' default offloads.
func TestNICForwarding(t *testing.T) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) {
			sw, a, b, d := twoHosts(t)
			_ = sw
			if mode == "generic" {
				// In generic mode the kernel hands AF_XDP the veth peer's
				// frames as the peer sent them: with segmentation offload,
				// up to 64 KiB, which no UMEM frame holds (native mode
				// turns the peer's segmentation off itself). README:
				// "Offloads".
				for _, h := range []struct {
					ns *netNS
					nm string
				}{{a, "pA"}, {b, "pB"}} {
					h.ns.run(t, "ethtool", "-K", h.nm, "tso", "off", "gso", "off")
				}
			}
			for _, v := range []string{"vA", "vB"} {
				out := d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:"+v, "-mode", mode)
				if want := fmt.Sprintf("attached vale0:%s to vale0 as port", v); !strings.Contains(out, want) || !strings.Contains(out, mode+"/copy") {
					t.Fatalf("vale-ctl -a: %s", out)
				}
			}
			// A copy monitor of the NIC port sees what it receives from
			// the switch: the echo replies (and ARP) coming back to pA.
			mon := d.open(t, "vale0:vA/r")
			if !ping(a, "10.77.0.2", 3) {
				t.Fatal("ping through the switch failed")
			}
			replies := 0
			for _, f := range rxFrames(t, mon, 0, 500*time.Millisecond) {
				if len(f) >= 34+8 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 1 && f[34] == 0 { // IPv4, ICMP echo reply
					replies++
				}
			}
			if replies != 3 {
				t.Errorf("the monitor of vale0:vA saw %d echo replies, want 3", replies)
			}
			if n := iperf3(t, b, "10.77.0.2", a); n < 1<<20 {
				t.Errorf("iperf3 moved only %d bytes", n)
			}
			st := d.portStats(t, "vale0:vA")
			if st.Kind != "nic" || !strings.HasPrefix(st.State, mode+"/copy") {
				t.Errorf("vale-ctl -l shows %v", st)
			}
			if st.Stats.TxPackets == 0 || st.Stats.RxPackets == 0 {
				t.Errorf("no traffic counted: %v", st)
			}
			// vale-ctl -p: the switch busy-polls vB's queue (netmap's
			// polling of a NIC) and traffic flows; -P puts it back to
			// sleeping.
			d.run(t, 10*time.Second, "vale-ctl", "-p", "vale0:vB")
			if p := d.portStats(t, "vale0:vB").Polling; p != "busy" {
				t.Errorf("after vale-ctl -p: polling %q", p)
			}
			if !ping(a, "10.77.0.2", 3) {
				t.Error("ping through a busy-polled NIC port failed")
			}
			d.run(t, 10*time.Second, "vale-ctl", "-P", "vale0:vB")
			if p := d.portStats(t, "vale0:vB").Polling; p != "" {
				t.Errorf("after vale-ctl -P: polling %q", p)
			}
			if !ping(a, "10.77.0.2", 3) {
				t.Error("ping after vale-ctl -P failed")
			}
			if out := d.runFail(t, "vale-ctl", "-p", "vale0:vB", "-window", "50us"); !strings.Contains(out, "no poll window") {
				t.Errorf("vale-ctl -p -window on a NIC: %s", out)
			}
		})
	}
}

// vale-ctl -h: a namespace reaches an address of the host's (valed's
// namespace) through the switch and the host port's TAP.
func TestHostPort(t *testing.T) {
	sw, a, _, d := twoHosts(t)
	out := d.run(t, 20*time.Second, "vale-ctl", "-h", "vale0:vA")
	if !strings.Contains(out, "attached vale0:vA to vale0") || !strings.Contains(out, "attached vale0:vA^ to vale0") {
		t.Fatalf("vale-ctl -h: %s", out)
	}
	sw.run(t, "ip", "addr", "add", "10.77.0.9/24", "dev", "vA^")
	mon := d.open(t, "vale0:vA^/t") // what the host stack sends into the switch
	if !ping(a, "10.77.0.9", 3) {
		t.Fatal("ping to the host port's address failed")
	}
	replies := 0
	for _, f := range rxFrames(t, mon, 0, 500*time.Millisecond) {
		if len(f) >= 42 && f[12] == 0x08 && f[13] == 0x00 && f[23] == 1 && f[34] == 0 {
			replies++
		}
	}
	if replies != 3 {
		t.Errorf("the monitor of the host port saw %d echo replies, want 3", replies)
	}
	if n := iperf3(t, sw, "10.77.0.9", a); n < 1<<20 {
		t.Errorf("iperf3 to the host moved only %d bytes", n)
	}
	if st := d.portStats(t, "vale0:vA^"); st == nil || st.Kind != "host" || st.Stats.TxPackets == 0 {
		t.Errorf("host port listed as %v", st)
	}
	if out := d.run(t, 10*time.Second, "vale-ctl", "-g", "vale0:vA^"); !strings.Contains(out, "vale0:vA^: port_idx 1 kind host") {
		t.Errorf("vale-ctl -g of the host port: %s", out)
	}
	// A host port goes with its interface.
	d.runFail(t, "vale-ctl", "-d", "vale0:vA^")
	d.run(t, 20*time.Second, "vale-ctl", "-d", "vale0:vA")
	if _, err := sw.try("ip", "link", "show", "dev", "vA^"); err == nil {
		t.Error("the host port's TAP outlived the detach")
	}
}

// vale-ctl -n/-a/-d/-r: a persistent interface carries traffic while
// attached and outlives a detach.
func TestPersistentInterface(t *testing.T) {
	sw, a, _, d := twoHosts(t)
	d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vA")
	d.run(t, 10*time.Second, "vale-ctl", "-n", "vt0", "-C", "512")
	out := d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vt0")
	if !strings.Contains(out, "(tap,") {
		t.Fatalf("vale-ctl -a vale0:vt0: %s", out)
	}
	sw.run(t, "ip", "addr", "add", "10.77.0.10/24", "dev", "vt0")
	if !ping(a, "10.77.0.10", 3) {
		t.Fatal("ping to the persistent interface failed")
	}
	if ifs := d.listing(t, "").Ifaces; len(ifs) != 1 || ifs[0].Name != "vt0" || ifs[0].Rings != 1 || ifs[0].Slots != 512 || ifs[0].Attached != "vale0:vt0" {
		t.Errorf("listing lacks the interface: %+v", ifs)
	}
	if out := d.runFail(t, "vale-ctl", "-r", "vt0"); !strings.Contains(out, "detach it first") {
		t.Errorf("-r of an attached interface: %s", out)
	}
	d.run(t, 10*time.Second, "vale-ctl", "-d", "vale0:vt0")
	sw.run(t, "ip", "link", "show", "dev", "vt0") // still there
	d.run(t, 10*time.Second, "vale-ctl", "-a", "vale0:vt0")
	if !ping(a, "10.77.0.10", 2) {
		t.Fatal("ping after reattaching failed")
	}
	d.run(t, 10*time.Second, "vale-ctl", "-d", "vale0:vt0")
	d.run(t, 10*time.Second, "vale-ctl", "-r", "vt0")
	if _, err := sw.try("ip", "link", "show", "dev", "vt0"); err == nil {
		t.Error("vt0 still exists after -r")
	}
	d.runFail(t, "vale-ctl", "-r", "vt0")
}

// oneHost makes a switch namespace (valed, vA with address 10.78.0.9 and
// GRO on) and a host namespace (pA, 10.78.0.1) that can ping vA directly.
func oneHost(t testing.TB) (sw, a *netNS) {
	t.Helper()
	needCommands(t, "ip", "ping", "ethtool")
	sw, a = newNetNS(t, "sw"), newNetNS(t, "a")
	veth(t, a, "pA", sw, "vA")
	a.run(t, "ip", "addr", "add", "10.78.0.1/24", "dev", "pA")
	sw.run(t, "ip", "addr", "add", "10.78.0.9/24", "dev", "vA")
	sw.run(t, "ethtool", "-K", "vA", "gro", "on")
	if !ping(a, "10.78.0.9", 2) {
		t.Fatal("setup: no ping without the switch")
	}
	return sw, a
}

// Detaching leaves the interface as it was: no XDP program, its GRO
// setting back, not promiscuous, up, and traffic to its address flowing
// again without the switch.
func TestDetachRestores(t *testing.T) {
	sw, a := oneHost(t)
	d := startValedIn(t, sw)
	d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vA", "-mode", "native")
	if x := xdpState(t, sw, "vA"); x != "xdp" {
		t.Errorf("attached: XDP state %q, want a native program", x)
	}
	if g := gro(t, sw, "vA"); g != "off" {
		t.Errorf("attached: GRO %s, want off", g)
	}
	if p := promiscuity(t, sw, "vA"); p != "1" {
		t.Errorf("attached: promiscuity %s, want 1", p)
	}
	if ping(a, "10.78.0.9", 1) {
		t.Error("the stack still answers on an interface the switch took")
	}
	d.run(t, 20*time.Second, "vale-ctl", "-d", "vale0:vA")
	if x := xdpState(t, sw, "vA"); x != "" {
		t.Errorf("detached: XDP state %q", x)
	}
	if g := gro(t, sw, "vA"); g != "on" {
		t.Errorf("detached: GRO %s, want on again", g)
	}
	if p := promiscuity(t, sw, "vA"); p != "0" {
		t.Errorf("detached: promiscuity %s", p)
	}
	if !strings.Contains(sw.run(t, "ip", "link", "show", "dev", "vA"), "state UP") {
		t.Error("detached: link not up")
	}
	if !ping(a, "10.78.0.9", 2) {
		t.Error("no traffic without the switch after detach")
	}
	if st := d.portStats(t, "vale0:vA"); st != nil {
		t.Errorf("detached port still listed: %v", st)
	}
	// Stopping valed detaches too.
	d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vA")
	d.Cmd.Process.Signal(syscall.SIGTERM)
	<-d.Done
	if x, g, p := xdpState(t, sw, "vA"), gro(t, sw, "vA"), promiscuity(t, sw, "vA"); x != "" || g != "on" || p != "0" {
		t.Errorf("after valed stopped: XDP %q, GRO %s, promiscuity %s", x, g, p)
	}
}

// A valed killed with SIGKILL leaves no XDP program behind (its link dies
// with it); the next valed puts back the offloads it had changed, and can
// attach the interface again.
func TestKilledValedCleanup(t *testing.T) {
	sw, a := oneHost(t)
	d := startValedIn(t, sw)
	d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vA", "-mode", "generic")
	if x := xdpState(t, sw, "vA"); x != "xdpgeneric" {
		t.Fatalf("attached: XDP state %q", x)
	}
	d.Cmd.Process.Signal(syscall.SIGKILL)
	<-d.Done
	testutil.WaitFor(t, "the XDP program to go", func() bool { return xdpState(t, sw, "vA") == "" })
	if p := promiscuity(t, sw, "vA"); p != "0" {
		t.Errorf("after SIGKILL: promiscuity %s", p)
	}
	if !ping(a, "10.78.0.9", 2) {
		t.Error("after SIGKILL: no traffic to the interface")
	}
	if g := gro(t, sw, "vA"); g != "off" {
		t.Fatalf("after SIGKILL: GRO %s; the test wants to see it restored by the next valed", g)
	}
	// The next valed restores the interface, then attaches it again from
	// its configuration file.
	cfg := filepath.Join(t.TempDir(), "valed.toml")
	if err := os.WriteFile(cfg, []byte("[[attach]]\nport = \"vale0:vA\"\nxdp_mode = \"generic\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d2 := startValedAt(t, sw, d.sock, "-c", cfg)
	if !strings.Contains(d2.Out.String(), "restored the settings") {
		t.Errorf("valed did not log the restore:\n%s", d2.Out.String())
	}
	if st := d2.portStats(t, "vale0:vA"); st == nil || !strings.HasPrefix(st.State, "generic/copy") {
		t.Fatalf("the configured attachment after restart: %v", st)
	}
	if x := xdpState(t, sw, "vA"); x != "xdpgeneric" {
		t.Errorf("attach after restart: XDP state %q", x)
	}
	if g := gro(t, sw, "vA"); g != "off" {
		t.Errorf("attached again: GRO %s", g)
	}
	d2.run(t, 20*time.Second, "vale-ctl", "-d", "vale0:vA")
	if g := gro(t, sw, "vA"); g != "on" {
		t.Errorf("after the second detach: GRO %s, want on (the setting from before the crash)", g)
	}
}

// Bad attachments get a clear error and change nothing.
func TestAttachErrors(t *testing.T) {
	sw, _ := oneHost(t)
	c := &attachCheck{t: t, sw: sw, d: startValedIn(t, sw)}
	d := c.d
	c.expect("no such interface", "-a", "vale0:nosuch0")
	sw.run(t, "ip", "link", "set", "vA", "down")
	c.expect("is down", "-a", "vale0:vA")
	sw.run(t, "ip", "link", "set", "vA", "up")
	c.unchanged("interface down")
	sw.run(t, "ip", "link", "set", "vA", "mtu", "3000")
	c.expect("MTU 3000 does not fit", "-a", "vale0:vA")
	c.unchanged("MTU too large")
	d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vA", "-frame-size", "4096")
	d.run(t, 20*time.Second, "vale-ctl", "-d", "vale0:vA")
	sw.run(t, "ip", "link", "set", "vA", "mtu", "1500")
	c.expect("no queue 5", "-a", "vale0:vA-5")
	c.expect("no zero-copy", "-a", "vale0:vA", "-zerocopy", "-mode", "native")
	c.expect("zero-copy needs native mode", "-a", "vale0:vA", "-zerocopy", "-mode", "generic")
	c.expect("unknown XDP mode", "-a", "vale0:vA", "-mode", "fast")
	c.unchanged("bad options")

	// Twice, and from another daemon.
	d.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vA")
	c.expect("exists already", "-a", "vale0:vA")
	c.expect("attached already, as vale0:vA", "-a", "vale1:vA")
	other := startValedIn(t, sw)
	if out := other.runFail(t, "vale-ctl", "-a", "vale0:vA"); !strings.Contains(out, "of another vale daemon") {
		t.Errorf("attach by a second valed: %s", out)
	}
	d.run(t, 20*time.Second, "vale-ctl", "-d", "vale0:vA")
	c.unchanged("second attach")

	c.foreignProgram()
	c.restrictedValed()

	c.expect("no such port", "-d", "vale0:vA")
	c.expect("no persistent interface", "-r", "nosuch0")
	c.expect("only valeX:IFNAME", "-a", "vale0:vA/x")
}

// attachCheck runs vale-ctl -a against interface vA of namespace sw,
// expecting refusals that leave the interface as it was.
type attachCheck struct {
	t  *testing.T
	sw *netNS
	d  *daemon
}

// unchanged checks that vA has no XDP program, GRO on, no promiscuity.
func (c *attachCheck) unchanged(what string) {
	c.t.Helper()
	if x := xdpState(c.t, c.sw, "vA"); x != "" {
		c.t.Errorf("%s: left XDP state %q", what, x)
	}
	if g := gro(c.t, c.sw, "vA"); g != "on" {
		c.t.Errorf("%s: left GRO %s", what, g)
	}
	if p := promiscuity(c.t, c.sw, "vA"); p != "0" {
		c.t.Errorf("%s: left promiscuity %s", what, p)
	}
}

// expect runs vale-ctl with args, which must fail saying want.
func (c *attachCheck) expect(want string, args ...string) {
	c.t.Helper()
	if out := c.d.runFail(c.t, "vale-ctl", args...); !strings.Contains(out, want) {
		c.t.Errorf("vale-ctl %s: %q, want it to say %q", strings.Join(args, " "), strings.TrimSpace(out), want)
	}
}

// foreignProgram checks that someone else's XDP program is never replaced.
func (c *attachCheck) foreignProgram() {
	t, sw := c.t, c.sw
	sw.do(t, func() {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "theirs", Type: ebpf.XDP, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
		if err != nil {
			t.Fatal(err)
		}
		defer prog.Close()
		l, err := netlink.LinkByName("vA")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetXdpFdWithFlags(l, prog.FD(), 2 /* XDP_FLAGS_SKB_MODE */); err != nil {
			t.Fatal(err)
		}
	})
	c.expect("(theirs) is attached; vale does not replace another program", "-a", "vale0:vA")
	if x := xdpState(t, sw, "vA"); x != "xdpgeneric" {
		t.Errorf("the foreign program is gone: %q", x)
	}
	sw.run(t, "ip", "link", "set", "dev", "vA", "xdpgeneric", "off")
	c.unchanged("foreign program")
}

// restrictedValed checks what a valed without the capabilities or the
// locked memory AF_XDP needs says.
func (c *attachCheck) restrictedValed() {
	t, sw := c.t, c.sw
	for _, r := range []struct {
		wrap []string
		want string
	}{
		{[]string{"setpriv", "--bounding-set", "-net_admin,-net_raw,-bpf,-sys_admin", "--inh-caps", "-net_admin,-net_raw,-bpf,-sys_admin"}, "CAP_NET_ADMIN"},
		{[]string{"prlimit", "--memlock=65536:65536", "setpriv", "--bounding-set", "-ipc_lock", "--inh-caps", "-ipc_lock"}, "RLIMIT_MEMLOCK"},
	} {
		sock := filepath.Join(t.TempDir(), "valed.sock")
		cmd := exec.Command("ip", append(append([]string{"netns", "exec", sw.name}, r.wrap...), filepath.Join(binDir, "valed"), "-sock", sock)...)
		weak := launch(t, "valed under "+r.wrap[0], cmd, nil)
		testutil.WaitFor(t, "the restricted valed", func() bool { _, err := os.Stat(sock); return err == nil || weak.Exited() })
		out, err := exec.Command(filepath.Join(binDir, "vale-ctl"), "-sock", sock, "-a", "vale0:vA").CombinedOutput()
		if err == nil || !strings.Contains(string(out), r.want) {
			t.Errorf("attach by valed under %v: %v %s, want it to name %s", r.wrap, err, out, r.want)
		}
		c.unchanged("restricted valed")
	}
}

// Scale-out: two valeds in two "hosts" joined by a kernel VXLAN device
// attached to each switch; pkt-gen ports on either switch exchange exact
// counts.
func TestVXLANScaleOut(t *testing.T) {
	needCommands(t, "ip")
	h1, h2 := newNetNS(t, "h1"), newNetNS(t, "h2")
	veth(t, h1, "u1", h2, "u2")
	h1.run(t, "ip", "addr", "add", "10.99.0.1/24", "dev", "u1")
	h2.run(t, "ip", "addr", "add", "10.99.0.2/24", "dev", "u2")
	for _, h := range []struct {
		ns           *netNS
		local, peer  string
		underlayName string
	}{{h1, "10.99.0.1", "10.99.0.2", "u1"}, {h2, "10.99.0.2", "10.99.0.1", "u2"}} {
		h.ns.run(t, "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "local", h.local, "remote", h.peer, "dstport", "4789", "dev", h.underlayName)
		h.ns.run(t, "ip", "link", "set", "vx0", "up")
	}
	d1, d2 := startValedIn(t, h1), startValedIn(t, h2)
	d1.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vx0")
	d2.run(t, 20*time.Second, "vale-ctl", "-a", "vale0:vx0")
	const n = 50000
	for _, dir := range []struct {
		from, to *daemon
		src, dst string
	}{{d1, d2, "vale0:a", "vale0:b"}, {d2, d1, "vale0:c", "vale0:d"}} {
		rx := start(t, dir.to.sock, "pkt-gen", "-i", dir.dst+bigRx, "-f", "rx", "-n", fmt.Sprint(n))
		dir.to.waitPort(t, dir.dst)
		txOut := dir.from.run(t, 60*time.Second, "pkt-gen", "-i", dir.src, "-f", "tx", "-n", fmt.Sprint(n), "-R", "100000")
		rxOut := rx.Wait(30 * time.Second)
		if p, b := totals(t, txOut); p != n || b != 60*n {
			t.Errorf("%s sent %d packets %d bytes", dir.src, p, b)
		}
		if p, b := totals(t, rxOut); p != n || b != 60*n {
			t.Errorf("%s received %d packets %d bytes from the other host", dir.dst, p, b)
		}
	}
}
