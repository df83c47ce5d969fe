package vale

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/wire"
)

// Defaults of a switch's configuration.
const (
	DefaultMaxPorts = 1024            // ports per switch (netmap allows 254)
	MaxPortsLimit   = 4096            // the largest MaxPorts accepted
	DefaultMACAge   = 5 * time.Minute // as Linux bridges and Open vSwitch
	// DefaultStuckTimeout is how long a lossless destination may keep its
	// senders waiting without making room before the switch drops what it
	// cannot take (and counts it as stuck).
	DefaultStuckTimeout = 200 * time.Millisecond
	// DefaultDropAfter is how long a dropping destination may keep its
	// senders waiting for room before the switch drops what it cannot
	// take: long enough to ride out a receiver descheduled for a few
	// milliseconds (a virtual CPU the host preempts), short enough that a
	// receiver slower than its senders loses frames rather than slow them.
	DefaultDropAfter = 5 * time.Millisecond
)

// Mode is what the switch does with frames for a port whose RX ring is
// full.
type Mode uint8

// Modes of a port.
const (
	// ModeDefault follows the switch (Config.Lossless).
	ModeDefault Mode = iota
	// ModeDrop drops them and counts them (DROP_FULL), as netmap's VALE
	// does, where a slow receiver does not slow its senders: after
	// Config.DropAfter. Until then the frames it has no room for, and the
	// frames after them, stay in their sender's TX ring, so that a
	// receiver off the CPU for a moment loses nothing.
	ModeDrop
	// ModeLossless leaves them in the sender's TX ring, and the frames
	// after them too, until the port has room: the switch takes from a
	// sender only what its destinations can accept, so a sender is held
	// back to the pace of its slowest lossless destination. A destination
	// that makes no room for StuckTimeout is dropped to (DROP_STUCK) until
	// it makes room again. Ports that cannot tell their room (TAP ports)
	// are always dropped to.
	ModeLossless
)

// String returns "default", "drop" or "lossless".
func (m Mode) String() string {
	switch m {
	case ModeDrop:
		return "drop"
	case ModeLossless:
		return "lossless"
	}
	return "default"
}

// ParseMode reads "drop", "lossless" or "" (ModeDefault).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "default":
		return ModeDefault, nil
	case "drop":
		return ModeDrop, nil
	case "lossless":
		return ModeLossless, nil
	}
	return ModeDefault, fmt.Errorf("mode %q: want drop or lossless", s)
}

// Config configures a switch. The zero value gives the defaults.
type Config struct {
	MaxPorts int           // most ports attached at once
	MACAge   time.Duration // forget addresses not seen for this long
	// Lossless makes ModeLossless the mode of ports attached with
	// ModeDefault; otherwise it is ModeDrop.
	Lossless bool
	// StuckTimeout bounds the wait for a lossless destination that makes
	// no room (0: the default).
	StuckTimeout time.Duration
	// DropAfter bounds the wait for a dropping destination that has not
	// room for everything (0: the default; negative: drop at once, as
	// netmap).
	DropAfter  time.Duration
	MACEntries int // most addresses in the learning table
	Logger     *slog.Logger
}

// Switch is a VALE switch: a learning bridge between its ports.
type Switch struct {
	name  string
	cfg   Config
	log   *slog.Logger
	start time.Time

	mu       sync.RWMutex // forwarding rounds hold it shared; attach and detach exclusive
	lossless atomic.Bool  // the mode of ModeDefault ports
	ports    []*attachment
	active   []*attachment // attached ports, by index
	macs     *macTable

	rounds, frames atomic.Uint64
	// batches counts rounds by their size: bucket k holds the rounds of
	// [2^(k-1), 2^k) frames.
	batches [BatchBuckets]atomic.Uint64

	stop     chan struct{}
	stopOnce sync.Once
	agerDone chan struct{}
}

// attachment is a port attached to a switch.
type attachment struct {
	port     Port
	idx      uint16
	ntx, nrx int
	mode     Mode
	room     RoomPort // the port, if it can be a lossless destination
	// holds is, by RX ring, how the ring keeps its senders waiting for
	// room (guarded by the ring's rxLocks entry).
	holds    []hold
	counters portCounters
	workers  sync.WaitGroup
	logLimit rateLimiter
	monitors atomic.Pointer[monitorSet]
	rxLocks  rxLocks
}

