package nmport_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/valeswitch/vale/internal/daemon"
	"github.com/valeswitch/vale/ports/nmport"
	"github.com/valeswitch/vale/ports/portname"
)

// startValed runs valed inside the example's process, on a temporary
// socket. Real applications connect to a valed started on its own.
func startValed() (sock string, stop func()) {
	dir, _ := os.MkdirTemp("", "vale-example-")
	sock = filepath.Join(dir, "valed.sock")
	d, err := daemon.New(daemon.Config{Socket: sock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Serve(ctx); close(done) }()
	return sock, func() { cancel(); <-done; os.RemoveAll(dir) }
}

// Two ports of switch vale0: a frame sent on one arrives on the other.
func Example() {
	sock, stop := startValed()
	defer stop()
	opts := &nmport.Options{Socket: sock}

	a, err := nmport.Open("vale0:a", opts)
	if err != nil {
		panic(err)
	}
	defer a.Close()
	b, err := nmport.Open("vale0:b", opts)
	if err != nil {
		panic(err)
	}
	defer b.Close()

	// Send: fill the slot at head, advance, sync.
	tx := a.TxRing(0)
	s := tx.Slot(tx.Head())
	frame := tx.Buf(s.BufIdx)
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // broadcast
	copy(frame[6:12], a.MAC())
	copy(frame[14:], "hello")
	s.Len = 60
	tx.Advance(1)
	if err := a.TxSync(); err != nil {
		panic(err)
	}

	// Receive: poll, read [head, tail), release.
	if _, err := b.Poll(nmport.PollIn, 5*time.Second); err != nil {
		panic(err)
	}
	rx := b.RxRing(0)
	for !rx.Empty() {
		p := rx.Packet(rx.Head())
		fmt.Printf("%s got %d bytes from %s: %s\n", b.Name(), len(p), a.Name(), p[14:19])
		rx.Advance(1)
	}
	// Output: vale0:b got 60 bytes from vale0:a: hello
}

// Poll waits until a bound ring is ready, or the timeout passes.
func ExamplePort_Poll() {
	sock, stop := startValed()
	defer stop()
	p, err := nmport.Open("vale0:p", &nmport.Options{Socket: sock})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	ev, err := p.Poll(nmport.PollIn|nmport.PollOut, 10*time.Millisecond)
	fmt.Println("writable:", ev&nmport.PollOut != 0, "readable:", ev&nmport.PollIn != 0, "error:", err)
	fmt.Println("free TX slots:", p.TxRing(0).Space())
	// Output:
	// writable: true readable: false error: <nil>
	// free TX slots: 1023
}

func ExampleParseName() {
	n, err := portname.ParseName("vale0:a-1/x@conf:rings=2,slots=2048")
	if err != nil {
		panic(err)
	}
	fmt.Println(n.Switch, n.Port, n.Mode, n.Ring, n.Flags&portname.FlagExclusive != 0, n.Conf.Rings, n.Conf.Slots)
	_, err = portname.ParseName("vale0:a/q")
	fmt.Println(err)
	// Output:
	// vale0 a one ring pair 1 true 2 2048
	// port name "vale0:a/q": unrecognized flag 'q'
}
