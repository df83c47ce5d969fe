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
	"strconv"
	"syscall"

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

// builtin is valed's configuration without a file or flags: what the
// flags show as their defaults.
func builtin() *config.Config {
	c := &config.Config{}
	c.Control.Mode = "0600"
	c.Log.Level = "info"
	c.Ports.Slots, c.Ports.Rings, c.Ports.BufSize = ports.DefaultSlots, ports.DefaultRings, ports.DefaultBufSize
	c.Ports.ZeroCopyLevels = daemon.DefaultZLevels
	c.Switch.MaxPorts = vale.DefaultMaxPorts
	c.Switch.MACAge.Duration = vale.DefaultMACAge
	c.Switch.StuckTimeout.Duration = vale.DefaultStuckTimeout
	c.Switch.DropAfter = &config.Duration{Duration: vale.DefaultDropAfter}
	return c
}

// bindFlags defines valed's flags on fs, each writing the field of c that
// the configuration file's key of the same meaning sets: flags and file
// are one model. A flag's default is the field's value when bound.
func bindFlags(fs *flag.FlagSet, c *config.Config) {
	fs.StringVar(&c.Control.Socket, "sock", c.Control.Socket, "control socket (default $"+ctl.SocketEnv+" or "+ctl.DefaultSocket+")")
	fs.StringVar(&c.Control.Mode, "sock-mode", c.Control.Mode, "permissions of the control socket, octal")
	fs.StringVar(&c.Control.Group, "sock-group", c.Control.Group, "group owning the control socket")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: debug, info, warn or error")
	fs.Var((*uint32Flag)(&c.Ports.Slots), "slots", "slots per ring of ports created without @conf")
	fs.Var((*uint32Flag)(&c.Ports.Rings), "rings", "ring pairs of ports created without @conf")
	fs.Var((*uint32Flag)(&c.Ports.BufSize), "buf-size", "bytes per buffer")
	fs.IntVar(&c.Switch.MaxPorts, "max-ports", c.Switch.MaxPorts, fmt.Sprintf("ports per switch (at most %d)", vale.MaxPortsLimit))
	fs.TextVar(&c.Switch.MACAge, "mac-age", c.Switch.MACAge, "forget MAC addresses not seen for this long")
	fs.BoolVar(&c.Switch.Lossless, "lossless", c.Switch.Lossless, "switches hold senders back while a destination has no room, instead of dropping (ports may ask otherwise)")
	fs.TextVar(&c.Switch.StuckTimeout, "stuck-timeout", c.Switch.StuckTimeout, "how long a lossless port may make no room before the switch drops what it has for it")
	fs.Var(&durationPtrFlag{&c.Switch.DropAfter}, "drop-after", "how long a port that drops may keep its senders waiting for room at a time (half the time overall) before the switch drops (0: at once, as netmap)")
	fs.TextVar(&c.Ports.Poll, "poll", c.Ports.Poll, "longest time a worker polls an idle ring before sleeping, e.g. 50us (adaptive; 0 never polls)")
	fs.Var((*levelsFlag)(&c.Ports.ZeroCopyLevels), "zmon-levels", fmt.Sprintf("zero-copy monitors that can be chained on a port (0..%d)", ports.MaxZLevels))
	fs.StringVar(&c.State.Dir, "state-dir", c.State.Dir, "where valed records what it changed on attached interfaces, to undo it after a crash (default: the control socket's path with .state)")
	fs.StringVar(&c.Metrics.Listen, "metrics", c.Metrics.Listen, "serve Prometheus metrics on `host:port` (default: none)")
}

func run() error {
	cmdline, cfgFile := builtin(), ""
	flag.StringVar(&cfgFile, "c", "", "configuration `file` (TOML; see etc/valed.toml)")
	bindFlags(flag.CommandLine, cmdline)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: valed [flags]\n\nThe vale switch daemon.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	cfg, err := configure(cfgFile)
	if err != nil {
		return err
	}
	var lvl slog.LevelVar
	if err := lvl.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &lvl}))
	slog.SetDefault(log)
	dc, err := daemonConfig(cfg, cfgFile, log, &lvl)
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

// configure returns the configuration: the built-in one, what the file
// (if any) sets, and over both what the command line's flags set.
func configure(file string) (*config.Config, error) {
	cfg := builtin()
	if file != "" {
		c, err := config.Load(file)
		if err != nil {
			return nil, err
		}
		fillDefaults(c, cfg)
		cfg = c
	}
	onto := flag.NewFlagSet("valed", flag.ContinueOnError)
	bindFlags(onto, cfg)
	var err error
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "c" && err == nil {
			err = onto.Set(f.Name, f.Value.String())
		}
	})
	return cfg, err
}

