// Package nmport is vale's client library: it opens ports by name (VALE
// ports, pipe ends, monitors), maps their memory, and implements netmap's
// sync operations and poll on their rings.
//
//	p, err := nmport.Open("vale0:a", nil)
//	tx := p.TxRing(0)
//	... fill slots [tx.Head(), tx.Tail()), tx.Advance(n) ...
//	p.TxSync()
//
// The ring contract and the memory layout are documented in package ports.
package nmport

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/internal/shmem"
	"github.com/valeswitch/vale/internal/spin"
	"github.com/valeswitch/vale/monitor"
	"github.com/valeswitch/vale/pipes"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/wire"
)

// Options tune Open. The zero value is fine.
type Options struct {
	// Socket is valed's control socket. Empty means $VALE_SOCK, or
	// /run/vale/valed.sock.
	Socket string
	// Conf sets ring and slot counts for a port this open creates, as the
	// @conf: option of the name does; values in the name win.
	Conf portname.Conf
	// ExtraBufs asks for extra buffers, chained from the binding's
	// bufs_head (see Port.BufsHead); a port this open creates gets a pool
	// of that many. valed grants what its pool has left (Port.ExtraBufs).
	ExtraBufs uint32
	// RxPoll is the longest time Poll watches the RX rings before sleeping
	// when waiting for frames. The switch never waits for a receiver (a full
	// RX ring loses frames), so a receiver that sleeps through a burst
	// loses it; polling for a while avoids that without a thread spinning
	// forever: the window adapts to how soon frames used to arrive and
	// drops to zero when traffic stops. Zero means DefaultRxPoll, negative
	// disables polling. Waiting for TX room polls with the same window
	// (the poller yields the CPU between looks, so a sender does not keep
	// valed or a pipe's peer off a CPU they share).
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

// Errors returned by the library.
var (
	// ErrClosed is returned by operations on a closed port.
	ErrClosed = errors.New("port closed")
	// ErrDisconnected is returned once valed has gone away (stopped,
	// restarted or crashed). The port must be opened again.
	ErrDisconnected = errors.New("valed disconnected")
)

// syncer moves the slots of a kind of port between the application's rings
// and whatever is on their other side.
type syncer interface {
	TxSync(r int) error // TX ring r: publish what the application filled
	RxSync(r int) error // RX ring r: release what it consumed, expose what arrived
}

// Port is an open port: its memory, its rings and the eventfds that connect
// it to valed or to its pipe peer. Its methods must not be called
// concurrently, except Close after every other call has returned; open the
// port once per thread (with a ring suffix, "vale0:a-1") to work on its
// rings in parallel, as with netmap.
type Port struct {
	openName string  // as given to Open, for Reopen
	opts     Options // as given to Open
	name     portname.Name
	reply    wire.OpenReply
	mem      []byte
	iface    *ports.Iface
	bufsHead *atomic.Uint32 // the binding's netmap_if's ni_bufs_head
	tx, rx   []*ports.Ring  // every ring of the port
	txFirst  int
	rxFirst  int
	txBound  []*ports.Ring
	rxBound  []*ports.Ring
	conn     *ctl.Conn
	waitFDs  []int       // notify eventfds of the bound ring pairs
	waits    *notify.Set // the same, waited on together
	extraFDs []int       // kind-specific descriptors, closed with the port
	sync     syncer
	feeds    monitor.Feeds // monitors this binding's syncs feed
	tickets  notify.Tickets
	dead     atomic.Bool
	closed   atomic.Bool
	mac      net.HardwareAddr
	rxPoller spin.Poller
	txPoller spin.Poller
}

// Open binds the port named name (see portname.ParseName), asking valed to
// create it if it does not exist, and maps its memory.
func Open(name string, opts *Options) (*Port, error) {
	if opts == nil {
		opts = &Options{}
	}
	n, err := portname.ParseName(name)
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
	var reply wire.OpenReply
	fds, err := conn.Call(wire.OpOpen, wire.OpenRequest{Name: name, Conf: conf, ExtraBufs: opts.ExtraBufs}, &reply)
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
	p.openName, p.opts = name, *opts
	p.tickets = notify.NewTickets()
	p.rxPoller.Max = opts.RxPoll
	if p.rxPoller.Max == 0 && reply.Kind != wire.KindMonitor {
		// A monitor is an observer allowed to lose frames: polling would
		// take the CPU of the port it watches.
		p.rxPoller.Max = DefaultRxPoll
	}
	p.rxPoller.Max = max(p.rxPoller.Max, 0)
	// Waiting for room polls too, on a switch port as on a pipe: the
	// poller yields the CPU between looks, so a sender sharing a CPU with
	// valed hands it over instead of sleeping and being woken once per
	// switch round (pkt-gen into a vhost-user port, both on one CPU: 7.2
	// Mpps sleeping, 9.8 polling).
	p.txPoller.Max = p.rxPoller.Max
	// A client's waiting goroutine is its processor's only busy one.
	p.rxPoller.Solo, p.txPoller.Solo = true, true
	// The monitors to feed from the first sync on come right after the
	// reply: take them now, before the application sends anything.
	for range reply.Feeds {
		if !p.event() {
			break
		}
	}
	go p.watch()
	return p, nil
}

// mergeConf overrides c with the values given in the name.
func mergeConf(c *portname.Conf, fromName portname.Conf) {
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
	set(&c.Mode, fromName.Mode)
}

func newPort(n portname.Name, reply wire.OpenReply, conn *ctl.Conn, fds []int) (*Port, error) {
	if len(fds) < 1 {
		return nil, errors.New("valed sent no port memory")
	}
	memfd := fds[0]
	var st unix.Stat_t
	if err := unix.Fstat(memfd, &st); err != nil {
		return nil, fmt.Errorf("stat port memory: %w", err)
	}
	if reply.MemSize <= 0 || st.Size < reply.MemSize {
		return nil, fmt.Errorf("port memory has %d bytes, valed announced %d", st.Size, reply.MemSize)
	}
	mem, err := unix.Mmap(memfd, 0, int(reply.MemSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map port memory: %w", err)
	}
	unix.Close(memfd) // the mapping keeps the memory alive
	fds[0] = -1
	p, err := setup(n, reply, conn, mem, fds[1:])
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return p, nil
}

// setup builds the port's views of mem and takes ownership of fds.
func setup(n portname.Name, reply wire.OpenReply, conn *ctl.Conn, mem []byte, fds []int) (*Port, error) {
	iface, err := ports.OpenIface(mem, reply.IfOfs)
	if err != nil {
		return nil, err
	}
	ntx, nrx := iface.NumRings(ports.TX), iface.NumRings(ports.RX)
	if reply.TxFirst < 0 || reply.TxLast > ntx || reply.TxFirst > reply.TxLast ||
		reply.RxFirst < 0 || reply.RxLast > nrx || reply.RxFirst > reply.RxLast ||
		reply.NotifyFirst < 0 || reply.NotifyFirst > reply.NotifyLast || reply.NotifyLast > max(ntx, nrx) {
		return nil, errors.New("valed bound rings outside the port")
	}
	nwait := reply.NotifyLast - reply.NotifyFirst
	if len(fds) < nwait {
		return nil, fmt.Errorf("valed sent %d descriptors, expected at least %d", len(fds), nwait)
	}
	bufsHead, err := ports.BufsHeadAt(mem, reply.NifOfs)
	if err != nil {
		return nil, err
	}
	shmem.Populate(mem, iface.Hot())
	p := &Port{name: n, reply: reply, mem: mem, iface: iface, bufsHead: bufsHead, conn: conn,
		txFirst: reply.TxFirst, rxFirst: reply.RxFirst}
	p.waitFDs, p.extraFDs = fds[:nwait], fds[nwait:]

	for i := range ntx {
		p.tx = append(p.tx, iface.Ring(ports.TX, i, reply.Port))
	}
	for i := range nrx {
		p.rx = append(p.rx, iface.Ring(ports.RX, i, reply.Port))
	}
	p.txBound = p.tx[reply.TxFirst:reply.TxLast]
	p.rxBound = p.rx[reply.RxFirst:reply.RxLast]
	if mac, err := net.ParseMAC(reply.MAC); err == nil {
		p.mac = mac
	}
	switch reply.Kind {
	case wire.KindVale, wire.KindMonitor, wire.KindZeroCopyMonitor:
		want := len(p.txBound)
		if reply.Kind != wire.KindZeroCopyMonitor {
			want += len(p.rxBound) // the room eventfds of the RX rings
		}
		if len(p.extraFDs) != want {
			return nil, fmt.Errorf("valed sent %d descriptors for %d TX and %d RX rings", len(p.extraFDs), len(p.txBound), len(p.rxBound))
		}
		p.sync = newValeSync(p)
	case wire.KindPipe:
		peer, err := ports.OpenIface(mem, reply.PeerIfOfs)
		if err != nil {
			return nil, fmt.Errorf("pipe peer: %w", err)
		}
		shmem.Populate(mem, peer.Hot())
		if len(p.extraFDs) != nwait {
			return nil, fmt.Errorf("valed sent %d peer descriptors for %d ring pairs", len(p.extraFDs), nwait)
		}
		end, err := pipes.NewEnd(p.tx, p.rx, peer, reply.Port, reply.NotifyFirst, p.extraFDs)
		if err != nil {
			return nil, err
		}
		end.SetObserver(&p.feeds)
		p.sync = end
	default:
		return nil, fmt.Errorf("valed answered with a port of unknown kind %q", reply.Kind)
	}
	if len(p.waitFDs) > 0 {
		if p.waits, err = notify.NewSet(p.waitFDs); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// watch reads what valed sends after the open reply: monitor events, until
// the connection ends. valed only closes it when it goes away, and then
// every sleeper must wake up with an error.
func (p *Port) watch() {
	for p.event() {
	}
	if !p.closed.Load() {
		p.dead.Store(true)
		if len(p.waitFDs) > 0 {
			notify.Signal(p.waitFDs[0])
		}
	}
}

// event reads one message valed sent after the open reply and applies it
// (a monitor to feed, or one gone). It reports false once the connection
// ended.
func (p *Port) event() bool {
	var msg ctl.Reply
	fds, err := p.conn.Recv(&msg)
	if err != nil {
		ctl.CloseFDs(fds)
		return false
	}
	var ev wire.Event
	if msg.Body == nil || json.Unmarshal(msg.Body, &ev) != nil || ev.Monitor == nil {
		ctl.CloseFDs(fds)
		return true
	}
	switch m := ev.Monitor; m.Op {
	case wire.MonitorAdd:
		if f, err := monitor.NewFeed(m, p.mem, fds, p.reply.Port); err == nil {
			p.feeds.Add(f)
		}
	case wire.MonitorRemove:
		ctl.CloseFDs(fds)
		p.feeds.Remove(m.ID)
	default:
		ctl.CloseFDs(fds)
	}
	return true
}

// Reopen closes p and opens the same name with the same options again,
// trying for up to timeout: after valed restarted, syncs and polls fail
// with ErrDisconnected, and Reopen gets a new binding from the new valed.
// The new port has new memory: use its rings, not p's.
func (p *Port) Reopen(timeout time.Duration) (*Port, error) {
	p.Close()
	deadline := time.Now().Add(timeout)
	for {
		np, err := Open(p.openName, &p.opts)
		if err == nil || time.Now().After(deadline) {
			return np, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close unbinds the port and unmaps its memory. valed destroys the port when
// its last binding closes. No other method may run during or after Close.
func (p *Port) Close() error {
	if p.closed.Swap(true) {
		return ErrClosed
	}
	err := p.conn.Close()
	p.feeds.Close()
	if p.waits != nil {
		p.waits.Close()
	}
	ctl.CloseFDs(p.waitFDs)
	ctl.CloseFDs(p.extraFDs)
	if merr := unix.Munmap(p.mem); merr != nil && err == nil {
		err = merr
	}
	return err
}

// Name returns the port name as valed knows it ("vale0:a").
func (p *Port) Name() string { return p.reply.Port }

// Kind returns the kind of port (wire.KindVale, KindPipe, ...).
func (p *Port) Kind() string { return p.reply.Kind }

// Switch returns the name of the switch the port is attached to, if any.
func (p *Port) Switch() string { return p.reply.Switch }

// MAC returns the port's own MAC address, a natural source address for
// frames it sends.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// Geometry returns the port's ring and buffer configuration.
func (p *Port) Geometry() ports.Geometry { return p.reply.Geometry }

// NumTxRings returns the number of TX rings of the port.
func (p *Port) NumTxRings() int { return len(p.tx) }

// NumRxRings returns the number of RX rings of the port.
func (p *Port) NumRxRings() int { return len(p.rx) }

// TxRing returns TX ring i of the port, bound or not.
func (p *Port) TxRing(i int) *ports.Ring { return p.tx[i] }

// RxRing returns RX ring i of the port, bound or not.
func (p *Port) RxRing(i int) *ports.Ring { return p.rx[i] }

// TxRings returns the TX rings this open bound.
func (p *Port) TxRings() []*ports.Ring { return p.txBound }

// RxRings returns the RX rings this open bound.
func (p *Port) RxRings() []*ports.Ring { return p.rxBound }

// Monitors returns how many monitors this binding's syncs feed (zero-copy
// monitors, and copy monitors of a pipe end). valed announces a monitor
// asynchronously: it is fed from the first sync after the announcement
// arrived.
func (p *Port) Monitors() int { return p.feeds.Len() }

// Mem returns the port's whole memory region, as netmap applications reach
// its mmap; package ports documents the layout. Writing outside the slots
// and indexes the application owns breaks the ring contract: valed resets
// the ring and the next sync returns the error.
func (p *Port) Mem() []byte { return p.mem }

// IfaceOffset returns where this binding's interface header lies in Mem.
func (p *Port) IfaceOffset() int64 { return p.reply.IfOfs }

// NetmapIfOffset returns the offset in Mem of the binding's netmap_if
// (netmap's nr_offset): netmap's struct netmap_if listing the rings this
// binding holds, which valed writes for netmap programs.
func (p *Port) NetmapIfOffset() int64 { return p.reply.NifOfs }

// MemID returns the memory id of the port's region (netmap's nr_mem_id):
// ports that share memory have the same id.
func (p *Port) MemID() uint16 { return p.reply.MemID }

// BufsHead returns the first of the binding's extra buffers (0 if there
// is none), from its netmap_if: each buffer's first four bytes hold the
// next one's index, the last one's 0 (netmap's ni_bufs_head).
func (p *Port) BufsHead() uint32 { return p.bufsHead.Load() }

// SetBufsHead sets the first extra buffer: valed takes back the buffers
// chained from it when the binding closes.
func (p *Port) SetBufsHead(idx uint32) { p.bufsHead.Store(idx) }

// SetVnetHdrLen sets the length of the virtio-net header before each frame
// in the port's slots, both ways (netmap's PORT_HDR_SET): 0, 10 or 12.
// With a header, frames go out with the offloads it describes left
// pending, and come in with the header valed wrote.
func (p *Port) SetVnetHdrLen(n int) error {
	_, err := p.portHdr(true, n)
	return err
}

// VnetHdrLen returns the length of the virtio-net header before each frame
// (netmap's PORT_HDR_GET).
func (p *Port) VnetHdrLen() (int, error) { return p.portHdr(false, 0) }

// portHdr asks valed, on a connection of its own (p.conn carries events),
// for the port's header length, setting it first if set.
func (p *Port) portHdr(set bool, n int) (int, error) {
	conn, err := ctl.Dial(ctl.SocketPath(p.opts.Socket))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var r wire.PortHdrReply
	if _, err := conn.Call(wire.OpPortHdr, wire.PortHdrRequest{Name: p.reply.Port, Set: set, Len: n}, &r); err != nil {
		return 0, fmt.Errorf("%s: virtio-net header: %w", p.reply.Port, err)
	}
	return r.Len, nil
}

// ExtraBufs returns how many extra buffers valed granted the binding
// (Options.ExtraBufs asked for them).
func (p *Port) ExtraBufs() uint32 { return p.reply.GrantedBufs }

func (p *Port) check() error {
	if p.closed.Load() {
		return ErrClosed
	}
	if p.dead.Load() {
		return fmt.Errorf("%s: %w", p.reply.Port, ErrDisconnected)
	}
	return nil
}

// TxSync publishes [old head, head) of every bound TX ring to the other side
// (the switch or the pipe peer), waking it if it sleeps, and refreshes tail
// with the room freed so far. As netmap's NIOCTXSYNC on a NIC, it does not
// wait: the frames are taken asynchronously and tail keeps advancing; use
// Poll to wait for room.
func (p *Port) TxSync() error {
	if err := p.check(); err != nil {
		return err
	}
	p.feeds.Reap()
	var first error
	for i := range p.txBound {
		if err := p.sync.TxSync(p.txFirst + i); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// RxSync releases [old head, head) of every bound RX ring and exposes the
// frames that arrived since the last sync, up to tail.
func (p *Port) RxSync() error {
	if err := p.check(); err != nil {
		return err
	}
	p.feeds.Reap()
	var first error
	for i := range p.rxBound {
		if err := p.sync.RxSync(p.rxFirst + i); err != nil && first == nil {
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
		if err := p.TxSync(); err != nil {
			return 0, err
		}
		if ev&PollIn != 0 {
			if err := p.RxSync(); err != nil {
				return 0, err
			}
		}
		if got := p.ready(ev); got != 0 || timeout == 0 {
			return got, nil
		}
		if timeout > 0 && !time.Now().Before(deadline) {
			return 0, nil
		}
		poller := &p.txPoller
		if ev&PollIn != 0 {
			poller = &p.rxPoller
		}
		if poller.Poll(func() bool { return p.moved(ev) }, deadline) {
			continue
		}
		slept := time.Now()
		if err := p.sleep(ev, deadline); err != nil {
			return 0, err
		}
		poller.Slept(time.Since(slept))
	}
}

// moved reports whether the other side changed tail or reset a ring Poll
// waits for.
func (p *Port) moved(ev Events) bool {
	check := func(rs []*ports.Ring) bool {
		for _, r := range rs {
			if r.Header().Tail() != r.Tail() || r.ResetPending() {
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
			if r.Ready() {
				got |= PollIn
				break
			}
		}
	}
	if ev&PollOut != 0 {
		for _, r := range p.txBound {
			if r.Ready() {
				got |= PollOut
				break
			}
		}
	}
	return got
}

// sleep publishes a sleep ticket on the rings Poll waits for, checks them
// once more (the other side may have moved tail before seeing the ticket)
// and blocks on the notify eventfds until the other side answers or the
// deadline passes.
func (p *Port) sleep(ev Events, deadline time.Time) error {
	if p.waits == nil {
		return errors.New("nothing to wait for: no ring bound")
	}
	set := func(t uint32) {
		if ev&PollIn != 0 {
			for _, r := range p.rxBound {
				r.Header().AppTicket().Store(t)
			}
		}
		if ev&PollOut != 0 {
			for _, r := range p.txBound {
				r.Header().AppTicket().Store(t)
			}
		}
	}
	set(p.tickets.Next())
	defer set(0)
	if p.moved(ev) {
		return nil // something moved: go around again
	}
	if _, err := p.waits.Wait(deadline); err != nil {
		return fmt.Errorf("%s: %w", p.reply.Port, err)
	}
	return nil
}

// valeSync is the sync of ports whose other side is valed.
type valeSync struct {
	p      *Port
	kickFD []int           // by TX ring: eventfd waking valed's worker
	sw     []notify.Answer // by TX ring: the switch's sleep tickets
	roomFD []int           // by RX ring: eventfd waking a sender waiting for room
	room   []notify.Answer // by RX ring: the tickets of senders waiting for room
}

func newValeSync(p *Port) *valeSync {
	s := &valeSync{p: p, kickFD: make([]int, len(p.tx)), sw: make([]notify.Answer, len(p.tx)),
		roomFD: make([]int, len(p.rx)), room: make([]notify.Answer, len(p.rx))}
	for i := range s.kickFD {
		s.kickFD[i] = -1
	}
	for i := range s.roomFD {
		s.roomFD[i] = -1
	}
	for i := range p.txBound {
		s.kickFD[p.txFirst+i] = p.extraFDs[i]
	}
	if rooms := p.extraFDs[len(p.txBound):]; len(rooms) == len(p.rxBound) {
		for i := range p.rxBound {
			s.roomFD[p.rxFirst+i] = rooms[i]
		}
	}
	return s
}

// TxSync syncs TX ring i.
func (s *valeSync) TxSync(i int) error { return s.sync(s.p.tx[i]) }

// RxSync syncs RX ring i.
func (s *valeSync) RxSync(i int) error { return s.sync(s.p.rx[i]) }

// sync publishes head and cur, kicks the switch if it sleeps on a TX ring
// that got new slots, and refreshes tail. Zero-copy monitors take the
// released RX slots before they are published, and the completed TX slots
// before the application sees them again.
func (s *valeSync) sync(r *ports.Ring) error {
	if err := r.CheckReset(); err != nil {
		return err
	}
	if err := r.Prologue(); err != nil {
		return err
	}
	feeds := &s.p.feeds
	feeding := feeds.Active()
	if feeding && r.Dir() == ports.RX && r.Head() != r.PublishedHead() {
		feeds.RxReleased(r.ID(), r, r.PublishedHead(), r.Head())
	}
	h := r.Header()
	if r.Publish() {
		// New slots for the switch, or room for a sender that waits.
		if r.Dir() == ports.TX && s.kickFD[r.ID()] >= 0 {
			s.sw[r.ID()].Kick(h.SwTicket(), s.kickFD[r.ID()])
		} else if r.Dir() == ports.RX && s.roomFD[r.ID()] >= 0 {
			s.room[r.ID()].Kick(h.SwTicket(), s.roomFD[r.ID()])
		}
	}
	if t := h.Tail(); t < r.NumSlots() && t != r.Tail() {
		if feeding && r.Dir() == ports.TX {
			// With one slot always empty, the slots the switch took are
			// [tail+1, new tail+1): netmap's old and new hwcur.
			feeds.TxCompleted(r.ID(), r, r.Next(r.Tail()), r.Next(t))
		}
		r.UpdateTail(t)
	}
	return nil
}
