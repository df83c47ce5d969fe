package daemon

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/afxdp"
	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/netdev"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/ports/tap"
	"github.com/valeswitch/vale/ptnet"
	"github.com/valeswitch/vale/vale"
	"github.com/valeswitch/vale/vale/wire"
)

// ifaceState is a persistent interface (vale-ctl -n): a TAP device valed
// holds until vale-ctl -r or its own exit.
type ifaceState struct {
	dev   *tap.Device
	slots int
	rings int        // as asked (0: the default)
	port  *portState // the switch port it is attached as, if any
}

func (d *Daemon) handleAdmin(s *session, req ctl.Request) error {
	switch req.Op {
	case wire.OpAttach:
		var r wire.AttachRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		infos, err := d.attach(r)
		if err != nil {
			return err
		}
		return s.conn.ReplyOK(wire.ListReply{Ports: infos})
	case wire.OpDetach:
		var r wire.DetachRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		if err := d.detach(r.Name); err != nil {
			return err
		}
	case wire.OpNewIf:
		var r wire.NewIfRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		if err := d.newIface(r); err != nil {
			return err
		}
	case wire.OpDelIf:
		var r wire.DelIfRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		if err := d.delIface(r.Name); err != nil {
			return err
		}
	case wire.OpSave:
		if err := d.save(); err != nil {
			return err
		}
	case wire.OpReload:
		if err := d.Reload(); err != nil {
			return err
		}
	case wire.OpPolling:
		var r wire.PollingRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		if err := d.setPolling(r); err != nil {
			return err
		}
	}
	return s.conn.ReplyOK(struct{}{})
}

// switchPortName returns the name of the switch port a parsed name refers
// to: a NIC's host port keeps its "^".
func switchPortName(n *portname.Name) string {
	if n.Mode == portname.RegSW {
		return n.PortName() + "^"
	}
	return n.PortName()
}

// parseAttachName checks the name of vale-ctl -a/-h/-d: valeX:IFNAME,
// optionally with -N (one queue).
func parseAttachName(name string) (portname.Name, error) {
	n, err := portname.ParseName(name)
	if err != nil {
		return n, err
	}
	switch {
	case n.Subsystem != "vale":
		return n, fmt.Errorf("%s: attach to a switch: valeX:IFNAME (e.g. vale0:eth1)", name)
	case n.Pipe != 0 || n.IsMonitor() || n.Flags != 0 || n.MemID != 0 || len(n.Options) > 0:
		return n, fmt.Errorf("%s: only valeX:IFNAME or valeX:IFNAME-QUEUE can be attached", name)
	case n.Mode != portname.RegAllNIC && n.Mode != portname.RegOneNIC:
		return n, fmt.Errorf("%s: host rings are attached with vale-ctl -h %s", name, n.PortName())
	}
	return n, nil
}

// attach attaches an interface to a switch (vale-ctl -a, -h).
func (d *Daemon) attach(r wire.AttachRequest) ([]wire.PortInfo, error) {
	n, err := parseAttachName(r.Name)
	if err != nil {
		return nil, err
	}
	infos, err := d.attachUnsaved(&n, r)
	if err == nil {
		d.persistChange()
	}
	return infos, err
}

// attachUnsaved is attach without saving the configuration.
func (d *Daemon) attachUnsaved(n *portname.Name, r wire.AttachRequest) ([]wire.PortInfo, error) {
	name, ifname := n.PortName(), n.Port
	d.mu.Lock()
	defer d.mu.Unlock()
	req := r
	req.Name = n.String()
	if d.closing {
		return nil, errors.New("valed is shutting down")
	}
	if ss := d.switches[n.Switch]; ss != nil && ss.ports[name] != nil {
		return nil, fmt.Errorf("%s exists already (%s)", name, ss.ports[name].port.what())
	}
	if _, err := vale.ParseMode(r.Mode); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if ps := d.servingLocked("interface " + ifname); ps != nil {
		return nil, fmt.Errorf("%s is attached already, as %s", ifname, ps.name())
	}
	var infos []wire.PortInfo
	var err error
	switch {
	case r.VhostUser != "":
		infos, err = d.attachVhostLocked(n, r)
	case r.VhostClient:
		return nil, errors.New("-vhost-client goes with -vhost-user PATH")
	case d.ifaces[ifname] != nil:
		infos, err = d.attachIfaceLocked(n, d.ifaces[ifname], r)
	default:
		infos, err = d.attachNICLocked(n, r)
	}
	if err == nil {
		d.switches[n.Switch].ports[name].req = &req
	}
	return infos, err
}

