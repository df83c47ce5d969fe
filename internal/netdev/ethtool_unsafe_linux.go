package netdev

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Legacy ethtool commands and flags that x/sys/unix does not name.
const (
	ethtoolGFlags = 0x25    // ETHTOOL_GFLAGS
	ethtoolSFlags = 0x26    // ETHTOOL_SFLAGS
	ethFlagLRO    = 1 << 15 // ETH_FLAG_LRO
)

// ifreqData is struct ifreq with ifr_data, the argument of SIOCETHTOOL.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the 24-byte union
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue32 struct {
	cmd  uint32
	data uint32
}

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	Cmd                                         uint32
	MaxRx, MaxTx, MaxOther, MaxCombined         uint32
	RxCount, TxCount, OtherCount, CombinedCount uint32
}

func ethtool(name string, data unsafe.Pointer) error {
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = data
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

func ethtoolValue(name string, cmd uint32) (uint32, error) {
	v := ethtoolValue32{cmd: cmd}
	err := ethtool(name, unsafe.Pointer(&v))
	return v.data, err
}

func setEthtoolValue(name string, cmd, data uint32) error {
	v := ethtoolValue32{cmd: cmd, data: data}
	return ethtool(name, unsafe.Pointer(&v))
}

func channels(name string) (ethtoolChannels, error) {
	ch := ethtoolChannels{Cmd: unix.ETHTOOL_GCHANNELS}
	err := ethtool(name, unsafe.Pointer(&ch))
	return ch, err
}
