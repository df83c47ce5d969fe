package ptnet

import "encoding/binary"

// After a live migration the switch must learn that the guest's MAC
// address is now behind the destination's port. A guest that negotiated
// VIRTIO_NET_F_GUEST_ANNOUNCE announces itself; for one that did not, QEMU
// asks the backend (SEND_RARP) to send a RARP from the guest's address, as
// DPDK's and Open vSwitch's backends do. The port sends it into the switch
// with the next frames of its first transmit queue.

// announce queues a RARP from mac for the switch and wakes the worker of
// the first transmit queue. A newer announcement replaces one not sent yet.
func (p *Port) announce(mac [6]byte) {
	f := rarpFrame(mac)
	p.pending.Store(&f)
	p.rarps.Add(1)
	p.queues[1].wake()
}

// rarpFrame builds a broadcast RARP request (RFC 903, "request reverse")
// in which mac asks for its own protocol address, padded to the 60-byte
// minimum frame.
func rarpFrame(mac [6]byte) []byte {
	f := make([]byte, 60)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x8035) // RARP
	a := f[14:]
	binary.BigEndian.PutUint16(a, 1)          // hardware: Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // protocol: IPv4
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], 3) // request reverse
	copy(a[8:], mac[:])                  // sender hardware address; sender IP 0
	copy(a[18:], mac[:])                 // target hardware address; target IP 0
	return f
}
