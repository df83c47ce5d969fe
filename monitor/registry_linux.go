package monitor

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/ports/shm"
	"github.com/valeswitch/vale/vale"
	"github.com/valeswitch/vale/vale/wire"
)

// Monitor is a monitor valed holds: a copy monitor, with memory of its
// own, or a zero-copy monitor, a level of receive rings in the memory of
// the port it watches.
type Monitor struct {
	id     uint64
	name   string // e.g. "vale0:a/rt#3"
	target string // the monitored port
	dirs   string // "t", "r", "rt" or "z" (Dirs)
	orphan bool   // the monitored port went away

	// A copy monitor's memory.
	mem *shm.Port
	// A switched port's copy monitor is fed by the switch.
	sw     *vale.Switch
	handle *vale.MonitorHandle
	// The others are fed by the clients of interface feedKey: they get
	// event (with eventFDs) when they bind or when the monitor opens.
	feedKey  string
	event    wire.MonitorEvent
	eventFDs []int
	// A zero-copy monitor's level, and the eventfds of its rings.
	level  int
	notify []*notify.Eventfd
	// rings are the monitor's rings as valed maps them, where feeders count
	// what they could not deliver (not used once orphaned: the memory of a
	// zero-copy monitor goes with its port).
	rings []*ports.Ring
}

// Name returns the monitor's name, e.g. "vale0:a/rt#3".
func (m *Monitor) Name() string { return m.name }

// lost returns what a client-fed monitor's feeders could not deliver.
func (m *Monitor) lost() uint64 {
	var n uint64
	if !m.orphan || m.mem != nil {
		for _, r := range m.rings {
			n += r.Header().Dropped()
		}
	}
	return n
}

// Dirs returns what a monitor name watches: "t" (what the port sends),
// "r" (what it receives), "rt" (both) or "z" (zero-copy, both).
func Dirs(n *portname.Name) string {
	switch {
	case n.Flags&portname.FlagZCopyMon != 0:
		return "z"
	case n.Flags&portname.FlagMonitorTx != 0 && n.Flags&portname.FlagMonitorRx != 0:
		return "rt"
	case n.Flags&portname.FlagMonitorTx != 0:
		return "t"
	}
	return "r"
}

// ZeroCopyKey is the feeder key of level level of port's zero-copy
// monitors: the clients of that level feed the next one.
func ZeroCopyKey(port string, level int) string { return fmt.Sprintf("%s/z%d", port, level) }

// Target is a port that can be monitored, as valed holds it.
type Target struct {
	Key    string // its name, the key of its feeders
	Geom   ports.Geometry
	Layout ports.Layout     // its memory, if clients map it
	Iface  int              // its interface in Layout
	FD     int              // memfd of its memory, -1 if none
	Mem    []byte           // its memory as valed maps it
	Nifs   *ports.NetmapIfs // the netmap_if slots of its memory
	// Switch and Port are set for a port on a switch: the switch feeds its
	// copy monitors.
	Switch *vale.Switch
	Port   vale.Port
}

// Registry is valed's record of its monitors and of the clients that feed
// them (any comparable handle, such as a session), with the zero-copy
// levels of each port. It is not safe for concurrent use: valed calls it
// holding its own lock. send must not block.
type Registry[S comparable] struct {
	log  *slog.Logger
	send func(s S, ev wire.Event, fds []int)
	mons map[uint64]*Monitor
	next uint64
	// feeders are the clients whose syncs feed the monitors of an
	// interface (a port, a pipe end, a zero-copy monitor level), by key;
	// feeding is the key each feeds (a client binds one interface).
	feeders map[string]map[S]struct{}
	feeding map[S]string
	// fed are the monitors fed by the clients of an interface, by key.
	fed map[string]map[uint64]*Monitor
	// levels are the zero-copy monitors of a port, by level.
	levels map[string][]*Monitor
}

// NewRegistry returns an empty registry that tells clients about the
// monitors they feed with send.
func NewRegistry[S comparable](log *slog.Logger, send func(s S, ev wire.Event, fds []int)) *Registry[S] {
	return &Registry[S]{log: log, send: send, mons: map[uint64]*Monitor{},
		feeders: map[string]map[S]struct{}{}, feeding: map[S]string{}, fed: map[string]map[uint64]*Monitor{}, levels: map[string][]*Monitor{}}
}

