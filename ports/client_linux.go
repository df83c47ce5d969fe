package ports

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/spin"
)

// Options tune Open. The zero value is fine.
type Options struct {
	// Socket is valed's control socket. Empty means $VALE_SOCK, or
	// /run/vale/valed.sock.
	Socket string
	// Conf sets ring and slot counts for a port this open creates, as the
	// @conf: option of the name does; values in the name win.
	Conf Conf
	// ExtraBufs asks for extra buffers, chained from the interface's
	// bufs_head, for a port this open creates.
	ExtraBufs uint32
	// RxPoll is the longest time Poll watches the RX rings before sleeping
	// when waiting for frames. The switch never waits for a receiver (a full
	// RX ring loses frames), so a receiver that sleeps through a burst
	// loses it; polling for a while avoids that without a thread spinning
	// forever: the window adapts to how soon frames used to arrive and
	// drops to zero when traffic stops. Zero means DefaultRxPoll, negative
	// disables polling. Waiting for TX room never polls: a sender that is
	// late loses nothing.
	RxPoll time.Duration
}

// DefaultRxPoll is the default of Options.RxPoll.
const DefaultRxPoll = 200 * time.Microsecond

// Events are poll conditions.
type Events uint8

// Poll conditions.
const (
	PollIn  Events = 1 << iota // a bound RX ring has frames beyond cur
	PollOut                    // a bound TX ring has free slots beyond cur
)

// Port is an open port: its memory, its rings and the eventfds that connect
// it to valed. Its methods must not be called concurrently, except Close
// after every other call has returned; open the port once per thread (with a
// ring suffix, "vale0:a-1") to work on its rings in parallel, as with netmap.
type Port struct {
	name     Name
	reply    OpenReply
	mem      []byte
	reg      *region
	tx, rx   []*Ring // every ring of the port
	txBound  []*Ring
	rxBound  []*Ring
	conn     *ctl.Conn
	notify   *os.File
	kickFDs  []int
	ticket   uint32
	dead     atomic.Bool
	closed   atomic.Bool
	mac      net.HardwareAddr
	wbuf     [8]byte
	rxPoller spin.Poller
}

