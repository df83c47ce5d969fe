package daemon

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports/nmport"
	"github.com/valeswitch/vale/vale/wire"
)

// startDaemon runs a daemon in the test process on a private socket.
func startDaemon(t testing.TB) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "valed.sock")
	d, err := New(Config{Socket: sock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

func list(t testing.TB, sock string) wire.ListReply {
	t.Helper()
	c, err := ctl.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var all wire.ListReply
	err = c.CallStream(wire.OpList, wire.ListRequest{}, func(b json.RawMessage) error {
		var r wire.ListReply
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		all.Switches = append(all.Switches, r.Switches...)
		all.Ports = append(all.Ports, r.Ports...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestPortLifetime(t *testing.T) {
	sock := startDaemon(t)
	a, err := nmport.Open("vale0:a", &nmport.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := nmport.Open("vale0:a-0", &nmport.Options{Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	if l := list(t, sock); len(l.Ports) != 1 || l.Ports[0].Clients != 2 {
		t.Fatalf("listing %+v", l)
	}
	a.Close()
	if l := list(t, sock); len(l.Ports) != 1 {
		t.Fatal("port destroyed while a client still holds it")
	}
	a2.Close()
	testutil.WaitForWithin(t, 5*time.Second, "the port and switch to be destroyed after the last close", func() bool {
		return len(list(t, sock).Switches) == 0
	})
}

func TestOneOpenPerConnection(t *testing.T) {
	sock := startDaemon(t)
	c, err := ctl.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fds, err := c.Call(wire.OpOpen, wire.OpenRequest{Name: "vale0:a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctl.CloseFDs(fds)
	if _, err := c.Call(wire.OpOpen, wire.OpenRequest{Name: "vale0:b"}, nil); err == nil || !strings.Contains(err.Error(), "already holds vale0:a") {
		t.Fatalf("second open on one connection: %v", err)
	}
	if _, err := c.Call("bogus", nil, nil); err == nil || !strings.Contains(err.Error(), `unknown operation "bogus"`) {
		t.Fatalf("unknown op: %v", err)
	}
}

// FuzzControl sends arbitrary datagrams to a running daemon: each must get
// an answer or a closed connection, and the daemon must keep serving.
func FuzzControl(f *testing.F) {
	for _, s := range []string{
		`{"op":"open","body":{"name":"vale0:a"}}`,
		`{"op":"open","body":{"name":"vale0:a","conf":{"Rings":99}}}`,
		`{"op":"open","body":{"name":"vale0:a","extra_bufs":4294967295}}`,
		`{"op":"list","body":{"name":"vale0"}}`,
		`{"op":"info","body":{"name":"vale1:x@conf:slots=64"}}`,
		`{"op":"info","body":17}`,
		`{"op":"open","body":{"name":"netmap:p{1"}}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	sock := startDaemon(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, err := ctl.Dial(sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := c.Unix().WriteMsgUnix(msg, nil, nil); err != nil {
			return
		}
		c.Unix().SetReadDeadline(time.Now().Add(5 * time.Second))
		var r ctl.Reply
		fds, err := c.Recv(&r)
		ctl.CloseFDs(fds)
		if err != nil && !ctl.IsClosed(err) {
			t.Fatalf("no answer: %v", err)
		}
		list(t, sock) // still serving
	})
}

// TestWakeupAfterRebind checks that a client binding a ring another client
// slept on before is woken too: the switch answers each sleep ticket once,
// so a new binding must not reuse the tickets of an old one.
func TestWakeupAfterRebind(t *testing.T) {
	sock := startDaemon(t)
	opts := &nmport.Options{Socket: sock, RxPoll: -1} // sleep at once
	holder, err := nmport.Open("vale0:b/T", opts)     // keeps vale0:b alive
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	sender, err := nmport.Open("vale0:a", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	send := func() {
		r := sender.TxRing(0)
		s := r.Slot(r.Head())
		copy(r.Buf(s.BufIdx), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
		s.Len = 60
		r.Advance(1)
		if err := sender.TxSync(); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		rx, err := nmport.Open("vale0:b", opts)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan nmport.Events, 1)
		ticket := rx.RxRing(0).Header().AppTicket()
		before := ticket.Load()
		go func() {
			ev, err := rx.Poll(nmport.PollIn, time.Minute)
			if err != nil {
				t.Error(err)
			}
			r := rx.RxRing(0)
			r.Advance(r.Space()) // consume, so the next binding has to sleep
			rx.RxSync()
			done <- ev
		}()
		// The receiver publishes a new sleep ticket just before it sleeps.
		testutil.WaitFor(t, "the receiver to go to sleep", func() bool { return ticket.Load() != before })
		send()
		select {
		case ev := <-done:
			if ev&nmport.PollIn == 0 {
				t.Fatalf("round %d: poll returned %v", round, ev)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the receiver was never woken (a sleep ticket was taken for answered)", round)
		}
		rx.Close()
	}
}