// attachVhostLocked creates a vhost-user port (vale-ctl -a -vhost-user).
func (d *Daemon) attachVhostLocked(n *portname.Name, r wire.AttachRequest) ([]wire.PortInfo, error) {
	switch {
	case r.Host:
		return nil, errors.New("a vhost-user port has no host stack: attach it with -a")
	case n.Mode == portname.RegOneNIC || r.XDPOptions != (wire.XDPOptions{}) || r.Slots != 0:
		return nil, errors.New("a vhost-user port takes only its number of queue pairs (-queues N, or -C 0,0,N): the guest sizes its rings")
	}
	if ps := d.servingLocked("vhost-user socket " + r.VhostUser); ps != nil {
		return nil, fmt.Errorf("%s serves %s already", ps.name(), r.VhostUser)
	}
	vp, err := ptnet.New(ptnet.Config{Name: n.PortName(), Socket: r.VhostUser, Client: r.VhostClient, QueuePairs: r.Queues,
		StateDir: d.cfg.StateDir, Logger: d.log})
	if err != nil {
		return nil, err
	}
	ps, err := d.attachPortLocked(n.Switch, &portState{port: vhostPort{vp}, geom: vp.Geometry(), mode: requestMode(r)})
	if err != nil {
		vp.Free()
		return nil, err
	}
	mode := "listening on"
	if r.VhostClient {
		mode = "connecting to"
	}
	d.log.Info("vhost-user port attached", "port", ps.name(), "socket", r.VhostUser, "mode", mode, "queue_pairs", r.Queues)
	return d.portInfosLocked(ps), nil
}

// attachIfaceLocked attaches a persistent interface.
func (d *Daemon) attachIfaceLocked(n *portname.Name, is *ifaceState, r wire.AttachRequest) ([]wire.PortInfo, error) {
	switch {
	case is.port != nil:
		return nil, fmt.Errorf("%s is attached already, as %s", is.dev.Name(), is.port.name())
	case r.Host:
		return nil, fmt.Errorf("%s is a persistent interface: attach it with -a (it is the host's side already)", is.dev.Name())
	case n.Mode == portname.RegOneNIC || r.XDPOptions != (wire.XDPOptions{}) || r.Queues != 0:
		return nil, fmt.Errorf("%s is a persistent interface: queue and AF_XDP options do not apply", is.dev.Name())
	}
	slots := is.slots
	if r.Slots != 0 {
		slots = r.Slots
	}
	p, err := tap.NewPort(n.PortName(), tap.KindTap, is.dev, slots)
	if err != nil {
		return nil, err
	}
	tp := tapPort{Port: p, desc: "the persistent interface " + is.dev.Name(), serving: "interface " + is.dev.Name()}
	ps, err := d.attachPortLocked(n.Switch, &portState{port: tp, geom: p.Geometry(), mode: requestMode(r)})
	if err != nil {
		return nil, err
	}
	is.port = ps
	ps.gone = func() { is.port = nil }
	d.log.Info("persistent interface attached", "port", ps.name(), "interface", is.dev.Name())
	return d.portInfosLocked(ps), nil
}

