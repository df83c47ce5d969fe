package wire

import (
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
)

// Operation names of the open protocol on valed's control socket.
const (
	OpOpen = "open" // open (and create if needed) a port: OpenRequest -> OpenReply
	OpInfo = "info" // geometry of a port, without opening it: InfoRequest -> OpenReply
	// OpPortHdr reads or sets the length of the virtio-net header before
	// each frame in a VALE port's slots (netmap's PORT_HDR_GET and
	// PORT_HDR_SET): PortHdrRequest -> PortHdrReply. Whoever may open the
	// port may set it.
	OpPortHdr = "port_hdr"
)

// OpenRequest asks valed to bind the port named Name, creating it (and its
// switch) if it does not exist yet.
type OpenRequest struct {
	Name      string        `json:"name"`
	Conf      portname.Conf `json:"conf,omitzero"`        // ring and slot counts for a port this open creates
	ExtraBufs uint32        `json:"extra_bufs,omitempty"` // extra buffers for the binding (and the pool of a port this open creates)
}

// Kinds of binding an open can return.
const (
	KindVale            = "vale"             // a VALE port: valed switches its frames
	KindPipe            = "pipe"             // one end of a pipe: the ends move frames to each other
	KindMonitor         = "monitor"          // a copy monitor: receive rings fed with copies
	KindZeroCopyMonitor = "zerocopy-monitor" // a zero-copy monitor: receive rings in the monitored port's memory
)

// OpenReply describes the port valed bound. It comes with descriptors:
//
//	[0]             the memory region (a sealed memfd) of MemSize bytes
//	[1, 1+N)        the eventfds this binding sleeps on, one per ring pair
//	                in [NotifyFirst, NotifyLast) (ring pair i covers TX ring i
//	                and RX ring i)
//	[1+N, ...)      KindVale, KindMonitor: one eventfd per bound TX ring,
//	                waking valed's worker, then one per bound RX ring,
//	                waking a sender that waits for room in it (signalled
//	                when the application releases slots and the ring's
//	                sw_kick holds a ticket it did not answer); KindPipe:
//	                the peer end's eventfds for the same ring pairs, to
//	                wake it
type OpenReply struct {
	Kind        string         `json:"kind"`
	Port        string         `json:"port"`   // canonical port name, e.g. "vale0:a"
	Switch      string         `json:"switch"` // switch the port is attached to, if any
	Index       int            `json:"index"`  // port index within the switch
	MAC         string         `json:"mac"`    // the port's own MAC address (a default source for senders)
	Geometry    ports.Geometry `json:"geometry"`
	MemSize     int64          `json:"mem_size"`
	IfOfs       int64          `json:"if_ofs"`       // this binding's interface header
	NifOfs      int64          `json:"nif_ofs"`      // this binding's netmap_if (netmap's nr_offset)
	MemID       uint16         `json:"mem_id"`       // the region's memory id (netmap's nr_mem_id)
	GrantedBufs uint32         `json:"granted_bufs"` // extra buffers chained from the netmap_if's bufs_head
	Pools       ports.Pools    `json:"pools"`
	// Feeds is how many monitor events follow the reply at once: the
	// monitors the client must feed from its first sync on.
	Feeds       int   `json:"feeds,omitempty"` // the region's pools (netmap's POOLS_INFO_GET)
	PeerIfOfs   int64 `json:"peer_if_ofs"`     // KindPipe: the other end's interface header
	TxFirst     int   `json:"tx_first"`        // bound TX rings are [TxFirst, TxLast)
	TxLast      int   `json:"tx_last"`
	RxFirst     int   `json:"rx_first"` // bound RX rings are [RxFirst, RxLast)
	RxLast      int   `json:"rx_last"`
	NotifyFirst int   `json:"notify_first"`
	NotifyLast  int   `json:"notify_last"`
}

// InfoRequest asks for the geometry of a port (netmap's PORT_INFO_GET).
type InfoRequest struct {
	Name string `json:"name"`
}

// InfoReply describes a port and its memory, existing or to be.
type InfoReply struct {
	Port     string         `json:"port"`
	Kind     string         `json:"kind"`
	Index    int            `json:"index"` // -1 if the port does not exist yet
	MAC      string         `json:"mac,omitempty"`
	Geometry ports.Geometry `json:"geometry"`
	Layout   ports.Layout   `json:"layout"`
	Iface    int            `json:"iface"` // the port's interface in Layout.Ifaces
}

// Event is a message valed sends, unasked, on a client's connection after
// the open reply.
type Event struct {
	Monitor *MonitorEvent `json:"monitor,omitempty"`
}

// Monitor event operations.
const (
	MonitorAdd    = "add"
	MonitorRemove = "remove"
)

// MonitorEvent tells a client that a monitor starts or stops taking frames
// from the rings it holds, where the client's own syncs must feed it: a
// zero-copy monitor (its rings are in the port's memory) or a copy monitor
// of a pipe end (its memory comes with the event, as descriptor 0). The
// eventfds of the monitor's rings follow, one per ring.
type MonitorEvent struct {
	Op      string `json:"op"`
	ID      uint64 `json:"id"`
	Kind    string `json:"kind"`     // KindMonitor (copy) or KindZeroCopyMonitor
	MemSize int64  `json:"mem_size"` // copy monitors: the size of the memory
	IfOfs   int64  `json:"if_ofs"`   // the monitor's interface
	TxBase  int    `json:"tx_base"`  // monitor ring of the port's TX ring 0, -1 if not monitored
	RxBase  int    `json:"rx_base"`  // monitor ring of the port's RX ring 0, -1 if not monitored
	Rings   int    `json:"rings"`    // monitor rings, and eventfds
}

// PortHdrRequest reads (Set false) or sets the virtio-net header length of
// port Name: 0 (none), 10, or 12 (with num_buffers). With a header the
// port's frames carry their pending offloads (partial checksums, TCP
// segmentation) as a virtio driver's do, and the switch completes them for
// ports without one.
type PortHdrRequest struct {
	Name string `json:"name"`
	Set  bool   `json:"set,omitempty"`
	Len  int    `json:"len,omitempty"`
}

// PortHdrReply is the port's header length (after a set, the new one).
type PortHdrReply struct {
	Len int `json:"len"`
}
