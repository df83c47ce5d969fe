// Package sockfile creates the unix sockets valed listens on (its control
// socket, vhost-user sockets) without following symbolic links and without
// ever removing a file valed did not create.
//
// The socket's directory is opened once (its last component must not be a
// symbolic link) and every later step works relative to that descriptor:
// bind through /proc/self/fd, then chmod, chown, stat and unlink with the
// *at calls, so that renaming the directory or swapping a link into the
// path meanwhile cannot redirect them. A directory other users may write
// to is refused unless it is sticky (as /tmp), where they cannot replace
// valed's files. A path that exists is refused, except a dead socket this
// valed or an earlier one created there: each socket created is recorded
// (device and inode) in the state directory, and is removed on close only
// if the file at the path is still that one.
package sockfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Listener is a socket created here.
type Listener struct {
	*net.UnixListener
	path     string
	dirfd    int
	name     string
	dev, ino uint64
	record   string // the record in the state directory; "" if none
}

// record is what the state directory keeps of a socket created.
type record struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

// Listen creates the socket at path (network "unix" or "unixpacket") and
// listens on it. stateDir, if not empty, keeps the record that lets a
// later valed replace the socket should this one die without removing it.
func Listen(network, path, stateDir string) (*Listener, error) {
	return ListenMode(network, path, stateDir, 0)
}

// ListenMode is Listen with the socket's permissions set to mode (unless
// it is 0) before the socket appears at path. The socket is made under a
// temporary name, listened on and only then renamed into place, so that
// whoever sees the file at path can connect: a client that waits for the
// file never gets "connection refused" from the window between bind and
// listen.
func ListenMode(network, path, stateDir string, mode os.FileMode) (_ *Listener, err error) {
	clean := filepath.Clean(path)
	dir, name := filepath.Dir(clean), filepath.Base(clean)
	if name == "/" || name == "." || name == ".." {
		return nil, fmt.Errorf("socket path %q names no file", path)
	}
	dirfd, err := openDir(dir)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	l := &Listener{path: path, dirfd: dirfd, name: name}
	if stateDir != "" {
		l.record = recordPath(stateDir, path)
	}
	defer func() {
		if err != nil {
			unix.Close(dirfd)
		}
	}()
	if err := l.clearStale(network); err != nil {
		return nil, err
	}
	ul, err := l.listenInPlace(network, mode)
	if err != nil {
		return nil, err
	}
	l.UnixListener = ul
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		ul.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	l.dev, l.ino = st.Dev, st.Ino
	if err := l.writeRecord(); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// listenInPlace listens on a socket made under a temporary name in the
// directory, gives it mode (if not 0) and renames it to the socket's name,
// failing if something appeared there meanwhile.
func (l *Listener) listenInPlace(network string, mode os.FileMode) (*net.UnixListener, error) {
	tmp := fmt.Sprintf(".%s.%d.tmp", l.name, os.Getpid())
	unix.Unlinkat(l.dirfd, tmp, 0) // left by an earlier process with this pid, if any
	at := fmt.Sprintf("/proc/self/fd/%d/%s", l.dirfd, tmp)
	ul, err := net.ListenUnix(network, &net.UnixAddr{Name: at, Net: network})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", l.path, err)
	}
	ul.SetUnlinkOnClose(false) // the /proc path says nothing once dirfd is closed: Close unlinks
	fail := func(err error) (*net.UnixListener, error) {
		ul.Close()
		unix.Unlinkat(l.dirfd, tmp, 0)
		return nil, err
	}
	if mode != 0 {
		if err := unix.Fchmodat(l.dirfd, tmp, uint32(mode.Perm()), 0); err != nil {
			return fail(fmt.Errorf("mode of %s: %w", l.path, err))
		}
	}
	if err := unix.Renameat2(l.dirfd, tmp, l.dirfd, l.name, unix.RENAME_NOREPLACE); err != nil {
		return fail(fmt.Errorf("socket %s: %w", l.path, err))
	}
	return ul, nil
}

