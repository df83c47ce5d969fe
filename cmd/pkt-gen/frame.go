package main

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/valeswitch/vale/internal/pkt"
)

// Ethertypes and the UDP protocol number.
const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	protoUDP  = 17
)

// payloadPattern fills the UDP payload of generated frames (the pattern
// package pkt writes in IPv4 frames).
const payloadPattern = "vale pkt-gen test frame / "

// layout is where the fields pkt-gen writes are in its frames: untagged
// Ethernet, then IPv4 without options or IPv6 without extension headers,
// then UDP.
type layout struct {
	v6       bool
	src, dst int // offsets of the addresses
	ipCsum   int // offset of the IPv4 header checksum (IPv6 has none)
	udp      int // offset of the UDP header
	payload  int // offset of the UDP payload: the length of the headers
}

var (
	layout4 = &layout{src: 26, dst: 30, ipCsum: 24, udp: 34, payload: 42}
	layout6 = &layout{v6: true, src: 22, dst: 38, udp: 54, payload: 62}
)

// layoutOf returns the layout of frames of the family.
func layoutOf(v6 bool) *layout {
	if v6 {
		return layout6
	}
	return layout4
}

// frameSpec is a frame to build.
type frameSpec struct {
	srcMAC, dstMAC   net.HardwareAddr
	src, dst         netip.Addr
	srcPort, dstPort uint16
	length           int // bytes without the CRC; at least the layout's headers
}

// build writes f into b, which must hold f.length bytes: Ethernet, IP and
// UDP headers, the payload pattern and correct checksums.
func (l *layout) build(b []byte, f *frameSpec) {
	b = b[:f.length]
	copy(b[0:6], f.dstMAC)
	copy(b[6:12], f.srcMAC)
	ip := b[14:l.udp]
	if l.v6 {
		binary.BigEndian.PutUint16(b[12:], etherIPv6)
		binary.BigEndian.PutUint32(ip[0:], 6<<28) // version 6, no traffic class or flow label
		ip[6] = protoUDP                          // next header
		ip[7] = 64                                // hop limit
		src, dst := f.src.As16(), f.dst.As16()
		copy(ip[8:24], src[:])
		copy(ip[24:40], dst[:])
	} else {
		binary.BigEndian.PutUint16(b[12:], etherIPv4)
		ip[0], ip[1] = 0x45, 0                     // version 4, 5 words; no TOS
		binary.BigEndian.PutUint32(ip[4:], 0x4000) // id 0, don't fragment
		ip[8], ip[9] = 64, protoUDP
		src, dst := f.src.As4(), f.dst.As4()
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
	}
	binary.BigEndian.PutUint16(b[l.udp:], f.srcPort)
	binary.BigEndian.PutUint16(b[l.udp+2:], f.dstPort)
	l.setLen(b, f.length)
}

// setLen makes frame b (built by build, with room for n bytes) n bytes
// long: lengths, payload pattern and checksums.
func (l *layout) setLen(b []byte, n int) {
	b = b[:n]
	if l.v6 {
		binary.BigEndian.PutUint16(b[18:], uint16(n-l.udp)) // payload length
	} else {
		binary.BigEndian.PutUint16(b[16:], uint16(n-14)) // total length
	}
	binary.BigEndian.PutUint16(b[l.udp+4:], uint16(n-l.udp))
	for i := l.payload; i < n; i += len(payloadPattern) {
		copy(b[i:], payloadPattern)
	}
	l.fixChecksums(b)
}

// fixChecksums computes the IPv4 header checksum (IPv4) and the UDP
// checksum of frame b from scratch.
func (l *layout) fixChecksums(b []byte) {
	if !l.v6 {
		b[l.ipCsum], b[l.ipCsum+1] = 0, 0
		binary.BigEndian.PutUint16(b[l.ipCsum:], ^pkt.Fold(pkt.Sum(b[14:l.udp], 0)))
	}
	udpLen := int(binary.BigEndian.Uint16(b[l.udp+4:]))
	udp := b[l.udp : l.udp+udpLen]
	udp[6], udp[7] = 0, 0
	// The pseudo header: both addresses (the end of the IP header in
	// either family), the protocol and the UDP length.
	s := pkt.Sum(b[l.src:l.udp], protoUDP+uint32(udpLen))
	c := ^pkt.Fold(pkt.Sum(udp, s))
	if c == 0 {
		c = 0xffff // 0 means "no checksum" (IPv4) or is forbidden (IPv6)
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}

// put16 writes v over the 16-bit word at off, an address, port or payload
// word, and patches the checksums that cover it incrementally (RFC 1624):
// the UDP checksum, and the IPv4 header checksum for a word of that header.
func (l *layout) put16(b []byte, off int, v uint16) {
	old := binary.BigEndian.Uint16(b[off:])
	if old == v {
		return
	}
	binary.BigEndian.PutUint16(b[off:], v)
	adjust(b[l.udp+6:], old, v)
	if !l.v6 && off < l.udp {
		adjust(b[l.ipCsum:], old, v)
	}
}

// put32 writes v over the 32 bits at off, as put16 does.
func (l *layout) put32(b []byte, off int, v uint32) {
	l.put16(b, off, uint16(v>>16))
	l.put16(b, off+2, uint16(v))
}

// setAddr writes the varying part v of range r into the address at off.
func (l *layout) setAddr(b []byte, off int, r *addrRange, v uint32) {
	if l.v6 {
		l.put16(b, off+2*r.group, uint16(v))
		return
	}
	l.put32(b, off, v)
}

// adjust patches the checksum in c[0:2] for a word changed from old to v.
func adjust(c []byte, old, v uint16) {
	s := ^binary.BigEndian.Uint16(c)
	n := ^pkt.Fold(uint32(s) + uint32(^old) + uint32(v))
	if n == 0 {
		n = 0xffff // the same in one's complement, and what UDP must send
	}
	binary.BigEndian.PutUint16(c, n)
}
