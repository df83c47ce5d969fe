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
	"time"

	"github.com/valeswitch/vale/afxdp"
	"github.com/valeswitch/vale/internal/config"
	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/internal/peer"
	"github.com/valeswitch/vale/monitor"
	"github.com/valeswitch/vale/pipes"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/ports/shm"
	"github.com/valeswitch/vale/vale"
	"github.com/valeswitch/vale/vale/wire"
)

// Config configures the daemon.
type Config struct {
	Socket     string         // control socket path
	SocketMode os.FileMode    // permissions of the control socket
	Geometry   ports.Geometry // geometry of ports created without @conf
	Switch     vale.Config    // configuration of every switch
	Port       shm.Config     // configuration of every port (ZLevels: 0 gives DefaultZLevels, negative none)
	// StateDir holds what attachments changed on interfaces, so that a
	// valed started after a crash can put it back; empty keeps nothing.
	StateDir string
	// SocketGroup owns the control socket (a group name or number); empty
	// keeps valed's.
	SocketGroup string
	// ConfigFile is the configuration file valed was started with (-c),
	// which Reload reads and Save writes; Startup is its content, applied
	// at start. Persist saves the attachments into it at every change.
	ConfigFile string
	Startup    *config.Config
	Persist    bool
	// Metrics is the address of the Prometheus endpoint; empty serves
	// none.
	Metrics string
	// Limits bound what each user may hold (zero fields: defaults).
	Limits Limits
	// Switches holds the settings of named switches (access, mode).
	Switches map[string]SwitchSettings
	// LogLevel, if set, is the level Reload changes.
	LogLevel *slog.LevelVar
	Logger   *slog.Logger
}

// DefaultZLevels is how many zero-copy monitors can be chained on a port
// unless configured: room for their rings is reserved in every port's
// memory (it costs address space, not RAM, until used).
const DefaultZLevels = 2

// Daemon is a running valed.
type Daemon struct {
	cfg Config
	log *slog.Logger
	ln  *ctl.Listener

	mu       sync.Mutex
	switches map[string]*switchState
	pipes    map[string]*pipeState // by master end name
	// monitors are the monitors valed holds and the sessions feeding them.
	monitors *monitor.Registry[*session]
	// ifaces are the persistent interfaces (vale-ctl -n), by name.
	ifaces  map[string]*ifaceState
	conns   map[*ctl.Conn]struct{}
	closing bool
	// usage is what each user holds, against limits; access the switches
	// restricted to some users.
	usage  map[uint32]*usage
	limits Limits
	named  map[string]SwitchSettings

	wg sync.WaitGroup

	// reloadMu serialises Reload and Save; applied is the configuration
	// last applied.
	reloadMu sync.Mutex
	applied  *config.Config
	metrics  *metricsServer
}

type switchState struct {
	sw    *vale.Switch
	ports map[string]*portState
	uid   uint32 // created it, and holds it against its limit
	user  bool   // created by a client's open (not by an attachment)
}

// portState is a port on a switch as the daemon keeps it.
type portState struct {
	port  port
	host  *portState // a NIC's host port (vale-ctl -h), which goes with it
	owner *portState // a host port's NIC, through which it is detached
	sw    *switchState
	idx   int
	geom  ports.Geometry
	// req is the request that attached the port (vale-ctl -a, -h or the
	// configuration), to save and reload it; nil for client ports.
	req *wire.AttachRequest
	// uid created the port (client ports): other users may not bind it,
	// and the port counts against its limit.
	uid uint32
	// mode is what the port was attached with.
	mode vale.Mode
	// gone undoes, when the port is destroyed, what the daemon recorded
	// of it elsewhere (a user's count, a persistent interface's link).
	gone func()
}

// portMode turns the mode of a @conf into the switch's.
func portMode(m uint32) vale.Mode {
	switch m {
	case portname.ModeDrop:
		return vale.ModeDrop
	case portname.ModeLossless:
		return vale.ModeLossless
	}
	return vale.ModeDefault
}

