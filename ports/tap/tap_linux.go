// Package tap implements switch ports backed by Linux TAP devices: the
// host port of an attached interface (netmap's NIC^, vale-ctl -h), through
// which the host's own traffic for that network crosses the switch, and
// persistent interfaces (vale-ctl -n), which the host sees as ordinary
// network interfaces and a switch sees as ports.
//
// A Device is the TAP interface itself, one file per queue; it lives until
// Close (valed holds it, so it also goes away if valed dies: it is not a
// persistent TAP in the kernel's sense). A Port is a Device attached to a
// switch. The TAP is created without IFF_VNET_HDR and without offloads, so
// the kernel hands valed complete frames with their checksums computed and
// no segmentation left to do, and takes complete frames back.
//
// Each frame costs a read or a write system call: a host port carries the
// host's own traffic, not the fast path (netmap's host rings copy every
// frame too).
package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

// Kinds of TAP ports, as listings show them.
const (
	KindHost = "host" // the host stack's side of an attached NIC
	KindTap  = "tap"  // a persistent interface
)

// DefaultSlots is how many frames a port reads per round unless told.
const DefaultSlots = 256

// MaxQueues is the most TAP queues a device gets (the kernel's limit is
// higher; a switch port has at most 16 rings).
const MaxQueues = 16

// DeviceConfig describes a TAP device to create.
type DeviceConfig struct {
	Name   string           // interface name
	Queues int              // queues (multiqueue TAP when more than one); 0 means 1
	MTU    int              // 0 keeps the kernel's default (1500)
	MAC    net.HardwareAddr // nil lets the kernel choose
}

// Device is a TAP interface valed holds open.
type Device struct {
	name  string
	link  netlink.Link
	files []*os.File
}

// Create creates the TAP device and brings it up.
func Create(c DeviceConfig) (_ *Device, err error) {
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.Queues < 1 || c.Queues > MaxQueues {
		return nil, fmt.Errorf("tap %s: %d queues: want 1..%d", c.Name, c.Queues, MaxQueues)
	}
	if c.Name == "" || len(c.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap %q: interface names have 1..%d characters", c.Name, unix.IFNAMSIZ-1)
	}
	if _, err := netlink.LinkByName(c.Name); err == nil {
		return nil, fmt.Errorf("tap %s: an interface of that name exists", c.Name)
	}
	flags := netlink.TUNTAP_NO_PI
	if c.Queues > 1 {
		flags |= netlink.TUNTAP_MULTI_QUEUE
	} else {
		flags |= netlink.TUNTAP_ONE_QUEUE
	}
	t := &netlink.Tuntap{
		LinkAttrs:  netlink.LinkAttrs{Name: c.Name},
		Mode:       netlink.TUNTAP_MODE_TAP,
		Flags:      flags,
		Queues:     c.Queues,
		NonPersist: true,
	}
	if err := netlink.LinkAdd(t); err != nil {
		return nil, fmt.Errorf("create tap %s: %w%s", c.Name, err, permissionHint(err))
	}
	d := &Device{name: c.Name, files: t.Fds}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.link, err = netlink.LinkByName(c.Name); err != nil {
		return nil, fmt.Errorf("tap %s: %w", c.Name, err)
	}
	if c.MTU != 0 {
		if err := netlink.LinkSetMTU(d.link, c.MTU); err != nil {
			return nil, fmt.Errorf("tap %s: set MTU %d: %w", c.Name, c.MTU, err)
		}
	}
	if c.MAC != nil {
		if err := netlink.LinkSetHardwareAddr(d.link, c.MAC); err != nil {
			return nil, fmt.Errorf("tap %s: set MAC %s: %w", c.Name, c.MAC, err)
		}
	}
	if err := netlink.LinkSetUp(d.link); err != nil {
		return nil, fmt.Errorf("tap %s: bring up: %w", c.Name, err)
	}
	return d, nil
}

