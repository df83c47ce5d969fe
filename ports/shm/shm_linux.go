// Package shm implements VALE ports backed by shared memory: the port kind
// applications open through the ports client library. valed creates the
// port's memory (a sealed memfd), serves its rings to the switch through
// ports.KRing (validating everything the application writes) and wakes
// either side through eventfds only when the other one sleeps.
package shm

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/spin"
	"github.com/valeswitch/vale/ports"
)

// Port is a shared-memory VALE port as valed holds it. It implements the
// switch's port interface (vale.Port).
type Port struct {
	name   string
	mac    net.HardwareAddr
	layout ports.Layout
	mem    []byte
	memfd  int // -1 for ports over heap memory (tests)
	mapped bool
	tx     []*txRing
	rx     []*rxRing

	stopped atomic.Bool

	mu       sync.Mutex // bindings and ring holders
	bindings map[*Binding]struct{}
	holders  []ringHolders // by ring index in layout order
}

type ringHolders struct {
	count     int
	exclusive bool
}

type txRing struct {
	k       *ports.KRing
	kick    *os.File // eventfd the application writes after publishing slots
	kickFD  int      // kick's descriptor, sent to clients
	slots   uint32   // slots taken by the last Recv, released by Release
	ticket  uint32   // switch sleep tickets
	poller  spin.Poller
	notify  atomic.Pointer[[]*os.File]
	readBuf [8]byte
}

type rxRing struct {
	mu     sync.Mutex // serialises deliveries from concurrent senders
	k      *ports.KRing
	notify atomic.Pointer[[]*os.File]
}

// Config tunes a port. The zero value gives the defaults.
type Config struct {
	// Poll is the longest time the switch polls an idle TX ring before
	// sleeping; the actual window adapts to the traffic (see package
	// spin). Zero, the default, never polls: on a machine with fewer cores
	// than busy processes the switch's polling takes the CPU the
	// application needs (measured: no gain with one sender and one
	// receiver on two cores). Give it when valed has cores of its own.
	Poll time.Duration
}

// New creates a port named name with geometry g in a fresh memfd.
func New(name string, g ports.Geometry, cfg Config) (*Port, error) {
	l, err := g.Layout()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("vale:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("create memory of %s: %w", name, err)
	}
	if err := unix.Ftruncate(fd, l.Size); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("size memory of %s: %w", name, err)
	}
	// Sealed so that no client can shrink the memory under valed's mapping.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("seal memory of %s: %w", name, err)
	}
	mem, err := unix.Mmap(fd, 0, int(l.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("map memory of %s: %w", name, err)
	}
	p, err := newPort(name, l, mem, fd, cfg)
	if err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	p.mapped = true
	return p, nil
}

// NewInMemory creates a port over mem, ordinary memory of at least the
// layout's size (zeroed), instead of a memfd. Such a port cannot be bound by
// another process; tests use it to run the switch under the race detector,
// which does not see mmap'd memory.
func NewInMemory(name string, g ports.Geometry, mem []byte, cfg Config) (*Port, error) {
	l, err := g.Layout()
	if err != nil {
		return nil, err
	}
	return newPort(name, l, mem, -1, cfg)
}

func newPort(name string, l ports.Layout, mem []byte, memfd int, cfg Config) (*Port, error) {
	poll := cfg.Poll
	if err := ports.Init(mem, l, name); err != nil {
		return nil, err
	}
	krs, err := ports.KRings(mem, l, name)
	if err != nil {
		return nil, err
	}
	p := &Port{
		name: name, mac: DefaultMAC(name), layout: l, mem: mem, memfd: memfd,
		bindings: map[*Binding]struct{}{},
		holders:  make([]ringHolders, l.NumRings),
	}
	for i := range int(l.TxRings) {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			p.closeFiles()
			return nil, fmt.Errorf("create kick eventfd of %s: %w", name, err)
		}
		t := &txRing{k: krs[i], kick: os.NewFile(uintptr(efd), "vale-kick"), kickFD: efd}
		t.poller.Max = max(poll, 0)
		t.notify.Store(&[]*os.File{})
		p.tx = append(p.tx, t)
	}
	for i := range int(l.RxRings) {
		r := &rxRing{k: krs[int(l.TxRings)+i]}
		r.notify.Store(&[]*os.File{})
		p.rx = append(p.rx, r)
	}
	return p, nil
}

// DefaultMAC returns the MAC address valed gives the port named name: a
// locally administered unicast address derived from the name, so it is
// stable across restarts.
func DefaultMAC(name string) net.HardwareAddr {
	h := fnv.New64a()
	h.Write([]byte(name))
	s := h.Sum64()
	return net.HardwareAddr{0x02, byte(s >> 32), byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// Name returns the port name.
func (p *Port) Name() string { return p.name }

// MAC returns the port's MAC address.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// Layout returns the port's memory layout.
func (p *Port) Layout() ports.Layout { return p.layout }

// Rings returns the number of TX and RX rings.
func (p *Port) Rings() (tx, rx int) { return len(p.tx), len(p.rx) }

// Users returns the number of bindings.
func (p *Port) Users() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.bindings)
}

