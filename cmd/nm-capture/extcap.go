package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/valeswitch/vale/internal/cli"
	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/wire"
)

// Wireshark's extcap interface: Wireshark (and tshark, dumpcap) runs every
// program of its extcap directory with --extcap-interfaces to learn its
// interfaces, with --extcap-dlts and --extcap-config for one of them, and
// with --capture to capture from one into a fifo it reads. nm-capture's
// interfaces are the ports and pipe ends valed has; a capture opens a copy
// monitor of the port (PORT/rt, PORT/r or PORT/t) and writes pcap into the
// fifo.

// extcapVersion is the version nm-capture reports to Wireshark.
const extcapVersion = "1.0"

// extcapOp is what Wireshark asks of an extcap.
type extcapOp int

// What Wireshark asks.
const (
	opVersion    extcapOp = iota // --extcap-version alone: the version line
	opInterfaces                 // --extcap-interfaces: the interfaces
	opDLTs                       // --extcap-dlts: an interface's link types
	opConfig                     // --extcap-config: an interface's options
	opFilter                     // --extcap-capture-filter without --capture: check a filter
	opCapture                    // --capture: capture into --fifo
)

// extcapRequest is one call by Wireshark.
type extcapRequest struct {
	op     extcapOp
	iface  string // --extcap-interface
	filter string // --extcap-capture-filter
	socket string // valed's control socket (-sock), "" for the default
}

// optString is a flag that may be given with or without a value, as
// Wireshark gives --extcap-version (--extcap-version=4.0).
type optString struct {
	set   bool
	value string
}

func (o *optString) String() string { return o.value }

func (o *optString) Set(v string) error {
	o.set = true
	if v != "true" {
		o.value = v
	}
	return nil
}

// IsBoolFlag lets the flag package accept the flag without a value.
func (o *optString) IsBoolFlag() bool { return true }

// extcapFlags are the flags Wireshark passes to an extcap.
type extcapFlags struct {
	interfaces, dlts, config, capture bool
	version                           optString
	iface, filter, fifo, direction    string
	// Accepted and not used: nm-capture has no toolbar controls and no
	// options to reload.
	controlIn, controlOut, reload string
	cleanup                       bool
}

// extcapOnly are the flags that only go with Wireshark's options.
var extcapOnly = []string{"direction"}

// define registers the extcap flags on fs.
func (x *extcapFlags) define(fs *flag.FlagSet) {
	fs.BoolVar(&x.interfaces, "extcap-interfaces", false, "Wireshark: list the ports and pipe ends valed has")
	fs.Var(&x.version, "extcap-version", "Wireshark: print the extcap version line (Wireshark passes its own version)")
	fs.BoolVar(&x.dlts, "extcap-dlts", false, "Wireshark: list the link types of --extcap-interface")
	fs.BoolVar(&x.config, "extcap-config", false, "Wireshark: list the options of --extcap-interface")
	fs.StringVar(&x.iface, "extcap-interface", "", "Wireshark: the interface (port or pipe end, e.g. vale0:a)")
	fs.StringVar(&x.filter, "extcap-capture-filter", "", "Wireshark: a capture filter (not supported)")
	fs.BoolVar(&x.capture, "capture", false, "Wireshark: capture from --extcap-interface into --fifo")
	fs.StringVar(&x.fifo, "fifo", "", "Wireshark: the fifo to write pcap into")
	fs.StringVar(&x.direction, "direction", "rt", "Wireshark: what to capture: r (what the port receives), t (what it sends) or rt (both)")
	fs.StringVar(&x.controlIn, "extcap-control-in", "", "Wireshark: toolbar control pipe (unused)")
	fs.StringVar(&x.controlOut, "extcap-control-out", "", "Wireshark: toolbar control pipe (unused)")
	fs.StringVar(&x.reload, "extcap-reload-option", "", "Wireshark: option to reload (unused)")
	fs.BoolVar(&x.cleanup, "extcap-cleanup-postkill", false, "Wireshark: clean up after a kill (nothing to do)")
}

// requested reports whether any of Wireshark's flags is set.
func (x *extcapFlags) requested(set map[string]bool) bool {
	for name := range set {
		if strings.HasPrefix(name, "extcap-") || name == "capture" || name == "fifo" {
			return true
		}
	}
	return false
}

// request checks Wireshark's flags and returns what they ask for: a capture
// into the fifo, or one of the listings.
func (x *extcapFlags) request(f *captureFlags, set map[string]bool) (*config, error) {
	for _, name := range []string{"i", "w", "F", "C"} {
		if set[name] {
			return nil, fmt.Errorf("-%s does not go with Wireshark's extcap options", name)
		}
	}
	req := &extcapRequest{iface: x.iface, filter: x.filter, socket: f.socket}
	switch {
	case x.interfaces:
		req.op = opInterfaces
	case x.dlts:
		req.op = opDLTs
	case x.config:
		req.op = opConfig
	case x.capture:
		req.op = opCapture
	case set["extcap-capture-filter"]:
		req.op = opFilter
	case x.version.set:
		req.op = opVersion
	default:
		return nil, errors.New("extcap: want --extcap-interfaces, --extcap-dlts, --extcap-config or --capture")
	}
	if req.op != opInterfaces && req.op != opVersion && req.iface == "" {
		return nil, errors.New("extcap: missing --extcap-interface")
	}
	c := &config{extcap: req, socket: f.socket, snaplen: f.snaplen, count: f.count, duration: f.duration, quiet: true, format: fmtPcap,
		ring: ports.MaxSlots}
	if req.op != opCapture {
		return c, nil
	}
	return c, x.capturing(c)
}

