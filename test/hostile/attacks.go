package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/wire"
)

// setIndex publishes head and cur of r as a client's sync would.
func setIndex(r *ports.Ring, head uint32) {
	r.SetHead(head)
	r.SetCur(head)
	r.Publish()
}

// sleepEverywhere publishes a sleep ticket on every ring: valed answers
// each new one with a signal.
func sleepEverywhere(p *rawPort, ticket uint32) {
	for _, d := range []ports.Direction{ports.TX, ports.RX} {
		for i := range p.iface.NumRings(d) {
			p.ring(d, i).Header().AppTicket().Store(ticket)
		}
	}
}

// fill is the freeze of issue 11, on two ports that send to each other:
// every eventfd at its maximum (and, with clear, in blocking mode, with a
// thread stealing valed's kicks), a new sleep ticket on every ring each
// round, and frames both ways, so that valed answers tickets on both
// rings of both ports every round.
func fill(sock, name string, clear bool, until time.Time) error {
	a, err := openRaw(sock, name+"a")
	if err != nil {
		return err
	}
	b, err := openRaw(sock, name+"b")
	if err != nil {
		return err
	}
	a.prefill(b.mac)
	b.prefill(a.mac)
	both := []*rawPort{a, b}
	var fds []int
	for _, p := range both {
		fds = append(fds, p.fds()...)
	}
	if clear {
		for _, p := range both {
			blockAndSteal(p)
		}
		// Writes to full counters now block this process: each in a
		// thread of its own, which valed's reads or the thieves release.
		for _, fd := range fds {
			go func() {
				for {
					full(fd)
				}
			}()
		}
	}
	rounds := 0
	for ticket := uint32(1); time.Now().Before(until); ticket++ {
		for _, p := range both {
			if !clear {
				for _, fd := range p.fds() {
					full(fd)
				}
			}
			sleepEverywhere(p, ticket)
			p.send(64)
		}
		rounds++
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("fill: %d rounds, %d descriptors kept full\n", rounds, len(fds))
	os.Exit(0) // with threads blocked in the descriptors
	return nil
}

// blockAndSteal clears O_NONBLOCK on every descriptor p shares with
// valed, and reads valed's kicks in threads of its own.
func blockAndSteal(p *rawPort) {
	for _, fd := range p.fds() {
		unix.FcntlInt(uintptr(fd), unix.F_SETFL, 0)
	}
	for _, k := range p.kicks {
		go func() {
			var b [8]byte
			for {
				unix.Read(k, b[:])
			}
		}()
	}
}

// scribble writes random values over the memory valed shares with it,
// while it sends: the indexes, tickets and reset words of every ring and
// its slots, all the time; and, one field at a time over a header
// otherwise put back as it was (so that the checks before it pass), values
// made to overflow the arithmetic of a reader: the interface headers, their
// ring tables, the ring headers, of the port and its zero-copy monitor
// levels.
func scribble(sock, name string, rng *rand.Rand, until time.Time) error {
	p, err := openRaw(sock, name)
	if err != nil {
		return err
	}
	p.prefill(p.mac)
	live, headers := scribbleTargets(sock, p)
	saved := make([][]byte, len(headers))
	for i, h := range headers {
		saved[i] = append([]byte(nil), p.mem[h.off:h.off+h.n]...)
	}
	writes, crafted := 0, 0
	for round := 0; time.Now().Before(until); round++ {
		if round%4 == 0 {
			i := rng.IntN(len(headers))
			copy(p.mem[headers[i].off:], saved[i])
			craft(p, headers[i], rng)
			crafted++
		}
		for range 16 {
			t := live[rng.IntN(len(live))]
			putWord(p.mem, t.off+rng.Int64N(t.n)&^3, randomWord(rng))
			writes++
		}
		p.send(rng.IntN(64))
		sleepEverywhere(p, rng.Uint32())
		time.Sleep(200 * time.Microsecond)
	}
	fmt.Printf("scribble: %d words written, %d header fields crafted\n", writes, crafted)
	return nil
}

// craft writes, over one field of header h, a value chosen to pass naive
// checks and overflow the arithmetic behind them: offsets near the top of
// an int64 or pointing before the memory, sizes at and past their limits.
func craft(p *rawPort, h region, rng *rand.Rand) {
	off := h.off + 4*rng.Int64N(h.n/4)
	if rng.IntN(2) == 0 { // a 64-bit field
		near := []uint64{1<<63 - 8, 1<<63 - 1<<20, -uint64(off) - 8, -uint64(h.off), 1 << 62, uint64(len(p.mem)) - 8}
		v := near[rng.IntN(len(near))]
		off &^= 7
		putWord(p.mem, off, uint32(v))
		putWord(p.mem, off+4, uint32(v>>32))
		return
	}
	near := []uint32{0xffffffff, 0x7fffffff, 0x80000000, 4096, 4097, 65536, 65537, 0, 1, uint32(len(p.mem))}
	putWord(p.mem, off, near[rng.IntN(len(near))])
}

// randomWord favours the values that break bounds checks.
func randomWord(rng *rand.Rand) uint32 {
	switch rng.IntN(7) {
	case 0:
		return 0xffffffff
	case 5:
		return 0x7fffffff // the high half of an int64 offset
	case 1:
		return uint32(rng.IntN(4))
	case 2:
		return 0x80000000 | rng.Uint32()
	case 3:
		return uint32(rng.IntN(5000))
	}
	return rng.Uint32()
}

// region is a part of the port's memory to scribble over.
type region struct{ off, n int64 }

// scribbleTargets returns the parts of the port's memory the other side
// writes as it runs (ring indexes and slots) and the headers it writes
// once.
func scribbleTargets(sock string, p *rawPort) (live, headers []region) {
	l := p.layoutOrNil(sock)
	if l == nil {
		return []region{{0, 4096}}, []region{{0, 128}}
	}
	for _, f := range l.Ifaces {
		headers = append(headers, region{f.Ofs, 128 + 2*8*int64(len(f.Slots))})
		for r, ro := range f.RingOfs {
			// netmap's ring header is the application's to write, all of
			// it; of the control block, line 0 is written once (constants)
			// and line 1 as the library syncs.
			co := f.CtlOfs[r]
			headers = append(headers, region{co, 64})
			live = append(live, region{ro, 256}, region{co + 64, 64}, region{ro + 256, 16 * int64(f.Slots[r])})
		}
	}
	return live, headers
}

// layoutOrNil asks valed for the port's layout (as a netmap application
// reads it from the headers), on a connection of its own: the port's
// carries events.
func (p *rawPort) layoutOrNil(sock string) *ports.Layout {
	c, err := ctl.Dial(sock)
	if err != nil {
		return nil
	}
	defer c.Close()
	var info wire.InfoReply
	if _, err := c.Call(wire.OpInfo, wire.InfoRequest{Name: p.reply.Port}, &info); err != nil || len(info.Layout.Ifaces) == 0 {
		return nil
	}
	return &info.Layout
}

// noRead opens a port, then sends requests on its connection and on
// others and never reads a reply or an event.
func noRead(sock, name string, until time.Time) error {
	p, err := openRaw(sock, name)
	if err != nil {
		return err
	}
	conns := []*ctl.Conn{p.conn}
	for range 8 {
		c, err := ctl.Dial(sock)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	sent := 0
	for time.Now().Before(until) {
		for _, c := range conns {
			c.Unix().SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
			if c.Send(ctl.Request{Op: wire.OpList}) == nil {
				sent++
			}
			c.Send(ctl.Request{Op: wire.OpInfo, Body: []byte(`{"name":"vale0:x"}`)})
		}
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("noread: %d requests sent, no reply read\n", sent)
	return nil
}

// replyFill makes valed's replies fill its socket buffer on a connection
// (about 170 replies of 1 KiB), then asks to open a port: the open's reply
// has no room, and a valed that sends it holding a lock other sessions
// need stops serving them. The number of requests that fills the buffer
// exactly is not known here: successive connections sweep through them,
// and stay open, unread.
func replyFill(sock, name string, until time.Time) error {
	var held []*ctl.Conn
	i := 0
	for k := 100; time.Now().Before(until); k++ {
		c, err := ctl.Dial(sock)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		held = append(held, c)
		c.Unix().SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		for range k {
			c.Send(ctl.Request{Op: wire.OpInfo, Body: []byte(`{"name":"vale0:x"}`)})
		}
		c.Send(ctl.Request{Op: wire.OpOpen, Body: []byte(fmt.Sprintf(`{"name":"%s-%d"}`, name, i))})
		i++
		time.Sleep(20 * time.Millisecond) // let valed get to the open
		if k == 250 {
			k = 100
		}
	}
	fmt.Printf("replyfill: %d connections filled, held unread\n", len(held))
	runtime.KeepAlive(held)
	return nil
}

// monChurn opens and closes monitors of port name (its own), so that
// valed sends its feeders events.
func monChurn(sock, name string, until time.Time) error {
	n := 0
	for time.Now().Before(until) {
		for _, kind := range []string{"/z", "/rt"} {
			m, err := openRaw(sock, name+kind)
			if err != nil {
				continue
			}
			m.conn.Close()
			unix.Munmap(m.mem)
			for _, fd := range m.fds() {
				unix.Close(fd)
			}
			n++
		}
	}
	fmt.Printf("monchurn: %d monitors opened and closed\n", n)
	return nil
}

// churn opens ports on many connections and abandons them: held open
// unread up to held at once (past the per-user limit), dropped, or closed
// mid-request.
func churn(sock, prefix string, held int, rng *rand.Rand, until time.Time) error {
	var (
		mu       sync.Mutex
		opened   int
		refused  int
		sessions []*net.UnixConn
	)
	for time.Now().Before(until) {
		c, err := ctl.Dial(sock)
		if err != nil {
			refused++
			time.Sleep(time.Millisecond)
			continue
		}
		name := fmt.Sprintf("%s%d", prefix, rng.IntN(held))
		switch rng.IntN(3) {
		case 0: // open, keep, never read again
			if fds, err := c.Call(wire.OpOpen, wire.OpenRequest{Name: name}, &wire.OpenReply{}); err == nil {
				ctl.CloseFDs(fds)
				opened++
			} else {
				refused++
			}
			mu.Lock()
			sessions = append(sessions, c.Unix())
			if len(sessions) > held {
				i := rng.IntN(len(sessions))
				sessions[i].Close()
				sessions = append(sessions[:i], sessions[i+1:]...)
			}
			mu.Unlock()
		case 1: // ask and hang up before the answer
			c.Send(ctl.Request{Op: wire.OpOpen, Body: []byte(`{"name":"` + name + `"}`)})
			c.Close()
		case 2: // half a session: connected, silent, kept
			mu.Lock()
			sessions = append(sessions, c.Unix())
			mu.Unlock()
		}
	}
	fmt.Printf("churn: %d ports opened, %d refused, %d sessions abandoned at the end\n", opened, refused, len(sessions))
	os.Exit(0) // abandon them all at once
	return nil
}
