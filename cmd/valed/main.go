// Command valed is the vale switch daemon. It listens on a unix control
// socket, creates a VALE switch the first time a port of it is opened,
// creates ports on open and destroys them when their last client closes or
// dies, attaches interfaces and vhost-user ports on request, and forwards
// frames between the ports of each switch.
//
// Usage:
//
//	valed [-c valed.toml] [-sock path] [-log-level level] [-slots n] [-rings n]
//	      [-buf-size n] [-max-ports n] [-mac-age d] [-metrics host:port] ...
//
// It runs in the foreground, stops cleanly on SIGINT or SIGTERM, and on
// SIGHUP applies what changed in its configuration file. Flags given on the
// command line win over the file. Under systemd (Type=notify) it reports
// when it is ready.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valeswitch/vale/internal/config"
	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/daemon"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/shm"
	"github.com/valeswitch/vale/vale"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "valed:", err)
		os.Exit(1)
	}
}

// settings are valed's flags, completed from its configuration file.
type settings struct {
	cfgFile, sock, group, level, stateDir, metrics string
	mode, slots, rings, bufSize                    uint
	maxPorts, zlevels                              int
	macAge, stuck, dropAfter, poll                 time.Duration
	lossless                                       bool
}

// define defines valed's flags into s.
func (s *settings) define(fs *flag.FlagSet) {
	fs.StringVar(&s.cfgFile, "c", "", "configuration `file` (TOML; see etc/valed.toml)")
	fs.StringVar(&s.sock, "sock", "", "control socket (default $"+ctl.SocketEnv+" or "+ctl.DefaultSocket+")")
	fs.UintVar(&s.mode, "sock-mode", 0o600, "permissions of the control socket")
	fs.StringVar(&s.group, "sock-group", "", "group owning the control socket")
	fs.StringVar(&s.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.UintVar(&s.slots, "slots", ports.DefaultSlots, "slots per ring of ports created without @conf")
	fs.UintVar(&s.rings, "rings", ports.DefaultRings, "ring pairs of ports created without @conf")
	fs.UintVar(&s.bufSize, "buf-size", ports.DefaultBufSize, "bytes per buffer")
	fs.IntVar(&s.maxPorts, "max-ports", vale.DefaultMaxPorts, fmt.Sprintf("ports per switch (at most %d)", vale.MaxPortsLimit))
	fs.DurationVar(&s.macAge, "mac-age", vale.DefaultMACAge, "forget MAC addresses not seen for this long")
	fs.BoolVar(&s.lossless, "lossless", false, "switches hold senders back while a destination has no room, instead of dropping (ports may ask otherwise)")
	fs.DurationVar(&s.stuck, "stuck-timeout", vale.DefaultStuckTimeout, "how long a lossless port may make no room before the switch drops what it has for it")
	fs.DurationVar(&s.dropAfter, "drop-after", vale.DefaultDropAfter, "how long a port that drops may keep its senders waiting for room at a time (half the time overall) before the switch drops (0: at once, as netmap)")
	fs.DurationVar(&s.poll, "poll", 0, "longest time a worker polls an idle ring before sleeping, e.g. 50us (adaptive; 0 never polls)")
	fs.IntVar(&s.zlevels, "zmon-levels", daemon.DefaultZLevels, fmt.Sprintf("zero-copy monitors that can be chained on a port (0..%d)", ports.MaxZLevels))
	fs.StringVar(&s.stateDir, "state-dir", "", "where valed records what it changed on attached interfaces, to undo it after a crash (default: the control socket's path with .state)")
	fs.StringVar(&s.metrics, "metrics", "", "serve Prometheus metrics on `host:port` (default: none)")
}

func run() error {
	var s settings
	s.define(flag.CommandLine)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: valed [flags]\n\nThe vale switch daemon.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// The configuration file, if any, gives the values the flags do not.
	var cfg *config.Config
	if s.cfgFile != "" {
		c, err := config.Load(s.cfgFile)
		if err != nil {
			return err
		}
		cfg = c
		s.fromFile(cfg, set)
	}
	var lvl slog.LevelVar
	if err := lvl.UnmarshalText([]byte(s.level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &lvl}))
	slog.SetDefault(log)
	dc, err := s.daemonConfig(cfg, log, &lvl)
	if err != nil {
		return err
	}
	// Signals first: one that comes while the socket is being made (a
	// script sees the socket and may stop valed at once) ends valed.
	ctx := stopOnSignal(log)
	d, err := daemon.New(dc)
	if err != nil {
		return err
	}
	reloadOnHangup(d, log)
	notify("READY=1")
	err = d.Serve(ctx)
	notify("STOPPING=1")
	return err
}

