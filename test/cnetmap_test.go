package e2e

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports/nmport"
)

// netmapDir holds libvale-netmap.so, vale-netmap and the .pc file built
// for this run (TestMain).
func netmapDir() string { return filepath.Join(binDir, "netmap") }

// cProgram compiles test/c/NAME.c with the flags pkg-config gives for
// vale-netmap and returns the binary; link also links libvale-netmap.so
// (pkg-config --libs), which then needs no preloading.
func cProgram(t testing.TB, name string, link bool) string {
	t.Helper()
	needCommands(t, "gcc", "pkg-config")
	args := []string{"--cflags"}
	if link {
		args = append(args, "--libs")
	}
	pc := exec.Command("pkg-config", append(args, "vale-netmap")...)
	pc.Env = append(os.Environ(), "PKG_CONFIG_PATH="+filepath.Join(netmapDir(), "lib", "pkgconfig"))
	flags, err := pc.Output()
	if err != nil {
		t.Fatalf("pkg-config vale-netmap: %v", err)
	}
	out := filepath.Join(t.TempDir(), name)
	src, _ := filepath.Abs(filepath.Join("c", name+".c"))
	gcc := exec.Command("gcc", append([]string{"-O2", "-Wall", "-Werror", "-o", out, src}, strings.Fields(string(flags))...)...)
	if b, err := gcc.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", name, err, b)
	}
	return out
}

// startC runs a netmap C program against d: through the vale-netmap
// wrapper, unless it was linked with the library.
func (d *daemon) startC(t testing.TB, linked bool, prog string, args ...string) *proc {
	t.Helper()
	argv := append([]string{prog}, args...)
	if !linked {
		argv = append([]string{filepath.Join(netmapDir(), "bin", "vale-netmap")}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "VALE_SOCK="+d.sock)
	return launch(t, strings.Join(argv, " "), cmd, nil)
}

// waitListed waits until vale-ctl lists name (a pipe end, say).
func (d *daemon) waitListed(t testing.TB, name string) {
	t.Helper()
	testutil.WaitFor(t, name+" to be listed", func() bool { return strings.Contains(d.run(t, 10*time.Second, "vale-ctl"), name) })
}

// runC runs a netmap C program to completion and returns its output.
func (d *daemon) runC(t testing.TB, prog string, args ...string) string {
	t.Helper()
	return d.startC(t, false, prog, args...).Wait(30 * time.Second)
}

// C programs written against netmap's API exchange exactly the frames
// they send through vale0, registered with NIOCCTRL or the legacy
// NIOCREGIF, waiting with poll or select next to an ordinary descriptor,
// binding all rings or one, preloaded or linked; a sender that exits with
// frames still in its ring has them delivered.
func TestCNetmapSendReceive(t *testing.T) {
	prog := cProgram(t, "nmsendrecv", false)
	linked := cProgram(t, "nmsendrecv", true)
	const n = "200000"
	for _, c := range []struct {
		name     string
		tx, rx   string
		args     []string
		useLinks bool
	}{
		{"nmreq-poll", "vale0:a", "vale0:b", nil, false},
		{"legacy-select", "vale0:a", "vale0:b", []string{"-legacy", "-select"}, false},
		{"one-ring", "vale0:a2@conf:rings=2", "vale0:b2@conf:rings=2", []string{"-ring", "1"}, false},
		{"linked", "vale0:a", "vale0:b", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := startValed(t)
			p := prog
			if c.useLinks {
				p = linked
			}
			rx := d.startC(t, c.useLinks, p, append([]string{"rx", c.rx, n}, c.args...)...)
			d.waitPort(t, strings.Split(c.rx, "@")[0])
			tx := d.startC(t, c.useLinks, p, append([]string{"tx", c.tx, n}, c.args...)...)
			if out := tx.Wait(30 * time.Second); !strings.Contains(out, "sent "+n) {
				t.Errorf("sender: %s", out)
			}
			if out := rx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
				t.Errorf("receiver: %s", out)
			}
		})
	}
}

