package daemon

import (
	"fmt"

	"github.com/valeswitch/vale/monitor"
	"github.com/valeswitch/vale/pipes"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/wire"
)

// findTargetLocked returns the port a monitor name watches, and the user
// who may monitor it (besides root).
func (d *Daemon) findTargetLocked(n *portname.Name) (*monitor.Target, uint32, error) {
	name := n.PortName()
	if n.Pipe != 0 {
		master, _ := pipeNames(n)
		if ps := d.pipes[master]; ps != nil {
			end := pipes.EndOf(n.Pipe)
			return &monitor.Target{Key: name, Geom: ps.pair.Geometry(end), Layout: ps.pair.Layout(), Iface: end,
				FD: ps.pair.RegionFD(), Mem: ps.pair.Mem(), Nifs: ps.pair.NetmapIfs()}, ps.uid, nil
		}
	} else if ss := d.switches[n.Switch]; ss != nil {
		name = switchPortName(n)
		if ps := ss.ports[name]; ps != nil {
			t := &monitor.Target{Key: name, Geom: ps.geom, FD: -1, Switch: ss.sw, Port: ps.port}
			mp, ok := ps.port.(mappable)
			if !ok {
				// An attached interface: only the switch sees its frames.
				return t, 0, nil
			}
			t.Layout, t.FD, t.Mem, t.Nifs = mp.Layout(), mp.RegionFD(), mp.Mem(), mp.NetmapIfs()
			return t, ps.uid, nil
		}
	}
	return nil, 0, fmt.Errorf("%s: no such port %s to monitor (open it first)", n.String(), name)
}

// openMonitorLocked opens a monitor of an existing port for s.
func (d *Daemon) openMonitorLocked(s *session, n *portname.Name, conf portname.Conf, reply *wire.OpenReply) ([]int, error) {
	t, owner, err := d.findTargetLocked(n)
	if err != nil {
		return nil, err
	}
	if err := s.mayUse(n.String(), owner); err != nil {
		return nil, err
	}
	m := d.monitors.New(t.Key, monitor.Dirs(n))
	var fds []int
	var release func()
	if monitor.Dirs(n) == "z" {
		fds, release, err = d.monitors.OpenZeroCopy(s, m, t, reply)
	} else {
		admit := func(size int64) error { return d.checkRegion(s.cred, m.Name(), size) }
		fds, release, err = d.monitors.OpenCopy(m, t, conf, admit, reply)
	}
	if err != nil {
		return nil, err
	}
	reply.Port = m.Name()
	s.release = release
	return fds, nil
}
