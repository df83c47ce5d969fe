package ports

// Operation names of the open protocol on valed's control socket.
const (
	OpOpen = "open" // open (and create if needed) a port: OpenRequest -> OpenReply
	OpInfo = "info" // geometry of a port, without opening it: InfoRequest -> OpenReply
)

// OpenRequest asks valed to bind the port named Name, creating it (and its
// switch) if it does not exist yet.
type OpenRequest struct {
	Name      string `json:"name"`
	Conf      Conf   `json:"conf,omitzero"`        // ring and slot counts for a port this open creates
	ExtraBufs uint32 `json:"extra_bufs,omitempty"` // extra buffers for a port this open creates
}

// OpenReply describes the port valed bound. It comes with descriptors: the
// port's memory (a sealed memfd), the eventfd valed writes to wake this
// binding, then one eventfd per bound TX ring that wakes the switch.
type OpenReply struct {
	Port     string   `json:"port"`   // canonical port name, e.g. "vale0:a"
	Switch   string   `json:"switch"` // switch the port is attached to
	Index    int      `json:"index"`  // port index within the switch
	MAC      string   `json:"mac"`    // the port's own MAC address (a default source for senders)
	Geometry Geometry `json:"geometry"`
	MemSize  int64    `json:"mem_size"`
	TxFirst  int      `json:"tx_first"` // bound TX rings are [TxFirst, TxLast)
	TxLast   int      `json:"tx_last"`
	RxFirst  int      `json:"rx_first"` // bound RX rings are [RxFirst, RxLast)
	RxLast   int      `json:"rx_last"`
}

// InfoRequest asks for the geometry of a port (netmap's PORT_INFO_GET).
type InfoRequest struct {
	Name string `json:"name"`
}