// A sender that exits with frames still in its TX ring has them delivered,
// as netmap delivers them inside the sync: valed drains a closing
// binding's rings before it lets the port go. The receiver is slow and in
// lossless mode, so that the frames wait in the sender's ring.
func TestCNetmapSendAndExit(t *testing.T) {
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "20000"
	rx := d.startC(t, false, prog, "rx", "vale0:slow@conf:lossless=1", n, "-slow")
	d.waitPort(t, "vale0:slow")
	if out := d.runC(t, prog, "tx", "vale0:quick", n, "-nowait"); !strings.Contains(out, "sent "+n) {
		t.Errorf("sender: %s", out)
	}
	if out := rx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("receiver: %s", out)
	}
}

// A C program and the Go pkt-gen on the two ends of a switch, both ways.
func TestCNetmapWithGoPeer(t *testing.T) {
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "100000"
	goRx := start(t, d.sock, "pkt-gen", "-i", "vale0:gorx", "-f", "rx", "-n", n)
	d.waitPort(t, "vale0:gorx")
	if out := d.runC(t, prog, "tx", "vale0:ctx", n); !strings.Contains(out, "sent "+n) {
		t.Errorf("C sender: %s", out)
	}
	if out := goRx.Wait(30 * time.Second); !strings.Contains(out, "Received "+n+" packets") {
		t.Errorf("pkt-gen receiver: %s", out)
	}
	cRx := d.startC(t, false, prog, "rx", "vale0:crx", n, "-any")
	d.waitPort(t, "vale0:crx")
	d.run(t, 30*time.Second, "pkt-gen", "-i", "vale0:gotx", "-f", "tx", "-n", n)
	if out := cRx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("C receiver: %s", out)
	}
}

// netmap's structures and ioctls as the project's headers give them to C,
// against netmap's ABI (LP64).
func TestCNetmapHeaders(t *testing.T) {
	out, err := exec.Command(cProgram(t, "nmcheck", false), "offsets").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"netmap_slot.len": "4", "netmap_slot.flags": "6", "netmap_slot.ptr": "8",
		"netmap_ring.num_slots": "8", "netmap_ring.nr_buf_size": "12", "netmap_ring.ringid": "16",
		"netmap_ring.dir": "18", "netmap_ring.head": "20", "netmap_ring.cur": "24", "netmap_ring.tail": "28",
		"netmap_ring.flags": "32", "netmap_ring.ts": "40", "netmap_ring.offset_mask": "56",
		"netmap_ring.buf_align": "64", "netmap_ring.sem": "128", "netmap_ring.slot": "256",
		"netmap_if.ni_version": "16", "netmap_if.ni_flags": "20", "netmap_if.ni_tx_rings": "24",
		"netmap_if.ni_rx_rings": "28", "netmap_if.ni_bufs_head": "32", "netmap_if.ni_host_tx_rings": "36",
		"netmap_if.ni_host_rx_rings": "40", "netmap_if.ring_ofs": "56",
		"nmreq_header.nr_reqtype": "2", "nmreq_header.nr_name": "8", "nmreq_header.nr_options": "72",
		"nmreq_header.nr_body":      "80",
		"nmreq_register.nr_memsize": "8", "nmreq_register.nr_tx_slots": "16", "nmreq_register.nr_rx_slots": "20",
		"nmreq_register.nr_tx_rings": "24", "nmreq_register.nr_rx_rings": "26",
		"nmreq_register.nr_host_tx_rings": "28", "nmreq_register.nr_host_rx_rings": "30",
		"nmreq_register.nr_mem_id": "32", "nmreq_register.nr_ringid": "34", "nmreq_register.nr_mode": "36",
		"nmreq_register.nr_extra_bufs": "40", "nmreq_register.nr_flags": "48",
		"nmreq_option.nro_reqtype": "8", "nmreq_option.nro_status": "12", "nmreq_option.nro_size": "16",
		"nmreq.nr_version": "16", "nmreq.nr_offset": "20", "nmreq.nr_memsize": "24", "nmreq.nr_tx_slots": "28",
		"nmreq.nr_rx_slots": "32", "nmreq.nr_tx_rings": "36", "nmreq.nr_rx_rings": "38", "nmreq.nr_ringid": "40",
		"nmreq.nr_cmd": "42", "nmreq.nr_arg1": "44", "nmreq.nr_arg2": "46", "nmreq.nr_arg3": "48",
		"nmreq.nr_flags":     "52",
		"sizeof.netmap_slot": "16", "sizeof.netmap_ring": "256", "sizeof.netmap_if": "56",
		"sizeof.nmreq_header": "88", "sizeof.nmreq_register": "56", "sizeof.nmreq": "60",
		"ioctl.NIOCCTRL": "0xc0586997", "ioctl.NIOCREGIF": "0xc03c6992", "ioctl.NIOCGINFO": "0xc03c6991",
		"ioctl.NIOCTXSYNC": "0x6994", "ioctl.NIOCRXSYNC": "0x6995",
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			got[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s is %q in include/, netmap's is %s", k, got[k], v)
		}
	}
}