// openDir opens the directory a socket goes in, refusing one that others
// may write to unless it is sticky.
func openDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("directory %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("directory %s: %w", dir, err)
	}
	// The owner of a directory may remove anything in it, sticky or not.
	foreign := st.Uid != uint32(os.Geteuid()) && st.Uid != 0
	if foreign || (st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0) {
		unix.Close(fd)
		return -1, fmt.Errorf("directory %s (mode %o, owner %d) can be changed by other users: choose a directory only valed's user and root can write, or a sticky one", dir, st.Mode&0o7777, st.Uid)
	}
	return fd, nil
}

// clearStale makes room at the path: nothing there, or a dead socket that
// the record says valed created.
func (l *Listener) clearStale(network string) error {
	var st unix.Stat_t
	err := unix.Fstatat(l.dirfd, l.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", l.path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || !l.recorded(st.Dev, st.Ino) {
		return fmt.Errorf("%s exists and valed did not create it: remove it, or choose another path", l.path)
	}
	if c, err := net.DialUnix(network, nil, &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/%s", l.dirfd, l.name), Net: network}); err == nil {
		c.Close()
		return fmt.Errorf("%s is in use: a process is already listening there", l.path)
	}
	if err := unix.Unlinkat(l.dirfd, l.name, 0); err != nil {
		return fmt.Errorf("remove the stale socket %s: %w", l.path, err)
	}
	return nil
}

// Path returns the socket's path as given.
func (l *Listener) Path() string { return l.path }

// Chmod sets the socket's permissions.
func (l *Listener) Chmod(mode os.FileMode) error {
	if err := l.checkOurs(); err != nil {
		return err
	}
	if err := unix.Fchmodat(l.dirfd, l.name, uint32(mode.Perm()), 0); err != nil {
		return fmt.Errorf("mode of %s: %w", l.path, err)
	}
	return nil
}

// Chown gives the socket a group.
func (l *Listener) Chown(gid int) error {
	if err := unix.Fchownat(l.dirfd, l.name, -1, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("group of %s: %w", l.path, err)
	}
	return nil
}

// checkOurs reports whether the file at the path is still the socket
// created here.
func (l *Listener) checkOurs() error {
	var st unix.Stat_t
	if err := unix.Fstatat(l.dirfd, l.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("socket %s: %w", l.path, err)
	}
	if st.Dev != l.dev || st.Ino != l.ino {
		return fmt.Errorf("%s is no longer the socket valed created", l.path)
	}
	return nil
}

// Close stops listening and removes the socket, if the file at the path is
// still the one created here, and its record.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	if l.checkOurs() == nil {
		unix.Unlinkat(l.dirfd, l.name, 0)
	}
	if l.record != "" {
		os.Remove(l.record)
	}
	unix.Close(l.dirfd)
	return err
}

func recordPath(stateDir, path string) string {
	h := fnv.New64a()
	h.Write([]byte(path))
	return filepath.Join(stateDir, fmt.Sprintf("socket-%016x.json", h.Sum64()))
}

func (l *Listener) writeRecord() error {
	if l.record == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(l.record), 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	b, _ := json.Marshal(record{Path: l.path, Dev: l.dev, Ino: l.ino})
	tmp := l.record + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("record socket %s: %w", l.path, err)
	}
	if err := os.Rename(tmp, l.record); err != nil {
		return fmt.Errorf("record socket %s: %w", l.path, err)
	}
	return nil
}

// recorded reports whether the state directory says valed created the
// socket with this device and inode at the path.
func (l *Listener) recorded(dev, ino uint64) bool {
	if l.record == "" {
		return false
	}
	b, err := os.ReadFile(l.record)
	if err != nil {
		return false
	}
	var r record
	return json.Unmarshal(b, &r) == nil && r.Path == l.path && r.Dev == dev && r.Ino == ino
}
