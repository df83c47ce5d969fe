// Package daemon is valed: it owns the switches and their ports, serves the
// control socket, and turns control requests into switch operations. Each
// control connection is one client; a port a client opened lives as long as
// some client holds it, and the connection closing (whether the client called
// Close, exited or was killed) releases the client's hold.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/mgmt"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/shm"
	"github.com/valeswitch/vale/vale"
)

// Config configures the daemon.
type Config struct {
	Socket     string         // control socket path
	SocketMode os.FileMode    // permissions of the control socket
	Geometry   ports.Geometry // geometry of ports created without @conf
	Switch     vale.Config    // configuration of every switch
	Port       shm.Config     // configuration of every port
	Logger     *slog.Logger
}

// Daemon is a running valed.
type Daemon struct {
	cfg Config
	log *slog.Logger
	ln  *ctl.Listener

	mu       sync.Mutex
	switches map[string]*switchState
	conns    map[*ctl.Conn]struct{}
	closing  bool

	wg sync.WaitGroup
}

type switchState struct {
	sw    *vale.Switch
	ports map[string]*portState
}

type portState struct {
	port *shm.Port
	sw   *switchState
	idx  int
	geom ports.Geometry
}

// New checks cfg and creates the control socket.
func New(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Geometry == (ports.Geometry{}) {
		cfg.Geometry = ports.DefaultGeometry()
	}
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, err
	}
	if cfg.SocketMode == 0 {
		cfg.SocketMode = 0o600
	}
	if cfg.Switch.Logger == nil {
		cfg.Switch.Logger = cfg.Logger
	}
	ln, err := ctl.Listen(cfg.Socket, cfg.SocketMode)
	if err != nil {
		return nil, err
	}
	return &Daemon{
		cfg:      cfg,
		log:      cfg.Logger,
		ln:       ln,
		switches: map[string]*switchState{},
		conns:    map[*ctl.Conn]struct{}{},
	}, nil
}

// Serve accepts control connections until ctx is done, then shuts down:
// it closes every connection (clients see valed disconnect), destroys every
// port and removes the control socket.
func (d *Daemon) Serve(ctx context.Context) error {
	d.log.Info("valed listening", "socket", d.ln.Path())
	stop := context.AfterFunc(ctx, func() { d.ln.Close() })
	defer stop()
	for {
		c, err := d.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				d.shutdown()
				return nil
			}
			d.shutdown()
			return fmt.Errorf("accept control connection: %w", err)
		}
		d.mu.Lock()
		if d.closing {
			d.mu.Unlock()
			c.Close()
			continue
		}
		d.conns[c] = struct{}{}
		d.wg.Add(1)
		d.mu.Unlock()
		go d.serveConn(c)
	}
}

func (d *Daemon) shutdown() {
	d.mu.Lock()
	d.closing = true
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, ss := range d.switches {
		for _, ps := range ss.ports {
			d.destroyPortLocked(ps)
		}
		ss.sw.Close()
		delete(d.switches, name)
	}
	d.log.Info("valed stopped")
}

// session is one control connection and the port binding it holds.
type session struct {
	conn    *ctl.Conn
	pid     int32
	binding *shm.Binding
	port    *portState
}

func (d *Daemon) serveConn(c *ctl.Conn) {
	defer d.wg.Done()
	s := &session{conn: c}
	if cred, err := c.PeerCred(); err == nil {
		s.pid = cred.Pid
	}
	defer func() {
		d.release(s)
		c.Close()
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
	}()
	for {
		var req ctl.Request
		fds, err := c.Recv(&req)
		ctl.CloseFDs(fds) // clients have no reason to send descriptors
		if err != nil {
			if !ctl.IsClosed(err) {
				d.log.Warn("control connection dropped", "pid", s.pid, "error", err)
			}
			return
		}
		if err := d.handle(s, req); err != nil {
			if rerr := c.ReplyError(err); rerr != nil {
				return
			}
		}
	}
}