// A C receiver that waits with epoll, a netmap descriptor next to an
// ordinary one in the set, gets every frame.
func TestCNetmapEpoll(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "100000"
	rx := d.startC(t, false, check, "epoll", "vale0:ep", n)
	testutil.WaitFor(t, "the receiver's epoll set", func() bool { return strings.Contains(rx.Out.String(), "registered") })
	if out := d.runC(t, prog, "tx", "vale0:tx", n); !strings.Contains(out, "sent "+n) {
		t.Errorf("sender: %s", out)
	}
	if out := rx.Wait(30 * time.Second); !strings.Contains(out, "epoll received "+n) {
		t.Errorf("epoll receiver: %s", out)
	}
}

// PORT_INFO_GET and the legacy NIOCGINFO describe a port without binding
// it.
func TestCNetmapPortInfo(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	d := startValed(t)
	start(t, d.sock, "pkt-gen", "-i", "vale0:i@conf:rings=2,slots=512", "-f", "rx")
	d.waitPort(t, "vale0:i")
	out := d.runC(t, check, "info", "vale0:i")
	for _, want := range []string{"info 0 rings 2/2 slots 512/512 memsize>0 1", "ginfo 0 rings 2/2 slots 512/512 memsize>0 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

// What vale does not have answers with netmap's error codes and a message;
// POOLS_INFO_GET describes what the binding maps; a signal interrupts poll
// and select with EINTR; a ring whose head the program broke is put back
// as netmap's ring reinit does; a child keeps its parent's binding; a
// poller sees valed go.
func TestCNetmapEdges(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	recv := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const eopnotsupp = "errno 95"
	for _, c := range []struct{ args []string }{
		{[]string{"refuse", "vale0:x", "2", "0"}}, // NR_REG_SW: host rings
		{[]string{"refuse", "vale0:x", "7", "0"}}, // NR_REG_NULL
		{[]string{"option", "vale0:x"}},           // NETMAP_REQ_OPT_EXTMEM
	} {
		p := d.startC(t, false, check, c.args...)
		if out := p.Wait(10 * time.Second); !strings.Contains(out, eopnotsupp) || !strings.Contains(out, "vale-netmap: ") {
			t.Errorf("nmcheck %v: %s; want EOPNOTSUPP and a message", c.args, out)
		}
	}
	for _, c := range []struct{ name, want string }{
		{"vale0:p", "pools 0 memsize 1 mem_id 1 if 1 ring 1 buf 1"},
		{"netmap:q{1", "pools 0 memsize 1 mem_id 1 if 1 ring 1 buf 1"},
	} {
		if out := d.runC(t, check, "pools", c.name); !strings.Contains(out, c.want) {
			t.Errorf("POOLS_INFO_GET of %s: %s", c.name, out)
		}
	}
	if out := d.runC(t, check, "eintr", "vale0:i"); !strings.Contains(out, "poll -1 errno 4") || !strings.Contains(out, "select -1 errno 4") {
		t.Errorf("a signal during poll and select: %s", out)
	}
	out := d.runC(t, check, "reinit", "vale0:y")
	if !strings.Contains(out, "sync 0 head 0 cur 0 tail 1023") || !strings.Contains(out, "ring reinitialised") ||
		!strings.Contains(out, "sync 0 head 1 cur 1") {
		t.Errorf("a head out of range: %s", out)
	}
	rx := d.startC(t, false, recv, "rx", "vale0:r", "1000", "-any")
	d.waitPort(t, "vale0:r")
	if out := d.runC(t, check, "fork", "vale0:f", "1000"); !strings.Contains(out, "child sent 1000") {
		t.Errorf("fork: %s", out)
	}
	if out := rx.Wait(10 * time.Second); !strings.Contains(out, "received 1000") {
		t.Errorf("receiver of the child: %s", out)
	}
	dead := d.startC(t, false, check, "dead", "vale0:z")
	testutil.WaitFor(t, "the poller to register", func() bool { return strings.Contains(dead.Out.String(), "registered") })
	d.stopWith(t, syscall.SIGTERM)
	if out := dead.Wait(10 * time.Second); !strings.Contains(out, "POLLERR") {
		t.Errorf("poll after valed went away: %s", out)
	}
}

// Extra buffers are granted per binding from the pool the port was made
// with, chained from the binding's netmap_if, and taken back at close from
// whatever chain the program left there, swapped buffers included.
func TestCNetmapExtraBuffers(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	recv := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	creator, err := nmport.Open("vale0:e", &nmport.Options{Socket: d.sock, ExtraBufs: 8})
	if err != nil {
		t.Fatal(err)
	}
	if n := creator.ExtraBufs(); n != 8 {
		t.Fatalf("the creator got %d extra buffers, want 8", n)
	}
	seen := map[uint32]bool{}
	r := creator.TxRing(0)
	for idx := creator.BufsHead(); idx != 0; idx = binary.LittleEndian.Uint32(r.Buf(idx)) {
		if seen[idx] || idx < 2 || idx >= r.NumBufs() {
			t.Fatalf("chain reaches buffer %d again or outside the pool", idx)
		}
		seen[idx] = true
	}
	if len(seen) != 8 {
		t.Fatalf("the creator's chain has %d buffers, want 8", len(seen))
	}
	holder := d.open(t, "vale0:e")
	defer holder.Close()
	if out := d.runC(t, check, "extra", "vale0:e", "8"); !strings.Contains(out, "granted 0 chained 0") {
		t.Errorf("with the pool empty: %s", out)
	}
	creator.Close()
	rx := d.startC(t, false, recv, "rx", "vale0:r", "3", "-any")
	d.waitPort(t, "vale0:r")
	testutil.WaitFor(t, "the creator's buffers back in the pool", func() bool {
		return strings.Contains(d.runC(t, check, "extra", "vale0:e", "8"), "granted 8 chained 8")
	})
	// That program swapped an extra buffer into its ring and left the
	// ring's buffer in the chain: the pool is whole again all the same.
	for range 2 {
		if out := d.runC(t, check, "extra", "vale0:e", "8"); !strings.Contains(out, "granted 8 chained 8") || !strings.Contains(out, "sent from extra buffer") {
			t.Errorf("after a swap: %s", out)
		}
	}
	if out := rx.Wait(10 * time.Second); !strings.Contains(out, "received 3") {
		t.Errorf("frames sent from extra buffers: %s", out)
	}
}

// Pipes through the C API: frames between two C ends, a C end and the Go
// pkt-gen both ways, and a reflector that sends every frame back by
// swapping buffers between its RX and TX slots (zero copy, in order).
func TestCNetmapPipes(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "100000"
	rx := d.startC(t, false, prog, "rx", "netmap:cp}1", n)
	d.waitListed(t, "netmap:cp}1")
	if out := d.runC(t, prog, "tx", "netmap:cp{1", n); !strings.Contains(out, "sent "+n) {
		t.Errorf("C master: %s", out)
	}
	if out := rx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("C slave: %s", out)
	}

	goRx := start(t, d.sock, "pkt-gen", "-i", "netmap:gp}2", "-f", "rx", "-n", n)
	d.waitListed(t, "netmap:gp}2")
	if out := d.runC(t, prog, "tx", "netmap:gp{2", n); !strings.Contains(out, "sent "+n) {
		t.Errorf("C master: %s", out)
	}
	if out := goRx.Wait(30 * time.Second); !strings.Contains(out, "Received "+n+" packets") {
		t.Errorf("pkt-gen slave: %s", out)
	}
	cRx := d.startC(t, false, prog, "rx", "netmap:gp}3", n, "-any")
	d.waitListed(t, "netmap:gp}3")
	d.run(t, 30*time.Second, "pkt-gen", "-i", "netmap:gp{3", "-f", "tx", "-n", n)
	if out := cRx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("C slave of pkt-gen: %s", out)
	}

	refl := d.startC(t, false, check, "reflect", "netmap:zp}4", n)
	d.waitListed(t, "netmap:zp}4")
	if out := d.runC(t, check, "pingpong", "netmap:zp{4", n); !strings.Contains(out, "back "+n) {
		t.Errorf("frames sent back by the reflector: %s", out)
	}
	if out := refl.Wait(30 * time.Second); !strings.Contains(out, "reflected "+n) {
		t.Errorf("reflector: %s", out)
	}
}