// capturing completes the configuration of a capture into Wireshark's fifo.
func (x *extcapFlags) capturing(c *config) error {
	if x.fifo == "" {
		return errors.New("extcap: --capture without --fifo")
	}
	if x.filter != "" {
		return errors.New(filterRefused)
	}
	switch x.direction {
	case "r", "t", "rt":
	default:
		return fmt.Errorf("--direction %q: want r, t or rt", x.direction)
	}
	c.port = cli.PortName(x.iface) + "/" + x.direction
	c.file = x.fifo
	return c.setLimits(0)
}

// filterRefused is the answer to a capture filter.
const filterRefused = "vale monitors take no capture filter: use a display filter"

// answer prints what Wireshark asked for on out and returns the exit status.
// Without valed, the interface list is empty: the reason goes to errOut
// and the status is still 0, so that Wireshark goes on with the other
// extcaps.
func (r *extcapRequest) answer(out, errOut io.Writer) int {
	var lines []string
	switch r.op {
	case opVersion:
		lines = []string{versionLine()}
	case opInterfaces:
		lines = []string{versionLine()}
		l, err := listPorts(r.socket)
		if err != nil {
			fmt.Fprintln(errOut, "nm-capture: no vale interfaces:", err)
			break
		}
		lines = append(lines, interfaceLines(l)...)
	case opDLTs:
		lines = dltLines()
	case opConfig:
		lines = configLines(ctl.SocketPath(r.socket))
	case opFilter:
		if r.filter != "" {
			lines = []string{filterRefused}
		}
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(out, l); err != nil {
			fmt.Fprintln(errOut, "nm-capture:", err)
			return 1
		}
	}
	return 0
}

// versionLine is the extcap sentence that names nm-capture's version.
func versionLine() string {
	return fmt.Sprintf("extcap {version=%s}{display=vale ports and pipes (nm-capture)}", extcapVersion)
}

// interfaceLines are the interface sentences of a listing: every port and
// both ends of every pipe, by the names nm-capture opens them with.
func interfaceLines(l *wire.ListReply) []string {
	var lines []string
	add := func(name, what string) {
		lines = append(lines, fmt.Sprintf("interface {value=%s}{display=%s %s}", name, what, name))
	}
	for _, p := range l.Ports {
		add(p.Name, p.Kind+" port")
	}
	for _, p := range l.Pipes {
		add(p.Master, "pipe master end")
		add(p.Slave, "pipe slave end")
	}
	return lines
}

// dltLines are the link types of every interface: Ethernet.
func dltLines() []string {
	return []string{"dlt {number=1}{name=EN10MB}{display=Ethernet}"}
}

// configLines are the options Wireshark offers for an interface: valed's
// socket, what to capture and the snap length.
func configLines(socket string) []string {
	return []string{
		fmt.Sprintf("arg {number=0}{call=--sock}{display=valed control socket}{type=string}{default=%s}{tooltip=valed's control socket ($VALE_SOCK or %s by default)}", socket, ctl.DefaultSocket),
		"arg {number=1}{call=--direction}{display=Capture}{type=selector}{tooltip=Which frames of the port the copy monitor gets}",
		"value {arg=1}{value=rt}{display=both directions (PORT/rt)}{default=true}",
		"value {arg=1}{value=r}{display=what the port receives (PORT/r)}{default=false}",
		"value {arg=1}{value=t}{display=what the port sends (PORT/t)}{default=false}",
		fmt.Sprintf("arg {number=2}{call=--snaplen}{display=Snap length}{type=unsigned}{range=0,%d}{default=%d}{tooltip=Bytes kept of each frame; 0 keeps whole frames}", maxSnap, maxSnap),
	}
}

// listTimeout bounds the wait for valed's listing: Wireshark waits for
// every extcap before it shows its interfaces.
const listTimeout = 5 * time.Second

// listPorts asks valed for its ports and pipes, as vale-ctl -l does.
func listPorts(socket string) (*wire.ListReply, error) {
	conn, err := ctl.Dial(ctl.SocketPath(socket))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Unix().SetDeadline(time.Now().Add(listTimeout)); err != nil {
		return nil, fmt.Errorf("listing: %w", err)
	}
	var all wire.ListReply
	err = conn.CallStream(wire.OpList, wire.ListRequest{}, func(body json.RawMessage) error {
		var r wire.ListReply
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("decode listing: %w", err)
		}
		all.Ports = append(all.Ports, r.Ports...)
		all.Pipes = append(all.Pipes, r.Pipes...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing: %w", err)
	}
	return &all, nil
}
