package afxdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/netdev"
	"github.com/valeswitch/vale/internal/offload"
	"github.com/valeswitch/vale/internal/spin"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
	"github.com/vishvananda/netlink"
)

// CopyMode says how sockets bind.
type CopyMode string

// Socket binding modes.
const (
	CopyAuto      CopyMode = ""         // zero-copy where the driver supports it, copy otherwise
	ForceCopy     CopyMode = "copy"     // always copy (XDP_COPY)
	ForceZeroCopy CopyMode = "zerocopy" // zero-copy or fail (XDP_ZEROCOPY)
)

// Defaults and limits of Options.
const (
	DefaultRingSize  = 2048
	MaxRingSize      = 16384
	DefaultFrameSize = 2048
)

// Options configure an attachment. The zero value attaches every queue in
// the best mode the driver offers.
type Options struct {
	Mode       Mode     // XDP attach mode
	Copy       CopyMode // socket binding mode
	StartQueue int      // first queue to attach
	Queues     int      // how many queues from StartQueue; 0 means all the rest
	RingSize   int      // descriptors per RX, TX and completion ring (power of two)
	FrameSize  int      // bytes per UMEM frame: 2048 or 4096
	// StateDir is where the attachment records the interface settings it
	// changed, so that RestoreStale can put them back after a crash; empty
	// records nothing.
	StateDir string
	Logger   *slog.Logger
}

