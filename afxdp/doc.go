// Package afxdp attaches Linux network interfaces to a VALE switch through
// AF_XDP sockets, the way netmap attaches NICs with its patched drivers.
//
// Attaching an interface ([Attach]) loads a five-instruction XDP program
// (built with cilium/ebpf's asm package, no C toolchain) that redirects
// every frame to the AF_XDP socket of the queue it arrived on and passes
// what has no socket to the kernel as usual. The program is attached with a
// BPF link, native (driver) mode first and generic (skb) mode if the driver
// has no XDP support, and never replaces a program someone else attached.
// Each attached queue gets one socket with its own UMEM: the frames of its
// fill and RX rings carry traffic from the interface into the switch, the
// frames of its TX and completion rings carry traffic out. Sockets bind in
// zero-copy mode where the driver supports it and in copy mode otherwise,
// with need_wakeup, so a busy interface costs no system calls on RX and, in
// zero-copy mode, none on TX either.
//
// The resulting [Port] implements the switch's port interface: its TX rings
// (what the switch reads) are the sockets' RX rings, its RX rings (what the
// switch delivers to) are the sockets' TX rings.
//
// While attached, the interface's GRO and LRO are off (a coalesced frame
// would not fit a UMEM frame) and the interface is promiscuous (frames for
// every port of the switch must arrive). Detaching restores both; the
// program goes away with its link, and with it every trace of the
// attachment, even when valed is killed, except the offload settings, which
// valed records in a state file and restores at its next start
// ([RestoreStale]).
package afxdp
