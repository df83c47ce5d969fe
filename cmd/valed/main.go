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

func run() error {
	var (
		cfgFile  = flag.String("c", "", "configuration `file` (TOML; see etc/valed.toml)")
		sock     = flag.String("sock", "", "control socket (default $"+ctl.SocketEnv+" or "+ctl.DefaultSocket+")")
		mode     = flag.Uint("sock-mode", 0o600, "permissions of the control socket")
		group    = flag.String("sock-group", "", "group owning the control socket")
		level    = flag.String("log-level", "info", "log level: debug, info, warn or error")
		slots    = flag.Uint("slots", ports.DefaultSlots, "slots per ring of ports created without @conf")
		rings    = flag.Uint("rings", ports.DefaultRings, "ring pairs of ports created without @conf")
		bufSize  = flag.Uint("buf-size", ports.DefaultBufSize, "bytes per buffer")
		maxPorts = flag.Int("max-ports", vale.DefaultMaxPorts, fmt.Sprintf("ports per switch (at most %d)", vale.MaxPortsLimit))
		macAge   = flag.Duration("mac-age", vale.DefaultMACAge, "forget MAC addresses not seen for this long")
		lossless = flag.Bool("lossless", false, "switches hold senders back while a destination has no room, instead of dropping (ports may ask otherwise)")
		stuck    = flag.Duration("stuck-timeout", vale.DefaultStuckTimeout, "how long a lossless port may make no room before the switch drops what it has for it")
		dropAft  = flag.Duration("drop-after", vale.DefaultDropAfter, "how long a port that drops may keep its senders waiting for room at a time (half the time overall) before the switch drops (0: at once, as netmap)")
		poll     = flag.Duration("poll", 0, "longest time a worker polls an idle ring before sleeping, e.g. 50us (adaptive; 0 never polls)")
		zlevels  = flag.Int("zmon-levels", daemon.DefaultZLevels, fmt.Sprintf("zero-copy monitors that can be chained on a port (0..%d)", ports.MaxZLevels))
		stateDir = flag.String("state-dir", "", "where valed records what it changed on attached interfaces, to undo it after a crash (default: the control socket's path with .state)")
		metrics  = flag.String("metrics", "", "serve Prometheus metrics on `host:port` (default: none)")
	)
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
	if *cfgFile != "" {
		c, err := config.Load(*cfgFile)
		if err != nil {
			return err
		}
		cfg = c
		fromFile(cfg, set, sock, mode, group, level, slots, rings, bufSize, maxPorts, macAge, poll, zlevels, stateDir, metrics)
		if !set["lossless"] {
			*lossless = cfg.Switch.Lossless
		}
		if !set["stuck-timeout"] && cfg.Switch.StuckTimeout.Duration != 0 {
			*stuck = cfg.Switch.StuckTimeout.Duration
		}
		if !set["drop-after"] && cfg.Switch.DropAfter != nil {
			*dropAft = cfg.Switch.DropAfter.Duration
		}
	}
	if *dropAft <= 0 {
		*dropAft = -1 // "0s": drop at once (0 means the default to vale.Config)
	}

	var lvl slog.LevelVar
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: &lvl}))
	slog.SetDefault(log)
	if *maxPorts < 1 || *maxPorts > vale.MaxPortsLimit {
		return fmt.Errorf("-max-ports %d out of range [1, %d]", *maxPorts, vale.MaxPortsLimit)
	}
	if *zlevels < 0 || *zlevels > ports.MaxZLevels {
		return fmt.Errorf("-zmon-levels %d out of range [0, %d]", *zlevels, ports.MaxZLevels)
	}
	zl := *zlevels
	if zl == 0 {
		zl = -1 // none
	}
	g := ports.Geometry{
		TxRings: uint32(*rings), RxRings: uint32(*rings),
		TxSlots: uint32(*slots), RxSlots: uint32(*slots),
		BufSize: uint32(*bufSize),
	}
	socket := ctl.SocketPath(*sock)
	if *stateDir == "" {
		*stateDir = socket + ".state"
	}
	dc := daemon.Config{
		Socket:      socket,
		SocketMode:  os.FileMode(*mode),
		SocketGroup: *group,
		Geometry:    g,
		Switch:      vale.Config{MaxPorts: *maxPorts, MACAge: *macAge, Lossless: *lossless, StuckTimeout: *stuck, DropAfter: *dropAft, Logger: log},
		Port:        shm.Config{Poll: *poll, ZLevels: zl},
		StateDir:    *stateDir,
		Metrics:     *metrics,
		LogLevel:    &lvl,
		Logger:      log,
	}
	if cfg != nil {
		dc.ConfigFile, dc.Startup, dc.Persist = *cfgFile, cfg, cfg.State.Persist
		dc.Limits = daemon.LimitsFrom(cfg.Limits)
		named, err := daemon.SwitchesFrom(cfg.Switches)
		if err != nil {
			return err
		}
		dc.Switches = named
	}
	// Signals first: one that comes while the socket is being made (a
	// script sees the socket and may stop valed at once) ends valed.
	ctx := stopOnSignal(log)
	d, err := daemon.New(dc)
	if err != nil {
		return err
	}
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
	notify("READY=1")
	err = d.Serve(ctx)
	notify("STOPPING=1")
	return err
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
func fromFile(c *config.Config, set map[string]bool, sock *string, mode *uint, group, level *string,
	slots, rings, bufSize *uint, maxPorts *int, macAge, poll *time.Duration, zlevels *int, stateDir, metrics *string) {
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
	str("sock", sock, c.Control.Socket)
	str("sock-group", group, c.Control.Group)
	if !set["sock-mode"] && c.Control.Mode != "" {
		var m uint
		fmt.Sscanf(c.Control.Mode, "%o", &m)
		*mode = m
	}
	str("log-level", level, c.Log.Level)
	num("slots", slots, c.Ports.Slots)
	num("rings", rings, c.Ports.Rings)
	num("buf-size", bufSize, c.Ports.BufSize)
	if !set["max-ports"] && c.Switch.MaxPorts != 0 {
		*maxPorts = c.Switch.MaxPorts
	}
	if !set["mac-age"] && c.Switch.MACAge.Duration != 0 {
		*macAge = c.Switch.MACAge.Duration
	}
	if !set["poll"] && c.Ports.Poll.Duration != 0 {
		*poll = c.Ports.Poll.Duration
	}
	if !set["zmon-levels"] && c.Ports.ZeroCopyLevels != 0 {
		*zlevels = c.Ports.ZeroCopyLevels
	}
	str("state-dir", stateDir, c.State.Dir)
	str("metrics", metrics, c.Metrics.Listen)
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
