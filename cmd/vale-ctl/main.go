// Command vale-ctl inspects and configures the switches of a running valed,
// with netmap's vale-ctl flags.
//
// Usage:
//
//	vale-ctl                 list every switch and port
//	vale-ctl -l [NAME]       list one switch (vale0) or port (vale0:a), or all
//	vale-ctl -g PORT         print a port's memory and ring geometry
//
// -v adds switch details (learning table, forwarding rounds); -sock selects
// the control socket (default $VALE_SOCK or /run/vale/valed.sock).
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

	"github.com/valeswitch/vale/internal/ctl"
	"github.com/valeswitch/vale/internal/mgmt"
	"github.com/valeswitch/vale/ports"
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

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("vale-ctl", flag.ContinueOnError)
	var (
		list    = fs.Bool("l", false, "list switches and ports (optionally only the NAME given as argument)")
		geom    = fs.String("g", "", "print the memory and ring geometry of `port`")
		verbose = fs.Bool("v", false, "verbose: show switch details")
		sock    = fs.String("sock", "", "control socket (default $VALE_SOCK or "+ctl.DefaultSocket+")")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: vale-ctl [-l [NAME]] [-g PORT] [-v] [-sock path]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var acts []action
	if *geom != "" {
		acts = append(acts, action{"g", *geom})
	}
	if *list || len(acts) == 0 {
		acts = append(acts, action{"l", fs.Arg(0)})
		if fs.NArg() > 1 {
			return fmt.Errorf("unexpected argument %q", fs.Arg(1))
		}
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if len(acts) > 1 {
		return errors.New("give one of -l and -g")
	}
	conn, err := ctl.Dial(ctl.SocketPath(*sock))
	if err != nil {
		return err
	}
	defer conn.Close()
	switch a := acts[0]; a.name {
	case "g":
		return printGeometry(conn, a.arg, out)
	default:
		return printList(conn, a.arg, *verbose, out)
	}
}

func printList(conn *ctl.Conn, name string, verbose bool, out io.Writer) error {
	var all mgmt.ListReply
	err := conn.CallStream(mgmt.OpList, mgmt.ListRequest{Name: name}, func(body json.RawMessage) error {
		var r mgmt.ListReply
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("decode listing: %w", err)
		}
		all.Switches = append(all.Switches, r.Switches...)
		all.Ports = append(all.Ports, r.Ports...)
		all.Pipes = append(all.Pipes, r.Pipes...)
		all.Monitors = append(all.Monitors, r.Monitors...)
		return nil
	})
	if err != nil {
		return err
	}
	if len(all.Switches) == 0 && len(all.Pipes) == 0 && len(all.Monitors) == 0 {
		if name != "" {
			return fmt.Errorf("no switch, port or pipe named %s", name)
		}
		fmt.Fprintln(out, "no switches")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	defer w.Flush()
	section := false
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
		fmt.Fprintln(w, "PORT\tSWITCH\tIDX\tKIND\tSTATE\tRINGS\tSLOTS\tCLIENTS\tTX_PKTS\tTX_BYTES\tRX_PKTS\tRX_BYTES\tDROP_FULL\tDROP_INVAL\tDROP_NOROUTE\tRESETS")
		for _, p := range all.Ports {
			st := p.Stats
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d/%d\t%d/%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n",
				p.Name, p.Switch, p.Index, p.Kind, p.State, p.TxRings, p.RxRings, p.TxSlots, p.RxSlots, p.Clients,
				st.TxPackets, st.TxBytes, st.RxPackets, st.RxBytes, st.DropFull, st.DropInvalid, st.DropNoRoute, st.Resets)
		}
	}
	if len(all.Pipes) > 0 {
		start()
		fmt.Fprintln(w, "PIPE\tSLAVE\tRINGS\tSLOTS\tCLIENTS")
		for _, p := range all.Pipes {
			fmt.Fprintf(w, "%s\t%s\t%d/%d\t%d/%d\t%d/%d\n", p.Master, p.Slave, p.TxRings, p.RxRings, p.TxSlots, p.RxSlots, p.Clients[0], p.Clients[1])
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
	return nil
}

func printGeometry(conn *ctl.Conn, name string, out io.Writer) error {
	var info ports.InfoReply
	if _, err := conn.Call(ports.OpInfo, ports.InfoRequest{Name: name}, &info); err != nil {
		return err
	}
	l := info.Layout
	if info.Iface < 0 || info.Iface >= len(l.Ifaces) {
		return fmt.Errorf("valed described interface %d of %d", info.Iface, len(l.Ifaces))
	}
	idx := "not created yet"
	if info.Index >= 0 {
		idx = "port_idx " + strconv.Itoa(info.Index)
		if info.Kind == ports.KindPipe {
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