// ErrSwitchFull is returned by Attach when every port index is taken.
var ErrSwitchFull = errors.New("switch full")

// New creates a switch named name.
func New(name string, cfg Config) *Switch {
	if cfg.MaxPorts <= 0 {
		cfg.MaxPorts = DefaultMaxPorts
	}
	cfg.MaxPorts = min(cfg.MaxPorts, MaxPortsLimit)
	if cfg.MACAge <= 0 {
		cfg.MACAge = DefaultMACAge
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StuckTimeout <= 0 {
		cfg.StuckTimeout = DefaultStuckTimeout
	}
	if cfg.DropAfter == 0 {
		cfg.DropAfter = DefaultDropAfter
	}
	sw := &Switch{
		name:     name,
		cfg:      cfg,
		log:      cfg.Logger.With("switch", name),
		start:    time.Now(),
		ports:    make([]*attachment, cfg.MaxPorts),
		macs:     newMACTable(cfg.MACEntries),
		stop:     make(chan struct{}),
		agerDone: make(chan struct{}),
	}
	sw.lossless.Store(cfg.Lossless)
	go sw.ager()
	return sw
}

// SetLossless sets the mode of the ports attached with ModeDefault, from
// their next round on.
func (sw *Switch) SetLossless(on bool) { sw.lossless.Store(on) }

// Lossless reports the mode of the ports attached with ModeDefault.
func (sw *Switch) Lossless() bool { return sw.lossless.Load() }

// lossless reports whether a is a lossless destination now.
func (sw *Switch) losslessDst(a *attachment) bool {
	if a.room == nil {
		return false
	}
	return a.mode == ModeLossless || (a.mode == ModeDefault && sw.lossless.Load())
}

// waitOf returns how long destination a may hold its senders back for
// room: 0 for a port that cannot tell its room.
func (sw *Switch) waitOf(a *attachment, lossless bool) time.Duration {
	switch {
	case a.room == nil:
		return 0
	case lossless:
		return sw.cfg.StuckTimeout
	}
	return max(sw.cfg.DropAfter, 0)
}

// modeOf returns a's mode as it applies now.
func (sw *Switch) modeOf(a *attachment) Mode {
	if sw.losslessDst(a) {
		return ModeLossless
	}
	return ModeDrop
}

// Name returns the switch's name.
func (sw *Switch) Name() string { return sw.name }

// clock returns the switch's coarse clock, in seconds, for MAC aging.
func (sw *Switch) clock(now int64) uint32 {
	return uint32((now - sw.start.UnixNano()) / int64(time.Second))
}

// ager forgets old MAC addresses.
func (sw *Switch) ager() {
	defer close(sw.agerDone)
	every := min(max(sw.cfg.MACAge/4, 100*time.Millisecond), 10*time.Second)
	age := uint32(max(sw.cfg.MACAge/time.Second, 1))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-sw.stop:
			return
		case now := <-t.C:
			sw.macs.expire(sw.clock(now.UnixNano()), age)
		}
	}
}

// Attach adds p to the switch in mode m, with the lowest free index, and
// starts one worker per TX ring.
func (sw *Switch) Attach(p Port, m Mode) (int, error) {
	d := p.Describe()
	if d.TxRings < 0 || d.RxRings < 1 {
		return 0, fmt.Errorf("attach %s to %s: port has %d tx and %d rx rings", p.Name(), sw.name, d.TxRings, d.RxRings)
	}
	sw.mu.Lock()
	idx := -1
	for i, a := range sw.ports {
		if a == nil {
			if idx < 0 {
				idx = i
			}
		} else if a.port.Name() == p.Name() {
			sw.mu.Unlock()
			return 0, fmt.Errorf("attach %s to %s: a port of that name is already attached", p.Name(), sw.name)
		}
	}
	if idx < 0 {
		sw.mu.Unlock()
		return 0, fmt.Errorf("attach %s to %s: %w (%d ports)", p.Name(), sw.name, ErrSwitchFull, len(sw.ports))
	}
	a := &attachment{port: p, idx: uint16(idx), ntx: d.TxRings, nrx: d.RxRings, mode: m,
		rxLocks: make(rxLocks, d.RxRings), holds: make([]hold, d.RxRings)}
	a.room, _ = p.(RoomPort)
	sw.ports[idx] = a
	sw.rebuildActiveLocked()
	a.workers.Add(a.ntx)
	sw.mu.Unlock()
	for r := range a.ntx {
		go sw.worker(a, r)
	}
	sw.log.Debug("port attached", "port", p.Name(), "index", idx)
	return idx, nil
}

