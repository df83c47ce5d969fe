package wire

// Desc is what a port tells about itself, for listings.
type Desc struct {
	Kind    string `json:"kind"`              // "vale", "nic", "host", "vhost-user", ...
	TxRings int    `json:"tx_rings"`          // rings the switch reads frames from
	RxRings int    `json:"rx_rings"`          // rings the switch delivers frames to
	TxSlots int    `json:"tx_slots"`          // slots per TX ring
	RxSlots int    `json:"rx_slots"`          // slots per RX ring
	MAC     string `json:"mac,omitempty"`     // the port's own address, if it has one
	State   string `json:"state,omitempty"`   // kind-specific state
	Clients int    `json:"clients,omitempty"` // processes bound to the port
	Polling string `json:"polling,omitempty"` // how the switch waits for its frames: "busy", "busy cpus 0,1", a window ("200µs")
}
