package afxdp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/netdev"
	"github.com/valeswitch/vale/vale/frame"
)

// The tests run in a network namespace of their own: TestMain starts the
// test binary again under unshare(1), so every interface a test makes
// lives and dies with that process.
func TestMain(m *testing.M) {
	if os.Getenv("VALE_AFXDP_NETNS") == "" {
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "afxdp tests need root (network namespaces, veth, XDP, AF_XDP)")
			os.Exit(1)
		}
		cmd := exec.Command("unshare", append([]string{"--net", os.Args[0]}, os.Args[1:]...)...)
		cmd.Env = append(os.Environ(), "VALE_AFXDP_NETNS=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintln(os.Stderr, "run tests in a network namespace:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var vethSeq int

// veth makes a veth pair, both ends up, and returns their names: the end
// to attach and the peer a test sends and receives on.
func veth(t *testing.T) (string, string) {
	t.Helper()
	vethSeq++
	a, b := fmt.Sprintf("xa%d", vethSeq), fmt.Sprintf("xb%d", vethSeq)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatalf("create veth: %v", err)
	}
	t.Cleanup(func() { netlink.LinkDel(v) })
	for _, n := range []string{a, b} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// packetSocket is a raw socket on an interface, bound to receive every
// frame, for the test's side of the wire.
type packetSocket struct {
	fd      int
	ifindex int
}

func openPacket(t *testing.T, ifname string) *packetSocket {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: l.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	return &packetSocket{fd: fd, ifindex: l.Attrs().Index}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (p *packetSocket) send(frame []byte) error {
	return unix.Sendto(p.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: p.ifindex, Halen: 6})
}

// recvMatching waits up to a few seconds for a frame that carries tag.
func (p *packetSocket) recvMatching(t *testing.T, tag []byte) []byte {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			continue
		}
		if bytes.Contains(buf[:n], tag) {
			return append([]byte(nil), buf[:n]...)
		}
	}
	t.Fatalf("no frame with %q arrived", tag)
	return nil
}

// testFrame builds an Ethernet frame with an experimental EtherType that
// the stack ignores, carrying tag.
func testFrame(tag string, size int) []byte {
	f := make([]byte, size)
	copy(f, []byte{0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa, 0x88, 0xb5})
	copy(f[14:], tag)
	return f
}

// recvTagged calls Recv until a frame carrying tag comes, and releases.
func recvTagged(t *testing.T, p *Port, tag []byte) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		b := frame.NewBatch()
		for {
			b.Reset()
			if err := p.Recv(0, b); err != nil {
				close(got)
				return
			}
			for _, f := range b.Frames {
				if bytes.Contains(f.Data, tag) {
					data := append([]byte(nil), f.Data...)
					p.Release(0, b, len(b.Frames))
					got <- data
					return
				}
			}
			p.Release(0, b, len(b.Frames))
		}
	}()
	select {
	case f, ok := <-got:
		if !ok {
			t.Fatal("Recv stopped before the frame came")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatalf("the switch side never received the frame with %q", tag)
	}
	return nil
}

func xdpAttached(t *testing.T, ifname string) bool {
	t.Helper()
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Xdp != nil && l.Attrs().Xdp.Attached
}

