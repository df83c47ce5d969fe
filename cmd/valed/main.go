// Command valed is the vale switch daemon. It listens on a unix control
// socket, creates a VALE switch the first time a port of it is opened,
// creates ports on open and destroys them when their last client closes or
// dies, and forwards frames between the ports of each switch.
//
// Usage:
//
//	valed [-sock path] [-log-level level] [-slots n] [-rings n] [-buf-size n]
//	      [-max-ports n] [-mac-age d]
//
// It runs in the foreground and stops cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
		sock     = flag.String("sock", "", "control socket (default $"+ctl.SocketEnv+" or "+ctl.DefaultSocket+")")
		mode     = flag.Uint("sock-mode", 0o600, "permissions of the control socket")
		level    = flag.String("log-level", "info", "log level: debug, info, warn or error")
		slots    = flag.Uint("slots", ports.DefaultSlots, "slots per ring of ports created without @conf")
		rings    = flag.Uint("rings", ports.DefaultRings, "ring pairs of ports created without @conf")
		bufSize  = flag.Uint("buf-size", ports.DefaultBufSize, "bytes per buffer")
		maxPorts = flag.Int("max-ports", vale.DefaultMaxPorts, fmt.Sprintf("ports per switch (at most %d)", vale.MaxPortsLimit))
		macAge   = flag.Duration("mac-age", vale.DefaultMACAge, "forget MAC addresses not seen for this long")
		poll     = flag.Duration("poll", 0, "longest time a worker polls an idle ring before sleeping, e.g. 50us (adaptive; 0 never polls)")
		zlevels  = flag.Int("zmon-levels", daemon.DefaultZLevels, fmt.Sprintf("zero-copy monitors that can be chained on a port (0..%d)", ports.MaxZLevels))
		stateDir = flag.String("state-dir", "", "where valed records what it changed on attached interfaces, to undo it after a crash (default: the control socket's path with .state)")
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
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
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
	d, err := daemon.New(daemon.Config{
		Socket:     socket,
		SocketMode: os.FileMode(*mode),
		Geometry:   g,
		Switch:     vale.Config{MaxPorts: *maxPorts, MACAge: *macAge, Logger: log},
		Port:       shm.Config{Poll: *poll, ZLevels: zl},
		StateDir:   *stateDir,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return d.Serve(ctx)
}
