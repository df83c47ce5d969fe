package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The virtio-net header (virtio 1.x, 5.1.6) that vhost-user guests and
// VALE ports with a header length (netmap's PORT_HDR_SET) put before each
// frame: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, and,
// in the 12-byte form, num_buffers.
const (
	VnetHdrLen    = 10 // without num_buffers
	VnetHdrLenMrg = 12 // with num_buffers (VERSION_1 or MRG_RXBUF)

	vnetNeedsCsum = 1    // VIRTIO_NET_HDR_F_NEEDS_CSUM
	vnetGSOECN    = 0x80 // VIRTIO_NET_HDR_GSO_ECN
)

// ErrVnetHdr is wrapped by the errors of ParseVnetHdr.
var ErrVnetHdr = errors.New("bad virtio-net header")

// ParseVnetHdr reads the header a sender put before a frame (at least
// VnetHdrLen bytes, each read once) into the work it left pending,
// refusing work the receiving side does not take (caps).
func ParseVnetHdr(h []byte, caps OffloadCaps) (Offload, error) {
	var o Offload
	le := binary.LittleEndian
	flags, gso := h[0], h[1]
	if flags&vnetNeedsCsum != 0 {
		if !caps.Csum {
			return o, fmt.Errorf("%w: partial checksum not offered", ErrVnetHdr)
		}
		o.NeedsCsum, o.CsumStart, o.CsumOffset = true, le.Uint16(h[6:]), le.Uint16(h[8:])
	}
	o.ECN = gso&vnetGSOECN != 0
	switch g := gso &^ vnetGSOECN; g {
	case GSONone:
		o.ECN = false
		return o, nil
	case GSOTCPv4:
		if !caps.TSO4 {
			return o, fmt.Errorf("%w: TSO over IPv4 not offered", ErrVnetHdr)
		}
		o.GSO = g
	case GSOTCPv6:
		if !caps.TSO6 {
			return o, fmt.Errorf("%w: TSO over IPv6 not offered", ErrVnetHdr)
		}
		o.GSO = g
	default:
		return o, fmt.Errorf("%w: segmentation type %d not offered", ErrVnetHdr, g)
	}
	o.HdrLen, o.GSOSize = le.Uint16(h[2:]), le.Uint16(h[4:])
	if o.GSOSize == 0 {
		return o, fmt.Errorf("%w: segmentation with a segment size of 0", ErrVnetHdr)
	}
	return o, nil
}

// PutVnetHdr writes the header of a frame into h (VnetHdrLen or
// VnetHdrLenMrg bytes): the work left to do on it, and, in the 12-byte
// form, the number of buffers it takes.
func PutVnetHdr(h []byte, o Offload, numBuffers uint16) {
	le := binary.LittleEndian
	// Two stores (not clear's call) for the 10 or 12 bytes.
	le.PutUint64(h, 0)
	if len(h) >= VnetHdrLenMrg {
		le.PutUint32(h[8:], uint32(numBuffers)<<16)
	} else {
		le.PutUint16(h[8:], 0)
	}
	if o.NeedsCsum {
		h[0] = vnetNeedsCsum
		le.PutUint16(h[6:], o.CsumStart)
		le.PutUint16(h[8:], o.CsumOffset)
	}
	if o.GSO != GSONone {
		h[1] = o.GSO
		if o.ECN {
			h[1] |= vnetGSOECN
		}
		le.PutUint16(h[2:], o.HdrLen)
		le.PutUint16(h[4:], o.GSOSize)
	}
}

// SetOffload sets the pending work of frame i, keeping Offloads counted.
func (b *Batch) SetOffload(i int, o Offload) {
	f := &b.Frames[i]
	if !f.Offload.IsZero() {
		b.Offloads--
	}
	f.Offload = o
	if !o.IsZero() {
		b.Offloads++
	}
}
