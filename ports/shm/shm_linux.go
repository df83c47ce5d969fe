// Package shm implements VALE ports backed by shared memory: the port kind
// applications open through the client library. valed creates the port's
// memory (a sealed memfd), serves its rings to the switch through
// ports.KRing (validating everything the application writes) and wakes
// either side through eventfds only when the other one sleeps.
package shm

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valeswitch/vale/internal/guard"
	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/internal/shmem"
	"github.com/valeswitch/vale/internal/spin"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

// Config tunes a port. The zero value gives the defaults.
type Config struct {
	// Poll is the longest time the switch polls an idle TX ring before
	// sleeping; the actual window adapts to the traffic (see package
	// spin). Zero, the default, never polls: on a machine with fewer cores
	// than busy processes the switch's polling takes the CPU the
	// application needs (measured: no gain with one sender and one
	// receiver on two cores). Give it when valed has cores of its own.
	Poll time.Duration
	// ZLevels is how many zero-copy monitors can be chained on the port
	// (room for their rings is reserved in the port's memory).
	ZLevels int
}

// Port is a shared-memory VALE port as valed holds it. It implements the
// switch's port interface (vale.Port).
type Port struct {
	kind   string // wire.KindVale or wire.KindMonitor
	name   string
	mac    net.HardwareAddr
	geom   ports.Geometry
	layout ports.Layout
	region *shmem.Region // nil for ports over heap memory (tests)
	iface  *ports.Iface  // valed's view of the port's interface
	nifs   *ports.NetmapIfs
	extra  *ports.ExtraBufs
	tx     []*txRing
	rx     []*rxRing

	// The eventfds clients sleep on: each binding has its own, one per ring
	// pair it holds, taken from spare and given back at close, so that two
	// bindings splitting a ring pair (/T and /R) never take each other's
	// wake-ups. They are closed only by Free: the switch may still signal
	// one a binding just gave back, and a closed descriptor's number could
	// be reused.
	spare   []*notify.Eventfd
	eventfd []*notify.Eventfd // every one made

	stopped atomic.Bool
	polling *spin.Mode
	vnetHdr atomic.Int32 // virtio-net header length (SetVnetHdrLen)

	mu     sync.Mutex // bindings and claims
	users  int
	claims *portname.Claims
}

type txRing struct {
	k       *ports.KRing
	kick    *notify.Eventfd // the application signals it after publishing slots
	slots   uint32          // slots taken by the last Recv, released by Release
	tickets notify.Tickets  // the switch's sleep tickets
	worker  *spin.Worker    // how the switch's worker polls before sleeping
	ready   func() bool     // what ends its polling
	wake    wakers          // the bindings holding the ring
}

type rxRing struct {
	mu     sync.Mutex // serialises deliveries from concurrent senders
	k      *ports.KRing
	broken error // an internal error stopped the ring

	// Waiting for room (lossless mode): the application signals room when
	// its sync releases slots and the switch armed a ticket. One sender
	// waits on the eventfd at a time (waiting); others look every while.
	room    *notify.Eventfd
	tickets notify.Tickets
	waiting sync.Mutex
	seen    uint32 // the free slots Room last saw (x.mu)
	wake    wakers // the bindings holding the ring
}

// wakers are the eventfds of the bindings that hold a ring, all signalled
// when the switch answers a sleep ticket on it (bindings sharing a ring share
// its ticket word). Bindings change the list under Port.mu; the switch reads
// it without a lock.
type wakers struct {
	list atomic.Pointer[[]*notify.Eventfd]
}

func (w *wakers) signal() {
	if l := w.list.Load(); l != nil {
		for _, e := range *l {
			e.Signal()
		}
	}
}

func (w *wakers) get() []*notify.Eventfd {
	if l := w.list.Load(); l != nil {
		return *l
	}
	return nil
}

func (w *wakers) add(e *notify.Eventfd) {
	l := append(slices.Clone(w.get()), e)
	w.list.Store(&l)
}

func (w *wakers) remove(e *notify.Eventfd) {
	l := slices.DeleteFunc(slices.Clone(w.get()), func(x *notify.Eventfd) bool { return x == e })
	w.list.Store(&l)
}

// New creates a port named name with geometry g in a fresh memfd.
func New(name string, g ports.Geometry, cfg Config) (*Port, error) {
	l, err := ports.PortLayout(g, cfg.ZLevels)
	if err != nil {
		return nil, err
	}
	region, err := shmem.NewRegion(name, l.Size)
	if err != nil {
		return nil, err
	}
	shmem.Populate(region.Mem, l.Hot())
	p, err := newPort(name, g, l, region.Mem, cfg)
	if err != nil {
		region.Close()
		return nil, err
	}
	p.region = region
	return p, nil
}