// Open binds the port named name (see [ParseName]), asking valed to create it
// if it does not exist, and maps its memory.
func Open(name string, opts *Options) (*Port, error) {
	if opts == nil {
		opts = &Options{}
	}
	n, err := ParseName(name)
	if err != nil {
		return nil, err
	}
	if err := n.Unsupported(); err != nil {
		return nil, err
	}
	conf := opts.Conf
	mergeConf(&conf, n.Conf)
	conn, err := ctl.Dial(ctl.SocketPath(opts.Socket))
	if err != nil {
		return nil, err
	}
	var reply OpenReply
	fds, err := conn.Call(OpOpen, OpenRequest{Name: name, Conf: conf, ExtraBufs: opts.ExtraBufs}, &reply)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	p, err := newPort(n, reply, conn, fds)
	if err != nil {
		ctl.CloseFDs(fds)
		conn.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	p.rxPoller.Max = opts.RxPoll
	if p.rxPoller.Max == 0 {
		p.rxPoller.Max = DefaultRxPoll
	}
	p.rxPoller.Max = max(p.rxPoller.Max, 0)
	go p.watch()
	return p, nil
}

// mergeConf overrides c with the values given in the name.
func mergeConf(c *Conf, fromName Conf) {
	set := func(dst *uint32, v uint32) {
		if v != 0 {
			*dst = v
		}
	}
	set(&c.Rings, fromName.Rings)
	set(&c.TxRings, fromName.TxRings)
	set(&c.RxRings, fromName.RxRings)
	set(&c.Slots, fromName.Slots)
	set(&c.TxSlots, fromName.TxSlots)
	set(&c.RxSlots, fromName.RxSlots)
}

func newPort(n Name, reply OpenReply, conn *ctl.Conn, fds []int) (*Port, error) {
	g := reply.Geometry
	l, err := g.Layout()
	if err != nil {
		return nil, err
	}
	ntx := reply.TxLast - reply.TxFirst
	if reply.TxFirst < 0 || reply.TxLast > int(g.TxRings) || ntx < 0 ||
		reply.RxFirst < 0 || reply.RxLast > int(g.RxRings) || reply.RxLast < reply.RxFirst {
		return nil, errors.New("valed bound rings outside the port")
	}
	if len(fds) != 2+ntx {
		return nil, fmt.Errorf("valed sent %d descriptors, expected %d", len(fds), 2+ntx)
	}
	memfd, notifyFD, kickFDs := fds[0], fds[1], fds[2:]
	var st unix.Stat_t
	if err := unix.Fstat(memfd, &st); err != nil {
		return nil, fmt.Errorf("stat port memory: %w", err)
	}
	if st.Size < l.Size {
		return nil, fmt.Errorf("port memory has %d bytes, geometry needs %d", st.Size, l.Size)
	}
	mem, err := unix.Mmap(memfd, 0, int(l.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map port memory: %w", err)
	}
	unix.Close(memfd) // the mapping keeps the memory alive
	fds[0] = -1
	p := &Port{name: n, reply: reply, mem: mem, conn: conn, kickFDs: kickFDs}
	fail := func(err error) (*Port, error) {
		unix.Munmap(mem)
		return nil, err
	}
	reg, err := newRegion(mem, l)
	if err != nil {
		return fail(err)
	}
	if err := reg.verify(); err != nil {
		return fail(err)
	}
	p.reg = reg
	if err := unix.SetNonblock(notifyFD, true); err != nil {
		return fail(fmt.Errorf("notify eventfd: %w", err))
	}
	p.notify = os.NewFile(uintptr(notifyFD), "vale-notify")
	for i := range int(g.TxRings) {
		p.tx = append(p.tx, newRing(reg, l.RingIndex(TX, i), reply.Port))
	}
	for i := range int(g.RxRings) {
		p.rx = append(p.rx, newRing(reg, l.RingIndex(RX, i), reply.Port))
	}
	p.txBound = p.tx[reply.TxFirst:reply.TxLast]
	p.rxBound = p.rx[reply.RxFirst:reply.RxLast]
	for i, r := range p.txBound {
		r.kickFD = kickFDs[i]
	}
	if mac, err := net.ParseMAC(reply.MAC); err == nil {
		p.mac = mac
	}
	return p, nil
}

// watch waits for the control connection to end: valed only closes it when
// it goes away, and then every sleeper must wake up with an error.
func (p *Port) watch() {
	var msg ctl.Reply
	for {
		fds, err := p.conn.Recv(&msg)
		ctl.CloseFDs(fds)
		if err != nil {
			break
		}
	}
	if !p.closed.Load() {
		p.dead.Store(true)
		p.wake()
	}
}

// wake makes a Poll in progress return.
func (p *Port) wake() {
	raw, err := p.notify.SyscallConn()
	if err != nil {
		return
	}
	raw.Write(func(fd uintptr) bool {
		kick(int(fd))
		return true
	})
}

// Close unbinds the port and unmaps its memory. valed destroys the port when
// its last binding closes. No other method may run during or after Close.
func (p *Port) Close() error {
	if p.closed.Swap(true) {
		return ErrClosed
	}
	err := p.conn.Close()
	p.notify.Close()
	for _, fd := range p.kickFDs {
		unix.Close(fd)
	}
	if merr := unix.Munmap(p.mem); merr != nil && err == nil {
		err = merr
	}
	return err
}

// Name returns the port name as valed knows it ("vale0:a").
func (p *Port) Name() string { return p.reply.Port }

// Switch returns the name of the switch the port is attached to.
func (p *Port) Switch() string { return p.reply.Switch }

// MAC returns the port's own MAC address, a natural source address for
// frames it sends.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// Geometry returns the port's ring and buffer configuration.
func (p *Port) Geometry() Geometry { return p.reply.Geometry }

// NumTxRings returns the number of TX rings of the port.
func (p *Port) NumTxRings() int { return len(p.tx) }

// NumRxRings returns the number of RX rings of the port.
func (p *Port) NumRxRings() int { return len(p.rx) }

// TxRing returns TX ring i of the port, bound or not.
func (p *Port) TxRing(i int) *Ring { return p.tx[i] }

// RxRing returns RX ring i of the port, bound or not.
func (p *Port) RxRing(i int) *Ring { return p.rx[i] }

// TxRings returns the TX rings this open bound.
func (p *Port) TxRings() []*Ring { return p.txBound }

// RxRings returns the RX rings this open bound.
func (p *Port) RxRings() []*Ring { return p.rxBound }

// Mem returns the port's whole memory region, as netmap applications reach
// its mmap; the package documentation gives the layout. Writing outside the
// slots and indexes the application owns breaks the ring contract: valed
// resets the ring and the next sync returns the error.
func (p *Port) Mem() []byte { return p.mem }

// Layout returns where each part of the region lies.
func (p *Port) Layout() Layout { return p.reg.layout }

// BufsHead returns the first extra buffer (0 if there is none).
func (p *Port) BufsHead() uint32 { return p.reg.ifHeader().BufsHead.Load() }

// SetBufsHead sets the first extra buffer.
func (p *Port) SetBufsHead(idx uint32) { p.reg.ifHeader().BufsHead.Store(idx) }

func (p *Port) check() error {
	if p.closed.Load() {
		return ErrClosed
	}
	if p.dead.Load() {
		return fmt.Errorf("%s: %w", p.reply.Port, ErrDisconnected)
	}
	return nil
}

// TxSync publishes [old head, head) of every bound TX ring to the switch,
// waking it if it sleeps, and refreshes tail with the room freed so far. As
// netmap's NIOCTXSYNC it does not wait: the switch takes the frames
// asynchronously and tail keeps advancing; use Poll to wait for room.
func (p *Port) TxSync() error { return p.syncAll(p.txBound) }

// RxSync releases [old head, head) of every bound RX ring and exposes the
// frames that arrived since the last sync, up to tail.
func (p *Port) RxSync() error { return p.syncAll(p.rxBound) }

func (p *Port) syncAll(rings []*Ring) error {
	if err := p.check(); err != nil {
		return err
	}
	var first error
	for _, r := range rings {
		if err := r.sync(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Poll syncs the bound rings and waits until one of the conditions in ev
// holds on a bound ring (cur != tail), or until timeout passes (a negative
// timeout waits forever, zero does not wait). Like netmap's poll(), it always
// pushes pending TX slots and syncs the RX rings only when PollIn is asked. It
// returns the conditions that hold, 0 after a timeout, and an error if a ring
// was reset or valed went away.
func (p *Port) Poll(ev Events, timeout time.Duration) (Events, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		if err := p.syncAll(p.txBound); err != nil {
			return 0, err
		}
		if ev&PollIn != 0 {
			if err := p.syncAll(p.rxBound); err != nil {
				return 0, err
			}
		}
		if got := p.ready(ev); got != 0 || timeout == 0 {
			return got, nil
		}
		if timeout > 0 && !time.Now().Before(deadline) {
			return 0, nil
		}
		if ev&PollIn != 0 && p.rxPoller.Poll(func() bool { return p.moved(ev) }, deadline) {
			continue
		}
		slept := time.Now()
		if err := p.sleep(ev, deadline); err != nil {
			return 0, err
		}
		if ev&PollIn != 0 {
			p.rxPoller.Slept(time.Since(slept))
		}
	}
}

// moved reports whether the switch changed tail or reset a ring Poll waits for.
func (p *Port) moved(ev Events) bool {
	check := func(rs []*Ring) bool {
		for _, r := range rs {
			if r.hdr.tail.Load() != r.tail || r.hdr.resetGen.Load() != r.resetAck {
				return true
			}
		}
		return false
	}
	return (ev&PollIn != 0 && check(p.rxBound)) || (ev&PollOut != 0 && check(p.txBound)) || p.dead.Load()
}

func (p *Port) ready(ev Events) Events {
	var got Events
	if ev&PollIn != 0 {
		for _, r := range p.rxBound {
			if r.ready() {
				got |= PollIn
				break
			}
		}
	}
	if ev&PollOut != 0 {
		for _, r := range p.txBound {
			if r.ready() {
				got |= PollOut
				break
			}
		}
	}
	return got
}

// sleep publishes a sleep ticket on the rings Poll waits for, checks them
// once more (the switch may have moved tail before seeing the ticket) and
// blocks on the notify eventfd until the switch answers or the deadline
// passes.
func (p *Port) sleep(ev Events, deadline time.Time) error {
	p.ticket++
	if p.ticket == 0 {
		p.ticket = 1
	}
	var rings [2][]*Ring
	if ev&PollIn != 0 {
		rings[0] = p.rxBound
	}
	if ev&PollOut != 0 {
		rings[1] = p.txBound
	}
	set := func(t uint32) {
		for _, rs := range rings {
			for _, r := range rs {
				r.hdr.appKick.Store(t)
			}
		}
	}
	set(p.ticket)
	defer set(0)
	for _, rs := range rings {
		for _, r := range rs {
			if r.hdr.tail.Load() != r.tail || r.hdr.resetGen.Load() != r.resetAck {
				return nil // something moved: go around again
			}
		}
	}
	if p.dead.Load() {
		return nil
	}
	if err := p.notify.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("%s: poll: %w", p.reply.Port, err)
	}
	if _, err := p.notify.Read(p.wbuf[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%s: poll: %w", p.reply.Port, err)
	}
	return nil
}

var one = [8]byte{1}

// kick adds one to an eventfd. Errors are ignored: EAGAIN means the counter
// is saturated, which already wakes the reader, and a closed peer needs no
// wake-up.
func kick(fd int) {
	unix.Write(fd, one[:])
}