// New names a new monitor of target watching dirs; it is recorded once
// opened (OpenCopy, OpenZeroCopy).
func (r *Registry[S]) New(target, dirs string) *Monitor {
	r.next++
	return &Monitor{id: r.next, target: target, dirs: dirs, name: fmt.Sprintf("%s/%s#%d", target, dirs, r.next)}
}

// WithoutID returns a monitor's name as the client asked for it: without
// the "#N" New appends to tell monitors of one port apart. Other names
// are returned as they are.
func WithoutID(name string) string {
	i := strings.LastIndexByte(name, '#')
	if i < 0 || i == len(name)-1 || strings.Trim(name[i+1:], "0123456789") != "" {
		return name
	}
	return name[:i]
}

// AddFeeder records s as a client whose syncs feed the monitors of key
// (in place of what it fed before), and sends it the monitors already
// there.
//
// It returns how many monitor events it sent s: an open reply counts them
// (wire.OpenReply.Feeds), so that the client sets its feeds up before its
// first sync.
func (r *Registry[S]) AddFeeder(s S, key string) int {
	r.RemoveFeeder(s)
	set := r.feeders[key]
	if set == nil {
		set = map[S]struct{}{}
		r.feeders[key] = set
	}
	set[s] = struct{}{}
	r.feeding[s] = key
	for _, m := range r.fed[key] {
		r.send(s, wire.Event{Monitor: &m.event}, m.eventFDs)
	}
	return len(r.fed[key])
}

// RemoveFeeder forgets s as a feeder.
func (r *Registry[S]) RemoveFeeder(s S) {
	key, ok := r.feeding[s]
	if !ok {
		return
	}
	delete(r.feeding, s)
	if set := r.feeders[key]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(r.feeders, key)
		}
	}
}

// announce sends a monitor event to every client feeding key.
func (r *Registry[S]) announce(key string, ev wire.MonitorEvent, fds []int) {
	for s := range r.feeders[key] {
		r.send(s, wire.Event{Monitor: &ev}, fds)
	}
}

// addFed records a monitor fed by clients and tells them.
func (r *Registry[S]) addFed(m *Monitor) {
	set := r.fed[m.feedKey]
	if set == nil {
		set = map[uint64]*Monitor{}
		r.fed[m.feedKey] = set
	}
	set[m.id] = m
	r.announce(m.feedKey, m.event, m.eventFDs)
}

// Close stops feeding a monitor and frees it.
func (r *Registry[S]) Close(m *Monitor) {
	if m.handle != nil && !m.orphan {
		m.sw.RemoveMonitor(m.handle)
	}
	if m.feedKey != "" {
		delete(r.fed[m.feedKey], m.id)
		if len(r.fed[m.feedKey]) == 0 {
			delete(r.fed, m.feedKey)
		}
		r.announce(m.feedKey, wire.MonitorEvent{Op: wire.MonitorRemove, ID: m.id}, nil)
	}
	if m.level > 0 {
		if levels := r.levels[m.target]; len(levels) >= m.level && levels[m.level-1] == m {
			levels[m.level-1] = nil
		}
		notify.CloseAll(m.notify)
	}
	if m.mem != nil {
		if err := m.mem.Free(); err != nil {
			r.log.Error("free monitor", "monitor", m.name, "error", err)
		}
	}
	delete(r.mons, m.id)
	r.log.Info("monitor closed", "monitor", m.name)
}

// Orphan marks the monitors of a port that goes away: they stay open for
// their clients but see nothing more, as in netmap.
func (r *Registry[S]) Orphan(port string) {
	for _, m := range r.mons {
		if m.target == port && !m.orphan {
			m.orphan = true
			r.log.Info("monitor orphaned", "monitor", m.name, "port", port)
		}
	}
	delete(r.levels, port)
}

// Infos describes the monitors of the targets filter accepts, for
// listings.
func (r *Registry[S]) Infos(filter func(target string) bool) []wire.MonitorInfo {
	var out []wire.MonitorInfo
	for _, m := range r.mons {
		if !filter(m.target) {
			continue
		}
		info := wire.MonitorInfo{Name: m.name, Target: m.target, Dirs: m.dirs, State: "up", Copied: -1, Lost: m.lost(), Clients: 1}
		if m.orphan {
			info.State = "orphaned"
		}
		if m.handle != nil {
			st := m.handle.Stats()
			info.Copied, info.Lost = int64(st.Copied), st.Lost
		}
		if m.mem != nil {
			info.Clients = m.mem.Users()
		}
		out = append(out, info)
	}
	return out
}