// NewMonitor creates the memory of a copy monitor called name: rings receive
// rings of slots slots, no transmit ring. The switch fills it through
// Deliver; the monitor's client reads it like any port.
func NewMonitor(name string, rings, slots, bufSize uint32) (*Port, error) {
	l, err := ports.MonitorLayout(rings, slots, bufSize)
	if err != nil {
		return nil, err
	}
	region, err := shmem.NewRegion(name, l.Size)
	if err != nil {
		return nil, err
	}
	shmem.Populate(region.Mem, l.Hot())
	g := ports.Geometry{RxRings: rings, RxSlots: slots, BufSize: bufSize}
	p, err := newPort(name, g, l, region.Mem, Config{})
	if err != nil {
		region.Close()
		return nil, err
	}
	p.region, p.kind = region, wire.KindMonitor
	return p, nil
}

// NewInMemory creates a port over mem, ordinary memory of at least the
// layout's size (zeroed), instead of a memfd. Such a port cannot be bound by
// another process; tests use it to run the switch under the race detector,
// which does not see mmap'd memory.
func NewInMemory(name string, g ports.Geometry, mem []byte, cfg Config) (*Port, error) {
	l, err := ports.PortLayout(g, cfg.ZLevels)
	if err != nil {
		return nil, err
	}
	return newPort(name, g, l, mem, cfg)
}

// IfaceNames returns the names of the interfaces of a port's layout: the
// port, then its zero-copy monitor levels.
func IfaceNames(name string, l ports.Layout) []string {
	names := []string{name}
	for z := 1; z <= l.ZLevels; z++ {
		names = append(names, fmt.Sprintf("%s/z%d", name, z))
	}
	return names
}

