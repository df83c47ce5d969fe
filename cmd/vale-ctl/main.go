// Command vale-ctl inspects and configures the switches of a running valed,
// with netmap's vale-ctl flags.
//
// Usage:
//
//	vale-ctl                     list every switch, port and persistent interface
//	vale-ctl -l [NAME]           list one switch (vale0), port (vale0:a) or interface, or all
//	vale-ctl -l -json [NAME]     the same as JSON, for scripts
//	vale-ctl stats [NAME]        the same with every counter (-l -v)
//	vale-ctl -g PORT             print a port's memory and ring geometry
//	vale-ctl -a vale0:IFNAME     attach a network interface (AF_XDP) or a persistent interface
//	vale-ctl -h vale0:IFNAME     attach a network interface and its host stack (port vale0:IFNAME^)
//	vale-ctl -a vale0:vm1 -vhost-user PATH [-vhost-client]
//	                             make a vhost-user port for a VM (QEMU) or a DPDK virtio-user app
//	vale-ctl -d vale0:IFNAME     detach an interface (and its host port)
//	vale-ctl -n NAME             create a persistent interface (a TAP device valed holds)
//	vale-ctl -r NAME             remove a persistent interface
//	vale-ctl -p vale0:PORT [-C mode,core[,ncores]]
//	                             busy-poll a port's rings (netmap's VALE_POLLING_ENABLE)
//	vale-ctl -p vale0:PORT -window 200us
//	                             poll a port's rings for an adaptive window before sleeping
//	vale-ctl -P vale0:PORT       back to valed's default (-poll) for the port
//
// -save writes the persistent interfaces and attachments into valed's
// configuration file (valed -c), so that a restart recreates them; -reload
// makes valed apply what changed in that file.
//
// -C tx_slots[,rx_slots[,tx_rings[,rx_rings]]] sets slots and rings with -a,
// -h and -n, as netmap's does. With -p, -C mode,core[,ncores] pins the
// polling workers as netmap's does: mode 0 puts every ring's worker on
// core, mode 1 ring i's on core+i%ncores (ncores defaults to 1); without
// -C they are not pinned. -mode, -force-copy, -zerocopy, -queues,
// -start-queue and -frame-size choose how an interface is attached over
// AF_XDP (the names of QEMU's af-xdp options). -v adds switch details
// (learning table, forwarding rounds); -sock selects the control socket
// (default $VALE_SOCK or /run/vale/valed.sock).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/wire"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vale-ctl:", err)
		os.Exit(1)
	}
}

// action is what one invocation does; netmap's vale-ctl takes one at a time.
type action struct {
	name string // flag that selected it
	arg  string
}

// geometry is what -C gives.
type geometry struct {
	txSlots, rxSlots, txRings, rxRings int
}

// parseC reads -C as netmap's vale-ctl does: one number sets both slot
// counts, three numbers set both ring counts with the third.
func parseC(s string) (geometry, error) {
	var g geometry
	if s == "" {
		return g, nil
	}
	v, err := counts(s, 4)
	if err != nil {
		return g, fmt.Errorf("%w (tx_slots,rx_slots,tx_rings,rx_rings)", err)
	}
	g.txSlots = v[0]
	g.rxSlots = v[0]
	if len(v) > 1 {
		g.rxSlots = v[1]
	}
	if len(v) > 2 {
		g.txRings, g.rxRings = v[2], v[2]
	}
	if len(v) > 3 {
		g.rxRings = v[3]
	}
	return g, nil
}

// pollingRequest turns -p and -P, with -C mode,core[,ncores] or -window,
// into valed's request.
func pollingRequest(a action, o *options) (wire.PollingRequest, error) {
	req := wire.PollingRequest{Name: a.arg}
	if a.name == "P" {
		return req, nil
	}
	if o.window > 0 {
		req.WindowNs = int64(o.window)
		return req, nil
	}
	req.Busy = true
	if o.conf == "" {
		return req, nil
	}
	v, err := counts(o.conf, 3)
	if err != nil || len(v) < 2 || v[0] > 1 {
		return req, fmt.Errorf("-C %s: with -p, mode,core[,ncores] (mode 0: one core for every ring, 1: a core per ring)", o.conf)
	}
	mode, core, ncores := v[0], v[1], 1
	if len(v) > 2 {
		ncores = v[2]
	}
	if mode == 0 || ncores < 1 {
		ncores = 1
	}
	for c := range ncores {
		req.CPUs = append(req.CPUs, core+c)
	}
	return req, nil
}

