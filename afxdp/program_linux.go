package afxdp

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ProgramName is the name of vale's XDP program, as bpftool and
// ip link show it.
const ProgramName = "vale_xsk"

// Mode is the XDP attach mode.
type Mode string

// XDP attach modes.
const (
	ModeAuto    Mode = ""        // native if the driver supports XDP, generic otherwise
	ModeNative  Mode = "native"  // in the driver (XDP_FLAGS_DRV_MODE)
	ModeGeneric Mode = "generic" // on the skb path, for any driver (XDP_FLAGS_SKB_MODE)
)

// ParseMode reads an attach mode as users write it: auto, native (drv) or
// generic (skb).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return ModeAuto, nil
	case "native", "drv", "driver":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return "", fmt.Errorf("unknown XDP mode %q (auto, native or generic)", s)
}

// program is vale's XDP program attached to one interface.
type program struct {
	xsks *ebpf.Map
	prog *ebpf.Program
	lnk  link.Link
	mode Mode
}

var memlockOnce sync.Once

// loadProgram creates the XSKMAP (entries for queues [0, maxQueue]) and the
// program that redirects each frame to the socket of its receive queue,
// passing frames of queues without a socket to the stack:
//
//	r2 = ctx->rx_queue_index
//	r1 = &xsks
//	r3 = XDP_PASS          // what bpf_redirect_map returns for a missing key
//	return bpf_redirect_map(r1, r2, r3)
func loadProgram(queues int) (*ebpf.Map, *ebpf.Program, error) {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	memlockOnce.Do(func() { rlimit.RemoveMemlock() })
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "vale_xsks",
		Type:       ebpf.XSKMap,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: uint32(queues),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create XSKMAP: %w%s", err, bpfHint(err))
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: ProgramName,
		Type: ebpf.XDP,
		Instructions: asm.Instructions{
			asm.LoadMem(asm.R2, asm.R1, 16, asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Imm(asm.R3, 2), // XDP_PASS
			asm.FnRedirectMap.Call(),
			asm.Return(),
		},
		License: "GPL",
	})
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("load XDP program: %w%s", err, bpfHint(err))
	}
	return m, p, nil
}

// attachProgram loads the program and attaches it to the interface in the
// mode asked for (native first, then generic, when auto). It never replaces
// a program that is already there.
func attachProgram(ifname string, ifindex, queues int, want Mode) (_ *program, err error) {
	xsks, prog, err := loadProgram(queues)
	if err != nil {
		return nil, err
	}
	pr := &program{xsks: xsks, prog: prog}
	defer func() {
		if err != nil {
			pr.close()
		}
	}()
	tries := []Mode{want}
	if want == ModeAuto {
		tries = []Mode{ModeNative, ModeGeneric}
	}
	for i, m := range tries {
		flags := link.XDPGenericMode
		if m == ModeNative {
			flags = link.XDPDriverMode
		}
		pr.lnk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
		if err == nil {
			pr.mode = m
			return pr, nil
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("%s: %w", ifname, busyError(ifindex))
		}
		if i == len(tries)-1 {
			return nil, fmt.Errorf("%s: attach XDP program in %s mode: %w%s", ifname, m, err, bpfHint(err))
		}
	}
	panic("unreachable")
}

// ErrBusy is returned (wrapped) when an interface already has an XDP
// program that vale did not attach, or one another vale daemon holds.
var ErrBusy = errors.New("interface busy")

// busyError says who holds the interface's XDP hook.
func busyError(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil || l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached {
		return fmt.Errorf("%w: another XDP program is attached", ErrBusy)
	}
	id := l.Attrs().Xdp.ProgId
	name := "?"
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		if info, err := p.Info(); err == nil {
			name = info.Name
		}
		p.Close()
	}
	if name == ProgramName {
		return fmt.Errorf("%w: XDP program %d (%s) of another vale daemon is attached", ErrBusy, id, name)
	}
	return fmt.Errorf("%w: XDP program %d (%s) is attached; vale does not replace another program (detach it with ip link set dev %s xdp off)", ErrBusy, id, name, l.Attrs().Name)
}

// register puts a socket into the XSKMAP at its queue.
func (pr *program) register(s *socket) error {
	if err := pr.xsks.Put(uint32(s.queue), uint32(s.fd)); err != nil {
		return fmt.Errorf("register socket of queue %d: %w", s.queue, err)
	}
	return nil
}

func (pr *program) close() {
	if pr.lnk != nil {
		pr.lnk.Close()
	}
	pr.prog.Close()
	pr.xsks.Close()
}

func bpfHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (loading XDP programs needs CAP_BPF and CAP_NET_ADMIN, or root; on kernels before 5.11 also RLIMIT_MEMLOCK)"
	}
	return ""
}

// RemoveStaleProgram removes vale's XDP program from the interface if it
// was attached through netlink rather than a BPF link, which is what a
// vale daemon killed on a kernel without XDP links leaves behind. (A BPF
// link goes away with the process that holds it, so a program attached by
// a live daemon, or by anyone else, is left alone.) It reports whether it
// removed one.
func RemoveStaleProgram(ifname string) (bool, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, err
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return false, nil
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
	if err != nil {
		return false, nil
	}
	info, err := p.Info()
	p.Close()
	if err != nil || info.Name != ProgramName {
		return false, nil
	}
	if linked, err := hasXDPLink(l.Attrs().Index); err != nil || linked {
		return false, err
	}
	flags := 0
	switch x.AttachMode {
	case nl.XDP_ATTACHED_SKB:
		flags = nl.XDP_FLAGS_SKB_MODE
	case nl.XDP_ATTACHED_DRV:
		flags = nl.XDP_FLAGS_DRV_MODE
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, -1, flags); err != nil {
		return false, fmt.Errorf("%s: remove stale XDP program %d: %w", ifname, x.ProgId, err)
	}
	return true, nil
}

// hasXDPLink reports whether a BPF link holds the XDP hook of the interface.
func hasXDPLink(ifindex int) (bool, error) {
	var it link.Iterator
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.XDPType {
			continue
		}
		if x := info.XDP(); x != nil && int(x.Ifindex) == ifindex {
			return true, nil
		}
	}
	return false, it.Err()
}
