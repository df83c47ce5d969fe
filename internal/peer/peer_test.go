package peer

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The test binary doubles as the peer: with PEER_SOCK set it connects to
// that socket and waits for its standard input to close.
func TestMain(m *testing.M) {
	if sock := os.Getenv("PEER_SOCK"); sock != "" {
		c, err := net.Dial("unix", sock)
		if err != nil {
			os.Exit(2)
		}
		io.Copy(io.Discard, os.Stdin)
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// peerAs runs the test binary as a peer, through the command prefix
// (setpriv, unshare), and returns the credentials valed would see.
func peerAs(t *testing.T, prefix ...string) Cred {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("this test runs peers as other users: run it as root (sudo make test)")
	}
	dir, err := os.MkdirTemp("", "vale-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "peer")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.SetDeadline(time.Now().Add(20 * time.Second))
	os.Chmod(sock, 0o777)
	cmd := exec.Command(prefix[0], append(prefix[1:], bin)...)
	cmd.Env = append(os.Environ(), "PEER_SOCK="+sock)
	stdin, _ := cmd.StdinPipe()
	out := &lockedOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	c, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cred, err := Of(c)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

type lockedOutput struct{}

func (lockedOutput) Write(p []byte) (int, error) { os.Stderr.Write(p); return len(p), nil }

func need(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is needed (util-linux; make test installs it): %v", c, err)
		}
	}
}

var nobody = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}

func TestRootIsAdmin(t *testing.T) {
	need(t, "setpriv")
	c := peerAs(t, "setpriv", "--")
	if c.UID != 0 || !c.Admin {
		t.Fatalf("root: %+v", c)
	}
}

func TestUnprivilegedUser(t *testing.T) {
	need(t, "setpriv")
	c := peerAs(t, append(nobody, "--inh-caps=-all", "--")...)
	if c.UID != 65534 || c.Admin || c.PID == 0 {
		t.Fatalf("nobody: %+v", c)
	}
}

// TestUserNamespaceRoot is the take-over of issue 11: an unprivileged user
// who is root, with every capability, in a user namespace of its own.
func TestUserNamespaceRoot(t *testing.T) {
	need(t, "setpriv", "unshare")
	c := peerAs(t, append(nobody, "--inh-caps=-all", "unshare", "-Ur", "--")...)
	if c.UID != 65534 || c.Admin {
		t.Fatalf("root of its own user namespace: %+v", c)
	}
}

func TestNetAdminCapability(t *testing.T) {
	need(t, "setpriv")
	c := peerAs(t, append(nobody, "--inh-caps=+net_admin", "--ambient-caps=+net_admin", "--")...)
	if c.UID != 65534 || !c.Admin {
		t.Fatalf("nobody with CAP_NET_ADMIN: %+v", c)
	}
}

func TestGroups(t *testing.T) {
	need(t, "setpriv")
	c := peerAs(t, "setpriv", "--reuid=65534", "--regid=65534", "--groups=4,27", "--inh-caps=-all", "--")
	if !c.InGroup(65534) || !c.InGroup(4) || !c.InGroup(27) || c.InGroup(0) {
		t.Fatalf("groups: %+v", c)
	}
}
