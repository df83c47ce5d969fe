// Package wire defines the messages of valed's control socket: the open
// protocol clients speak (open, info, and the monitor events valed sends
// them), the management operations vale-ctl sends and their answers, and
// what a listing says of switches, ports, pipes, monitors and interfaces.
// (The transport is package internal/ctl.)
package wire

// OpList lists switches and ports: ListRequest -> a stream of ListReply.
const OpList = "list"

// ListRequest selects what to list: everything, one switch ("vale0") or one
// port ("vale0:a").
type ListRequest struct {
	Name string `json:"name,omitempty"`
}

// ListReply is one message of a listing. The switches come in the first
// message, the ports in chunks.
type ListReply struct {
	Switches []SwitchInfo  `json:"switches,omitempty"`
	Ports    []PortInfo    `json:"ports,omitempty"`
	Pipes    []PipeInfo    `json:"pipes,omitempty"`
	Monitors []MonitorInfo `json:"monitors,omitempty"`
	Ifaces   []IfaceInfo   `json:"ifaces,omitempty"`
}

// MonitorInfo describes a monitor.
type MonitorInfo struct {
	Name    string `json:"name"`   // e.g. "vale0:a/rt#3"
	Target  string `json:"target"` // the monitored port
	Dirs    string `json:"dirs"`   // "t", "r", "rt" or "z"
	State   string `json:"state"`  // "up", or "orphaned" once the port went away
	Copied  int64  `json:"copied"` // frames valed copied into the monitor; -1 where clients feed it
	Lost    uint64 `json:"lost"`   // frames it had no room for
	Clients int    `json:"clients"`
}

// PipeInfo describes a pipe pair.
type PipeInfo struct {
	Master  string `json:"master"`
	Slave   string `json:"slave"`
	Mode    string `json:"mode"`     // "lossless": a pipe's sender waits for its reader
	TxRings int    `json:"tx_rings"` // of the master end
	RxRings int    `json:"rx_rings"`
	TxSlots int    `json:"tx_slots"`
	RxSlots int    `json:"rx_slots"`
	Clients [2]int `json:"clients"` // bindings of the master and slave ends
}

// Operations that change what is attached to the switches. They need root
// or CAP_NET_ADMIN.
const (
	OpAttach = "attach" // AttachRequest -> ListReply (the ports attached)
	OpDetach = "detach" // DetachRequest -> nothing
	OpNewIf  = "newif"  // NewIfRequest -> nothing
	OpDelIf  = "delif"  // DelIfRequest -> nothing
	OpSave   = "save"   // nothing -> nothing: write the attachments into valed's configuration file
	OpReload = "reload" // nothing -> nothing: apply the configuration file's changes (as SIGHUP)
	// OpPolling changes how the switch's workers wait for a port's frames
	// (vale-ctl -p, -P; netmap's VALE_POLLING_ENABLE and _DISABLE):
	// PollingRequest -> nothing.
	OpPolling = "polling"
)

// PollingRequest sets how the switch's workers wait for the frames of port
// Name: busy polling (Busy, optionally each ring's worker on a CPU of
// CPUs), an adaptive poll window of at most WindowNs before sleeping, or,
// with neither, valed's default for the port's kind. Ports applications
// open and interfaces attached over AF_XDP have polling; interfaces have
// no adaptive window.
type PollingRequest struct {
	Name     string `json:"name"`
	Busy     bool   `json:"busy,omitempty"`
	CPUs     []int  `json:"cpus,omitempty"`
	WindowNs int64  `json:"window_ns,omitempty"`
}

// AttachRequest attaches a network interface (over AF_XDP), a persistent
// interface (vale-ctl -n) or a vhost-user port to a switch. It is the one
// model of an attachment: vale-ctl -a and -h send it, valed's
// configuration file lists it ([[attach]], the same keys), and -save
// writes it back. The options of each kind are grouped (XDP, Vhost); the
// fields of a group that do not apply to the port's kind are refused.
type AttachRequest struct {
	// Name is the port to create, "valeX:IFNAME"; "valeX:IFNAME-N"
	// attaches queue N only.
	Name string `json:"name" toml:"port"`
	// Mode is what the switch does with frames for the port when it has
	// no room: "drop", "lossless" (hold the senders back), or "" (the
	// switch's mode).
	Mode string `json:"mode,omitempty" toml:"mode,omitempty"`
	// Slots per ring (vale-ctl -C); 0 takes the defaults. Not for
	// vhost-user ports, whose guest sizes the rings.
	Slots int `json:"slots,omitempty" toml:"slots,omitempty"`
	// Queues is an interface's queues to attach (all from StartQueue if
	// 0), or the queue pairs a vhost-user port offers.
	Queues int `json:"queues,omitempty" toml:"queues,omitempty"`
	// Host also attaches the host stack as the port "valeX:IFNAME^", a TAP
	// interface named IFNAME^ (vale-ctl -h). Interfaces over AF_XDP only.
	Host bool `json:"host,omitempty" toml:"host,omitempty"`
	XDPOptions
	VhostOptions
}

// XDPOptions choose how an interface is attached over AF_XDP (see package
// afxdp).
type XDPOptions struct {
	XDPMode    string `json:"xdp_mode,omitempty" toml:"xdp_mode,omitempty"`       // "native", "generic" or "" (auto)
	Copy       string `json:"copy,omitempty" toml:"copy,omitempty"`               // "copy", "zerocopy" or "" (auto)
	StartQueue int    `json:"start_queue,omitempty" toml:"start_queue,omitempty"` // the first queue
	FrameSize  int    `json:"frame_size,omitempty" toml:"frame_size,omitempty"`   // UMEM frame size
}

// VhostOptions make the port a vhost-user backend on socket VhostUser:
// valed listens, or with VhostClient connects to a frontend that listens,
// and reconnects.
type VhostOptions struct {
	VhostUser   string `json:"vhost_user,omitempty" toml:"vhost_user,omitempty"`
	VhostClient bool   `json:"vhost_client,omitempty" toml:"vhost_client,omitempty"`
}

// DetachRequest detaches an attached interface (and its host port) from its
// switch, as vale-ctl -d does.
type DetachRequest struct {
	Name string `json:"name"`
}

// NewIfRequest creates a persistent interface (a TAP device valed holds),
// as vale-ctl -n does. It stays until DelIfRequest or valed's exit.
type NewIfRequest struct {
	Name  string `json:"name"`
	Rings int    `json:"rings,omitempty"` // TAP queues, 1..16
	Slots int    `json:"slots,omitempty"` // frames per ring and round
}

// DelIfRequest removes a persistent interface, as vale-ctl -r does.
type DelIfRequest struct {
	Name string `json:"name"`
}

// IfaceInfo describes a persistent interface.
type IfaceInfo struct {
	Name     string `json:"name"`
	Rings    int    `json:"rings"`
	Slots    int    `json:"slots"`
	MAC      string `json:"mac"`
	Attached string `json:"attached,omitempty"` // the switch port, if attached
}