// Describe tells vale-ctl about the port.
func (p *Port) Describe() ports.Desc {
	state := "up"
	if p.stopped.Load() {
		state = "stopping"
	}
	return ports.Desc{
		Kind:    "vale",
		TxRings: len(p.tx), RxRings: len(p.rx),
		TxSlots: int(p.layout.TxSlots), RxSlots: int(p.layout.RxSlots),
		MAC:     p.mac.String(),
		State:   state,
		Clients: p.Users(),
	}
}

// Recv waits until TX ring r has frames and appends them to b. It returns
// ports.ErrStopped once Stop was called, and a *ports.RingError when the
// application broke the ring contract (the ring is reset and the
// application's sleepers woken to see the error).
func (p *Port) Recv(r int, b *ports.Batch) error {
	t := p.tx[r]
	for {
		if p.stopped.Load() {
			return ports.ErrStopped
		}
		n, err := t.k.TxFrames(b)
		if err != nil {
			notify(t.notify.Load())
			return err
		}
		if n > 0 {
			t.slots = n
			return nil
		}
		// Nothing to do. A busy sender publishes again within
		// microseconds: look for a while before going to sleep, which
		// saves the sender a kick and the switch a wake-up.
		if t.poller.Poll(func() bool { return t.k.Pending() || p.stopped.Load() }, time.Time{}) {
			continue
		}
		// Publish a sleep ticket, look once more, sleep.
		t.ticket++
		if t.ticket == 0 {
			t.ticket = 1
		}
		t.k.SetSwitchSleeping(t.ticket)
		if t.k.Pending() || p.stopped.Load() {
			t.k.SetSwitchSleeping(0)
			continue
		}
		slept := time.Now()
		_, rerr := t.kick.Read(t.readBuf[:])
		t.k.SetSwitchSleeping(0)
		t.poller.Slept(time.Since(slept))
		if rerr != nil {
			if errors.Is(rerr, os.ErrClosed) {
				return ports.ErrStopped
			}
			return fmt.Errorf("%s: wait for tx ring %d: %w", p.name, r, rerr)
		}
	}
}

// Release gives the slots of the frames last returned by Recv on ring r back
// to the application.
func (p *Port) Release(r int, _ *ports.Batch) {
	t := p.tx[r]
	if t.k.TxRelease(t.slots) {
		notify(t.notify.Load())
	}
	t.slots = 0
}

// Deliver copies frames into RX ring r; see ports.KRing.RxFrames.
func (p *Port) Deliver(r int, b *ports.Batch, which []uint16) (frames, bytes int, err error) {
	x := p.rx[r]
	x.mu.Lock()
	frames, bytes, wake, err := x.k.RxFrames(b, which, b.Time)
	x.mu.Unlock()
	if wake || err != nil {
		notify(x.notify.Load())
	}
	return frames, bytes, err
}

// Stop makes Recv return ports.ErrStopped, now and from now on.
func (p *Port) Stop() {
	p.stopped.Store(true)
	for _, t := range p.tx {
		kick(t.kick)
	}
}

// Free releases the port's memory and descriptors. The port must be stopped
// and detached from its switch, and its bindings closed.
func (p *Port) Free() error {
	p.mu.Lock()
	for b := range p.bindings {
		b.closeLocked()
	}
	p.mu.Unlock()
	p.closeFiles()
	var err error
	if p.mapped {
		err = unix.Munmap(p.mem)
		p.mapped = false
	}
	if p.memfd >= 0 {
		unix.Close(p.memfd)
		p.memfd = -1
	}
	return err
}

func (p *Port) closeFiles() {
	for _, t := range p.tx {
		t.kick.Close()
	}
}

// Selection says which rings a binding takes: TX rings [TxFirst, TxLast) and
// RX rings [RxFirst, RxLast).
type Selection struct {
	TxFirst, TxLast int
	RxFirst, RxLast int
	Exclusive       bool
}

// SelectRings turns the ring part of a port name into a Selection for a port
// with ntx TX and nrx RX rings.
func SelectRings(n *ports.Name, ntx, nrx int) (Selection, error) {
	s := Selection{TxLast: ntx, RxLast: nrx, Exclusive: n.Flags&ports.FlagExclusive != 0}
	if n.Mode == ports.RegOneNIC {
		if n.Ring >= ntx && n.Ring >= nrx {
			return Selection{}, fmt.Errorf("%s: ring %d out of range (the port has %d tx and %d rx rings)", n.PortName(), n.Ring, ntx, nrx)
		}
		s.TxFirst, s.TxLast = min(n.Ring, ntx), min(n.Ring+1, ntx)
		s.RxFirst, s.RxLast = min(n.Ring, nrx), min(n.Ring+1, nrx)
	}
	if n.Flags&ports.FlagRxOnly != 0 {
		s.TxFirst, s.TxLast = 0, 0
	}
	if n.Flags&ports.FlagTxOnly != 0 {
		s.RxFirst, s.RxLast = 0, 0
	}
	return s, nil
}

