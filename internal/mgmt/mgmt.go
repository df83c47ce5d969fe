// Package mgmt defines the management messages of valed's control socket:
// what vale-ctl sends and what valed answers. (Opening a port is defined by
// package ports, the transport by package ctl.)
package mgmt

import "github.com/valeswitch/vale/vale"

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
	Switches []vale.SwitchInfo `json:"switches,omitempty"`
	Ports    []vale.PortInfo   `json:"ports,omitempty"`
	Pipes    []PipeInfo        `json:"pipes,omitempty"`
	Monitors []MonitorInfo     `json:"monitors,omitempty"`
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
	TxRings int    `json:"tx_rings"` // of the master end
	RxRings int    `json:"rx_rings"`
	TxSlots int    `json:"tx_slots"`
	RxSlots int    `json:"rx_slots"`
	Clients [2]int `json:"clients"` // bindings of the master and slave ends
}