func permissionHint(err error) string {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return " (creating interfaces needs CAP_NET_ADMIN: run valed as root)"
	}
	return ""
}

// Name returns the interface name.
func (d *Device) Name() string { return d.name }

// Queues returns the number of queues.
func (d *Device) Queues() int { return len(d.files) }

// MAC returns the interface's current MAC address.
func (d *Device) MAC() net.HardwareAddr {
	if l, err := netlink.LinkByIndex(d.link.Attrs().Index); err == nil {
		return l.Attrs().HardwareAddr
	}
	return d.link.Attrs().HardwareAddr
}

// MTU returns the interface's current MTU.
func (d *Device) MTU() int {
	if l, err := netlink.LinkByIndex(d.link.Attrs().Index); err == nil {
		return l.Attrs().MTU
	}
	return d.link.Attrs().MTU
}

// Close removes the device: it goes with its last open queue.
func (d *Device) Close() error {
	for _, f := range d.files {
		f.Close()
	}
	d.files = nil
	return nil
}

// Port is a TAP device attached to a switch: TX ring i (frames into the
// switch) is what the host sends on queue i, RX ring i (frames from the
// switch) what valed writes to queue i for the host to receive.
type Port struct {
	name    string
	kind    string
	dev     *Device
	slots   int
	bufSize int
	queues  []*queue
	stopped atomic.Bool
	// Counted here, shown in the port's state.
	truncated atomic.Uint64 // frames the host sent larger than a buffer
	writeErrs atomic.Uint64 // frames the kernel refused (interface down)
}

type queue struct {
	f   *os.File
	raw syscall.RawConn
	// Receive side (one switch worker).
	bufs [][]byte
	lens []int
	n    int
	kept int // frames of the last Recv not released: the first of the next
	// Transmit side: several workers may deliver at once.
	mu      sync.Mutex
	scratch []byte
	// out is the frame writeOut sends and outErr its result; writeOut is
	// bound once so a delivery does not allocate a closure per frame.
	out      []byte
	outErr   error
	writeOut func(fd uintptr) bool
}

// writeOnce writes q.out to fd, asking the poller to wait while the
// device's queue is full.
func (q *queue) writeOnce(fd uintptr) bool {
	_, q.outErr = unix.Write(int(fd), q.out)
	return q.outErr != unix.EAGAIN
}

// NewPort makes dev a switch port called name (e.g. "vale0:eth1^"), of
// kind KindHost or KindTap, reading up to slots frames per round from each
// queue.
func NewPort(name, kind string, dev *Device, slots int) (*Port, error) {
	if slots <= 0 {
		slots = DefaultSlots
	}
	slots = min(slots, frame.MaxBatch)
	bufSize := max(2048, dev.MTU()+18)
	p := &Port{name: name, kind: kind, dev: dev, slots: slots, bufSize: bufSize}
	for _, f := range dev.files {
		raw, err := f.SyscallConn()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		q := &queue{f: f, raw: raw, lens: make([]int, slots), scratch: make([]byte, 0, 65536)}
		q.writeOut = q.writeOnce
		// One allocation for the receive buffers of the queue.
		mem := make([]byte, slots*bufSize)
		for i := range slots {
			q.bufs = append(q.bufs, mem[i*bufSize:(i+1)*bufSize:(i+1)*bufSize])
		}
		p.queues = append(p.queues, q)
		// A deadline set by an earlier Stop must not end this port's reads.
		f.SetReadDeadline(time.Time{})
	}
	return p, nil
}

// Name returns the port's name.
func (p *Port) Name() string { return p.name }

// Device returns the TAP device.
func (p *Port) Device() *Device { return p.dev }

