package vale

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/valeswitch/vale/vale/frame"
)

// Monitor receives copies of the frames a port sends or receives: a copy
// monitor's memory (netmap's PORT/t, PORT/r, PORT/rt). The switch calls
// Deliver for ring TxBase+r with the frames the port sent on TX ring r, and
// for ring RxBase+r with the frames delivered to its RX ring r, in the order
// the port saw them. A monitor that has no room loses frames; the monitored
// port never waits for it.
type Monitor interface {
	Deliver(r int, b *frame.Batch, which []uint16) (frames, bytes int, err error)
}

// MonitorHandle is a monitor attached to a port.
type MonitorHandle struct {
	m      Monitor
	port   Port
	txBase int // -1 if the TX direction is not monitored
	rxBase int // -1 if the RX direction is not monitored
	copied atomic.Uint64
	lost   atomic.Uint64
}

// MonitorStats counts what a monitor got.
type MonitorStats struct {
	Copied uint64 `json:"copied"` // frames copied into the monitor
	Lost   uint64 `json:"lost"`   // frames the monitor had no room for
}

// Stats returns the monitor's counters.
func (h *MonitorHandle) Stats() MonitorStats {
	return MonitorStats{Copied: h.copied.Load(), Lost: h.lost.Load()}
}

// monitorSet is the monitors of a port, replaced (never changed in place)
// under the switch's write lock.
type monitorSet struct {
	tx, rx []*MonitorHandle
}

// AddMonitor attaches m to port p. txBase and rxBase give the monitor ring
// of the port's TX ring 0 and RX ring 0 (-1 for a direction not monitored);
// the monitor must have a ring for every ring of each monitored direction.
func (sw *Switch) AddMonitor(p Port, m Monitor, txBase, rxBase int) (*MonitorHandle, error) {
	if txBase < 0 && rxBase < 0 {
		return nil, fmt.Errorf("monitor of %s watches no direction", p.Name())
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	a := sw.attachmentLocked(p)
	if a == nil {
		return nil, fmt.Errorf("monitor %s: not attached to %s", p.Name(), sw.name)
	}
	h := &MonitorHandle{m: m, port: p, txBase: txBase, rxBase: rxBase}
	old := a.monitors.Load()
	set := &monitorSet{}
	if old != nil {
		set.tx = append(set.tx, old.tx...)
		set.rx = append(set.rx, old.rx...)
	}
	if txBase >= 0 {
		set.tx = append(set.tx, h)
	}
	if rxBase >= 0 {
		set.rx = append(set.rx, h)
	}
	a.monitors.Store(set)
	return h, nil
}

// RemoveMonitor detaches a monitor. Once it returns, the switch no longer
// touches the monitor. Removing a monitor whose port has left the switch is
// a no-op.
func (sw *Switch) RemoveMonitor(h *MonitorHandle) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	a := sw.attachmentLocked(h.port)
	if a == nil {
		return
	}
	old := a.monitors.Load()
	if old == nil {
		return
	}
	drop := func(l []*MonitorHandle) []*MonitorHandle {
		var out []*MonitorHandle
		for _, x := range l {
			if x != h {
				out = append(out, x)
			}
		}
		return out
	}
	set := &monitorSet{tx: drop(old.tx), rx: drop(old.rx)}
	if len(set.tx) == 0 && len(set.rx) == 0 {
		set = nil
	}
	a.monitors.Store(set)
}

func (sw *Switch) attachmentLocked(p Port) *attachment {
	for _, a := range sw.active {
		if a.port == p {
			return a
		}
	}
	return nil
}

// copyTo delivers frames which of b to every monitor of l, ring base+r.
func copyTo(l []*MonitorHandle, r int, b *frame.Batch, which []uint16, rx bool) {
	for _, h := range l {
		base := h.txBase
		if rx {
			base = h.rxBase
		}
		n, _, err := h.m.Deliver(base+r, b, which)
		if err != nil {
			n = 0 // the monitor's client broke its ring; it was reset
		}
		h.copied.Add(uint64(n))
		if lost := len(which) - n; lost > 0 {
			h.lost.Add(uint64(lost))
		}
	}
}

// rxLocks serialises, per RX ring, a delivery and the copy of what it
// delivered to the port's monitors, so that a monitor sees frames in the
// order the port received them. Only taken when the port has RX monitors.
type rxLocks []sync.Mutex
