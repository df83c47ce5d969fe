// Command hostile is a client that breaks every rule valed's clients and
// vhost-user frontends are meant to follow, for the isolation tests in
// package e2e (and make soak). Each mode is one class of attack; it runs
// until -d passes or it is killed, and prints what it did.
//
//	hostile -mode fill -sock S -port vale0:evil
//
// Modes:
//
//	fill      fill every eventfd received to the maximum, ask to be woken
//	          (sleep tickets on every ring) and make valed answer
//	nonblock  as fill, after clearing O_NONBLOCK on every shared
//	          descriptor, with a thread stealing valed's kicks
//	scribble  write random values over ring indexes, slots, ring headers
//	          and interface headers of its own port while it sends
//	noread    send requests and open a port, never read the socket
//	replyfill fill valed's socket buffer with replies, then open a port
//	churn     open ports on thousands of connections, abandon them
//	          (holding them past the limit, or closing them unread)
//	monchurn  open and close monitors of a port over and over (events)
//	vhost     a stateful fuzzer of vhost-user frontends against -vhost
//	open      open -port once, asking for -extra extra buffers, and say
//	          whether valed agreed (for the tests of the limits)
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/vale/wire"
)

func main() {
	var (
		mode  = flag.String("mode", "", "attack (see the package doc)")
		sock  = flag.String("sock", os.Getenv("VALE_SOCK"), "valed's control socket")
		port  = flag.String("port", "vale0:evil", "port to open (the prefix of the ports churn opens)")
		vhost = flag.String("vhost", "", "vhost-user socket (mode vhost)")
		dur   = flag.Duration("d", 10*time.Second, "how long to attack")
		seed  = flag.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
		conns = flag.Int("conns", 300, "connections churn holds at once")
		extra = flag.Uint("extra", 0, "extra buffers to ask for (mode open)")
	)
	flag.Parse()
	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
	until := time.Now().Add(*dur)
	var err error
	switch *mode {
	case "fill", "nonblock":
		err = fill(*sock, *port, *mode == "nonblock", until)
	case "scribble":
		err = scribble(*sock, *port, rng, until)
	case "noread":
		err = noRead(*sock, *port, until)
	case "replyfill":
		err = replyFill(*sock, *port, until)
	case "churn":
		err = churn(*sock, *port, *conns, rng, until)
	case "monchurn":
		err = monChurn(*sock, *port, until)
	case "vhost":
		err = fuzzVhost(*vhost, rng, until)
	case "open":
		err = openOnce(*sock, *port, uint32(*extra))
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		os.Exit(1)
	}
}

// openOnce opens name asking for extra buffers, and reports the answer.
func openOnce(sock, name string, extra uint32) error {
	c, err := ctl.Dial(sock)
	if err != nil {
		return err
	}
	defer c.Close()
	fds, err := c.Call(wire.OpOpen, wire.OpenRequest{Name: name, ExtraBufs: extra}, &wire.OpenReply{})
	if err != nil {
		return err
	}
	ctl.CloseFDs(fds)
	fmt.Printf("opened %s with %d extra buffers\n", name, extra)
	return nil
}