// netmap's VALE control requests from C: a persistent interface made,
// attached, listed by name and by position, detached and removed; the
// port header length is 0 and cannot be set.
func TestCNetmapValeControl(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	ns := newNetNS(t, "cvale")
	d := startValedAt(t, ns, filepath.Join(t.TempDir(), "valed.sock"))
	start(t, d.sock, "pkt-gen", "-i", "vale0:zz", "-f", "rx")
	d.waitPort(t, "vale0:zz")
	out := d.runC(t, check, "vale", "nmv0")
	for _, want := range []string{
		"newif 0", "attach 0 index 1", "list vale0:nmv0 0 bridge 0 port 1",
		"entry vale0:zz bridge 0 port 0", "entry vale0:nmv0 bridge 0 port 1", "end 2",
		"hdr get 0 len 0", "hdr set 12: 95", "detach 0 index 1", "delif 0", "list after 2",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// The same through the legacy nr_cmd of NIOCREGIF and NIOCGINFO.
	out = d.runC(t, check, "legacy", "nmv1")
	for _, want := range []string{
		"newif 0", "attach 0", "list vale0:nmv1 0 bridge 0 port 1",
		"entry vale0:zz bridge 0 port 0", "entry vale0:nmv1 bridge 0 port 1", "end 2",
		"hdr get 0 len 0", "regops 95", "detach 0", "delif 0", "list after 2",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("legacy: no %q in:\n%s", want, out)
		}
	}
	for _, dev := range []string{"nmv0", "nmv1"} {
		if _, err := ns.try("ip", "link", "show", "dev", dev); err == nil {
			t.Errorf("the persistent interface %s outlived DELIF", dev)
		}
	}
}

