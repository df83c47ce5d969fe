package ptnet

import (
	"encoding/binary"
	"fmt"

	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

// The virtio-net header (virtio 1.x, 5.1.6): flags, gso_type, hdr_len,
// gso_size, csum_start, csum_offset, and num_buffers (with VERSION_1 or
// MRG_RXBUF; 10 bytes without).
const (
	vnetNeedsCsum = 1    // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetGSOECN    = 0x80 // VIRTIO_NET_HDR_GSO_ECN
	vnetHdrMax    = 12
)

// parseVnetHdr reads the header of a frame a driver sent, refusing what it
// did not negotiate.
func parseVnetHdr(h []byte, features uint64) (frame.Offload, error) {
	var o frame.Offload
	le := binary.LittleEndian
	flags, gso := h[0], h[1]
	if flags&vnetNeedsCsum != 0 {
		if features&vhostuser.FeatNetCsum == 0 {
			return o, fmt.Errorf("partial checksum without VIRTIO_NET_F_CSUM")
		}
		o.NeedsCsum, o.CsumStart, o.CsumOffset = true, le.Uint16(h[6:]), le.Uint16(h[8:])
	}
	o.ECN = gso&vnetGSOECN != 0
	switch g := gso &^ vnetGSOECN; g {
	case frame.GSONone:
		o.ECN = false
		return o, nil
	case frame.GSOTCPv4:
		if features&vhostuser.FeatNetHostTSO4 == 0 {
			return o, fmt.Errorf("TSO over IPv4 without VIRTIO_NET_F_HOST_TSO4")
		}
		o.GSO = g
	case frame.GSOTCPv6:
		if features&vhostuser.FeatNetHostTSO6 == 0 {
			return o, fmt.Errorf("TSO over IPv6 without VIRTIO_NET_F_HOST_TSO6")
		}
		o.GSO = g
	default:
		return o, fmt.Errorf("segmentation type %d not offered", g)
	}
	o.HdrLen, o.GSOSize = le.Uint16(h[2:]), le.Uint16(h[4:])
	if o.GSOSize == 0 {
		return o, fmt.Errorf("segmentation with a segment size of 0")
	}
	return o, nil
}

// putVnetHdr writes the header of a frame for a driver: what is left to
// do on it (which the driver negotiated), and the number of buffers it
// takes.
func putVnetHdr(h []byte, o frame.Offload, numBuffers uint16) {
	le := binary.LittleEndian
	// Two stores (not clear's call) for the 10 or 12 bytes.
	le.PutUint64(h, 0)
	if len(h) >= vnetHdrMax {
		le.PutUint32(h[8:], uint32(numBuffers)<<16)
	} else {
		le.PutUint16(h[8:], 0)
	}
	if o.NeedsCsum {
		h[0] = vnetNeedsCsum
		le.PutUint16(h[6:], o.CsumStart)
		le.PutUint16(h[8:], o.CsumOffset)
	}
	if o.GSO != frame.GSONone {
		h[1] = o.GSO
		if o.ECN {
			h[1] |= vnetGSOECN
		}
		le.PutUint16(h[2:], o.HdrLen)
		le.PutUint16(h[4:], o.GSOSize)
	}
}
