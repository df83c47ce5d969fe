package sockfile

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func dir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	os.Chmod(d, 0o755)
	return d
}

func TestCreateAndRemove(t *testing.T) {
	d, state := dir(t), dir(t)
	path := filepath.Join(d, "s.sock")
	l, err := Listen("unix", path, state)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the socket: %v", err)
	}
	c.Close()
	if err := l.Chmod(0o660); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode: %v %v", fi, err)
	}
	l.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatal("the socket was left behind")
	}
	if recs, _ := filepath.Glob(filepath.Join(state, "socket-*")); len(recs) != 0 {
		t.Fatalf("records left: %v", recs)
	}
}

// A path that exists and is not a dead socket valed made is never removed.
func TestNeverRemovesForeignFiles(t *testing.T) {
	d, state := dir(t), dir(t)
	target := filepath.Join(d, "precious")
	os.WriteFile(target, []byte("data"), 0o644)
	link := filepath.Join(d, "link.sock")
	os.Symlink(target, link)
	foreignSock := filepath.Join(d, "foreign.sock")
	fl, err := net.Listen("unix", foreignSock)
	if err != nil {
		t.Fatal(err)
	}
	fl.(*net.UnixListener).SetUnlinkOnClose(false)
	fl.Close() // dead, and not valed's
	for _, p := range []string{target, link, foreignSock} {
		if _, err := Listen("unix", p, state); err == nil || !strings.Contains(err.Error(), "valed did not create it") {
			t.Errorf("%s: %v", p, err)
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "data" {
		t.Error("the link's target changed")
	}
}

// A socket valed made and left behind (it died) is replaced; a live one is
// not.
func TestStaleSocket(t *testing.T) {
	d, state := dir(t), dir(t)
	path := filepath.Join(d, "s.sock")
	l, err := Listen("unixpacket", path, state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unixpacket", path, state); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second listener on a live socket: %v", err)
	}
	l.UnixListener.Close() // as a valed that dies: the file and its record stay
	l2, err := Listen("unixpacket", path, state)
	if err != nil {
		t.Fatalf("replacing a stale socket valed made: %v", err)
	}
	l2.Close()
}

// A socket that is no longer the one created (someone replaced it) is not
// removed on close.
func TestCloseLeavesAReplacement(t *testing.T) {
	d := dir(t)
	path := filepath.Join(d, "s.sock")
	l, err := Listen("unix", path, "")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	os.WriteFile(path, []byte("someone else's"), 0o644)
	l.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "someone else's" {
		t.Fatalf("the replacement was removed: %v", err)
	}
}

func TestUnsafeDirectories(t *testing.T) {
	open := dir(t)
	os.Chmod(open, 0o777)
	if _, err := Listen("unix", filepath.Join(open, "s"), ""); err == nil || !strings.Contains(err.Error(), "other users") {
		t.Errorf("a world-writable directory: %v", err)
	}
	sticky := dir(t)
	os.Chmod(sticky, 0o777|os.ModeSticky)
	if l, err := Listen("unix", filepath.Join(sticky, "s"), ""); err != nil {
		t.Errorf("a sticky directory: %v", err)
	} else {
		l.Close()
	}
	real := dir(t)
	link := filepath.Join(dir(t), "dirlink")
	os.Symlink(real, link)
	if _, err := Listen("unix", filepath.Join(link, "s"), ""); err == nil {
		t.Error("a directory reached through a link at the end of the path")
	}
	if _, err := os.Lstat(filepath.Join(real, "s")); err == nil {
		t.Error("a socket was made through the link")
	}
}

// A client that dials as soon as the file appears is accepted: the socket
// is listening, with its final mode, before it is at its path, and no
// temporary file stays behind.
func TestSocketAppearsListening(t *testing.T) {
	d := dir(t)
	path := filepath.Join(d, "s.sock")
	for i := range 200 {
		seen := make(chan error, 1)
		go func() {
			for {
				if st, err := os.Lstat(path); err == nil {
					if st.Mode().Perm() != 0o640 {
						seen <- fmt.Errorf("socket appeared with mode %o", st.Mode().Perm())
						return
					}
					c, err := net.Dial("unixpacket", path)
					if err == nil {
						c.Close()
					}
					seen <- err
					return
				}
				runtime.Gosched()
			}
		}()
		l, err := ListenMode("unixpacket", path, "", 0o640)
		if err != nil {
			t.Fatal(err)
		}
		err = <-seen
		l.Close()
		if err != nil {
			t.Fatalf("round %d: a client that saw the socket: %v", i, err)
		}
	}
	if ents, _ := os.ReadDir(d); len(ents) != 0 {
		t.Errorf("left in the directory: %v", ents)
	}
}