// counts reads up to most comma-separated non-negative numbers.
func counts(s string, most int) ([]int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > most {
		return nil, fmt.Errorf("-C %s: at most %d numbers", s, most)
	}
	var v []int
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-C %s: %q is not a count", s, p)
		}
		v = append(v, n)
	}
	return v, nil
}

// options are vale-ctl's flags.
type options struct {
	list, forceCopy, zeroCopy, vhostCli, lossless, drop, save, reload, verbose, json bool
	geom, attach, host, detach, newIf, delIf, conf, mode, vhostUser, sock            string
	pollOn, pollOff, memID                                                           string
	queues, startQueue, frameSize                                                    int
	window                                                                           time.Duration
}

// newFlagSet defines vale-ctl's flags into o.
func newFlagSet(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("vale-ctl", flag.ContinueOnError)
	fs.BoolVar(&o.list, "l", false, "list switches and ports (optionally only the NAME given as argument)")
	fs.BoolVar(&o.json, "json", false, "with -l: print the listing as JSON (the fields of valed's list reply)")
	fs.StringVar(&o.geom, "g", "", "print the memory and ring geometry of `port`")
	fs.StringVar(&o.attach, "a", "", "attach an interface to a switch: `valeX:IFNAME` (a NIC over AF_XDP, or a persistent interface)")
	fs.StringVar(&o.host, "h", "", "attach an interface and its host stack (port valeX:IFNAME^): `valeX:IFNAME`")
	fs.StringVar(&o.detach, "d", "", "detach an interface: `valeX:IFNAME`")
	fs.StringVar(&o.newIf, "n", "", "create a persistent interface `NAME`")
	fs.StringVar(&o.delIf, "r", "", "remove the persistent interface `NAME`")
	fs.StringVar(&o.conf, "C", "", "with -a, -h, -n: `tx_slots[,rx_slots[,tx_rings[,rx_rings]]]`")
	fs.StringVar(&o.mode, "mode", "", "XDP attach `mode`: auto, native (drv) or generic (skb)")
	fs.BoolVar(&o.forceCopy, "force-copy", false, "bind AF_XDP sockets in copy mode even where zero-copy works")
	fs.BoolVar(&o.zeroCopy, "zerocopy", false, "bind AF_XDP sockets in zero-copy mode or fail")
	fs.IntVar(&o.queues, "queues", 0, "attach this many queues (default: all from -start-queue)")
	fs.IntVar(&o.startQueue, "start-queue", 0, "first queue to attach")
	fs.IntVar(&o.frameSize, "frame-size", 0, "bytes per AF_XDP UMEM frame, 2048 or 4096 (4096 for MTUs above 1774)")
	fs.StringVar(&o.vhostUser, "vhost-user", "", "with -a: make the port a vhost-user backend listening on socket `path` (QEMU -netdev vhost-user, DPDK virtio-user)")
	fs.BoolVar(&o.vhostCli, "vhost-client", false, "with -vhost-user: connect to a frontend listening on the path (QEMU server=on) and reconnect when it goes")
	fs.BoolVar(&o.lossless, "lossless", false, "with -a, -h: hold senders back while the port has no room, instead of dropping (see valed's stuck_timeout)")
	fs.BoolVar(&o.drop, "drop", false, "with -a, -h: drop what the port has no room for, on a lossless switch too")
	fs.BoolVar(&o.save, "save", false, "save the persistent interfaces and attachments into valed's configuration file")
	fs.BoolVar(&o.reload, "reload", false, "make valed apply what changed in its configuration file (as SIGHUP)")
	fs.StringVar(&o.pollOn, "p", "", "make the switch busy-poll the rings of `port` (netmap's VALE_POLLING_ENABLE); with -C mode,core[,ncores]: on those cores")
	fs.StringVar(&o.pollOff, "P", "", "give `port` valed's default polling back (netmap's VALE_POLLING_DISABLE)")
	fs.DurationVar(&o.window, "window", 0, "with -p: poll for an adaptive window of at most this long before sleeping, instead of busy polling")
	fs.StringVar(&o.memID, "m", "", "with -n: netmap's memory region of the new interface (`memid`); vale's persistent interfaces are TAP devices without one, so it is refused")
	fs.BoolVar(&o.verbose, "v", false, "verbose: show switch details")
	fs.StringVar(&o.sock, "sock", "", "control socket (default $VALE_SOCK or "+ctl.DefaultSocket+")")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vale-ctl [-l [-json] [NAME]] [-g PORT] [-a|-h|-d valeX:IFNAME] [-n|-r NAME] [-C spec] [-v] [-sock path]\n\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs reads the command line: the one action it asks for, and the
// options that go with it.
func parseArgs(args []string) (action, *options, error) {
	// "vale-ctl stats [NAME]" is -l -v: every counter, for people without
	// Prometheus.
	if len(args) > 0 && args[0] == "stats" {
		args = append([]string{"-l", "-v"}, args[1:]...)
	}
	o := &options{}
	fs := newFlagSet(o)
	if err := fs.Parse(args); err != nil {
		return action{}, nil, err
	}
	var acts []action
	for _, a := range []action{{"g", o.geom}, {"a", o.attach}, {"h", o.host}, {"d", o.detach}, {"n", o.newIf}, {"r", o.delIf}, {"p", o.pollOn}, {"P", o.pollOff}} {
		if a.arg != "" {
			acts = append(acts, a)
		}
	}
	if o.save {
		acts = append(acts, action{"save", ""})
	}
	if o.reload {
		acts = append(acts, action{"reload", ""})
	}
	if o.list || len(acts) == 0 {
		acts = append(acts, action{"l", fs.Arg(0)})
		if fs.NArg() > 1 {
			return action{}, nil, fmt.Errorf("unexpected argument %q", fs.Arg(1))
		}
	} else if fs.NArg() > 0 {
		return action{}, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if len(acts) > 1 {
		return action{}, nil, errors.New("give one of -l, -g, -a, -h, -d, -n, -r, -p, -P, -save and -reload")
	}
	return acts[0], o, o.check(acts[0])
}

// check refuses options that do not go with action a.
func (o *options) check(a action) error {
	xdpOpts := o.mode != "" || o.forceCopy || o.zeroCopy || o.queues != 0 || o.startQueue != 0 || o.frameSize != 0
	attaching := a.name == "a" || a.name == "h"
	switch {
	case o.forceCopy && o.zeroCopy:
		return errors.New("-force-copy and -zerocopy exclude each other")
	case (o.vhostUser != "" || o.vhostCli) && a.name != "a":
		return errors.New("-vhost-user and -vhost-client go with -a")
	case xdpOpts && !attaching:
		return errors.New("-mode, -force-copy, -zerocopy, -queues, -start-queue and -frame-size go with -a and -h")
	case o.conf != "" && !attaching && a.name != "n" && a.name != "p":
		return errors.New("-C goes with -a, -h, -n and -p")
	case o.window != 0 && (a.name != "p" || o.conf != "" || o.window < 0):
		return errors.New("-window goes with -p, without -C, and is positive")
	case (o.lossless || o.drop) && !attaching:
		return errors.New("-lossless and -drop go with -a and -h")
	case o.lossless && o.drop:
		return errors.New("-lossless and -drop exclude each other")
	case o.memID != "" && a.name != "n":
		return errors.New("-m goes with -n")
	case o.memID != "":
		return fmt.Errorf("-m %s: vale's persistent interfaces are TAP devices with no netmap memory region to choose; ports share memory only within a pipe (netmap:a{1 and netmap:a}1)", o.memID)
	case o.json && a.name != "l":
		return errors.New("-json goes with -l")
	}
	return nil
}

func run(args []string, out io.Writer) error {
	a, o, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var g geometry
	if a.name != "p" {
		if g, err = parseC(o.conf); err != nil {
			return err
		}
	}
	conn, err := ctl.Dial(ctl.SocketPath(o.sock))
	if err != nil {
		return err
	}
	defer conn.Close()
	switch a.name {
	case "g":
		return printGeometry(conn, a.arg, out)
	case "a", "h":
		return attach(conn, a, o, g, out)
	case "d":
		_, err := conn.Call(wire.OpDetach, wire.DetachRequest{Name: a.arg}, nil)
		return err
	case "n":
		if g.txRings != g.rxRings || g.txSlots != g.rxSlots {
			return fmt.Errorf("-C %s: a persistent interface has the same counts in both directions", o.conf)
		}
		_, err := conn.Call(wire.OpNewIf, wire.NewIfRequest{Name: a.arg, Rings: g.txRings, Slots: g.txSlots}, nil)
		return err
	case "r":
		_, err := conn.Call(wire.OpDelIf, wire.DelIfRequest{Name: a.arg}, nil)
		return err
	case "p", "P":
		req, err := pollingRequest(a, o)
		if err != nil {
			return err
		}
		_, err = conn.Call(wire.OpPolling, req, nil)
		return err
	case "save":
		_, err := conn.Call(wire.OpSave, struct{}{}, nil)
		return err
	case "reload":
		_, err := conn.Call(wire.OpReload, struct{}{}, nil)
		return err
	}
	all, err := fetchList(conn, a.arg)
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	return printList(all, a.arg, o.verbose, out)
}

// attach attaches an interface (-a, -h) and says what it became.
func attach(conn *ctl.Conn, a action, o *options, g geometry, out io.Writer) error {
	if g.txSlots != g.rxSlots {
		return fmt.Errorf("-C %s: an attached interface has one slot count for both directions", o.conf)
	}
	if g.txRings != g.rxRings {
		return fmt.Errorf("-C %s: an attached interface has as many RX as TX rings (its queues)", o.conf)
	}
	req := wire.AttachRequest{Name: a.arg, Host: a.name == "h", Queues: o.queues, Slots: g.txSlots,
		XDPOptions:   wire.XDPOptions{XDPMode: o.mode, StartQueue: o.startQueue, FrameSize: o.frameSize},
		VhostOptions: wire.VhostOptions{VhostUser: o.vhostUser, VhostClient: o.vhostCli}}
	switch {
	case o.lossless:
		req.Mode = "lossless"
	case o.drop:
		req.Mode = "drop"
	}
	if g.txRings != 0 {
		if o.queues != 0 && o.queues != g.txRings {
			return fmt.Errorf("-C gives %d rings and -queues %d", g.txRings, o.queues)
		}
		req.Queues = g.txRings
	}
	switch {
	case o.forceCopy:
		req.Copy = "copy"
	case o.zeroCopy:
		req.Copy = "zerocopy"
	}
	var r wire.ListReply
	if _, err := conn.Call(wire.OpAttach, req, &r); err != nil {
		return err
	}
	for _, p := range r.Ports {
		fmt.Fprintf(out, "attached %s to %s as port %d (%s, %s)\n", p.Name, p.Switch, p.Index, p.Kind, p.State)
	}
	return nil
}

// fetchList asks valed for its listing (of name, or everything) and
// gathers the messages it comes in.
func fetchList(conn *ctl.Conn, name string) (*wire.ListReply, error) {
	var all wire.ListReply
	err := conn.CallStream(wire.OpList, wire.ListRequest{Name: name}, func(body json.RawMessage) error {
		var r wire.ListReply
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("decode listing: %w", err)
		}
		all.Switches = append(all.Switches, r.Switches...)
		all.Ports = append(all.Ports, r.Ports...)
		all.Pipes = append(all.Pipes, r.Pipes...)
		all.Monitors = append(all.Monitors, r.Monitors...)
		all.Ifaces = append(all.Ifaces, r.Ifaces...)
		return nil
	})
	return &all, err
}

// printList prints a listing as tables, one per kind of thing listed.
func printList(all *wire.ListReply, name string, verbose bool, out io.Writer) error {
	if len(all.Switches) == 0 && len(all.Pipes) == 0 && len(all.Monitors) == 0 && len(all.Ifaces) == 0 {
		if name != "" {
			return fmt.Errorf("no switch, port or pipe named %s", name)
		}
		fmt.Fprintln(out, "no switches")
		return nil
	}
	printNetmapLines(all, out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer w.Flush()
	section := len(all.Ports) > 0
	start := func() {
		if section {
			fmt.Fprintln(w)
		}
		section = true
	}
	if verbose && len(all.Switches) > 0 {
		start()
		fmt.Fprintln(w, "SWITCH\tPORTS\tMACS\tLEARNED\tMOVED\tAGED\tTABLE_FULL\tROUNDS\tFRAMES\tAVG_BATCH")
		for _, s := range all.Switches {
			avg := 0.0
			if s.Rounds > 0 {
				avg = float64(s.Frames) / float64(s.Rounds)
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\n",
				s.Name, s.Ports, s.MACs, s.Learned, s.Moved, s.Aged, s.TableFull, s.Rounds, s.Frames, avg)
		}
	}
	if len(all.Switches) > 0 {
		start()
		fmt.Fprintln(w, "PORT\tSWITCH\tIDX\tKIND\tMODE\tSTATE\tPOLLING\tRINGS\tSLOTS\tCLIENTS\tTX_PKTS\tTX_BYTES\tRX_PKTS\tRX_BYTES\tDROP_FULL\tDROP_STUCK\tDROP_INVAL\tDROP_NOROUTE\tWAITS\tRESETS")
		for _, p := range all.Ports {
			st := p.Stats
			polling := p.Polling
			if polling == "" {
				polling = "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n",
				p.Name, p.Switch, p.Index, p.Kind, p.Mode, p.State, polling, p.TxRings, p.RxRings, p.TxSlots, p.RxSlots, p.Clients,
				st.TxPackets, st.TxBytes, st.RxPackets, st.RxBytes, st.DropFull, st.DropStuck, st.DropInvalid, st.DropNoRoute, st.Waits, st.Resets)
		}
	}
	if len(all.Pipes) > 0 {
		start()
		fmt.Fprintln(w, "PIPE\tSLAVE\tMODE\tRINGS\tSLOTS\tCLIENTS")
		for _, p := range all.Pipes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%d/%d\t%d/%d\n", p.Master, p.Slave, p.Mode, p.TxRings, p.RxRings, p.TxSlots, p.RxSlots, p.Clients[0], p.Clients[1])
		}
	}
	if len(all.Monitors) > 0 {
		start()
		fmt.Fprintln(w, "MONITOR\tPORT\tDIRS\tSTATE\tCLIENTS\tCOPIED\tLOST")
		for _, m := range all.Monitors {
			copied := "-" // fed by clients (pipe ends, zero-copy monitors): only losses are counted
			if m.Copied >= 0 {
				copied = strconv.FormatInt(m.Copied, 10)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\n", m.Name, m.Target, m.Dirs, m.State, m.Clients, copied, m.Lost)
		}
	}
	if len(all.Ifaces) > 0 {
		start()
		fmt.Fprintln(w, "INTERFACE\tRINGS\tSLOTS\tMAC\tATTACHED")
		for _, f := range all.Ifaces {
			att := f.Attached
			if att == "" {
				att = "-"
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\n", f.Name, f.Rings, f.Slots, f.MAC, att)
		}
	}
	return nil
}

// printNetmapLines prints one line per switch port as netmap's vale-ctl
// lists them, "vale0:a bridge_idx 0 port_idx 1", for scripts written for
// netmap; the bridge index is the switch's position in the listing, as
// VALE_LIST numbers it.
func printNetmapLines(all *wire.ListReply, out io.Writer) {
	bridge := map[string]int{}
	for i, s := range all.Switches {
		bridge[s.Name] = i
	}
	for _, p := range all.Ports {
		fmt.Fprintf(out, "%s bridge_idx %d port_idx %d\n", p.Name, bridge[p.Switch], p.Index)
	}
}

func printGeometry(conn *ctl.Conn, name string, out io.Writer) error {
	var info wire.InfoReply
	if _, err := conn.Call(wire.OpInfo, wire.InfoRequest{Name: name}, &info); err != nil {
		return err
	}
	l := info.Layout
	if len(l.Ifaces) == 0 && info.Index >= 0 {
		g := info.Geometry
		fmt.Fprintf(out, "%s: port_idx %d kind %s tx_rings %d rx_rings %d tx_slots %d rx_slots %d buf_size %d mac %s (an attached interface: no memory to map)\n",
			info.Port, info.Index, info.Kind, g.TxRings, g.RxRings, g.TxSlots, g.RxSlots, g.BufSize, info.MAC)
		return nil
	}
	if info.Iface < 0 || info.Iface >= len(l.Ifaces) {
		return fmt.Errorf("valed described interface %d of %d", info.Iface, len(l.Ifaces))
	}
	idx := "not created yet"
	if info.Index >= 0 {
		idx = "port_idx " + strconv.Itoa(info.Index)
		if info.Kind == wire.KindPipe {
			idx = "pipe"
		}
	}
	g := info.Geometry
	fmt.Fprintf(out, "%s: %s memsize %d (%.2f MiB) tx_rings %d rx_rings %d tx_slots %d rx_slots %d buf_size %d num_bufs %d extra_bufs %d",
		info.Port, idx, l.Size, float64(l.Size)/(1<<20), g.TxRings, g.RxRings, g.TxSlots, g.RxSlots, g.BufSize, l.NumBufs, l.ExtraBufs)
	if info.MAC != "" {
		fmt.Fprintf(out, " mac %s", info.MAC)
	}
	fmt.Fprintln(out)
	f := l.Ifaces[info.Iface]
	fmt.Fprintf(out, "   interface at offset %d, %d zero-copy monitor levels\n", f.Ofs, l.ZLevels)
	for i := range f.NumRings() {
		d, id := ports.TX, i
		if i >= f.TxRings {
			d, id = ports.RX, i-f.TxRings
		}
		fmt.Fprintf(out, "   %s%d at offset %d slots %d, first buffer %d\n", strings.ToUpper(d.String()), id, f.RingOfs[i], f.Slots[i], f.FirstBufs[i])
	}
	fmt.Fprintf(out, "   buffers at offset %d, %d of %d bytes\n", l.BufOfs, l.NumBufs, l.BufSize)
	return nil
}