func (d *Daemon) handle(s *session, req ctl.Request) error {
	switch req.Op {
	case ports.OpOpen:
		var r ports.OpenRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		return d.open(s, r)
	case ports.OpInfo:
		var r ports.InfoRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		info, err := d.info(r.Name)
		if err != nil {
			return err
		}
		return s.conn.ReplyOK(info)
	case mgmt.OpList:
		var r mgmt.ListRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		return d.list(s.conn, r)
	}
	return fmt.Errorf("unknown operation %q", req.Op)
}

func decode(req ctl.Request, v any) error {
	if len(req.Body) == 0 {
		return nil
	}
	if err := json.Unmarshal(req.Body, v); err != nil {
		return fmt.Errorf("%s: bad request: %w", req.Op, err)
	}
	return nil
}

// geometryFor returns the geometry a port opened with conf gets.
func (d *Daemon) geometryFor(conf ports.Conf, extra uint32) (ports.Geometry, error) {
	if conf.HostRings|conf.HostTxRings|conf.HostRxRings != 0 {
		return ports.Geometry{}, errors.New("VALE ports have no host rings")
	}
	g := conf.Apply(d.cfg.Geometry)
	g.ExtraBufs = extra
	return g, g.Validate()
}

func (d *Daemon) open(s *session, r ports.OpenRequest) error {
	if s.binding != nil {
		return fmt.Errorf("this connection already holds %s; open another connection", s.port.port.Name())
	}
	n, err := ports.ParseName(r.Name)
	if err != nil {
		return err
	}
	if err := n.Unsupported(); err != nil {
		return err
	}
	conf := r.Conf
	if !n.Conf.IsZero() {
		conf = n.Conf
	}
	g, err := d.geometryFor(conf, r.ExtraBufs)
	if err != nil {
		return fmt.Errorf("%s: %w", n.PortName(), err)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return errors.New("valed is shutting down")
	}
	name := n.PortName()
	ps, created, err := d.portLocked(n.Switch, name, g, !conf.IsZero() || r.ExtraBufs != 0)
	if err != nil {
		return err
	}
	tx, rx := ps.port.Rings()
	sel, err := shm.SelectRings(&n, tx, rx)
	if err == nil {
		s.binding, err = ps.port.Bind(sel)
	}
	if err != nil {
		if created {
			d.destroyPortLocked(ps)
		}
		return err
	}
	s.port = ps
	fds, err := s.binding.FDs()
	if err != nil {
		return err
	}
	reply := ports.OpenReply{
		Port: name, Switch: n.Switch, Index: ps.idx, MAC: ps.port.MAC().String(),
		Geometry: ps.geom, MemSize: ps.port.Layout().Size,
		TxFirst: sel.TxFirst, TxLast: sel.TxLast, RxFirst: sel.RxFirst, RxLast: sel.RxLast,
	}
	d.log.Info("port opened", "port", r.Name, "pid", s.pid, "created", created, "index", ps.idx)
	return s.conn.ReplyOK(reply, fds...)
}

// portLocked returns the port called name on switch swName, creating the
// switch and the port as needed. explicit says whether the client asked for
// a specific geometry, which must then match an existing port's.
func (d *Daemon) portLocked(swName, name string, g ports.Geometry, explicit bool) (*portState, bool, error) {
	ss := d.switches[swName]
	if ss == nil {
		ss = &switchState{sw: vale.New(swName, d.cfg.Switch), ports: map[string]*portState{}}
		d.switches[swName] = ss
		d.log.Info("switch created", "switch", swName)
	}
	if ps := ss.ports[name]; ps != nil {
		if explicit && ps.geom != g {
			return nil, false, fmt.Errorf("%s already exists with %s; the requested %s cannot apply", name, describeGeometry(ps.geom), describeGeometry(g))
		}
		return ps, false, nil
	}
	port, err := shm.New(name, g, d.cfg.Port)
	if err != nil {
		d.dropSwitchIfEmptyLocked(ss)
		return nil, false, err
	}
	idx, err := ss.sw.Attach(port)
	if err != nil {
		port.Free()
		d.dropSwitchIfEmptyLocked(ss)
		return nil, false, err
	}
	ps := &portState{port: port, sw: ss, idx: idx, geom: g}
	ss.ports[name] = ps
	return ps, true, nil
}