// Detach removes p from the switch and waits until its workers are done
// with it. It calls p.Stop. Once Detach returns the switch no longer touches
// the port.
func (sw *Switch) Detach(p Port) error {
	sw.mu.Lock()
	var a *attachment
	for _, x := range sw.active {
		if x.port == p {
			a = x
			break
		}
	}
	if a == nil {
		sw.mu.Unlock()
		return fmt.Errorf("detach %s from %s: not attached", p.Name(), sw.name)
	}
	sw.ports[a.idx] = nil
	sw.rebuildActiveLocked()
	a.monitors.Store(nil) // the port is gone: its monitors get nothing more
	sw.mu.Unlock()
	sw.macs.purge(a.idx)
	p.Stop()
	a.workers.Wait()
	sw.log.Debug("port detached", "port", p.Name(), "index", a.idx)
	return nil
}

func (sw *Switch) rebuildActiveLocked() {
	active := make([]*attachment, 0, len(sw.active)+1)
	for _, a := range sw.ports {
		if a != nil {
			active = append(active, a)
		}
	}
	sw.active = active
}

// Len returns the number of attached ports.
func (sw *Switch) Len() int {
	sw.mu.RLock()
	defer sw.mu.RUnlock()
	return len(sw.active)
}

// Close stops the switch's background work. Ports must be detached first.
func (sw *Switch) Close() {
	sw.stopOnce.Do(func() { close(sw.stop) })
	<-sw.agerDone
}

// Ports describes the attached ports, by index.
func (sw *Switch) Ports() []wire.PortInfo {
	sw.mu.RLock()
	active := sw.active
	sw.mu.RUnlock()
	infos := make([]wire.PortInfo, 0, len(active))
	for _, a := range active {
		infos = append(infos, wire.PortInfo{
			Switch: sw.name,
			Name:   a.port.Name(),
			Index:  int(a.idx),
			Mode:   sw.modeOf(a).String(),
			Desc:   a.port.Describe(),
			Stats:  a.counters.snapshot(),
		})
	}
	return infos
}

// BatchBuckets is the number of buckets of wire.SwitchInfo.Batches.
const BatchBuckets = wire.BatchBuckets

// Info describes the switch.
func (sw *Switch) Info() wire.SwitchInfo {
	var batches [BatchBuckets]uint64
	for i := range batches {
		batches[i] = sw.batches[i].Load()
	}
	return wire.SwitchInfo{
		Batches:   batches,
		Name:      sw.name,
		Ports:     sw.Len(),
		MACs:      sw.macs.Len(),
		Learned:   sw.macs.learned.Load(),
		Moved:     sw.macs.moved.Load(),
		Aged:      sw.macs.aged.Load(),
		TableFull: sw.macs.full.Load(),
		Rounds:    sw.rounds.Load(),
		Frames:    sw.frames.Load(),
	}
}

// worker moves frames from TX ring r of a into the switch until the port
// stops.
func (sw *Switch) worker(a *attachment, r int) {
	defer a.workers.Done()
	f := newForwarder(sw, a, r)
	for {
		err := a.port.Recv(r, f.batch)
		if err != nil {
			var re *ports.RingError
			switch {
			case errors.Is(err, ports.ErrStopped):
				return
			case errors.As(err, &re):
				a.counters.resets.Add(1)
				if a.logLimit.allow() {
					sw.log.Warn("ring reset after a client violation", "port", a.port.Name(), "error", err)
				}
				f.batch.Reset()
				continue
			default:
				sw.log.Error("port failed; its tx ring is no longer served", "port", a.port.Name(), "ring", r, "error", err)
				return
			}
		}
		taken := f.forward()
		a.port.Release(r, f.batch, taken)
		f.batch.Reset()
		if f.blocked != nil {
			f.waitRoom()
		}
	}
}

// rateLimiter allows a few events per second.
type rateLimiter struct {
	mu     sync.Mutex
	second int64
	n      int
}

const logsPerSecond = 5

func (l *rateLimiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now().Unix()
	if now != l.second {
		l.second, l.n = now, 0
	}
	l.n++
	return l.n <= logsPerSecond
}
