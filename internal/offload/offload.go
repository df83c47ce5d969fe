// Package offload finishes in software the work a sender left to a NIC:
// TCP and UDP checksums that are only partial (the pseudo-header sum a
// Linux sender with checksum offload leaves in the frame, which veth
// peers and virtio guests pass on as they are).
//
// Frames are Ethernet frames, optionally with one 802.1Q/802.1ad tag,
// carrying IPv4 (not fragmented) or IPv6 (TCP or UDP directly after the
// fixed header). Everything else is left alone.
package offload

import "encoding/binary"

// L4 protocols.
const (
	protoTCP = 6
	protoUDP = 17
)

// l4 locates the transport header of a TCP or UDP frame: its offset, its
// length, the offset of its checksum field and the pseudo-header sum. ok is
// false for frames that are not TCP or UDP over unfragmented IP, or whose
// lengths do not add up.
func l4(f []byte) (off, length, csumOff int, pseudo uint32, ok bool) {
	if len(f) < 14 {
		return
	}
	et := binary.BigEndian.Uint16(f[12:])
	l3 := 14
	if et == 0x8100 || et == 0x88a8 {
		if len(f) < 18 {
			return
		}
		et = binary.BigEndian.Uint16(f[16:])
		l3 = 18
	}
	var proto byte
	switch et {
	case 0x0800:
		ip := f[l3:]
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return
		}
		ihl := int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || total > len(ip) {
			return
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // MF or a fragment offset
			return
		}
		proto = ip[9]
		off, length = l3+ihl, total-ihl
		pseudo = sum(ip[12:20], 0) + uint32(proto) + uint32(length)
	case 0x86dd:
		ip := f[l3:]
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return
		}
		length = int(binary.BigEndian.Uint16(ip[4:]))
		proto = ip[6]
		if 40+length > len(ip) {
			return
		}
		off = l3 + 40
		pseudo = sum(ip[8:40], 0) + uint32(proto) + uint32(length)
	default:
		return
	}
	switch proto {
	case protoTCP:
		if length < 20 {
			return
		}
		csumOff = off + 16
	case protoUDP:
		if length < 8 {
			return
		}
		csumOff = off + 6
	default:
		return
	}
	return off, length, csumOff, pseudo, true
}

// CompletePartial finishes the TCP or UDP checksum of f if it holds only
// the pseudo-header sum, as a sender with checksum offload leaves it, and
// reports whether it did. A frame whose checksum is complete is left
// alone; recomputing a correct checksum that happened to look partial
// would give it back unchanged anyway.
func CompletePartial(f []byte) bool {
	off, length, csumOff, pseudo, ok := l4(f)
	if !ok {
		return false
	}
	if binary.BigEndian.Uint16(f[csumOff:]) != fold(pseudo) {
		return false
	}
	f[csumOff], f[csumOff+1] = 0, 0
	c := ^fold(sum(f[off:off+length], pseudo))
	if c == 0 && csumOff == off+6 {
		c = 0xffff // UDP: zero means "no checksum"
	}
	binary.BigEndian.PutUint16(f[csumOff:], c)
	return true
}

// Verify reports whether f carries a correct TCP or UDP checksum (true for
// frames that are not TCP or UDP, and for UDP over IPv4 without one).
func Verify(f []byte) bool {
	off, length, csumOff, pseudo, ok := l4(f)
	if !ok {
		return true
	}
	if csumOff == off+6 && f[l3Start(f)]>>4 == 4 && binary.BigEndian.Uint16(f[csumOff:]) == 0 {
		return true
	}
	return fold(sum(f[off:off+length], pseudo)) == 0xffff
}

func l3Start(f []byte) int {
	if et := binary.BigEndian.Uint16(f[12:]); et == 0x8100 || et == 0x88a8 {
		return 18
	}
	return 14
}

// Checksum returns the Internet checksum of b (RFC 1071).
func Checksum(b []byte) uint16 { return ^fold(sum(b, 0)) }

// sum adds b to acc as big-endian 16-bit words (one's complement, not
// folded).
func sum(b []byte, acc uint32) uint32 {
	s := uint64(acc)
	for len(b) >= 8 {
		s += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>32 != 0 {
		s = s&0xffffffff + s>>32
	}
	return uint32(s)
}

// fold folds a one's complement sum to 16 bits.
func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
