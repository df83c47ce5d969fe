package wire

// BatchBuckets is the number of buckets of SwitchInfo.Batches.
const BatchBuckets = 12

// PortStats are a port's counters, from the port's point of view: TX is what
// the port sent into the switch, RX what the switch delivered to it.
type PortStats struct {
	TxPackets   uint64 `json:"tx_packets"`   // frames the port sent into the switch
	TxBytes     uint64 `json:"tx_bytes"`     // their bytes
	RxPackets   uint64 `json:"rx_packets"`   // frames delivered to the port
	RxBytes     uint64 `json:"rx_bytes"`     // their bytes
	DropFull    uint64 `json:"drop_full"`    // frames for the port lost because its RX ring was full
	DropInvalid uint64 `json:"drop_invalid"` // frames from the port too short to switch (under 14 bytes), or with an offload that does not describe them
	DropNoRoute uint64 `json:"drop_noroute"` // frames from the port with nowhere to go (addressed to itself, or no other port)
	DropStuck   uint64 `json:"drop_stuck"`   // frames for the port, lossless, lost because it made no room for the stuck timeout
	Waits       uint64 `json:"waits"`        // rounds after which the port's frames waited for a lossless destination's room
	Resets      uint64 `json:"resets"`       // rings of the port reset after a violation
}

// PortInfo describes an attached port and its counters.
type PortInfo struct {
	Switch string `json:"switch"`
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Mode   string `json:"mode"` // "drop" or "lossless", as it applies now
	Desc
	Stats PortStats `json:"stats"`
}

// SwitchInfo describes a switch.
type SwitchInfo struct {
	Name      string `json:"name"`
	Ports     int    `json:"ports"`
	MACs      int    `json:"macs"`       // addresses in the learning table
	Learned   uint64 `json:"learned"`    // addresses learned since the switch was created
	Moved     uint64 `json:"moved"`      // addresses seen moving to another port
	Aged      uint64 `json:"aged"`       // addresses forgotten for age
	TableFull uint64 `json:"table_full"` // addresses not learned because the table was full
	Rounds    uint64 `json:"rounds"`     // forwarding rounds
	Frames    uint64 `json:"frames"`     // frames taken in those rounds
	// Batches counts rounds by size: Batches[k] the rounds of
	// [2^(k-1), 2^k) frames (k >= 1).
	Batches [BatchBuckets]uint64 `json:"batches"`
}
