package peer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerGroups returns the peer's supplementary groups (SO_PEERGROUPS).
func peerGroups(fd int) ([]uint32, error) {
	groups := make([]uint32, 32)
	for {
		n := uint32(4 * len(groups))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&groups[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch e {
		case 0:
			return groups[:n/4], nil
		case unix.ERANGE:
			groups = make([]uint32, n/4+1)
		default:
			return nil, e
		}
	}
}