// Monitors through the C API: a copy monitor (valed copies what the port
// sends) and a zero-copy monitor (the sender's syncs swap the sent
// buffers in) each see every frame.
func TestCNetmapMonitors(t *testing.T) {
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "20000"
	start(t, d.sock, "pkt-gen", "-i", "vale0:dst", "-f", "rx")
	start(t, d.sock, "pkt-gen", "-i", "vale0:src/R", "-f", "rx") // holds the port, RX rings only
	d.waitPort(t, "vale0:src")
	copyMon := d.startC(t, false, prog, "rx", "vale0:src/t", n, "-any")
	zeroMon := d.startC(t, false, prog, "rx", "vale0:src/z", n, "-any")
	testutil.WaitFor(t, "the monitors", func() bool {
		out := d.run(t, 10*time.Second, "vale-ctl")
		return strings.Contains(out, "vale0:src/t") && strings.Contains(out, "vale0:src/z")
	})
	// At 20 kpps a monitor that wakes late still has room: monitors lose
	// what does not fit, as netmap's do.
	d.run(t, 30*time.Second, "pkt-gen", "-i", "vale0:src/T", "-f", "tx", "-n", n, "-R", "20000")
	for name, p := range map[string]*proc{"copy": copyMon, "zero-copy": zeroMon} {
		if out := p.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
			t.Errorf("%s monitor: %s", name, out)
		}
	}
}

