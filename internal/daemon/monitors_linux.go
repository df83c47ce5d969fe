package daemon

import (
	"fmt"

	"github.com/valeswitch/vale/internal/mgmt"
	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/pipes"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/shm"
	"github.com/valeswitch/vale/vale"
)

// monState is a monitor valed holds.
type monState struct {
	id     uint64
	name   string // e.g. "vale0:a/rt#3"
	target string // the monitored port
	dirs   string // "t", "r", "rt" or "z"
	orphan bool   // the monitored port went away

	// Copy monitors have memory of their own.
	mem *shm.Port
	// Switched ports' copy monitors are fed by the switch.
	sw     *vale.Switch
	handle *vale.MonitorHandle
	// The others are fed by the clients of interface feedKey: they get event
	// (with eventFDs) when they bind or when the monitor opens.
	feedKey  string
	event    ports.MonitorEvent
	eventFDs []int
	// Zero-copy monitors: their level, and the eventfds of their rings.
	level  int
	notify []*notify.Eventfd
	// rings are the monitor's rings as valed maps them, where feeders count
	// what they could not deliver (not used once orphaned: the memory of a
	// zero-copy monitor goes with its port).
	rings []*ports.Ring
}

// lost returns what a client-fed monitor's feeders could not deliver.
func (m *monState) lost() uint64 {
	var n uint64
	if !m.orphan || m.mem != nil {
		for _, r := range m.rings {
			n += r.Header().Dropped()
		}
	}
	return n
}

// ringsOf returns valed's views of the receive rings of interface i of
// memory laid out as l: built from the layout, not from headers a client
// may have rewritten.
func ringsOf(mem []byte, l ports.Layout, i int, name string) []*ports.Ring {
	f, err := l.Iface(mem, i)
	if err != nil {
		return nil
	}
	var rs []*ports.Ring
	for i := range f.NumRings(ports.RX) {
		rs = append(rs, f.Ring(ports.RX, i, name))
	}
	return rs
}

// target is a port that can be monitored: a VALE port or a pipe end.
type target struct {
	key    string // its name, the key of its feeders
	geom   ports.Geometry
	layout ports.Layout
	iface  int    // its interface in layout
	fd     int    // memfd of its memory
	mem    []byte // its memory as valed maps it
	vale   *portState
	owner  uint32 // the user who may monitor it (besides root)
}

func monitorDirs(n *ports.Name) string {
	switch {
	case n.Flags&ports.FlagZCopyMon != 0:
		return "z"
	case n.Flags&ports.FlagMonitorTx != 0 && n.Flags&ports.FlagMonitorRx != 0:
		return "rt"
	case n.Flags&ports.FlagMonitorTx != 0:
		return "t"
	}
	return "r"
}

func (d *Daemon) findTargetLocked(n *ports.Name) (*target, error) {
	name := n.PortName()
	if n.Pipe != 0 {
		master, _ := pipeNames(n)
		if ps := d.pipes[master]; ps != nil {
			end := pipes.EndOf(n.Pipe)
			return &target{key: name, geom: ps.pair.Geometry(end), layout: ps.pair.Layout(), iface: end, fd: ps.pair.RegionFD(), mem: ps.pair.Mem(), owner: ps.uid}, nil
		}
	} else if ss := d.switches[n.Switch]; ss != nil {
		name = switchPortName(n)
		if ps := ss.ports[name]; ps != nil {
			if ps.shm == nil {
				// An attached interface: only the switch sees its frames.
				return &target{key: name, geom: ps.geom, fd: -1, vale: ps, owner: 0}, nil
			}
			return &target{key: name, geom: ps.geom, layout: ps.shm.Layout(), fd: ps.shm.RegionFD(), mem: ps.shm.Mem(), vale: ps, owner: ps.uid}, nil
		}
	}
	return nil, fmt.Errorf("%s: no such port %s to monitor (open it first)", n.String(), name)
}

