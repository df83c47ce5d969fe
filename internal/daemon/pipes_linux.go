package daemon

import (
	"fmt"

	"github.com/valeswitch/vale/pipes"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/wire"
)

// pipeState is a pipe pair valed holds.
type pipeState struct {
	pair *pipes.Pair
	geom ports.Geometry // of the master end
	uid  uint32         // created the pair
}

// pipeNames returns the names of both ends of the pipe n names.
func pipeNames(n *portname.Name) (master, slave string) {
	m, s := *n, *n
	m.Pipe, s.Pipe = '{', '}'
	return m.PortName(), s.PortName()
}

// openPipeLocked binds an end of a pipe, creating the pair if needed.
// Opening either end creates both; the pair goes when no end is bound.
func (d *Daemon) openPipeLocked(s *session, n *portname.Name, g ports.Geometry, explicit bool, reply *wire.OpenReply) ([]int, error) {
	if g.ExtraBufs != 0 {
		return nil, fmt.Errorf("%s: pipes have no extra buffers", n.PortName())
	}
	master, slave := pipeNames(n)
	end := pipes.EndOf(n.Pipe)
	ps := d.pipes[master]
	created := false
	if ps == nil {
		if err := d.checkNewPipeLocked(s, master, g); err != nil {
			return nil, err
		}
		pair, err := pipes.NewPair(master, slave, g, d.cfg.Port.ZLevels)
		if err != nil {
			return nil, err
		}
		ps = &pipeState{pair: pair, geom: g, uid: s.cred.UID}
		d.pipes[master] = ps
		d.usageLocked(ps.uid).pipes++
		created = true
		d.log.Info("pipe created", "master", master, "slave", slave)
	} else if err := s.mayUse(n.PortName(), ps.uid); err != nil {
		return nil, err
	} else if explicit && ps.geom != g {
		// The slave's geometry mirrors the master's.
		want := ps.pair.Geometry(end)
		if end == pipes.Master || want != g {
			return nil, fmt.Errorf("%s already exists with %s; the requested %s cannot apply",
				n.PortName(), describeGeometry(want), describeGeometry(g))
		}
	}
	gg := ps.pair.Geometry(end)
	sel, err := portname.SelectRings(n, int(gg.TxRings), int(gg.RxRings))
	var b *pipes.Binding
	if err == nil {
		b, err = ps.pair.Bind(end, sel)
	}
	if err != nil {
		if created {
			d.destroyPipeLocked(master)
		}
		return nil, err
	}
	fds := b.Reply(reply)
	reply.Feeds = d.monitors.AddFeeder(s, reply.Port)
	s.release = func() {
		if b.Close() == 0 {
			d.destroyPipeLocked(master)
		}
	}
	return fds, nil
}

// checkNewPipeLocked checks the limits the session's user meets by
// creating pipe master of geometry g.
func (d *Daemon) checkNewPipeLocked(s *session, master string, g ports.Geometry) error {
	if err := checkLimitLocked(s.cred, d.usageLocked(s.cred.UID).pipes, d.limits.Pipes, master+": too many pipes", "pipes"); err != nil {
		return err
	}
	l, err := ports.PipeLayout(g, d.cfg.Port.ZLevels)
	if err != nil {
		return fmt.Errorf("%s: %w", master, err)
	}
	return d.checkRegion(s.cred, master, l.Size)
}

func (d *Daemon) destroyPipeLocked(master string) {
	ps := d.pipes[master]
	if ps == nil {
		return
	}
	d.monitors.Orphan(master)
	d.monitors.Orphan(ps.pair.Name(pipes.Slave))
	if err := ps.pair.Free(); err != nil {
		d.log.Error("free pipe", "pipe", master, "error", err)
	}
	delete(d.pipes, master)
	d.releaseUsageLocked(ps.uid, func(u *usage) { u.pipes-- })
	d.log.Info("pipe destroyed", "master", master)
}