// A C client feeds the zero-copy monitors of its port and of its pipe end:
// the buffers of the slots the switch or the peer finished with go to the
// monitor, which sees every frame.
func TestCNetmapFeedsZeroCopyMonitors(t *testing.T) {
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "20000"
	start(t, d.sock, "pkt-gen", "-i", "vale0:zd", "-f", "rx")
	start(t, d.sock, "pkt-gen", "-i", "vale0:zs/R", "-f", "rx") // holds the port, RX rings only
	d.waitPort(t, "vale0:zs")
	mon := start(t, d.sock, "pkt-gen", "-i", "vale0:zs/z", "-f", "rx", "-n", n)
	d.waitListed(t, "vale0:zs/z")
	if out := d.runC(t, prog, "tx", "vale0:zs/T", n, "-pace", "20000"); !strings.Contains(out, "sent "+n) {
		t.Errorf("C sender: %s", out)
	}
	if out := mon.Wait(30 * time.Second); !strings.Contains(out, "Received "+n+" packets") {
		t.Errorf("zero-copy monitor of the C sender's port: %s", out)
	}

	rx := d.startC(t, false, prog, "rx", "netmap:zp}1", n)
	d.waitListed(t, "netmap:zp}1")
	pmon := start(t, d.sock, "pkt-gen", "-i", "netmap:zp}1/z", "-f", "rx", "-n", n)
	d.waitListed(t, "netmap:zp}1/z")
	if out := d.runC(t, prog, "tx", "netmap:zp{1", n, "-pace", "20000"); !strings.Contains(out, "sent "+n) {
		t.Errorf("C pipe sender: %s", out)
	}
	if out := rx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("C pipe receiver: %s", out)
	}
	if out := pmon.Wait(30 * time.Second); !strings.Contains(out, "Received "+n+" packets") {
		t.Errorf("zero-copy monitor of the C receiver's pipe end: %s", out)
	}
}

// A C reader of a port's first zero-copy monitor feeds the second: the
// buffers it gives back go to the next level, as netmap chains zero-copy
// monitors, and both levels see every frame the port sends.
func TestCNetmapFeedsNextZeroCopyLevel(t *testing.T) {
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "20000"
	start(t, d.sock, "pkt-gen", "-i", "vale0:cd", "-f", "rx")
	start(t, d.sock, "pkt-gen", "-i", "vale0:cs/R", "-f", "rx") // holds the port, RX rings only
	d.waitPort(t, "vale0:cs")
	level1 := d.startC(t, false, prog, "rx", "vale0:cs/z", n, "-any")
	d.waitListed(t, "vale0:cs/z")
	level2 := start(t, d.sock, "pkt-gen", "-i", "vale0:cs/z", "-f", "rx", "-n", n)
	testutil.WaitFor(t, "the second level", func() bool {
		return strings.Count(d.run(t, 10*time.Second, "vale-ctl"), "vale0:cs/z") >= 2
	})
	d.run(t, 30*time.Second, "pkt-gen", "-i", "vale0:cs/T", "-f", "tx", "-n", n, "-R", "20000")
	if out := level1.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("level 1 (C): %s", out)
	}
	if out := level2.Wait(30 * time.Second); !strings.Contains(out, "Received "+n+" packets") {
		t.Errorf("level 2, fed by the C reader: %s", out)
	}
}

// A hostile zero-copy monitor reader gives back garbage buffer indexes and
// breaks its head: the C client that feeds it never takes a bad index into
// its own ring (it would write out of its memory), its frames reach their
// destination exactly, and the monitor's ring is reset.
func TestCNetmapHostileMonitorReader(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "40000"
	rx := d.startC(t, false, prog, "rx", "vale0:hd", n)
	start(t, d.sock, "pkt-gen", "-i", "vale0:hs/R", "-f", "rx")
	d.waitPort(t, "vale0:hs")
	d.waitPort(t, "vale0:hd")
	bad := d.startC(t, false, check, "badmon", "vale0:hs/z", "4")
	d.waitListed(t, "vale0:hs/z")
	if out := d.runC(t, prog, "tx", "vale0:hs/T", n, "-pace", "20000"); !strings.Contains(out, "sent "+n) {
		t.Errorf("C sender feeding the hostile monitor: %s", out)
	}
	if out := rx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("receiver: %s", out)
	}
	if out := bad.Wait(30 * time.Second); !strings.Contains(out, "badmon gave back") || !strings.Contains(out, "reset by the switch") {
		t.Errorf("hostile monitor reader: %s", out)
	}
}