func newPort(name string, g ports.Geometry, l ports.Layout, mem []byte, cfg Config) (*Port, error) {
	if err := ports.Init(mem, l, IfaceNames(name, l)); err != nil {
		return nil, err
	}
	iface, err := l.Iface(mem, 0)
	if err != nil {
		return nil, err
	}
	ntx, nrx := int(g.TxRings), int(g.RxRings)
	p := &Port{kind: wire.KindVale, name: name, mac: DefaultMAC(name), geom: g, layout: l, claims: portname.NewClaims(ntx, nrx)}
	p.iface, p.nifs, p.extra = iface, ports.NewNetmapIfs(mem, &p.layout), ports.NewExtraBufs(mem, &p.layout)
	kicks, err := notify.NewEventfds(ntx)
	if err != nil {
		return nil, err
	}
	rooms, err := notify.NewEventfds(nrx)
	if err != nil {
		notify.CloseAll(kicks)
		return nil, err
	}
	p.polling = spin.NewMode(spin.Polling{Window: max(cfg.Poll, 0)})
	for i := range ntx {
		t := &txRing{k: iface.KRing(ports.TX, i, name), kick: kicks[i], tickets: notify.NewTickets(), worker: spin.NewWorker(i)}
		t.ready = func() bool { return t.k.Pending() || p.stopped.Load() || t.worker.Changed(p.polling) }
		p.tx = append(p.tx, t)
	}
	for i := range nrx {
		p.rx = append(p.rx, &rxRing{k: iface.KRing(ports.RX, i, name), room: rooms[i], tickets: notify.NewTickets()})
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

// Geometry returns the port's geometry.
func (p *Port) Geometry() ports.Geometry { return p.geom }

// Layout returns the port's memory layout.
func (p *Port) Layout() ports.Layout { return p.layout }

// Mem returns the port's memory as valed maps it.
func (p *Port) Mem() []byte {
	if p.region == nil {
		return nil
	}
	return p.region.Mem
}

// NetmapIfs returns the netmap_if slots of the port's memory.
func (p *Port) NetmapIfs() *ports.NetmapIfs { return p.nifs }

// RegionFD returns the memfd of the port's memory (-1 for heap memory).
func (p *Port) RegionFD() int {
	if p.region == nil {
		return -1
	}
	return p.region.FD
}

// Rings returns the number of TX and RX rings.
func (p *Port) Rings() (tx, rx int) { return len(p.tx), len(p.rx) }

// Users returns the number of bindings.
func (p *Port) Users() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.users
}

// Describe tells vale-ctl about the port.
func (p *Port) Describe() wire.Desc {
	state := "up"
	if p.stopped.Load() {
		state = "stopping"
	}
	if h := p.vnetHdr.Load(); h > 0 {
		state += fmt.Sprintf(",vnet_hdr=%d", h)
	}
	return wire.Desc{
		Kind:    p.kind,
		TxRings: len(p.tx), RxRings: len(p.rx),
		TxSlots: int(p.geom.TxSlots), RxSlots: int(p.geom.RxSlots),
		MAC:     p.mac.String(),
		State:   state,
		Clients: p.Users(),
		Polling: p.polling.Get().Describe(),
	}
}

// Recv waits until TX ring r has frames and appends them to b. It returns
// ports.ErrStopped once Stop was called, and a *ports.RingError when the
// application broke the ring contract (the ring is reset and the
// application's sleepers woken to see the error).
func (p *Port) Recv(r int, b *frame.Batch) error {
	t := p.tx[r]
	for {
		if p.stopped.Load() {
			return ports.ErrStopped
		}
		n, err := t.take(b)
		if err != nil {
			t.wake.signal()
			return err
		}
		if n > 0 {
			t.slots = n
			return nil
		}
		// Nothing to do. With polling configured, look for a while before
		// sleeping: a busy sender publishes again within microseconds.
		if t.worker.Apply(p.polling) {
			spin.Busy(t.ready)
			continue
		}
		if t.worker.Poll(t.ready, time.Time{}) {
			continue
		}
		// Publish a sleep ticket, look once more, sleep.
		t.k.SetSwitchSleeping(t.tickets.Next())
		if t.ready() {
			t.k.SetSwitchSleeping(0)
			continue
		}
		slept := time.Now()
		werr := t.kick.Wait()
		t.k.SetSwitchSleeping(0)
		t.worker.Slept(time.Since(slept))
		if werr != nil {
			if errors.Is(werr, notify.ErrClosed) {
				return ports.ErrStopped
			}
			return fmt.Errorf("%s: wait for tx ring %d: %w", p.name, r, werr)
		}
	}
}

// take validates the ring and takes its frames (ports.KRing.TxFrames). An
// internal error reading the client's memory stops the ring: the error is
// not a *ports.RingError, so the switch stops serving it.
func (t *txRing) take(b *frame.Batch) (n uint32, err error) {
	defer func() {
		if r := recover(); r != nil {
			b.Reset()
			n, err = 0, fmt.Errorf("%w; the ring is no longer served", guard.Error(r))
		}
	}()
	return t.k.TxFrames(b)
}

// Release gives the slots of the first n frames last returned by Recv on
// ring r back to the application; the frames after them stay in the ring,
// and the next Recv takes them again.
func (p *Port) Release(r int, b *frame.Batch, n int) {
	t := p.tx[r]
	slots := t.slots
	if n < len(b.Frames) {
		slots = 0
		for _, f := range b.Frames[:n] {
			slots += 1 + uint32(len(f.More)) // a slot per fragment
		}
	}
	if t.k.TxRelease(slots) {
		t.wake.signal()
	}
	t.slots = 0
}

// Room tells how many of the frames which RX ring r can take now (see
// vale.RoomPort).
func (p *Port) Room(r int, b *frame.Batch, which []uint16) int {
	x := p.rx[r]
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.broken != nil {
		return len(which) // it takes nothing: nobody waits for it
	}
	n := x.k.Room(b, which)
	if n < len(which) {
		x.seen, _ = x.k.RxSpace()
	}
	return n
}

// WaitRoom waits until the application releases slots of RX ring r, or
// until deadline (see vale.RoomPort).
func (p *Port) WaitRoom(r int, deadline time.Time) {
	x := p.rx[r]
	if !x.waiting.TryLock() {
		// Another sender waits on the eventfd: look again in a while.
		time.Sleep(min(time.Until(deadline), 100*time.Microsecond))
		return
	}
	defer x.waiting.Unlock()
	x.mu.Lock()
	x.k.ArmRoom(x.tickets.Next())
	space, err := x.k.RxSpace()
	seen := x.seen
	x.mu.Unlock()
	if err != nil || space > seen || p.stopped.Load() {
		x.k.ArmRoom(0) // room came meanwhile (or the ring is broken: nobody waits)
		return
	}
	x.room.WaitUntil(deadline)
	x.k.ArmRoom(0)
}

// Deliver copies frames into RX ring r; see ports.KRing.RxFrames.
func (p *Port) Deliver(r int, b *frame.Batch, which []uint16) (frames, bytes int, err error) {
	x := p.rx[r]
	x.mu.Lock()
	frames, bytes, wake, err := x.deliver(b, which)
	x.mu.Unlock()
	if wake || err != nil {
		x.wake.signal()
	}
	return frames, bytes, err
}

// deliver copies frames into the ring (ports.KRing.RxFrames) and counts
// those it had no room for in the ring's header, where the client reads
// them (nm-capture reports a monitor's losses from there). An internal
// error writing the client's memory stops the ring: it takes nothing more.
// x.mu is held.
func (x *rxRing) deliver(b *frame.Batch, which []uint16) (frames, bytes int, wake bool, err error) {
	if x.broken != nil {
		return 0, 0, false, nil
	}
	defer func() {
		if r := recover(); r != nil {
			x.broken = guard.Error(r)
			frames, bytes, wake, err = 0, 0, true, x.broken
		}
	}()
	frames, bytes, wake, err = x.k.RxFrames(b, which, b.Time)
	if lost := len(which) - frames; err == nil && lost > 0 {
		x.k.Dropped(lost)
	}
	return frames, bytes, wake, err
}

// SetPolling changes how the switch's workers wait for the port's TX rings
// (vale-ctl -p, -P); they apply it at once.
func (p *Port) SetPolling(pol spin.Polling) error {
	if err := pol.Validate(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.polling.Set(pol)
	for _, t := range p.tx {
		t.kick.Signal()
	}
	return nil
}

// SetVnetHdrLen sets the length of the virtio-net header before each frame
// in the port's slots, both ways (netmap's PORT_HDR_SET): 0, 10 or 12.
func (p *Port) SetVnetHdrLen(n int) error {
	if n != 0 && n != frame.VnetHdrLen && n != frame.VnetHdrLenMrg {
		return fmt.Errorf("%s: invalid virtio-net header length %d (0, %d or %d)", p.name, n, frame.VnetHdrLen, frame.VnetHdrLenMrg)
	}
	p.vnetHdr.Store(int32(n))
	for _, t := range p.tx {
		t.k.SetVnetHdrLen(n)
	}
	for _, x := range p.rx {
		x.k.SetVnetHdrLen(n)
	}
	return nil
}

// VnetHdrLen returns the length of the virtio-net header before each frame.
func (p *Port) VnetHdrLen() int { return int(p.vnetHdr.Load()) }

// Offloads tells the switch what the port takes as it is (vale.OffloadPort):
// with a virtio-net header, everything the header can say.
func (p *Port) Offloads() frame.OffloadCaps {
	if p.vnetHdr.Load() == 0 {
		return frame.OffloadCaps{}
	}
	return frame.OffloadCaps{Csum: true, TSO4: true, TSO6: true}
}

// Polling returns how the switch's workers wait for the port's TX rings.
func (p *Port) Polling() spin.Polling { return p.polling.Get() }

// Stop makes Recv return ports.ErrStopped, now and from now on.
func (p *Port) Stop() {
	p.stopped.Store(true)
	for _, t := range p.tx {
		t.kick.Signal()
	}
	for _, x := range p.rx {
		x.room.Signal() // a sender waiting for room looks again, and sees the port go
	}
}

// Free releases the port's memory and descriptors. The port must be stopped
// and detached from its switch, and its bindings closed.
func (p *Port) Free() error {
	for _, t := range p.tx {
		t.kick.Close()
	}
	for _, x := range p.rx {
		x.room.Close()
	}
	notify.CloseAll(p.eventfd)
	p.nifs.Close() // a zero-copy monitor may outlive the port
	if p.region != nil {
		return p.region.Close()
	}
	return nil
}

// Binding is one client's hold on a port.
type Binding struct {
	port   *Port
	sel    portname.Selection
	nif    int64             // its netmap_if
	extra  uint32            // extra buffers granted
	wake   []*notify.Eventfd // by ring pair of sel.Notify: what it sleeps on
	closed bool
}

// Bind gives a client the rings sel names, and up to extra of the port's
// extra buffers; see portname.Claims for exclusive bindings.
func (p *Port) Bind(sel portname.Selection, extra uint32) (*Binding, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped.Load() {
		return nil, fmt.Errorf("%s: port is going away", p.name)
	}
	if err := p.claims.Take(p.name, sel); err != nil {
		return nil, err
	}
	nf, nl := sel.Notify()
	wake, err := p.takeEventfds(nl - nf)
	if err != nil {
		p.claims.Release(sel)
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	head, got := p.extra.Grant(extra)
	nif, err := p.nifs.Write(0, sel.Bound(), p.name, head)
	if err != nil {
		p.extra.Reclaim(head)
		p.claims.Release(sel)
		p.spare = append(p.spare, wake...)
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	for i := sel.TxFirst; i < sel.TxLast; i++ {
		p.tx[i].wake.add(wake[i-nf])
	}
	for i := sel.RxFirst; i < sel.RxLast; i++ {
		p.rx[i].wake.add(wake[i-nf])
	}
	p.users++
	return &Binding{port: p, sel: sel, nif: nif, extra: got, wake: wake}, nil
}

// takeEventfds returns n eventfds for a binding, spare ones first. p.mu is
// held.
func (p *Port) takeEventfds(n int) ([]*notify.Eventfd, error) {
	reuse := min(n, len(p.spare))
	efs := slices.Clone(p.spare[len(p.spare)-reuse:])
	p.spare = p.spare[:len(p.spare)-reuse]
	for _, e := range efs {
		e.Drain() // a wake-up for the binding before
	}
	fresh, err := notify.NewEventfds(n - reuse)
	if err != nil {
		p.spare = append(p.spare, efs...)
		return nil, err
	}
	p.eventfd = append(p.eventfd, fresh...)
	return append(efs, fresh...), nil
}

// Drain waits, until deadline at most, for the switch to consume what the
// binding's TX rings held when it was called: netmap forwards inside
// TXSYNC, so a program that sends and exits expects its frames delivered,
// and the switch takes them from the rings after its client is gone. It
// reads only the control blocks' published indexes (atomics), never the
// worker's own state, and gives up early on a ring the switch reset or on
// a port being stopped.
func (b *Binding) Drain(deadline time.Time) {
	p := b.port
	for i := b.sel.TxFirst; i < b.sel.TxLast; i++ {
		if p.tx[i].k.DrainedBy(deadline, p.stopped.Load) {
			continue
		}
		return // deadline passed
	}
}

// NotifyFDs returns the eventfds the binding's client sleeps on, one per
// ring pair of its selection's Notify range; they live as long as the port.
func (b *Binding) NotifyFDs() []int { return notify.FDs(b.wake) }

// Selection returns the rings the binding holds.
func (b *Binding) Selection() portname.Selection { return b.sel }

// Reply fills the parts of an open reply that describe the binding, and
// returns the descriptors that go with it (owned by the port).
func (b *Binding) Reply(r *wire.OpenReply) ([]int, error) {
	p := b.port
	if p.region == nil {
		return nil, fmt.Errorf("%s: port memory cannot be shared", p.name)
	}
	nf, nl := b.sel.Notify()
	*r = wire.OpenReply{
		Kind: p.kind, Port: p.name, MAC: p.mac.String(), Geometry: p.geom,
		MemSize: p.layout.Size, IfOfs: p.layout.Ifaces[0].Ofs, NifOfs: b.nif, MemID: p.nifs.MemID(), GrantedBufs: b.extra, Pools: p.layout.Pools(),
		TxFirst: b.sel.TxFirst, TxLast: b.sel.TxLast, RxFirst: b.sel.RxFirst, RxLast: b.sel.RxLast,
		NotifyFirst: nf, NotifyLast: nl,
	}
	fds := append([]int{p.region.FD}, b.NotifyFDs()...)
	for i := b.sel.TxFirst; i < b.sel.TxLast; i++ {
		fds = append(fds, p.tx[i].kick.FD())
	}
	for i := b.sel.RxFirst; i < b.sel.RxLast; i++ {
		fds = append(fds, p.rx[i].room.FD())
	}
	return fds, nil
}

// Close releases the binding. It returns the number of bindings left.
func (b *Binding) Close() int {
	p := b.port
	p.mu.Lock()
	defer p.mu.Unlock()
	if !b.closed {
		b.closed = true
		p.claims.Release(b.sel)
		p.extra.Reclaim(p.nifs.Release(b.nif))
		nf, _ := b.sel.Notify()
		for i := b.sel.TxFirst; i < b.sel.TxLast; i++ {
			p.tx[i].wake.remove(b.wake[i-nf])
		}
		for i := b.sel.RxFirst; i < b.sel.RxLast; i++ {
			p.rx[i].wake.remove(b.wake[i-nf])
		}
		p.spare = append(p.spare, b.wake...)
		p.users--
	}
	return p.users
}

// Occupancy returns the frames in flight in the port's TX rings (published
// by the application, not yet switched) and RX rings (delivered, not yet
// read), summed over the rings.
func (p *Port) Occupancy() (tx, rx int) {
	for _, t := range p.tx {
		tx += t.k.Occupancy()
	}
	for _, r := range p.rx {
		rx += r.k.Occupancy()
	}
	return tx, rx
}