// openMonitorLocked opens a monitor of an existing port.
func (d *Daemon) openMonitorLocked(s *session, n *ports.Name, conf ports.Conf, reply *ports.OpenReply) ([]int, error) {
	t, err := d.findTargetLocked(n)
	if err != nil {
		return nil, err
	}
	if err := s.mayUse(n.String(), t.owner); err != nil {
		return nil, err
	}
	dirs := monitorDirs(n)
	d.nextMon++
	m := &monState{id: d.nextMon, target: t.key, dirs: dirs}
	m.name = fmt.Sprintf("%s/%s#%d", t.key, dirs, m.id)
	var fds []int
	if dirs == "z" {
		fds, err = d.openZMonLocked(s, m, t, reply)
	} else {
		fds, err = d.openCopyMonLocked(s, m, t, conf, reply)
	}
	if err != nil {
		return nil, err
	}
	d.monitors[m.id] = m
	reply.Port = m.name
	d.log.Info("monitor attached", "monitor", m.name, "port", t.key)
	return fds, nil
}

// openCopyMonLocked opens a copy monitor: memory of its own with one
// receive ring per monitored ring, the TX rings' copies first (for /t and
// /rt), then the RX rings' (for /r and /rt). A switched port's monitor is fed
// by the switch; a pipe end's by the end's clients.
func (d *Daemon) openCopyMonLocked(s *session, m *monState, t *target, conf ports.Conf, reply *ports.OpenReply) ([]int, error) {
	g := t.geom
	slots := max(g.TxSlots, g.RxSlots)
	if conf.Slots != 0 {
		slots = conf.Slots
	}
	if conf.RxSlots != 0 {
		slots = conf.RxSlots
	}
	txBase, rxBase, rings := -1, -1, uint32(0)
	if m.dirs != "r" {
		txBase, rings = 0, g.TxRings
	}
	if m.dirs != "t" {
		rxBase, rings = int(rings), rings+g.RxRings
	}
	if l, err := ports.MonitorLayout(rings, slots, g.BufSize); err == nil {
		if err := d.checkRegion(s.cred, m.name, l.Size); err != nil {
			return nil, err
		}
	}
	mem, err := shm.NewMonitor(m.name, rings, slots, g.BufSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.name, err)
	}
	b, err := mem.Bind(ports.Selection{RxLast: int(rings)})
	if err != nil {
		mem.Free()
		return nil, err
	}
	fds, err := b.Reply(reply)
	if err != nil {
		mem.Free()
		return nil, err
	}
	m.mem = mem
	if t.vale != nil {
		sw := t.vale.sw.sw
		h, err := sw.AddMonitor(t.vale.port, mem, txBase, rxBase)
		if err != nil {
			mem.Free()
			return nil, err
		}
		m.sw, m.handle = sw, h
		reply.Switch = sw.Name()
	} else {
		m.feedKey = t.key
		m.event = ports.MonitorEvent{Op: ports.MonitorAdd, ID: m.id, Kind: ports.KindMonitor,
			MemSize: mem.Layout().Size, IfOfs: mem.Layout().Ifaces[0].Ofs, TxBase: txBase, RxBase: rxBase, Rings: int(rings)}
		m.eventFDs = append([]int{mem.RegionFD()}, mem.NotifyFDs()...)
		m.rings = ringsOf(mem.Mem(), mem.Layout(), 0, m.name)
		d.clientMonLocked(m)
	}
	s.release = func() {
		b.Close()
		d.closeMonitorLocked(m)
	}
	return fds, nil
}