// fillDefaults gives c the values of def where c leaves them to the
// default (zero, as the file does).
func fillDefaults(c, def *config.Config) {
	orDefault := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	orDefault(&c.Control.Mode, def.Control.Mode)
	orDefault(&c.Log.Level, def.Log.Level)
	for _, f := range []struct {
		v *uint32
		d uint32
	}{{&c.Ports.Slots, def.Ports.Slots}, {&c.Ports.Rings, def.Ports.Rings}, {&c.Ports.BufSize, def.Ports.BufSize}} {
		if *f.v == 0 {
			*f.v = f.d
		}
	}
	if c.Ports.ZeroCopyLevels == 0 {
		c.Ports.ZeroCopyLevels = def.Ports.ZeroCopyLevels
	}
	if c.Switch.MaxPorts == 0 {
		c.Switch.MaxPorts = def.Switch.MaxPorts
	}
	for _, f := range []struct{ v, d *config.Duration }{{&c.Switch.MACAge, &def.Switch.MACAge}, {&c.Switch.StuckTimeout, &def.Switch.StuckTimeout}} {
		if f.v.Duration == 0 {
			*f.v = *f.d
		}
	}
	if c.Switch.DropAfter == nil {
		c.Switch.DropAfter = def.Switch.DropAfter
	}
}

// daemonConfig checks the configuration and makes the daemon's from it.
func daemonConfig(cfg *config.Config, file string, log *slog.Logger, lvl *slog.LevelVar) (daemon.Config, error) {
	if cfg.Switch.MaxPorts < 1 || cfg.Switch.MaxPorts > vale.MaxPortsLimit {
		return daemon.Config{}, fmt.Errorf("-max-ports %d out of range [1, %d]", cfg.Switch.MaxPorts, vale.MaxPortsLimit)
	}
	zl := cfg.Ports.ZeroCopyLevels // -1: none (-zmon-levels 0)
	if zl < -1 || zl > ports.MaxZLevels {
		return daemon.Config{}, fmt.Errorf("-zmon-levels %d out of range [0, %d]", zl, ports.MaxZLevels)
	}
	mode, err := strconv.ParseUint(cfg.Control.Mode, 8, 32)
	if err != nil || mode > 0o777 {
		return daemon.Config{}, fmt.Errorf("-sock-mode %q: want octal permissions like 0660", cfg.Control.Mode)
	}
	dropAfter := cfg.Switch.DropAfter.Duration
	if dropAfter <= 0 {
		dropAfter = -1 // "0s": drop at once (0 means the default to vale.Config)
	}
	socket := ctl.SocketPath(cfg.Control.Socket)
	stateDir := cfg.State.Dir
	if stateDir == "" {
		stateDir = socket + ".state"
	}
	p, sw := cfg.Ports, cfg.Switch
	dc := daemon.Config{
		Socket:      socket,
		SocketMode:  os.FileMode(mode),
		SocketGroup: cfg.Control.Group,
		Geometry:    ports.Geometry{TxRings: p.Rings, RxRings: p.Rings, TxSlots: p.Slots, RxSlots: p.Slots, BufSize: p.BufSize},
		Switch: vale.Config{MaxPorts: sw.MaxPorts, MACAge: sw.MACAge.Duration, Lossless: sw.Lossless,
			StuckTimeout: sw.StuckTimeout.Duration, DropAfter: dropAfter, Logger: log},
		Port:     shm.Config{Poll: p.Poll.Duration, ZLevels: zl},
		StateDir: stateDir,
		Metrics:  cfg.Metrics.Listen,
		LogLevel: lvl,
		Logger:   log,
	}
	if file != "" {
		dc.ConfigFile, dc.Startup, dc.Persist = file, cfg, cfg.State.Persist
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

// uint32Flag is a flag for a uint32 field of the configuration.
type uint32Flag uint32

func (f *uint32Flag) String() string { return strconv.FormatUint(uint64(*f), 10) }

func (f *uint32Flag) Set(s string) error {
	v, err := strconv.ParseUint(s, 0, 32)
	*f = uint32Flag(v)
	return err
}

// levelsFlag is -zmon-levels: 0 means none, which the file (where 0 keeps
// the default) has no word for, so it is kept as -1.
type levelsFlag int

func (f *levelsFlag) String() string { return strconv.Itoa(max(int(*f), 0)) }

func (f *levelsFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if v == 0 {
		v = -1
	}
	*f = levelsFlag(v)
	return err
}

// durationPtrFlag is a flag for an optional duration of the configuration
// (set, even to 0, or not).
type durationPtrFlag struct{ p **config.Duration }

func (f *durationPtrFlag) String() string {
	if f.p == nil || *f.p == nil {
		return ""
	}
	return (*f.p).Duration.String()
}

func (f *durationPtrFlag) Set(s string) error {
	var d config.Duration
	if err := d.UnmarshalText([]byte(s)); err != nil {
		return err
	}
	*f.p = &d
	return nil
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
