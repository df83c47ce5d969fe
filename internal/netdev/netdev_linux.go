// Package netdev reads and changes the Linux network interfaces valed
// attaches to its switches: lookups with errors a user can act on, receive
// queue counts, the offloads that must be off while a switch takes an
// interface's frames, and promiscuous mode held for as long as a
// descriptor is open.
package netdev

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoSuchInterface is returned (wrapped) for a name no interface has.
var ErrNoSuchInterface = errors.New("no such interface")

// Lookup returns the interface called name.
func Lookup(name string) (netlink.Link, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ || strings.ContainsAny(name, "/: \t\n") {
		return nil, fmt.Errorf("%q is not a valid interface name", name)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("%s: %w", name, ErrNoSuchInterface)
		}
		return nil, fmt.Errorf("look up interface %s: %w", name, err)
	}
	return l, nil
}

// IsUp reports whether the interface is administratively up.
func IsUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

// RxQueues returns how many receive queues the interface uses: the channel
// counts ethtool reports where the driver has them, else the queues in
// sysfs, else the queues the interface was created with.
func RxQueues(name string) (int, error) {
	if ch, err := channels(name); err == nil && ch.RxCount+ch.CombinedCount > 0 {
		return int(ch.RxCount + ch.CombinedCount), nil
	}
	if m, err := filepath.Glob(filepath.Join("/sys/class/net", name, "queues", "rx-*")); err == nil && len(m) > 0 {
		return len(m), nil
	}
	l, err := Lookup(name)
	if err != nil {
		return 0, err
	}
	return max(l.Attrs().NumRxQueues, 1), nil
}

// Offloads are the receive offloads that coalesce frames. A switch that
// takes an interface's frames before the stack (AF_XDP in generic mode sees
// them after GRO) needs them off: a coalesced frame is larger than any
// frame on the wire.
type Offloads struct {
	GRO bool `json:"gro"`
	LRO bool `json:"lro"`
}

// GetOffloads returns the interface's GRO and LRO settings.
func GetOffloads(name string) (Offloads, error) {
	var o Offloads
	gro, err := ethtoolValue(name, unix.ETHTOOL_GGRO)
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return o, fmt.Errorf("%s: read GRO setting: %w", name, err)
	}
	o.GRO = gro != 0
	flags, err := ethtoolValue(name, ethtoolGFlags)
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return o, fmt.Errorf("%s: read LRO setting: %w", name, err)
	}
	o.LRO = flags&ethFlagLRO != 0
	return o, nil
}

// SetOffloads changes the interface's GRO and LRO settings to o.
func SetOffloads(name string, o Offloads) error {
	cur, err := GetOffloads(name)
	if err != nil {
		return err
	}
	if cur.GRO != o.GRO {
		if err := setEthtoolValue(name, unix.ETHTOOL_SGRO, b2u(o.GRO)); err != nil {
			return fmt.Errorf("%s: set GRO %s: %w%s", name, onOff(o.GRO), err, PermissionHint(err))
		}
	}
	if cur.LRO != o.LRO {
		flags, err := ethtoolValue(name, ethtoolGFlags)
		if err != nil {
			return fmt.Errorf("%s: read LRO setting: %w", name, err)
		}
		flags &^= ethFlagLRO
		if o.LRO {
			flags |= ethFlagLRO
		}
		if err := setEthtoolValue(name, ethtoolSFlags, flags); err != nil {
			return fmt.Errorf("%s: set LRO %s: %w%s", name, onOff(o.LRO), err, PermissionHint(err))
		}
	}
	return nil
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Promiscuous puts the interface with index ifindex in promiscuous mode
// for as long as the returned file is open, the way tcpdump does: the
// kernel counts the hold, so it ends when valed closes the file or dies,
// and does not disturb anyone else's.
func Promiscuous(ifindex int) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create packet socket for promiscuous mode: %w%s", err, PermissionHint(err))
	}
	mreq := unix.PacketMreq{Ifindex: int32(ifindex), Type: unix.PACKET_MR_PROMISC}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("enter promiscuous mode: %w", err)
	}
	return os.NewFile(uintptr(fd), "promisc"), nil
}

// Driver returns the name of the interface's driver ("veth", "ixgbe", ...),
// or "" if it does not say.
func Driver(name string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, name)
	if err != nil {
		return ""
	}
	return unix.ByteSliceToString(info.Driver[:])
}

// LocalSenders reports whether frames received on the interface may come
// straight from a local stack, with the checksums a sender leaves to
// offload still partial: a veth (or netkit) pair's peer transmits into it.
func LocalSenders(name string) bool {
	switch Driver(name) {
	case "veth", "netkit":
		return true
	}
	return false
}

// PermissionHint explains a permission error from an interface operation.
func PermissionHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (valed needs CAP_NET_ADMIN and CAP_NET_RAW to attach interfaces: run it as root)"
	}
	return ""
}