// daemonConfig checks the settings and makes the daemon's configuration
// from them and from the file's, if any.
func (s *settings) daemonConfig(cfg *config.Config, log *slog.Logger, lvl *slog.LevelVar) (daemon.Config, error) {
	if s.maxPorts < 1 || s.maxPorts > vale.MaxPortsLimit {
		return daemon.Config{}, fmt.Errorf("-max-ports %d out of range [1, %d]", s.maxPorts, vale.MaxPortsLimit)
	}
	if s.zlevels < 0 || s.zlevels > ports.MaxZLevels {
		return daemon.Config{}, fmt.Errorf("-zmon-levels %d out of range [0, %d]", s.zlevels, ports.MaxZLevels)
	}
	zl := s.zlevels
	if zl == 0 {
		zl = -1 // none
	}
	dropAfter := s.dropAfter
	if dropAfter <= 0 {
		dropAfter = -1 // "0s": drop at once (0 means the default to vale.Config)
	}
	socket := ctl.SocketPath(s.sock)
	stateDir := s.stateDir
	if stateDir == "" {
		stateDir = socket + ".state"
	}
	dc := daemon.Config{
		Socket:      socket,
		SocketMode:  os.FileMode(s.mode),
		SocketGroup: s.group,
		Geometry: ports.Geometry{TxRings: uint32(s.rings), RxRings: uint32(s.rings),
			TxSlots: uint32(s.slots), RxSlots: uint32(s.slots), BufSize: uint32(s.bufSize)},
		Switch: vale.Config{MaxPorts: s.maxPorts, MACAge: s.macAge, Lossless: s.lossless,
			StuckTimeout: s.stuck, DropAfter: dropAfter, Logger: log},
		Port:     shm.Config{Poll: s.poll, ZLevels: zl},
		StateDir: stateDir,
		Metrics:  s.metrics,
		LogLevel: lvl,
		Logger:   log,
	}
	if cfg != nil {
		dc.ConfigFile, dc.Startup, dc.Persist = s.cfgFile, cfg, cfg.State.Persist
		dc.Limits = daemon.LimitsFrom(cfg.Limits)
		named, err := daemon.SwitchesFrom(cfg.Switches)
		if err != nil {
			return daemon.Config{}, err
		}
		dc.Switches = named
	}
	return dc, nil
}

// reloadOnHangup makes SIGHUP apply what changed in the configuration
// file, telling systemd.
func reloadOnHangup(d *daemon.Daemon, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			notify("RELOADING=1")
			if err := d.Reload(); err != nil {
				log.Error("reload", "error", err)
			}
			notify("READY=1")
		}
	}()
}

// stopOnSignal returns a context cancelled by SIGINT or SIGTERM, and
// logs which one stopped valed.
func stopOnSignal(log *slog.Logger) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		log.Info("valed stopping", "signal", s.String())
		cancel()
	}()
	return ctx
}

// fromFile sets, from the configuration, every value whose flag was not
// given.
func (s *settings) fromFile(c *config.Config, set map[string]bool) {
	str := func(name string, dst *string, v string) {
		if !set[name] && v != "" {
			*dst = v
		}
	}
	num := func(name string, dst *uint, v uint32) {
		if !set[name] && v != 0 {
			*dst = uint(v)
		}
	}
	dur := func(name string, dst *time.Duration, v time.Duration) {
		if !set[name] && v != 0 {
			*dst = v
		}
	}
	str("sock", &s.sock, c.Control.Socket)
	str("sock-group", &s.group, c.Control.Group)
	if !set["sock-mode"] && c.Control.Mode != "" {
		fmt.Sscanf(c.Control.Mode, "%o", &s.mode)
	}
	str("log-level", &s.level, c.Log.Level)
	num("slots", &s.slots, c.Ports.Slots)
	num("rings", &s.rings, c.Ports.Rings)
	num("buf-size", &s.bufSize, c.Ports.BufSize)
	if !set["max-ports"] && c.Switch.MaxPorts != 0 {
		s.maxPorts = c.Switch.MaxPorts
	}
	dur("mac-age", &s.macAge, c.Switch.MACAge.Duration)
	dur("poll", &s.poll, c.Ports.Poll.Duration)
	dur("stuck-timeout", &s.stuck, c.Switch.StuckTimeout.Duration)
	if !set["drop-after"] && c.Switch.DropAfter != nil {
		s.dropAfter = c.Switch.DropAfter.Duration
	}
	if !set["lossless"] {
		s.lossless = c.Switch.Lossless
	}
	if !set["zmon-levels"] && c.Ports.ZeroCopyLevels != 0 {
		s.zlevels = c.Ports.ZeroCopyLevels
	}
	str("state-dir", &s.stateDir, c.State.Dir)
	str("metrics", &s.metrics, c.Metrics.Listen)
}

// notify tells systemd about valed's state (sd_notify), when started by a
// unit of Type=notify.
func notify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}