// Describe tells vale-ctl about the port.
func (p *Port) Describe() wire.Desc {
	state := "tap=" + p.dev.name
	if p.stopped.Load() {
		state += ",stopping"
	}
	if l, err := netlink.LinkByName(p.dev.name); err == nil && l.Attrs().Flags&net.FlagUp == 0 {
		state += ",link-down"
	}
	if n := p.truncated.Load(); n > 0 {
		state += fmt.Sprintf(",truncated=%d", n)
	}
	if n := p.writeErrs.Load(); n > 0 {
		state += fmt.Sprintf(",refused=%d", n)
	}
	n := len(p.queues)
	return wire.Desc{Kind: p.kind, TxRings: n, RxRings: n, TxSlots: p.slots, RxSlots: p.slots, MAC: p.dev.MAC().String(), State: state}
}

// Geometry returns the port's rings as a ports.Geometry, for copy monitors
// sized like the port.
func (p *Port) Geometry() ports.Geometry {
	n, s := uint32(len(p.queues)), uint32(p.slots)
	return ports.Geometry{TxRings: n, RxRings: n, TxSlots: s, RxSlots: s, BufSize: uint32(min((p.bufSize+63)&^63, 65536))}
}

// Recv waits until the host has sent frames on queue r and appends them to
// b (up to the port's slots per round).
func (p *Port) Recv(r int, b *frame.Batch) error {
	q := p.queues[r]
	q.n = q.kept
	q.kept = 0
	var rerr error
	err := q.raw.Read(func(fd uintptr) bool {
		for q.n < len(q.bufs) {
			n, err := unix.Read(int(fd), q.bufs[q.n])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if err != unix.EAGAIN {
					rerr = err
					return true
				}
				break
			}
			if n >= len(q.bufs[q.n]) {
				p.truncated.Add(1)
				continue
			}
			if n > 0 {
				q.lens[q.n] = n
				q.n++
			}
		}
		return q.n > 0 || p.stopped.Load()
	})
	if p.stopped.Load() {
		return ports.ErrStopped
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		if errors.Is(err, os.ErrClosed) {
			return ports.ErrStopped
		}
		return fmt.Errorf("%s: read tap queue %d: %w", p.name, r, err)
	}
	for i := range q.n {
		b.Add(q.bufs[i][:q.lens[i]], 0)
	}
	return nil
}

// Release keeps the frames after the first n of the last Recv on ring r for
// the next Recv (the buffers of the others are reused by it).
func (p *Port) Release(r int, b *frame.Batch, n int) {
	q := p.queues[r]
	if n >= q.n {
		return
	}
	for i := n; i < q.n; i++ {
		j := i - n
		q.bufs[j], q.bufs[i] = q.bufs[i], q.bufs[j]
		q.lens[j] = q.lens[i]
	}
	q.kept = q.n - n
}

// Deliver writes frames to queue r for the host to receive.
func (p *Port) Deliver(r int, b *frame.Batch, which []uint16) (frames, bytes int, err error) {
	q := p.queues[r]
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, fi := range which {
		f := &b.Frames[fi]
		data := f.Data
		if len(f.More) > 0 {
			q.scratch = append(q.scratch[:0], f.Data...)
			for _, m := range f.More {
				q.scratch = append(q.scratch, m...)
			}
			data = q.scratch
		}
		q.out, q.outErr = data, nil
		q.raw.Write(q.writeOut)
		q.out = nil
		if q.outErr != nil {
			// The interface is down, or the frame is malformed for the
			// kernel: the rest of the batch would fare no better.
			p.writeErrs.Add(1)
			break
		}
		frames++
		bytes += len(data)
	}
	return frames, bytes, nil
}

// Stop makes pending and future Recv calls return ports.ErrStopped.
func (p *Port) Stop() {
	p.stopped.Store(true)
	for _, q := range p.queues {
		q.f.SetReadDeadline(time.Unix(1, 0))
	}
}

// Free releases the port. A host port's device goes with it (it exists
// for the port); a persistent interface's stays, for its owner to close.
func (p *Port) Free() error {
	if p.kind == KindHost {
		return p.dev.Close()
	}
	for _, q := range p.queues {
		q.f.SetReadDeadline(time.Time{})
	}
	return nil
}