// attachNICLocked attaches a network interface over AF_XDP, and its host
// port if asked.
func (d *Daemon) attachNICLocked(n *portname.Name, r wire.AttachRequest) (_ []wire.PortInfo, err error) {
	mode, err := afxdp.ParseMode(r.XDPMode)
	if err != nil {
		return nil, err
	}
	opts := afxdp.Options{
		Mode: mode, Copy: afxdp.CopyMode(r.Copy), StartQueue: r.StartQueue, Queues: r.Queues,
		RingSize: r.Slots, FrameSize: r.FrameSize, StateDir: d.cfg.StateDir, Logger: d.log,
	}
	if n.Mode == portname.RegOneNIC {
		if r.Queues > 1 || (r.StartQueue != 0 && r.StartQueue != n.Ring) {
			return nil, fmt.Errorf("%s names queue %d; do not also give a queue range", r.Name, n.Ring)
		}
		opts.StartQueue, opts.Queues = n.Ring, 1
	}
	hostName := hostIfname(n.Port)
	if r.Host {
		if _, err := os.Stat("/sys/class/net/" + hostName); err == nil {
			return nil, fmt.Errorf("%s: the host port's interface %s exists already", r.Name, hostName)
		}
	}
	nic, err := afxdp.Attach(n.PortName(), n.Port, opts)
	if err != nil {
		return nil, err
	}
	ps, err := d.attachPortLocked(n.Switch, &portState{port: nicPort{nic}, geom: nic.Geometry(), mode: requestMode(r)})
	if err != nil {
		nic.Stop()
		nic.Free()
		return nil, err
	}
	if !r.Host {
		return d.portInfosLocked(ps), nil
	}
	defer func() {
		if err != nil {
			d.destroyPortLocked(ps)
		}
	}()
	mtu := 0
	if l, err := netdev.Lookup(n.Port); err == nil {
		mtu = l.Attrs().MTU
	}
	dev, err := tap.Create(tap.DeviceConfig{Name: hostName, MTU: mtu, MAC: nic.MAC()})
	if err != nil {
		return nil, fmt.Errorf("host port of %s: %w", r.Name, err)
	}
	hp, err := tap.NewPort(n.PortName()+"^", tap.KindHost, dev, r.Slots)
	if err != nil {
		dev.Close()
		return nil, err
	}
	tp := tapPort{Port: hp, desc: "the host port of " + ps.name()}
	hs, err := d.attachPortLocked(n.Switch, &portState{port: tp, owner: ps, geom: hp.Geometry(), mode: requestMode(r)})
	if err != nil {
		hp.Free()
		return nil, err
	}
	ps.host = hs
	d.log.Info("host port attached", "port", hs.name(), "interface", hostName)
	return d.portInfosLocked(ps, hs), nil
}

// requestMode returns the mode an attach request asks for (checked by
// attachUnsaved).
func requestMode(r wire.AttachRequest) vale.Mode {
	m, _ := vale.ParseMode(r.Mode)
	return m
}

// hostIfname is the TAP interface of an interface's host port: the
// interface's name with netmap's "^", shortened to fit IFNAMSIZ.
func hostIfname(ifname string) string {
	if len(ifname) > unix.IFNAMSIZ-2 {
		ifname = ifname[:unix.IFNAMSIZ-2]
	}
	return ifname + "^"
}

// attachPortLocked attaches p to switch swName (created if needed) and
// records it.
func (d *Daemon) attachPortLocked(swName string, ps *portState) (*portState, error) {
	ss := d.switchLocked(swName)
	idx, err := ss.sw.Attach(ps.port, ps.mode)
	if err != nil {
		d.dropSwitchIfEmptyLocked(ss)
		return nil, err
	}
	ps.sw, ps.idx = ss, idx
	ss.ports[ps.name()] = ps
	return ps, nil
}

// servingLocked returns the port that serves what (port.serves), if any.
func (d *Daemon) servingLocked(what string) *portState {
	for _, ss := range d.switches {
		for _, ps := range ss.ports {
			if ps.port.serves() == what {
				return ps
			}
		}
	}
	return nil
}