// Binding is one client's hold on a port: the rings it bound and the eventfd
// valed writes to wake it.
type Binding struct {
	port     *Port
	sel      Selection
	notify   *os.File
	notifyFD int
	closed   bool
}

// Bind gives a client the rings sel names. An exclusive selection fails if
// anyone holds one of its rings, and any selection fails on a ring held
// exclusively.
func (p *Port) Bind(sel Selection) (*Binding, error) {
	if sel.TxFirst < 0 || sel.TxLast > len(p.tx) || sel.TxFirst > sel.TxLast ||
		sel.RxFirst < 0 || sel.RxLast > len(p.rx) || sel.RxFirst > sel.RxLast {
		return nil, fmt.Errorf("%s: ring selection out of range", p.name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped.Load() {
		return nil, fmt.Errorf("%s: port is going away", p.name)
	}
	idx := p.ringIndexes(sel)
	for _, i := range idx {
		h := p.holders[i]
		if h.exclusive || (sel.Exclusive && h.count > 0) {
			return nil, fmt.Errorf("%s: rings busy (bound exclusively, or /x asked and already bound): %w", p.name, unix.EBUSY)
		}
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("%s: create notify eventfd: %w", p.name, err)
	}
	b := &Binding{port: p, sel: sel, notify: os.NewFile(uintptr(efd), "vale-notify"), notifyFD: efd}
	for _, i := range idx {
		p.holders[i].count++
		p.holders[i].exclusive = sel.Exclusive
	}
	p.bindings[b] = struct{}{}
	p.rebuildNotifyLocked()
	return b, nil
}

func (p *Port) ringIndexes(sel Selection) []int {
	var idx []int
	for i := sel.TxFirst; i < sel.TxLast; i++ {
		idx = append(idx, p.layout.RingIndex(ports.TX, i))
	}
	for i := sel.RxFirst; i < sel.RxLast; i++ {
		idx = append(idx, p.layout.RingIndex(ports.RX, i))
	}
	return idx
}

// rebuildNotifyLocked recomputes, for every ring, the eventfds of the
// bindings to wake. The lists are replaced, never changed in place, so the
// data path reads them without a lock.
func (p *Port) rebuildNotifyLocked() {
	for i, t := range p.tx {
		var l []*os.File
		for b := range p.bindings {
			if i >= b.sel.TxFirst && i < b.sel.TxLast {
				l = append(l, b.notify)
			}
		}
		t.notify.Store(&l)
	}
	for i, r := range p.rx {
		var l []*os.File
		for b := range p.bindings {
			if i >= b.sel.RxFirst && i < b.sel.RxLast {
				l = append(l, b.notify)
			}
		}
		r.notify.Store(&l)
	}
}

// Selection returns the rings the binding holds.
func (b *Binding) Selection() Selection { return b.sel }

// FDs returns the descriptors a client needs, in the order the open protocol
// defines: port memory, notify eventfd, then the kick eventfd of each bound
// TX ring. They stay owned by the port.
func (b *Binding) FDs() ([]int, error) {
	p := b.port
	if p.memfd < 0 {
		return nil, fmt.Errorf("%s: port memory cannot be shared", p.name)
	}
	fds := []int{p.memfd, b.notifyFD}
	for i := b.sel.TxFirst; i < b.sel.TxLast; i++ {
		fds = append(fds, p.tx[i].kickFD)
	}
	return fds, nil
}

// Close releases the binding. It returns the number of bindings left.
func (b *Binding) Close() int {
	p := b.port
	p.mu.Lock()
	defer p.mu.Unlock()
	b.closeLocked()
	return len(p.bindings)
}

func (b *Binding) closeLocked() {
	if b.closed {
		return
	}
	b.closed = true
	p := b.port
	for _, i := range p.ringIndexes(b.sel) {
		p.holders[i].count--
		if p.holders[i].count == 0 {
			p.holders[i].exclusive = false
		}
	}
	delete(p.bindings, b)
	p.rebuildNotifyLocked()
	// Writers hold *os.File, so a late notify on a closed file fails
	// cleanly instead of hitting a reused descriptor.
	b.notify.Close()
}

var one = [8]byte{1}

func kick(f *os.File) { f.Write(one[:]) }

func notify(files *[]*os.File) {
	for _, f := range *files {
		kick(f)
	}
}