// C pipe ends feed the copy monitors of their pipe: what the master sends
// (/t) and what the slave receives (/r), every frame.
func TestCNetmapFeedsPipeCopyMonitors(t *testing.T) {
	prog := cProgram(t, "nmsendrecv", false)
	d := startValed(t)
	const n = "20000"
	rx := d.startC(t, false, prog, "rx", "netmap:cm}1", n)
	d.waitListed(t, "netmap:cm}1")
	rmon := start(t, d.sock, "pkt-gen", "-i", "netmap:cm}1/r", "-f", "rx", "-n", n)
	tmon := start(t, d.sock, "pkt-gen", "-i", "netmap:cm{1/t", "-f", "rx", "-n", n)
	d.waitListed(t, "netmap:cm}1/r")
	d.waitListed(t, "netmap:cm{1/t")
	if out := d.runC(t, prog, "tx", "netmap:cm{1", n, "-pace", "20000"); !strings.Contains(out, "sent "+n) {
		t.Errorf("C master: %s", out)
	}
	if out := rx.Wait(30 * time.Second); !strings.Contains(out, "received "+n) {
		t.Errorf("C slave: %s", out)
	}
	for name, p := range map[string]*proc{"/r of the slave": rmon, "/t of the master": tmon} {
		if out := p.Wait(30 * time.Second); !strings.Contains(out, "Received "+n+" packets") {
			t.Errorf("copy monitor %s: %s", name, out)
		}
	}
}

// Polling (vale-ctl -p/-P, netmap's VALE_POLLING_ENABLE/DISABLE by NIOCCTRL
// and by the legacy nr_cmd): valed lists the port as busy-polled on the
// CPUs asked, frames keep flowing exactly from the port while its workers
// spin, and disabling gives the port valed's default back.
func TestCNetmapPolling(t *testing.T) {
	check := cProgram(t, "nmcheck", false)
	d := startValed(t)
	const n = "200000"
	start(t, d.sock, "pkt-gen", "-i", "vale0:pp/R", "-f", "rx") // holds the port, RX rings only
	d.waitPort(t, "vale0:pp")
	polling := func() string { return d.portStats(t, "vale0:pp").Polling }
	initial := polling()

	d.run(t, 10*time.Second, "vale-ctl", "-p", "vale0:pp", "-C", "1,0,2")
	if got := polling(); got != "busy cpus 0,1" {
		t.Errorf("after vale-ctl -p -C 1,0,2: polling %q", got)
	}
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:pq", "-f", "rx", "-n", n)
	d.waitPort(t, "vale0:pq")
	d.run(t, 30*time.Second, "pkt-gen", "-i", "vale0:pp/T", "-f", "tx", "-n", n)
	if out := rx.Wait(30 * time.Second); !strings.Contains(out, "Received "+n+" packets") {
		t.Errorf("receiver of a busy-polled port: %s", out)
	}
	d.run(t, 10*time.Second, "vale-ctl", "-P", "vale0:pp")
	if got := polling(); got != initial {
		t.Errorf("after vale-ctl -P: polling %q, want %q", got, initial)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"on", "1", "1", "1"}, "busy cpus 1"},             // SINGLE_CPU on core 1
		{[]string{"off"}, initial},                                 // DISABLE
		{[]string{"on", "2", "0", "2", "legacy"}, "busy cpus 0,1"}, // NETMAP_BDG_POLLING_ON, NR_REG_ONE_NIC: MULTI_CPU
		{[]string{"off", "legacy"}, initial},
	} {
		out := d.runC(t, check, append([]string{"polling", "vale0:pp"}, c.args...)...)
		if !strings.Contains(out, "polling "+c.args[0]+" 0\n") {
			t.Errorf("polling %v: %s", c.args, out)
		}
		if got := polling(); got != c.want {
			t.Errorf("after polling %v: %q, want %q", c.args, got, c.want)
		}
	}
	if out := d.runC(t, check, "polling", "vale0:pp", "on", "2", "4096", "1"); !strings.Contains(out, "polling on 22\n") { // EINVAL
		t.Errorf("polling on a CPU valed does not have: %s", out)
	}
	if out := d.runC(t, check, "polling", "vale0:nosuch", "on"); !strings.Contains(out, "polling on 6\n") { // ENXIO, as netmap
		t.Errorf("polling a port that does not exist: %s", out)
	}
}
