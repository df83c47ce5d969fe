// Package peer tells who is at the other end of a control connection, as
// valed's own namespaces see it, and whether that party may administer
// valed.
//
// The uid, gid and groups come from the kernel (SO_PEERCRED,
// SO_PEERGROUPS): recorded when the peer connected and translated into
// valed's user namespace, so a process that is root only in a user
// namespace of its own shows its real uid. Capabilities are relative to a
// user namespace too: CAP_NET_ADMIN counts only if the peer holds it in
// valed's. The process is named by a pidfd (SO_PEERPIDFD), so that a peer
// that exits and whose pid is reused cannot lend its pid to another
// process. Any lookup that fails means no privilege.
package peer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cred is what valed knows of a peer.
type Cred struct {
	PID    int32    // in valed's pid namespace; 0 if the peer is not visible there
	UID    uint32   // effective uid when it connected, in valed's user namespace
	GID    uint32   // effective gid
	Groups []uint32 // supplementary groups when it connected
	// Admin says whether the peer may change what is attached: uid 0, or
	// CAP_NET_ADMIN in valed's user namespace.
	Admin bool
}

// InGroup reports whether gid is the peer's group or one of its
// supplementary groups.
func (c Cred) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// capNetAdmin is CAP_NET_ADMIN's bit in a capability set.
const capNetAdmin = 12

// Of returns the credentials of the peer of a connected unix socket.
func Of(c syscall.Conn) (Cred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var (
		cred Cred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) { cred, cerr = of(int(fd)) }); err != nil {
		return Cred{}, err
	}
	return cred, cerr
}

func of(fd int) (Cred, error) {
	u, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return Cred{}, fmt.Errorf("peer credentials: %w", err)
	}
	groups, err := peerGroups(fd)
	if err != nil {
		return Cred{}, fmt.Errorf("peer groups: %w", err)
	}
	c := Cred{PID: u.Pid, UID: u.Uid, GID: u.Gid, Groups: groups}
	c.Admin = u.Uid == 0 || hasNetAdmin(fd, u) == nil
	return c, nil
}

// hasNetAdmin returns nil if the peer holds CAP_NET_ADMIN in valed's user
// namespace, and why not otherwise.
func hasNetAdmin(sock int, u *unix.Ucred) error {
	pidfd, err := peerPidfd(sock, int(u.Pid))
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	if u.Pid <= 0 {
		return errors.New("peer not in valed's pid namespace")
	}
	dir, err := unix.Open(fmt.Sprintf("/proc/%d", u.Pid), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	// If the process the pidfd names is alive now, it was alive when its
	// /proc directory was opened, so dir is its directory: a pid is not
	// reused while its process lives.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil && err != unix.EPERM {
		return fmt.Errorf("peer gone: %w", err)
	}
	if err := sameUserNamespace(dir); err != nil {
		return err
	}
	return netAdminIn(dir, u.Uid)
}

// peerPidfd returns a pidfd of the peer: the one the kernel took when it
// connected, or (kernels before 6.5) one opened now by pid.
func peerPidfd(sock, pid int) (int, error) {
	fd, err := unix.GetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err == nil {
		return fd, nil
	}
	if err != unix.ENOPROTOOPT {
		return -1, fmt.Errorf("peer pidfd: %w", err)
	}
	fd, err = unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("peer pidfd: %w", err)
	}
	return fd, nil
}

// sameUserNamespace reports whether the process of /proc directory dir is
// in valed's user namespace.
func sameUserNamespace(dir int) error {
	theirs, err := readlinkat(dir, "ns/user")
	if err != nil {
		return fmt.Errorf("peer user namespace: %w", err)
	}
	ours, err := os.Readlink("/proc/self/ns/user")
	if err != nil {
		return fmt.Errorf("own user namespace: %w", err)
	}
	if theirs != ours {
		return fmt.Errorf("peer in user namespace %s, valed in %s", theirs, ours)
	}
	return nil
}

// netAdminIn reads the status of the process of /proc directory dir: its
// effective uid must still be uid (it did not exec a set-user-ID program
// since it connected) and its effective capabilities must hold
// CAP_NET_ADMIN.
func netAdminIn(dir int, uid uint32) error {
	fd, err := unix.Openat(dir, "status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "status")
	defer f.Close()
	var capEff uint64
	euid := int64(-1)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			if capEff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return fmt.Errorf("peer capabilities: %w", err)
			}
		}
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(v); len(f) >= 2 {
				euid, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if euid != int64(uid) {
		return fmt.Errorf("peer's effective uid is %d now, %d when it connected", euid, uid)
	}
	if capEff&(1<<capNetAdmin) == 0 {
		return errors.New("no CAP_NET_ADMIN")
	}
	return nil
}

func readlinkat(dir int, path string) (string, error) {
	b := make([]byte, 256)
	n, err := unix.Readlinkat(dir, path, b)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(b[:n], "\x00")), nil
}
