package monitor

import (
	"fmt"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/ports/shm"
	"github.com/valeswitch/vale/vale/wire"
)

// copyGeometry returns the rings a copy monitor watching dirs of a port of
// geometry g has, and the monitor rings of the port's TX ring 0 and RX
// ring 0 (-1 for a direction not watched): the TX rings' copies first.
func copyGeometry(g ports.Geometry, dirs string) (rings uint32, txBase, rxBase int) {
	txBase, rxBase = -1, -1
	if dirs != "r" {
		txBase, rings = 0, g.TxRings
	}
	if dirs != "t" {
		rxBase, rings = int(rings), rings+g.RxRings
	}
	return rings, txBase, rxBase
}

// copySlots returns the slots per ring of a copy monitor of a port of
// geometry g opened with conf: the port's, unless the name asks.
func copySlots(g ports.Geometry, conf portname.Conf) uint32 {
	slots := max(g.TxSlots, g.RxSlots)
	if conf.Slots != 0 {
		slots = conf.Slots
	}
	if conf.RxSlots != 0 {
		slots = conf.RxSlots
	}
	return slots
}

// OpenCopy opens copy monitor m of t for one client: memory of its own
// with one receive ring per watched ring. A switched port's monitor is fed
// by the switch; a pipe end's by the end's clients. admit is asked about
// the memory's size first (a user's limits). It fills reply and returns its
// descriptors (valed's own: duplicate them to send) and what ends the
// client's binding and the monitor.
func (r *Registry[S]) OpenCopy(m *Monitor, t *Target, conf portname.Conf, admit func(size int64) error, reply *wire.OpenReply) ([]int, func(), error) {
	g := t.Geom
	rings, txBase, rxBase := copyGeometry(g, m.dirs)
	slots := copySlots(g, conf)
	if l, err := ports.MonitorLayout(rings, slots, g.BufSize); err == nil {
		if err := admit(l.Size); err != nil {
			return nil, nil, err
		}
	}
	mem, err := shm.NewMonitor(m.name, rings, slots, g.BufSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.name, err)
	}
	b, err := mem.Bind(portname.Selection{RxLast: int(rings)}, 0)
	if err != nil {
		mem.Free()
		return nil, nil, err
	}
	fds, err := b.Reply(reply)
	if err != nil {
		mem.Free()
		return nil, nil, err
	}
	m.mem = mem
	if t.Switch != nil {
		h, err := t.Switch.AddMonitor(t.Port, mem, txBase, rxBase)
		if err != nil {
			mem.Free()
			return nil, nil, err
		}
		m.sw, m.handle = t.Switch, h
		reply.Switch = t.Switch.Name()
	} else {
		m.feedKey = t.Key
		m.event = wire.MonitorEvent{Op: wire.MonitorAdd, ID: m.id, Kind: wire.KindMonitor,
			MemSize: mem.Layout().Size, IfOfs: mem.Layout().Ifaces[0].Ofs, TxBase: txBase, RxBase: rxBase, Rings: int(rings)}
		m.eventFDs = append([]int{mem.RegionFD()}, b.NotifyFDs()...)
		m.rings = ringsOf(mem.Mem(), mem.Layout(), 0, m.name)
		r.addFed(m)
	}
	r.opened(m)
	return fds, func() { b.Close(); r.Close(m) }, nil
}

// OpenZeroCopy opens zero-copy monitor m of t for client s: the next free
// level of the port's chain. Level 1 is fed by the port's clients, level L
// by the client of level L-1, so s becomes the feeder of the next level.
// It fills reply and returns its descriptors (valed's own) and what ends
// the monitor.
func (r *Registry[S]) OpenZeroCopy(s S, m *Monitor, t *Target, reply *wire.OpenReply) ([]int, func(), error) {
	if t.Mem == nil {
		return nil, nil, fmt.Errorf("%s: %s has no shared memory for a zero-copy monitor; use a copy monitor (%s/rt)", m.name, t.Key, t.Key)
	}
	l := t.Layout
	level := r.freeLevel(t.Key, l.ZLevels)
	if level == 0 {
		return nil, nil, fmt.Errorf("%s: all %d zero-copy monitor levels of %s are taken (valed -zmon-levels)", m.name, l.ZLevels, t.Key)
	}
	fi := l.ZeroCopyMonitor(t.Iface, level)
	zf := l.Ifaces[fi]
	rings := zf.RxRings
	nif, err := t.Nifs.Write(fi, ports.Bound{RxLast: rings}, m.name, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", m.name, err)
	}
	efs, err := notify.NewEventfds(rings)
	if err != nil {
		t.Nifs.Release(nif)
		return nil, nil, err
	}
	m.level, m.notify = level, efs
	r.takeLevel(t.Key, m)
	m.feedKey = t.Key
	txBase, rxBase := 0, int(t.Geom.TxRings)
	if level > 1 {
		m.feedKey = ZeroCopyKey(t.Key, level-1)
		txBase, rxBase = -1, 0
	}
	m.event = wire.MonitorEvent{Op: wire.MonitorAdd, ID: m.id, Kind: wire.KindZeroCopyMonitor,
		IfOfs: zf.Ofs, TxBase: txBase, RxBase: rxBase, Rings: rings}
	m.eventFDs = notify.FDs(efs)
	*reply = wire.OpenReply{Kind: wire.KindZeroCopyMonitor, Geometry: ports.Geometry{RxRings: uint32(rings), RxSlots: zf.Slots[0], BufSize: l.BufSize},
		MemSize: l.Size, IfOfs: zf.Ofs, NifOfs: nif, MemID: t.Nifs.MemID(), Pools: l.Pools(), RxLast: rings, NotifyLast: rings}
	fds := append([]int{t.FD}, m.eventFDs...)
	m.rings = ringsOf(t.Mem, l, fi, m.name)
	r.addFed(m)
	reply.Feeds = r.AddFeeder(s, ZeroCopyKey(t.Key, level))
	r.opened(m)
	return fds, func() { r.Close(m); t.Nifs.Release(nif) }, nil
}

// opened records an open monitor.
func (r *Registry[S]) opened(m *Monitor) {
	r.mons[m.id] = m
	r.log.Info("monitor attached", "monitor", m.name, "port", m.target)
}

// freeLevel returns the first zero-copy level of port that is free, of
// max levels, or 0.
func (r *Registry[S]) freeLevel(port string, max int) int {
	levels := r.levels[port]
	for i := 1; i <= max; i++ {
		if i > len(levels) || levels[i-1] == nil {
			return i
		}
	}
	return 0
}

// takeLevel records m at its level of port's chain.
func (r *Registry[S]) takeLevel(port string, m *Monitor) {
	levels := r.levels[port]
	for len(levels) < m.level {
		levels = append(levels, nil)
	}
	levels[m.level-1] = m
	r.levels[port] = levels
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