// Frames cross in both directions, in every mode veth offers, and detaching
// leaves the interface as it was.
func TestAttachMovesFrames(t *testing.T) {
	for _, mode := range []Mode{ModeGeneric, ModeNative, ModeAuto} {
		t.Run(string(mode)+"auto"[:4*boolInt(mode == ModeAuto)], func(t *testing.T) {
			a, b := veth(t)
			peer := openPacket(t, b)
			p, err := Attach("vale0:"+a, a, Options{Mode: mode, RingSize: 256})
			if err != nil {
				t.Fatal(err)
			}
			want := mode
			if want == ModeAuto {
				want = ModeNative // veth runs XDP in its driver
			}
			if got := p.Mode(); got != string(want)+"/copy" {
				t.Errorf("mode %q, want %s/copy (veth has no zero-copy sockets)", got, want)
			}
			if d := p.Describe(); d.Kind != "nic" || d.TxRings != 1 || d.RxRings != 1 || d.TxSlots != 256 {
				t.Errorf("Describe() = %+v", d)
			}
			if !xdpAttached(t, a) {
				t.Fatal("no XDP program on the interface")
			}
			// Into the switch.
			in := testFrame("wire-to-switch", 100)
			// Send until the switch side has it: the first frames may
			// come before the socket is in the map.
			stop := make(chan struct{})
			go func() {
				for {
					peer.send(in)
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
			got := recvTagged(t, p, []byte("wire-to-switch"))
			close(stop)
			if !bytes.Equal(got, in) {
				t.Errorf("received %x, want %x", got, in)
			}
			// Out of the switch, single and multi-fragment frames.
			out := testFrame("switch-to-wire", 1514)
			batch := frame.NewBatch()
			batch.Add(out[:14], 0)
			batch.AddFragment(out[14:700])
			batch.AddFragment(out[700:])
			batch.Add(testFrame("short-frame-out", 60), 0)
			if n, bytes, err := p.Deliver(0, batch, []uint16{0, 1}); err != nil || n != 2 || bytes != 1514+60 {
				t.Fatalf("Deliver = %d, %d, %v", n, bytes, err)
			}
			if got := peer.recvMatching(t, []byte("switch-to-wire")); !bytesEqual(got, out) {
				t.Errorf("the wire got %d bytes, want the %d sent", len(got), len(out))
			}
			peer.recvMatching(t, []byte("short-frame-out"))
			p.Stop()
			if err := p.Free(); err != nil {
				t.Fatal(err)
			}
			if xdpAttached(t, a) {
				t.Error("the XDP program stayed after Free")
			}
			if l, _ := netlink.LinkByName(a); l.Attrs().Promisc != 0 {
				t.Error("the interface stayed promiscuous")
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func bytesEqual(a, b []byte) bool { return bytes.Equal(a, b) }

// Many frames at once: every one sent arrives, in both directions.
func TestBurst(t *testing.T) {
	a, b := veth(t)
	peer := openPacket(t, b)
	p, err := Attach("vale0:"+a, a, Options{Mode: ModeNative, RingSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.Stop(); p.Free() }()
	const n = 3000
	batch := frame.NewBatch()
	sent := 0
	for sent < n {
		batch.Reset()
		var which []uint16
		for i := 0; i < 400 && sent+i < n; i++ {
			batch.Add(testFrame(fmt.Sprintf("burst-%05d", sent+i), 64), 0)
			which = append(which, uint16(i))
		}
		k, _, err := p.Deliver(0, batch, which)
		if err != nil {
			t.Fatal(err)
		}
		sent += k
		if k < len(which) {
			p.WaitRoom(0, time.Now().Add(time.Second)) // completions free frames
		}
	}
	seen := map[string]bool{}
	buf := make([]byte, 2048)
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) < n && time.Now().Before(deadline) {
		k, _, err := unix.Recvfrom(peer.fd, buf, 0)
		if err == nil && k >= 24 && bytes.HasPrefix(buf[14:k], []byte("burst-")) {
			seen[string(buf[14:25])] = true
		}
	}
	if len(seen) != n {
		t.Errorf("the wire got %d distinct frames of %d", len(seen), n)
	}
}

// Errors a user can act on, and nothing changed by a failed attach.
func TestAttachErrors(t *testing.T) {
	a, _ := veth(t)
	if _, err := Attach("vale0:nope0", "nope0", Options{}); !errors.Is(err, netdev.ErrNoSuchInterface) {
		t.Errorf("missing interface: %v", err)
	}
	down, _ := veth(t)
	l, _ := netlink.LinkByName(down)
	netlink.LinkSetDown(l)
	if _, err := Attach("vale0:"+down, down, Options{}); err == nil || !strings.Contains(err.Error(), "down") {
		t.Errorf("interface down: %v", err)
	}
	big, _ := veth(t)
	l, _ = netlink.LinkByName(big)
	netlink.LinkSetMTU(l, 3000)
	if _, err := Attach("vale0:"+big, big, Options{}); err == nil || !strings.Contains(err.Error(), "MTU 3000") {
		t.Errorf("MTU too large: %v", err)
	}
	if p, err := Attach("vale0:"+big, big, Options{FrameSize: 4096}); err != nil {
		t.Errorf("MTU 3000 with 4096-byte frames: %v", err)
	} else {
		p.Stop()
		p.Free()
	}
	if _, err := Attach("vale0:"+a, a, Options{StartQueue: 3}); err == nil || !strings.Contains(err.Error(), "no queue 3") {
		t.Errorf("queue out of range: %v", err)
	}
	if _, err := Attach("vale0:"+a, a, Options{RingSize: 1000}); err == nil {
		t.Error("ring size not a power of two accepted")
	}

	// A second attach of an attached interface.
	p, err := Attach("vale0:"+a, a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Attach("vale1:"+a, a, Options{}); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "another vale daemon") {
		t.Errorf("second attach: %v", err)
	}
	p.Stop()
	p.Free()

	// Someone else's program is never replaced.
	foreign, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "not_vale", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	l, _ = netlink.LinkByName(a)
	if err := netlink.LinkSetXdpFdWithFlags(l, foreign.FD(), 2 /* SKB mode */); err != nil {
		t.Fatal(err)
	}
	_, err = Attach("vale0:"+a, a, Options{})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "not_vale") {
		t.Errorf("attach over a foreign program: %v", err)
	}
	if removed, err := RemoveStaleProgram(a); removed || err != nil {
		t.Errorf("RemoveStaleProgram removed a foreign program: %v %v", removed, err)
	}
	if !xdpAttached(t, a) {
		t.Error("the foreign program is gone")
	}
	if l, _ := netlink.LinkByName(a); l.Attrs().Promisc != 0 {
		t.Error("a failed attach left the interface promiscuous")
	}
}

// A vale program left through netlink (a daemon killed on a kernel without
// XDP links) is removed by the next attach and by RestoreStale, and the
// recorded offloads come back.
func TestStaleCleanup(t *testing.T) {
	a, _ := veth(t)
	xsks, prog, err := loadProgram(1)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := netlink.LinkByName(a)
	if err := netlink.LinkSetXdpFdWithFlags(l, prog.FD(), 2); err != nil {
		t.Fatal(err)
	}
	prog.Close()
	xsks.Close()
	if !xdpAttached(t, a) {
		t.Fatal("setup: no program attached")
	}
	dir := t.TempDir()
	// A record as a killed daemon leaves it: GRO was on before the attach.
	netdev.SetOffloads(a, netdev.Offloads{GRO: false})
	if _, err := recordState(dir, a, l.Attrs().Index, netdev.Offloads{GRO: true}); err != nil {
		t.Fatal(err)
	}
	// The record names a live process: it is ours, so RestoreStale acts.
	if err := RestoreStale(dir, nil); err != nil {
		t.Fatal(err)
	}
	if xdpAttached(t, a) {
		t.Error("the stale program is still attached")
	}
	if o, _ := netdev.GetOffloads(a); !o.GRO {
		t.Error("GRO was not restored")
	}
	if m, _ := os.ReadDir(dir); len(m) != 0 {
		t.Errorf("records left: %v", m)
	}
	_ = net.HardwareAddr{}
}

// Queue selection: all queues by default, or a range.
func TestQueues(t *testing.T) {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "xq0", NumRxQueues: 4, NumTxQueues: 4}, PeerName: "xq1"}
	if err := netlink.LinkAdd(v); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(v)
	l, _ := netlink.LinkByName("xq0")
	netlink.LinkSetUp(l)
	if n, err := netdev.RxQueues("xq0"); err != nil || n != 4 {
		t.Fatalf("RxQueues = %d, %v; want 4", n, err)
	}
	p, err := Attach("vale0:xq0", "xq0", Options{RingSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Describe(); d.TxRings != 4 || d.RxRings != 4 || !strings.Contains(d.State, "q0-3") {
		t.Errorf("all queues: %+v", d)
	}
	p.Stop()
	p.Free()
	p, err = Attach("vale0:xq0", "xq0", Options{RingSize: 64, StartQueue: 1, Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Describe(); d.TxRings != 2 || !strings.Contains(d.State, "q1-2") {
		t.Errorf("queues 1-2: %+v", d)
	}
	p.Stop()
	p.Free()
	if _, err := Attach("vale0:xq0", "xq0", Options{StartQueue: 3, Queues: 2}); err == nil {
		t.Error("queues beyond the last accepted")
	}
}