// openZMonLocked opens a zero-copy monitor: the next free level of the
// target's chain. Level 1 is fed by the port's clients, level L by the
// client of level L-1.
func (d *Daemon) openZMonLocked(s *session, m *monState, t *target, reply *ports.OpenReply) ([]int, error) {
	if t.mem == nil {
		return nil, fmt.Errorf("%s: %s has no shared memory for a zero-copy monitor; use a copy monitor (%s/rt)", m.name, t.key, t.key)
	}
	l := t.layout
	levels := d.zlevels[t.key]
	level := 0
	for i := 1; i <= l.ZLevels; i++ {
		if i > len(levels) || levels[i-1] == nil {
			level = i
			break
		}
	}
	if level == 0 {
		return nil, fmt.Errorf("%s: all %d zero-copy monitor levels of %s are taken (valed -zmon-levels)", m.name, l.ZLevels, t.key)
	}
	fi := l.ZMon(t.iface, level)
	zf := l.Ifaces[fi]
	rings := zf.RxRings
	efs, err := notify.NewEventfds(rings)
	if err != nil {
		return nil, err
	}
	m.level, m.notify = level, efs
	for len(levels) < level {
		levels = append(levels, nil)
	}
	levels[level-1] = m
	d.zlevels[t.key] = levels
	m.feedKey = t.key
	txBase, rxBase := 0, int(t.geom.TxRings)
	if level > 1 {
		m.feedKey = zmonKey(t.key, level-1)
		txBase, rxBase = -1, 0
	}
	m.event = ports.MonitorEvent{Op: ports.MonitorAdd, ID: m.id, Kind: ports.KindZMonitor,
		IfOfs: zf.Ofs, TxBase: txBase, RxBase: rxBase, Rings: rings}
	m.eventFDs = append(m.eventFDs, notify.FDs(efs)...)
	*reply = ports.OpenReply{Kind: ports.KindZMonitor, Geometry: ports.Geometry{RxRings: uint32(rings), RxSlots: zf.Slots[0], BufSize: l.BufSize},
		MemSize: l.Size, IfOfs: zf.Ofs, RxLast: rings, NotifyLast: rings}
	fds := append([]int{t.fd}, m.eventFDs...)
	m.rings = ringsOf(t.mem, l, fi, m.name)
	d.clientMonLocked(m)
	// The reader of this level feeds the next one, if it is open.
	d.addFeederLocked(s, zmonKey(t.key, level))
	s.release = func() {
		d.closeMonitorLocked(m)
	}
	return fds, nil
}

func zmonKey(port string, level int) string { return fmt.Sprintf("%s/z%d", port, level) }

// clientMonLocked registers a monitor fed by clients and tells them.
func (d *Daemon) clientMonLocked(m *monState) {
	set := d.clientMons[m.feedKey]
	if set == nil {
		set = map[uint64]*monState{}
		d.clientMons[m.feedKey] = set
	}
	set[m.id] = m
	d.announceLocked(m.feedKey, m.event, m.eventFDs)
}

// closeMonitorLocked stops feeding a monitor and frees it.
func (d *Daemon) closeMonitorLocked(m *monState) {
	if m.handle != nil && !m.orphan {
		m.sw.RemoveMonitor(m.handle)
	}
	if m.feedKey != "" {
		delete(d.clientMons[m.feedKey], m.id)
		if len(d.clientMons[m.feedKey]) == 0 {
			delete(d.clientMons, m.feedKey)
		}
		d.announceLocked(m.feedKey, ports.MonitorEvent{Op: ports.MonitorRemove, ID: m.id}, nil)
	}
	if m.level > 0 {
		if levels := d.zlevels[m.target]; len(levels) >= m.level && levels[m.level-1] == m {
			levels[m.level-1] = nil
		}
		notify.CloseAll(m.notify)
	}
	if m.mem != nil {
		if err := m.mem.Free(); err != nil {
			d.log.Error("free monitor", "monitor", m.name, "error", err)
		}
	}
	delete(d.monitors, m.id)
	d.log.Info("monitor closed", "monitor", m.name)
}

// orphanMonitorsLocked marks the monitors of a port that goes away: they
// stay open for their clients but see nothing more, as in netmap.
func (d *Daemon) orphanMonitorsLocked(port string) {
	for _, m := range d.monitors {
		if m.target == port && !m.orphan {
			m.orphan = true
			d.log.Info("monitor orphaned", "monitor", m.name, "port", port)
		}
	}
	delete(d.zlevels, port)
}

// monitorInfosLocked describes the monitors, for listings.
func (d *Daemon) monitorInfosLocked(filter func(target string) bool) []mgmt.MonitorInfo {
	var out []mgmt.MonitorInfo
	for _, m := range d.monitors {
		if !filter(m.target) {
			continue
		}
		info := mgmt.MonitorInfo{Name: m.name, Target: m.target, Dirs: m.dirs, State: "up", Copied: -1, Lost: m.lost()}
		if m.orphan {
			info.State = "orphaned"
		}
		if m.handle != nil {
			st := m.handle.Stats()
			info.Copied, info.Lost = int64(st.Copied), st.Lost
		}
		if m.mem != nil {
			info.Clients = m.mem.Users()
		} else {
			info.Clients = 1
		}
		out = append(out, info)
	}
	return out
}