func (o *Options) normalize() error {
	if o.RingSize == 0 {
		o.RingSize = DefaultRingSize
	}
	if o.RingSize < 64 || o.RingSize > MaxRingSize || o.RingSize&(o.RingSize-1) != 0 {
		return fmt.Errorf("ring size %d: want a power of two in [64, %d]", o.RingSize, MaxRingSize)
	}
	if o.FrameSize == 0 {
		o.FrameSize = DefaultFrameSize
	}
	if o.FrameSize != 2048 && o.FrameSize != 4096 {
		return fmt.Errorf("frame size %d: want 2048 or 4096", o.FrameSize)
	}
	if o.StartQueue < 0 || o.Queues < 0 {
		return fmt.Errorf("queues %d from %d: must not be negative", o.Queues, o.StartQueue)
	}
	switch o.Copy {
	case CopyAuto, ForceCopy, ForceZeroCopy:
	default:
		return fmt.Errorf("unknown copy mode %q (copy or zerocopy)", o.Copy)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Port is a network interface attached to a switch through AF_XDP. It
// implements the switch's port interface: TX ring i (frames into the
// switch) is the RX ring of the socket of queue StartQueue+i, RX ring i
// (frames from the switch) that socket's TX ring.
type Port struct {
	name     string
	ifname   string
	ifindex  int
	mac      net.HardwareAddr
	opts     Options
	prog     *program
	queues   []*queue
	promisc  *os.File
	offloads netdev.Offloads // as they were before the attachment
	state    *stateFile
	log      *slog.Logger
	stopped  atomic.Bool
	polling  *spin.Mode    // vale-ctl -p: busy-poll the RX rings
	oversize atomic.Uint64 // frames from the switch too long for a UMEM frame
	// fixCsum completes partial checksums in received frames: a veth's
	// peer hands over frames whose checksum it left to offload.
	fixCsum  bool
	csumDone atomic.Uint64
}

// queue is one attached queue.
type queue struct {
	s *socket
	// taken are the UMEM frames of the last Recv, for Release (worker
	// only): first those of the frames handed to the switch, in order,
	// then those of the descriptors that made no frame. kept are the
	// frames the last Release did not take back: the next Recv hands them
	// out first.
	taken  []uint64
	framed int
	kept   []keptFrame
	// mu serialises deliveries: several switch workers may send to one
	// queue at once.
	mu     sync.Mutex
	txFree []uint64

	worker *spin.Worker // how the worker waits (Port.polling)
	ready  func() bool  // what ends its busy polling
}

// keptFrame is a received frame not taken by the switch yet.
type keptFrame struct {
	addr uint64
	data []byte
}

// Attach attaches the interface ifname as the switch port called name
// (e.g. "vale0:eth1"). On any error the interface is left as it was.
func Attach(name, ifname string, opts Options) (_ *Port, err error) {
	if err := opts.normalize(); err != nil {
		return nil, fmt.Errorf("%s: %w", ifname, err)
	}
	a, err := checkInterface(ifname, &opts)
	if err != nil {
		return nil, err
	}
	if removed, err := RemoveStaleProgram(ifname); err != nil {
		return nil, err
	} else if removed {
		opts.Logger.Warn("removed a stale vale XDP program", "interface", ifname)
	}
	p := &Port{name: name, ifname: ifname, ifindex: a.Index, mac: a.HardwareAddr, opts: opts, log: opts.Logger, polling: spin.NewMode(spin.Polling{}),
		fixCsum: netdev.LocalSenders(ifname)}
	defer func() {
		if err != nil {
			p.Free()
		}
	}()
	if err := p.prepareInterface(); err != nil {
		return nil, err
	}
	if p.prog, err = attachProgram(ifname, a.Index, opts.StartQueue+opts.Queues, opts.Mode); err != nil {
		return nil, err
	}
	if err := p.openSockets(); err != nil {
		return nil, err
	}
	p.log.Info("interface attached over AF_XDP", "port", name, "interface", ifname, "mode", p.Mode(),
		"queues", fmt.Sprintf("%d-%d", opts.StartQueue, opts.StartQueue+opts.Queues-1), "ring_size", opts.RingSize, "frame_size", opts.FrameSize,
		"complete_partial_checksums", p.fixCsum)
	return p, nil
}

// checkInterface checks that ifname can be attached with opts (up, its
// MTU fits a UMEM frame, the queues exist) and completes opts.Queues.
func checkInterface(ifname string, opts *Options) (*netlink.LinkAttrs, error) {
	l, err := netdev.Lookup(ifname)
	if err != nil {
		return nil, err
	}
	a := l.Attrs()
	if !netdev.IsUp(l) {
		return nil, fmt.Errorf("%s is down: bring it up first (ip link set %s up)", ifname, ifname)
	}
	// A frame holds the XDP headroom and the largest frame of the MTU,
	// with a VLAN tag.
	if room := opts.FrameSize - unix.XDP_PACKET_HEADROOM - 18; a.MTU > room {
		hint := "lower the MTU"
		if opts.FrameSize < 4096 {
			hint = fmt.Sprintf("use frame size 4096 (MTU up to %d) or lower the MTU", 4096-unix.XDP_PACKET_HEADROOM-18)
		}
		return nil, fmt.Errorf("%s: MTU %d does not fit a %d-byte UMEM frame (MTU up to %d): %s", ifname, a.MTU, opts.FrameSize, room, hint)
	}
	nq, err := netdev.RxQueues(ifname)
	if err != nil {
		return nil, err
	}
	if opts.StartQueue >= nq {
		return nil, fmt.Errorf("%s has %d queues: no queue %d", ifname, nq, opts.StartQueue)
	}
	if opts.Queues == 0 {
		opts.Queues = nq - opts.StartQueue
	}
	if opts.StartQueue+opts.Queues > nq {
		return nil, fmt.Errorf("%s has %d queues: cannot attach %d from queue %d", ifname, nq, opts.Queues, opts.StartQueue)
	}
	return a, nil
}

// prepareInterface records the interface's settings (to restore them
// after a crash), turns GRO and LRO off and makes it promiscuous.
func (p *Port) prepareInterface() (err error) {
	if p.offloads, err = netdev.GetOffloads(p.ifname); err != nil {
		return err
	}
	if p.state, err = recordState(p.opts.StateDir, p.ifname, p.ifindex, p.offloads); err != nil {
		return err
	}
	if p.offloads.GRO || p.offloads.LRO {
		if err := netdev.SetOffloads(p.ifname, netdev.Offloads{}); err != nil {
			return err
		}
	}
	if p.promisc, err = netdev.Promiscuous(p.ifindex); err != nil {
		return fmt.Errorf("%s: %w", p.ifname, err)
	}
	return nil
}

// openSockets binds a socket to each queue, in zero-copy mode where the
// program runs natively and the options allow it, and registers it with
// the program.
func (p *Port) openSockets() error {
	opts := p.opts
	if opts.Copy == ForceZeroCopy && p.prog.mode != ModeNative {
		return fmt.Errorf("%s: zero-copy needs native mode (the program attached in %s mode)", p.ifname, p.prog.mode)
	}
	zc := opts.Copy != ForceCopy && p.prog.mode == ModeNative
	for q := opts.StartQueue; q < opts.StartQueue+opts.Queues; q++ {
		cfg := socketConfig{ifindex: p.ifindex, queue: q, ringSize: uint32(opts.RingSize), frameSize: uint32(opts.FrameSize), zeroCopy: zc}
		s, err := newSocket(cfg)
		if err != nil && zc && opts.Copy == CopyAuto {
			// The driver runs XDP but has no zero-copy sockets: copy.
			zc, cfg.zeroCopy = false, false
			s, err = newSocket(cfg)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p.ifname, err)
		}
		q := &queue{s: s, txFree: s.txFrameAddrs(), taken: make([]uint64, 0, frame.MaxBatch), worker: spin.NewWorker(len(p.queues))}
		q.ready = func() bool { return s.rx.available(1) > 0 || p.stopped.Load() || q.worker.Changed(p.polling) }
		p.queues = append(p.queues, q)
		if err := p.prog.register(s); err != nil {
			return fmt.Errorf("%s: %w", p.ifname, err)
		}
	}
	return nil
}

// Mode returns the mode obtained: the XDP attach mode and the socket mode,
// e.g. "native/zerocopy" or "generic/copy".
func (p *Port) Mode() string {
	if p.prog == nil || len(p.queues) == 0 {
		return "detached"
	}
	sock := "copy"
	if p.queues[0].s.zeroCopy {
		sock = "zerocopy"
	}
	return string(p.prog.mode) + "/" + sock
}

// Name returns the port's name.
func (p *Port) Name() string { return p.name }

// Interface returns the name of the attached interface.
func (p *Port) Interface() string { return p.ifname }

// SetPolling makes the port's workers busy-poll its queues' RX rings, or
// sleep again (vale-ctl -p, -P; netmap's VALE_POLLING_ENABLE). The
// adaptive window does not apply: a worker polls or it sleeps.
func (p *Port) SetPolling(pol spin.Polling) error {
	if err := pol.Validate(); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.polling.Set(pol)
	for _, q := range p.queues {
		q.s.interrupt()
	}
	return nil
}

// Polling returns how the port's workers wait.
func (p *Port) Polling() spin.Polling { return p.polling.Get() }

// MAC returns the interface's MAC address.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// Describe tells vale-ctl about the port.
func (p *Port) Describe() wire.Desc {
	state := []string{p.Mode(), fmt.Sprintf("q%d-%d", p.opts.StartQueue, p.opts.StartQueue+len(p.queues)-1)}
	if p.stopped.Load() {
		state = append(state, "stopping")
	} else if l, err := netdev.Lookup(p.ifname); err != nil || !netdev.IsUp(l) {
		state = append(state, "link-down")
	}
	if n := p.oversize.Load(); n > 0 {
		state = append(state, fmt.Sprintf("oversize=%d", n))
	}
	if n := p.csumDone.Load(); n > 0 {
		state = append(state, fmt.Sprintf("csum-completed=%d", n))
	}
	return wire.Desc{
		Kind:    "nic",
		TxRings: len(p.queues), RxRings: len(p.queues),
		TxSlots: p.opts.RingSize, RxSlots: p.opts.RingSize,
		MAC:     p.mac.String(),
		State:   strings.Join(state, ","),
		Polling: p.polling.Get().Describe(),
	}
}

// Geometry returns the port's rings and frame size as a ports.Geometry, for
// copy monitors sized like the port.
func (p *Port) Geometry() ports.Geometry {
	n, s := uint32(len(p.queues)), uint32(p.opts.RingSize)
	return ports.Geometry{TxRings: n, RxRings: n, TxSlots: s, RxSlots: s, BufSize: uint32(p.opts.FrameSize)}
}

// Recv waits until queue r has received frames and appends them to b:
// first the frames the last Release did not take.
func (p *Port) Recv(r int, b *frame.Batch) error {
	q := p.queues[r]
	s := q.s
	q.taken, q.framed = q.taken[:0], 0
	for _, k := range q.kept {
		q.taken = append(q.taken, k.addr)
		b.Add(k.data, 0)
	}
	q.framed, q.kept = len(q.kept), q.kept[:0]
	var other []uint64 // descriptors without a frame, refilled at Release
	for {
		if p.stopped.Load() {
			return ports.ErrStopped
		}
		if n := s.rx.available(frame.MaxBatch - uint32(len(b.Frames))); n > 0 {
			fixed := uint64(0)
			for i := range n {
				d := s.rx.descs[(s.rx.cachedCons+i)&s.rx.mask]
				addr := s.frameBase(d.Addr)
				if data, ok := s.frame(d.Addr, d.Len); ok && d.Len > 0 {
					if p.fixCsum && offload.CompletePartial(data) {
						fixed++
					}
					b.Add(data, 0)
					q.taken = append(q.taken, addr)
					q.framed++
				} else {
					other = append(other, addr)
				}
			}
			s.rx.release(n)
			if fixed > 0 {
				p.csumDone.Add(fixed)
			}
		}
		if len(b.Frames) > 0 {
			q.taken = append(q.taken, other...)
			return nil
		}
		if len(other) > 0 {
			q.taken = append(q.taken, other...)
			p.refill(q)
			other = other[:0]
			continue
		}
		s.kickFill()
		if q.worker.Apply(p.polling) {
			spin.Busy(q.ready)
			continue
		}
		err := s.waitRx(p.stopped.Load)
		if p.stopped.Load() {
			return ports.ErrStopped
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.resume() // SetPolling interrupted the wait: apply it
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: wait for queue %d: %w", p.name, s.queue, err)
		}
	}
}

// Release gives the first n frames of the last Recv on ring r back to the
// kernel (and the descriptors that made no frame); the others are kept
// for the next Recv.
func (p *Port) Release(r int, b *frame.Batch, n int) {
	q := p.queues[r]
	for i := n; i < q.framed; i++ {
		q.kept = append(q.kept, keptFrame{addr: q.taken[i], data: b.Frames[i].Data})
	}
	if n < q.framed {
		q.taken = append(q.taken[:n], q.taken[q.framed:]...)
	}
	p.refill(q)
}

// Room tells how many of the frames which queue r can send now (see
// vale.RoomPort). A frame too big for a UMEM frame takes no room: it is
// dropped.
func (p *Port) Room(r int, b *frame.Batch, which []uint16) int {
	q := p.queues[r]
	q.mu.Lock()
	defer q.mu.Unlock()
	p.reclaim(q)
	room := min(uint32(len(q.txFree)), q.s.tx.free(uint32(len(which))))
	for n, fi := range which {
		if size := b.Frames[fi].Len(); size > int(q.s.frameSize) || size == 0 {
			continue
		}
		if room == 0 {
			return n
		}
		room--
	}
	return len(which)
}

// WaitRoom waits until queue r has sent some frames, or until deadline
// (see vale.RoomPort). The kernel gives no wake-up for completions in copy
// mode: it looks every 20 us.
func (p *Port) WaitRoom(r int, deadline time.Time) {
	q := p.queues[r]
	for !p.stopped.Load() && time.Now().Before(deadline) {
		q.mu.Lock()
		q.s.kickTx(func() { p.reclaim(q) })
		p.reclaim(q)
		free := len(q.txFree)
		q.mu.Unlock()
		if free > 0 {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// refill puts the frames taken from the RX ring back into the fill ring.
// There is always room: the fill ring can hold every RX frame.
func (p *Port) refill(q *queue) {
	s := q.s
	n := uint32(len(q.taken))
	if n == 0 {
		return
	}
	n = min(n, s.fill.free(n))
	for i, a := range q.taken[:n] {
		s.fill.addrs[(s.fill.cachedProd+uint32(i))&s.fill.mask] = a
	}
	s.fill.submit(n)
	q.taken = q.taken[:0]
	s.kickFill()
}

// Deliver copies frames into the TX ring of queue r and asks the kernel to
// send them. Frames longer than a UMEM frame are dropped (and counted in
// the port's state); delivery stops at the first frame for which there is
// no TX frame or descriptor left.
func (p *Port) Deliver(r int, b *frame.Batch, which []uint16) (frames, bytes int, err error) {
	q := p.queues[r]
	s := q.s
	q.mu.Lock()
	defer q.mu.Unlock()
	p.reclaim(q)
	room := min(uint32(len(q.txFree)), s.tx.free(uint32(len(which))))
	var n uint32
	for _, fi := range which {
		if n == room {
			break
		}
		f := &b.Frames[fi]
		size := f.Len()
		if size > int(s.frameSize) || size == 0 {
			p.oversize.Add(1)
			continue
		}
		addr := q.txFree[len(q.txFree)-1]
		q.txFree = q.txFree[:len(q.txFree)-1]
		buf := s.umem[addr : addr+uint64(s.frameSize)]
		k := copy(buf, f.Data)
		for _, m := range f.More {
			k += copy(buf[k:], m)
		}
		s.tx.descs[(s.tx.cachedProd+n)&s.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(size)}
		n++
		bytes += size
	}
	if n > 0 {
		s.tx.submit(n)
		s.kickTx(func() { p.reclaim(q) })
	}
	return int(n), bytes, nil
}

// reclaim takes completed TX frames back.
func (p *Port) reclaim(q *queue) {
	s := q.s
	n := s.comp.available(s.comp.size)
	for i := range n {
		a := s.comp.addrs[(s.comp.cachedCons+i)&s.comp.mask]
		// A completion the kernel could only have made up is not trusted
		// with a frame.
		if base := s.frameBase(a); base >= uint64(s.rxFrames)*uint64(s.frameSize) && base < uint64(len(s.umem)) && len(q.txFree) < int(s.tx.size) {
			q.txFree = append(q.txFree, base)
		}
	}
	s.comp.release(n)
}

// Stop makes pending and future Recv calls return ports.ErrStopped.
func (p *Port) Stop() {
	p.stopped.Store(true)
	for _, q := range p.queues {
		q.s.interrupt()
	}
}

// Stats returns the kernel's AF_XDP counters summed over the queues.
func (p *Port) Stats() (unix.XDPStatistics, error) {
	var sum unix.XDPStatistics
	for _, q := range p.queues {
		st, err := q.s.stats()
		if err != nil {
			return sum, err
		}
		sum.Rx_dropped += st.Rx_dropped
		sum.Rx_invalid_descs += st.Rx_invalid_descs
		sum.Tx_invalid_descs += st.Tx_invalid_descs
		sum.Rx_ring_full += st.Rx_ring_full
		sum.Rx_fill_ring_empty_descs += st.Rx_fill_ring_empty_descs
		sum.Tx_ring_empty_descs += st.Tx_ring_empty_descs
	}
	return sum, nil
}

// Free detaches the interface and gives it back as it was: the program and
// its link go, the sockets close, promiscuous mode and the offloads return
// to what they were. The port must be stopped and detached from its switch.
func (p *Port) Free() error {
	var errs []error
	attached := len(p.queues) > 0
	if p.prog != nil {
		p.prog.close()
		p.prog = nil
	}
	for _, q := range p.queues {
		q.s.close()
	}
	p.queues = nil
	if p.promisc != nil {
		p.promisc.Close()
		p.promisc = nil
	}
	if p.offloads.GRO || p.offloads.LRO {
		if err := netdev.SetOffloads(p.ifname, p.offloads); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, err)
		}
	}
	if p.state != nil {
		if err := p.state.remove(); err != nil {
			errs = append(errs, err)
		}
		p.state = nil
	}
	if attached && len(errs) == 0 {
		p.log.Info("interface detached", "port", p.name, "interface", p.ifname)
	}
	return errors.Join(errs...)
}