func describeGeometry(g ports.Geometry) string {
	return fmt.Sprintf("%d/%d rings of %d/%d slots (tx/rx), %d extra buffers", g.TxRings, g.RxRings, g.TxSlots, g.RxSlots, g.ExtraBufs)
}

// release drops a session's binding, destroying the port if it was the last.
func (d *Daemon) release(s *session) {
	if s.binding == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s.binding.Close() == 0 {
		d.destroyPortLocked(s.port)
	}
	d.log.Info("port closed", "port", s.port.port.Name(), "pid", s.pid)
	s.binding, s.port = nil, nil
}

func (d *Daemon) destroyPortLocked(ps *portState) {
	ss := ps.sw
	if ss.ports[ps.port.Name()] != ps {
		return
	}
	if err := ss.sw.Detach(ps.port); err != nil {
		d.log.Error("detach port", "port", ps.port.Name(), "error", err)
	}
	if err := ps.port.Free(); err != nil {
		d.log.Error("free port", "port", ps.port.Name(), "error", err)
	}
	delete(ss.ports, ps.port.Name())
	d.log.Info("port destroyed", "port", ps.port.Name())
	d.dropSwitchIfEmptyLocked(ss)
}

// dropSwitchIfEmptyLocked destroys a switch that has no port left, as netmap
// does with switches created on the fly.
func (d *Daemon) dropSwitchIfEmptyLocked(ss *switchState) {
	if len(ss.ports) > 0 {
		return
	}
	ss.sw.Close()
	delete(d.switches, ss.sw.Name())
	d.log.Info("switch destroyed", "switch", ss.sw.Name())
}

// info returns the geometry of a port: the existing port's, or the one a
// port of that name would get.
func (d *Daemon) info(name string) (ports.OpenReply, error) {
	n, err := ports.ParseName(name)
	if err != nil {
		return ports.OpenReply{}, err
	}
	if err := n.Unsupported(); err != nil {
		return ports.OpenReply{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	reply := ports.OpenReply{Port: n.PortName(), Switch: n.Switch, Index: -1}
	if ss := d.switches[n.Switch]; ss != nil {
		if ps := ss.ports[n.PortName()]; ps != nil {
			reply.Index, reply.Geometry, reply.MAC = ps.idx, ps.geom, ps.port.MAC().String()
			reply.MemSize = ps.port.Layout().Size
			return reply, nil
		}
	}
	g, err := d.geometryFor(n.Conf, 0)
	if err != nil {
		return ports.OpenReply{}, err
	}
	l, err := g.Layout()
	if err != nil {
		return ports.OpenReply{}, err
	}
	reply.Geometry, reply.MemSize, reply.MAC = g, l.Size, shm.DefaultMAC(n.PortName()).String()
	return reply, nil
}

// listChunk is how many ports one mgmt.ListReply carries.
const listChunk = 64

func (d *Daemon) list(c *ctl.Conn, r mgmt.ListRequest) error {
	swName, portName := r.Name, ""
	if r.Name != "" {
		if n, err := ports.ParseName(r.Name); err == nil {
			swName, portName = n.Switch, n.PortName()
		} else if _, err := ports.ParseName(r.Name + ":x"); err != nil {
			return fmt.Errorf("list: %q is neither a switch nor a port name", r.Name)
		}
	}
	d.mu.Lock()
	var sws []*vale.Switch
	for name, ss := range d.switches {
		if swName == "" || name == swName {
			sws = append(sws, ss.sw)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(sws, func(a, b *vale.Switch) int { return strings.Compare(a.Name(), b.Name()) })
	var out mgmt.ListReply
	for _, sw := range sws {
		out.Switches = append(out.Switches, sw.Info())
	}
	found := false
	for _, sw := range sws {
		for _, p := range sw.Ports() {
			if portName != "" && p.Name != portName {
				continue
			}
			found = true
			out.Ports = append(out.Ports, p)
			if len(out.Ports) == listChunk {
				if err := c.ReplyMore(out); err != nil {
					return err
				}
				out = mgmt.ListReply{}
			}
		}
	}
	if portName != "" && !found {
		return fmt.Errorf("no such port %s", portName)
	}
	return c.ReplyOK(out)
}