func (d *Daemon) portInfosLocked(pss ...*portState) []wire.PortInfo {
	var out []wire.PortInfo
	for _, ps := range pss {
		for _, info := range ps.sw.sw.Ports() {
			if info.Name == ps.name() {
				out = append(out, info)
			}
		}
	}
	return out
}

// detach detaches an interface attached with vale-ctl -a or -h.
func (d *Daemon) detach(name string) error {
	if err := d.detachUnsaved(name); err != nil {
		return err
	}
	d.persistChange()
	return nil
}

// switchPortLocked returns the switch port a parsed name refers to, or nil.
// d.mu is held.
func (d *Daemon) switchPortLocked(n *portname.Name) *portState {
	if ss := d.switches[n.Switch]; ss != nil && n.Subsystem == "vale" && n.Pipe == 0 {
		return ss.ports[switchPortName(n)]
	}
	return nil
}

// detachUnsaved is detach without saving the configuration.
func (d *Daemon) detachUnsaved(name string) error {
	n, err := portname.ParseName(name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.switchPortLocked(&n)
	if ps == nil {
		return fmt.Errorf("%s: no such port", name)
	}
	switch _, opened := ps.port.(mappable); {
	case opened:
		return fmt.Errorf("%s is %s; it goes away when they close it", ps.name(), ps.port.what())
	case ps.owner != nil:
		return fmt.Errorf("%s is the host port of %s: detach %s", ps.name(), ps.owner.name(), ps.owner.name())
	}
	d.destroyPortLocked(ps)
	return nil
}

// newIface creates a persistent interface (vale-ctl -n).
func (d *Daemon) newIface(r wire.NewIfRequest) error {
	if err := d.newIfaceUnsaved(r); err != nil {
		return err
	}
	d.persistChange()
	return nil
}

// newIfaceUnsaved is newIface without saving the configuration.
func (d *Daemon) newIfaceUnsaved(r wire.NewIfRequest) error {
	if r.Slots < 0 || r.Slots > ports.MaxBatch {
		return fmt.Errorf("%s: %d slots: want 1..%d", r.Name, r.Slots, ports.MaxBatch)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ifaces[r.Name] != nil {
		return fmt.Errorf("%s: a persistent interface of that name exists", r.Name)
	}
	dev, err := tap.Create(tap.DeviceConfig{Name: r.Name, Queues: r.Rings})
	if err != nil {
		return err
	}
	slots := r.Slots
	if slots == 0 {
		slots = tap.DefaultSlots
	}
	d.ifaces[r.Name] = &ifaceState{dev: dev, slots: slots, rings: r.Rings}
	d.log.Info("persistent interface created", "interface", r.Name, "queues", dev.Queues())
	return nil
}

// delIface removes a persistent interface (vale-ctl -r).
func (d *Daemon) delIface(name string) error {
	if err := d.delIfaceUnsaved(name); err != nil {
		return err
	}
	d.persistChange()
	return nil
}

// delIfaceUnsaved is delIface without saving the configuration.
func (d *Daemon) delIfaceUnsaved(name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	is := d.ifaces[name]
	if is == nil {
		return fmt.Errorf("%s: no persistent interface of that name (vale-ctl -n creates them)", name)
	}
	if is.port != nil {
		return fmt.Errorf("%s is attached as %s: detach it first (vale-ctl -d %s)", name, is.port.name(), is.port.name())
	}
	is.dev.Close()
	delete(d.ifaces, name)
	d.log.Info("persistent interface removed", "interface", name)
	return nil
}

// ifaceInfosLocked describes the persistent interfaces.
func (d *Daemon) ifaceInfosLocked(filter string) []wire.IfaceInfo {
	var out []wire.IfaceInfo
	for name, is := range d.ifaces {
		if filter != "" && filter != name {
			continue
		}
		info := wire.IfaceInfo{Name: name, Rings: is.dev.Queues(), Slots: is.slots, MAC: is.dev.MAC().String()}
		if is.port != nil {
			info.Attached = is.port.name()
		}
		out = append(out, info)
	}
	return out
}
