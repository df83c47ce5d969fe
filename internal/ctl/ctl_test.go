package ctl

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pair returns two connected control connections.
func pair(t testing.TB) (*Conn, *Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *Conn {
		f := os.NewFile(uintptr(fd), "ctl")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return newConn(c.(*net.UnixConn), MaxMessage)
	}
	a, b := conn(fds[0]), conn(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestCallWithDescriptors(t *testing.T) {
	client, server := pair(t)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	go func() {
		var req Request
		fds, err := server.Recv(&req)
		CloseFDs(fds)
		if err != nil || req.Op != "ping" {
			server.ReplyError(err)
			return
		}
		server.ReplyOK(map[string]int{"answer": 42}, efd, efd)
	}()
	var reply map[string]int
	fds, err := client.Call("ping", map[string]string{"q": "x"}, &reply)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseFDs(fds)
	if reply["answer"] != 42 || len(fds) != 2 {
		t.Fatalf("reply %v with %d descriptors", reply, len(fds))
	}
	if _, err := unix.Write(fds[0], []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Errorf("received descriptor unusable: %v", err)
	}
}

func TestRemoteErrorAndStream(t *testing.T) {
	client, server := pair(t)
	go func() {
		var req Request
		server.Recv(&req)
		server.ReplyError(os.ErrNotExist)
		server.Recv(&req)
		server.ReplyMore([]int{1})
		server.ReplyMore([]int{2})
		server.ReplyOK([]int{3})
	}()
	if _, err := client.Call("x", nil, nil); err == nil || !strings.Contains(err.Error(), "file does not exist") {
		t.Fatalf("error %v", err)
	}
	var got []int
	err := client.CallStream("y", nil, func(b json.RawMessage) error {
		var v []int
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		got = append(got, v...)
		return nil
	})
	if err != nil || len(got) != 3 || got[2] != 3 {
		t.Fatalf("stream %v, %v", got, err)
	}
}

func TestClosedPeer(t *testing.T) {
	client, server := pair(t)
	server.Close()
	var r Reply
	if _, err := client.Recv(&r); !IsClosed(err) {
		t.Fatalf("Recv from a closed peer: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "s.sock")
	l, err := Listen(path, 0o600, state)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, 0o600, state); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("second listener: %v", err)
	}
	// A socket left behind by a dead daemon is replaced.
	l.l.UnixListener.Close()
	l, err = Listen(path, 0o600, state)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after Close: %v", err)
	}
	// One valed did not create is not.
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if _, err := Listen(path, 0o600, state); err == nil || !strings.Contains(err.Error(), "did not create") {
		t.Fatalf("a socket valed did not create: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the foreign socket was removed: %v", err)
	}
}

// FuzzRecv sends arbitrary datagrams, with and without descriptors, and
// checks that Recv returns a message or an error, never panics, and never
// leaks a descriptor on error.
func FuzzRecv(f *testing.F) {
	f.Add([]byte(`{"op":"open","body":{"name":"vale0:a"}}`), uint8(0))
	f.Add([]byte(`{"op":1}`), uint8(2))
	f.Add([]byte{0xff, 0xfe}, uint8(1))
	f.Fuzz(func(t *testing.T, msg []byte, nfds uint8) {
		client, server := pair(t)
		var rights []byte
		if n := int(nfds % 4); n > 0 {
			fds := make([]int, n)
			for i := range fds {
				fds[i], _ = unix.Eventfd(0, unix.EFD_CLOEXEC)
			}
			rights = unix.UnixRights(fds...)
			defer CloseFDs(fds)
		}
		if _, _, err := client.c.WriteMsgUnix(msg, rights, nil); err != nil {
			return
		}
		var req Request
		fds, err := server.Recv(&req)
		if err != nil && fds != nil {
			t.Fatalf("descriptors returned with error %v", err)
		}
		CloseFDs(fds)
	})
}

// A refused client whose request is already queued reads the reason, not
// ECONNRESET (which a plain close with the request unread would give it).
func TestRefuseWithRequestQueued(t *testing.T) {
	client, server := pair(t)
	if err := client.Send(Request{Op: "list"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		server.Refuse(errors.New("too many control connections"))
		close(done)
	}()
	var r Reply
	if _, err := client.Recv(&r); err != nil || r.Error != "too many control connections" {
		t.Fatalf("refused client read %+v, %v; want the reason", r, err)
	}
	if _, err := client.Recv(&r); !IsClosed(err) {
		t.Fatalf("after the reason: %v, want end of file", err)
	}
	client.Close()
	<-done
}

// A refused client that never goes does not hold Refuse past its linger.
func TestRefuseLingerBounded(t *testing.T) {
	client, server := pair(t)
	_ = client
	start := time.Now()
	server.Refuse(errors.New("no"))
	if waited := time.Since(start); waited > refuseLinger+time.Second {
		t.Fatalf("Refuse waited %v for a peer that stays", waited)
	}
}