// name returns the port's name on its switch.
func (ps *portState) name() string { return ps.port.Name() }

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
	switch {
	case cfg.Port.ZLevels == 0:
		cfg.Port.ZLevels = DefaultZLevels
	case cfg.Port.ZLevels < 0:
		cfg.Port.ZLevels = 0
	}
	if cfg.SocketMode == 0 {
		cfg.SocketMode = 0o600
	}
	if cfg.Switch.Logger == nil {
		cfg.Switch.Logger = cfg.Logger
	}
	if err := notify.EnableKernelSignals(); err != nil {
		cfg.Logger.Warn("wake-ups fall back to eventfd writes, which a client that clears O_NONBLOCK on a shared eventfd could block", "error", err)
	}
	if cfg.StateDir != "" {
		if err := afxdp.RestoreStale(cfg.StateDir, cfg.Logger); err != nil {
			cfg.Logger.Warn("could not restore every interface a previous valed left attached", "error", err)
		}
	}
	ln, err := ctl.Listen(cfg.Socket, cfg.SocketMode, cfg.StateDir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:      cfg,
		log:      cfg.Logger,
		ln:       ln,
		switches: map[string]*switchState{},
		pipes:    map[string]*pipeState{},
		ifaces:   map[string]*ifaceState{},
		conns:    map[*ctl.Conn]struct{}{},
		usage:    map[uint32]*usage{},
		limits:   cfg.Limits.withDefaults(),
		named:    cfg.Switches,
		applied:  cfg.Startup,
	}
	d.monitors = monitor.NewRegistry(cfg.Logger, d.sendEventLocked)
	if cfg.SocketGroup != "" {
		if err := d.setSocketAccess(cfg.SocketGroup, fmt.Sprintf("%o", cfg.SocketMode)); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if cfg.Metrics != "" {
		if err := d.startMetrics(cfg.Metrics); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if cfg.Startup != nil {
		d.applyStartup(cfg.Startup)
	}
	return d, nil
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
	// The socket goes first, and for sure before valed exits: Close may
	// be running already (the signal's), and returns once it is done.
	d.ln.Close()
	d.mu.Lock()
	d.closing = true
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	d.stopMetrics()
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, ss := range d.switches {
		for _, ps := range ss.ports {
			d.destroyPortLocked(ps)
		}
		if d.switches[name] != nil {
			ss.sw.Close()
			delete(d.switches, name)
		}
	}
	for name, is := range d.ifaces {
		is.dev.Close()
		delete(d.ifaces, name)
	}
	for name, ps := range d.pipes {
		ps.pair.Free()
		delete(d.pipes, name)
	}
	d.log.Info("valed stopped")
}

// session is one control connection and the port binding it holds.
type session struct {
	conn *ctl.Conn
	// cred is the peer: its user owns the ports it creates and is held to
	// its limits; Admin may change what is attached.
	cred peer.Cred
	// holding names what the session opened; release gives it back (it
	// runs with d.mu held). Both are empty until an open succeeds.
	holding string
	release func()
	// drain, if set, waits for the switch to take what the binding's TX
	// rings hold, before release (it runs with no lock held).
	drain func()
	// events carries what valed tells the client after the open reply.
	events *eventQueue
}

// mayUse checks that the session may bind (or monitor) what user owner
// created: its own ports, or anything for root and CAP_NET_ADMIN.
func (s *session) mayUse(name string, owner uint32) error {
	if s.cred.Admin || s.cred.UID == owner {
		return nil
	}
	return fmt.Errorf("%s: permission denied: it belongs to uid %d", name, owner)
}

func (d *Daemon) serveConn(c *ctl.Conn) {
	defer d.wg.Done()
	defer func() {
		c.Close()
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
	}()
	s, err := d.admit(c)
	if err != nil {
		d.log.Warn("control connection refused", "error", err)
		c.Refuse(err)
		return
	}
	defer d.endSession(s)
	for {
		var req ctl.Request
		fds, err := c.Recv(&req)
		ctl.CloseFDs(fds) // clients have no reason to send descriptors
		if err != nil {
			if !ctl.IsClosed(err) {
				d.log.Warn("control connection dropped", "pid", s.cred.PID, "uid", s.cred.UID, "error", err)
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

// admit learns who the peer of c is and counts the connection against its
// user's limit.
func (d *Daemon) admit(c *ctl.Conn) (*session, error) {
	cred, err := peer.Of(c.Unix())
	if err != nil {
		return nil, fmt.Errorf("valed cannot tell who you are: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.usageLocked(cred.UID)
	if err := checkLimitLocked(cred, u.conns, d.limits.Connections, "too many control connections", "connections"); err != nil {
		d.releaseUsageLocked(cred.UID, func(*usage) {})
		return nil, err
	}
	u.conns++
	return &session{conn: c, cred: cred, events: newEventQueue()}, nil
}

// endSession releases what the session held and its connection's count.
func (d *Daemon) endSession(s *session) {
	d.releaseSession(s)
	s.events.close()
	d.mu.Lock()
	d.releaseUsageLocked(s.cred.UID, func(u *usage) { u.conns-- })
	d.mu.Unlock()
}

func (d *Daemon) handle(s *session, req ctl.Request) error {
	switch req.Op {
	case wire.OpOpen:
		var r wire.OpenRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		return d.open(s, r)
	case wire.OpInfo:
		var r wire.InfoRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		info, err := d.info(r.Name)
		if err != nil {
			return err
		}
		return s.conn.ReplyOK(info)
	case wire.OpPortHdr:
		var r wire.PortHdrRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		reply, err := d.portHdr(s, r)
		if err != nil {
			return err
		}
		return s.conn.ReplyOK(reply)
	case wire.OpList:
		var r wire.ListRequest
		if err := decode(req, &r); err != nil {
			return err
		}
		return d.list(s.conn, r)
	case wire.OpAttach, wire.OpDetach, wire.OpNewIf, wire.OpDelIf, wire.OpSave, wire.OpReload, wire.OpPolling:
		if !s.cred.Admin {
			return fmt.Errorf("%s: permission denied: changing what is attached to a switch needs root or CAP_NET_ADMIN", req.Op)
		}
		return d.handleAdmin(s, req)
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
func (d *Daemon) geometryFor(conf portname.Conf, extra uint32) (ports.Geometry, error) {
	if conf.HostRings|conf.HostTxRings|conf.HostRxRings != 0 {
		return ports.Geometry{}, errors.New("VALE ports have no host rings")
	}
	g := conf.Apply(d.cfg.Geometry)
	g.ExtraBufs = extra
	return g, g.Validate()
}

func (d *Daemon) open(s *session, r wire.OpenRequest) error {
	if s.release != nil {
		return fmt.Errorf("this connection already holds %s; open another connection", s.holding)
	}
	n, err := portname.ParseName(r.Name)
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
	if !s.cred.Admin && r.ExtraBufs > d.limits.ExtraBufs {
		return fmt.Errorf("%s: %d extra buffers exceed the %d a user may ask for (limits.extra_bufs in valed's configuration)",
			n.PortName(), r.ExtraBufs, d.limits.ExtraBufs)
	}
	g, err := d.geometryFor(conf, r.ExtraBufs)
	if err != nil {
		return fmt.Errorf("%s: %w", n.PortName(), err)
	}
	explicit := !conf.Geometry().IsZero() || r.ExtraBufs != 0
	reply, fds, err := d.bind(s, &n, conf, g, explicit)
	if err != nil {
		return err
	}
	d.log.Info("port opened", "name", r.Name, "kind", reply.Kind, "pid", s.cred.PID, "uid", s.cred.UID)
	// The reply goes out with no lock held: a client slow to read it
	// delays only itself.
	err = s.conn.ReplyOK(reply, fds...)
	closeFDs(fds)
	if err != nil {
		d.releaseSession(s)
		return err
	}
	go s.events.run(s.conn)
	return nil
}

// bind makes the binding an open asks for and returns the reply with
// copies of its descriptors, owned by the caller.
func (d *Daemon) bind(s *session, n *portname.Name, conf portname.Conf, g ports.Geometry, explicit bool) (wire.OpenReply, []int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return wire.OpenReply{}, nil, errors.New("valed is shutting down")
	}
	var (
		reply wire.OpenReply
		fds   []int
		err   error
	)
	switch {
	case n.IsMonitor():
		fds, err = d.openMonitorLocked(s, n, conf, &reply)
	case n.Pipe != 0:
		fds, err = d.openPipeLocked(s, n, g, explicit, &reply)
	default:
		fds, err = d.openValeLocked(s, n, g, explicit, &reply)
	}
	if err == nil {
		fds, err = dupFDs(fds)
		if err != nil {
			err = fmt.Errorf("%s: %w", n.PortName(), err)
			s.release()
			s.release = nil
		}
	}
	if err != nil {
		d.monitors.RemoveFeeder(s)
		return wire.OpenReply{}, nil, err
	}
	s.holding = reply.Port
	return reply, fds, nil
}

// openValeLocked binds a VALE port, creating it and its switch if needed.
func (d *Daemon) openValeLocked(s *session, n *portname.Name, g ports.Geometry, explicit bool, reply *wire.OpenReply) ([]int, error) {
	if err := d.mayOpenOnLocked(s.cred, n.Switch, n.PortName()); err != nil {
		return nil, err
	}
	mode := portMode(n.Conf.Mode)
	if mode == vale.ModeLossless && !s.cred.Admin && !d.losslessLocked(n.Switch) {
		// A lossless port that reads slowly holds back every sender's
		// floods: on a switch that drops, that is for its owner to allow.
		return nil, fmt.Errorf("%s: only root or CAP_NET_ADMIN may make a port lossless on switch %s, which drops (make the switch lossless in valed's configuration)", n.PortName(), n.Switch)
	}
	ps, created, err := d.portLocked(s.cred, n.Switch, n.PortName(), g, explicit, mode)
	if err != nil {
		return nil, err
	}
	if !created {
		if err := s.mayUse(ps.name(), ps.uid); err != nil {
			return nil, err
		}
	}
	mp, ok := ps.port.(mappable)
	if !ok {
		return nil, fmt.Errorf("%s is %s attached with vale-ctl; applications open VALE ports, not attached interfaces (monitor it with %s/rt)",
			ps.name(), ps.port.what(), ps.name())
	}
	tx, rx := mp.Rings()
	sel, err := portname.SelectRings(n, tx, rx)
	var b *shm.Binding
	if err == nil {
		b, err = mp.Bind(sel, g.ExtraBufs) // the extra buffers the open asked for
	}
	if err != nil {
		if created {
			d.destroyPortLocked(ps)
		}
		return nil, err
	}
	fds, err := b.Reply(reply)
	if err != nil {
		b.Close()
		return nil, err
	}
	reply.Switch, reply.Index = n.Switch, ps.idx
	reply.Feeds = d.monitors.AddFeeder(s, reply.Port)
	s.release = func() {
		if b.Close() == 0 {
			d.destroyPortLocked(ps)
		}
	}
	s.drain = func() { b.Drain(time.Now().Add(closeDrain)) }
	return fds, nil
}

// portLocked returns the port called name on switch swName, creating the
// switch and the port as needed, on behalf of user c (whose limits they
// count against). explicit says whether the client asked for a specific
// geometry, which must then match an existing port's.
func (d *Daemon) portLocked(c peer.Cred, swName, name string, g ports.Geometry, explicit bool, mode vale.Mode) (*portState, bool, error) {
	if ss := d.switches[swName]; ss != nil {
		if ps := ss.ports[name]; ps != nil {
			if explicit && ps.geom != g {
				return nil, false, fmt.Errorf("%s already exists with %s; the requested %s cannot apply", name, describeGeometry(ps.geom), describeGeometry(g))
			}
			if mode != vale.ModeDefault && mode != ps.mode {
				return nil, false, fmt.Errorf("%s already exists in mode %s; the requested %s cannot apply", name, ps.mode, mode)
			}
			return ps, false, nil
		}
	}
	if err := d.checkNewPortLocked(c, swName, name, g); err != nil {
		return nil, false, err
	}
	ss := d.userSwitchLocked(c, swName)
	sp, err := shm.New(name, g, d.cfg.Port)
	if err != nil {
		d.dropSwitchIfEmptyLocked(ss)
		return nil, false, err
	}
	ps, err := d.attachPortLocked(swName, &portState{port: clientPort{sp}, geom: g, uid: c.UID, mode: mode})
	if err != nil {
		sp.Free()
		return nil, false, err
	}
	d.usageLocked(c.UID).ports++
	ps.gone = func() { d.releaseUsageLocked(c.UID, func(u *usage) { u.ports-- }) }
	return ps, true, nil
}

// checkNewPortLocked checks the limits user c meets by creating port name
// of geometry g (and its switch, if new).
func (d *Daemon) checkNewPortLocked(c peer.Cred, swName, name string, g ports.Geometry) error {
	u := d.usageLocked(c.UID)
	if err := checkLimitLocked(c, u.ports, d.limits.Ports, name+": too many ports", "ports"); err != nil {
		return err
	}
	if d.switches[swName] == nil {
		if err := checkLimitLocked(c, u.switches, d.limits.Switches, name+": too many switches", "switches"); err != nil {
			return err
		}
	}
	l, err := ports.PortLayout(g, d.cfg.Port.ZLevels)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return d.checkRegion(c, name, l.Size)
}

// userSwitchLocked returns switch name, creating it on behalf of user c.
func (d *Daemon) userSwitchLocked(c peer.Cred, name string) *switchState {
	if ss := d.switches[name]; ss != nil {
		return ss
	}
	ss := d.switchLocked(name)
	ss.uid, ss.user = c.UID, true
	d.usageLocked(c.UID).switches++
	return ss
}

// switchLocked returns the switch called name, creating it if needed.
func (d *Daemon) switchLocked(name string) *switchState {
	ss := d.switches[name]
	if ss == nil {
		cfg := d.cfg.Switch
		cfg.Lossless = d.losslessLocked(name)
		ss = &switchState{sw: vale.New(name, cfg), ports: map[string]*portState{}}
		d.switches[name] = ss
		d.log.Info("switch created", "switch", name)
	}
	return ss
}

func describeGeometry(g ports.Geometry) string {
	return fmt.Sprintf("%d/%d rings of %d/%d slots (tx/rx), %d extra buffers", g.TxRings, g.RxRings, g.TxSlots, g.RxSlots, g.ExtraBufs)
}

// closeDrain bounds how long a closing binding's frames may take to leave
// its TX rings (a lossless destination that takes nothing holds them).
const closeDrain = time.Second

// releaseSession drops a session's binding, destroying what it held if it
// was the last binding.
func (d *Daemon) releaseSession(s *session) {
	if s.release == nil {
		return
	}
	if s.drain != nil {
		s.drain()
		s.drain = nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.monitors.RemoveFeeder(s)
	s.release()
	d.log.Info("port closed", "port", s.holding, "pid", s.cred.PID)
	s.release, s.holding = nil, ""
}

func (d *Daemon) destroyPortLocked(ps *portState) {
	ss := ps.sw
	if ss.ports[ps.name()] != ps {
		return
	}
	if ps.host != nil {
		d.destroyPortLocked(ps.host)
	}
	if err := ss.sw.Detach(ps.port); err != nil {
		d.log.Error("detach port", "port", ps.name(), "error", err)
	}
	d.monitors.Orphan(ps.name())
	if err := ps.port.Free(); err != nil {
		d.log.Error("free port", "port", ps.name(), "error", err)
	}
	if ps.gone != nil {
		ps.gone()
	}
	delete(ss.ports, ps.name())
	d.log.Info("port destroyed", "port", ps.name())
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
	if ss.user {
		d.releaseUsageLocked(ss.uid, func(u *usage) { u.switches-- })
	}
	d.log.Info("switch destroyed", "switch", ss.sw.Name())
}

// info describes a port and its memory: the existing port's, or what a port
// of that name would get.
func (d *Daemon) info(name string) (wire.InfoReply, error) {
	n, err := portname.ParseName(name)
	if err != nil {
		return wire.InfoReply{}, err
	}
	hostPort := n.Subsystem == "vale" && n.Mode == portname.RegSW && n.Flags == 0 && len(n.Options) == 0
	if err := n.Unsupported(); err != nil && !hostPort {
		return wire.InfoReply{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if hostPort {
		if ss := d.switches[n.Switch]; ss != nil {
			if ps := ss.ports[switchPortName(&n)]; ps != nil && ps.owner != nil {
				desc := ps.port.Describe()
				return wire.InfoReply{Port: ps.name(), Kind: desc.Kind, Index: ps.idx, MAC: desc.MAC, Geometry: ps.geom}, nil
			}
		}
		return wire.InfoReply{}, fmt.Errorf("%s: no such host port (vale-ctl -h %s attaches one)", switchPortName(&n), n.PortName())
	}
	reply := wire.InfoReply{Port: n.PortName(), Index: -1}
	if n.Pipe != 0 {
		reply.Kind = wire.KindPipe
		master, _ := pipeNames(&n)
		end := pipes.EndOf(n.Pipe)
		reply.Iface = end
		if ps := d.pipes[master]; ps != nil {
			reply.Index, reply.Geometry, reply.Layout = 0, ps.pair.Geometry(end), ps.pair.Layout()
			return reply, nil
		}
		g, err := d.geometryFor(n.Conf, 0)
		if err != nil {
			return wire.InfoReply{}, err
		}
		if reply.Layout, err = ports.PipeLayout(g, d.cfg.Port.ZLevels); err != nil {
			return wire.InfoReply{}, err
		}
		reply.Geometry = g
		if end == pipes.Slave {
			reply.Geometry = ports.Geometry{TxRings: g.RxRings, RxRings: g.TxRings, TxSlots: g.RxSlots, RxSlots: g.TxSlots, BufSize: g.BufSize}
		}
		return reply, nil
	}
	reply.Kind = wire.KindVale
	if ss := d.switches[n.Switch]; ss != nil {
		if ps := ss.ports[switchPortName(&n)]; ps != nil {
			reply.Index, reply.Geometry = ps.idx, ps.geom
			mp, ok := ps.port.(mappable)
			if !ok {
				// An attached interface has no memory to map.
				reply.Kind, reply.MAC = ps.port.Describe().Kind, ps.port.Describe().MAC
				return reply, nil
			}
			reply.MAC, reply.Layout = mp.MAC().String(), mp.Layout()
			return reply, nil
		}
	}
	g, err := d.geometryFor(n.Conf, 0)
	if err != nil {
		return wire.InfoReply{}, err
	}
	if reply.Layout, err = ports.PortLayout(g, d.cfg.Port.ZLevels); err != nil {
		return wire.InfoReply{}, err
	}
	reply.Geometry, reply.MAC = g, shm.DefaultMAC(n.PortName()).String()
	return reply, nil
}

// listChunk is how many ports one wire.ListReply carries.
const listChunk = 64

func (d *Daemon) list(c *ctl.Conn, r wire.ListRequest) error {
	swName, portName := r.Name, ""
	if r.Name != "" {
		if n, err := portname.ParseName(r.Name); err == nil {
			swName, portName = n.Switch, switchPortName(&n)
		} else if _, err := portname.ParseName(r.Name + ":x"); err != nil {
			d.mu.Lock()
			iface := d.ifaces[r.Name] != nil
			d.mu.Unlock()
			if !iface {
				return fmt.Errorf("list: %q is neither a switch, a port nor a persistent interface", r.Name)
			}
		}
	}
	d.mu.Lock()
	var sws []*vale.Switch
	for name, ss := range d.switches {
		if swName == "" || name == swName {
			sws = append(sws, ss.sw)
		}
	}
	var pipeList []wire.PipeInfo
	for master, ps := range d.pipes {
		if r.Name == "" || r.Name == master || r.Name == ps.pair.Name(pipes.Slave) {
			g := ps.pair.Geometry(pipes.Master)
			pipeList = append(pipeList, wire.PipeInfo{
				Master: master, Slave: ps.pair.Name(pipes.Slave), Mode: vale.ModeLossless.String(),
				TxRings: int(g.TxRings), RxRings: int(g.RxRings), TxSlots: int(g.TxSlots), RxSlots: int(g.RxSlots),
				Clients: ps.pair.Users(),
			})
		}
	}
	monList := d.monitors.Infos(func(target string) bool {
		return r.Name == "" || target == portName || strings.HasPrefix(target, r.Name+":")
	})
	ifList := d.ifaceInfosLocked(r.Name)
	d.mu.Unlock()
	slices.SortFunc(ifList, func(a, b wire.IfaceInfo) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(pipeList, func(a, b wire.PipeInfo) int { return strings.Compare(a.Master, b.Master) })
	slices.SortFunc(monList, func(a, b wire.MonitorInfo) int { return strings.Compare(a.Name, b.Name) })
	if len(pipeList) > 0 {
		if n, err := portname.ParseName(r.Name); err == nil && n.Pipe != 0 {
			return c.ReplyOK(wire.ListReply{Pipes: pipeList})
		}
	}
	slices.SortFunc(sws, func(a, b *vale.Switch) int { return strings.Compare(a.Name(), b.Name()) })
	out := wire.ListReply{Pipes: pipeList, Monitors: monList, Ifaces: ifList}
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
				out = wire.ListReply{}
			}
		}
	}
	if portName != "" && !found && len(ifList) == 0 {
		return fmt.Errorf("no such port %s", portName)
	}
	return c.ReplyOK(out)
}
