// Package pkt builds and edits the Ethernet/IPv4/UDP frames pkt-gen sends:
// headers with correct checksums, address and port ranges walked like an
// odometer, and incremental checksum updates so that changing an address or
// a sequence number costs a few instructions per frame.
package pkt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/valeswitch/vale/internal/offload"
)

// Offsets of the fields pkt-gen touches, in an untagged Ethernet/IPv4/UDP
// frame without IP options.
const (
	EthLen     = 14
	IPv4Len    = 20
	UDPLen     = 8
	HeadersLen = EthLen + IPv4Len + UDPLen // 42: the shortest frame Build writes

	offIPLen   = EthLen + 2
	offIPCsum  = EthLen + 10
	offIPSrc   = EthLen + 12
	offIPDst   = EthLen + 16
	offUDP     = EthLen + IPv4Len
	offUDPLen  = offUDP + 4
	offUDPCsum = offUDP + 6
	// OffPayload is where the UDP payload starts.
	OffPayload = HeadersLen
)

const ethTypeIPv4 = 0x0800

// payloadPattern fills the UDP payload of generated frames.
const payloadPattern = "vale pkt-gen test frame / "

// Frame describes a frame to build.
type Frame struct {
	SrcMAC, DstMAC   net.HardwareAddr
	SrcIP, DstIP     netip.Addr
	SrcPort, DstPort uint16
	Len              int // bytes, without the Ethernet CRC; at least HeadersLen
}

// Build writes f into buf (which must hold f.Len bytes) and returns f.Len.
func Build(buf []byte, f *Frame) int {
	b := buf[:f.Len]
	copy(b[0:6], f.DstMAC)
	copy(b[6:12], f.SrcMAC)
	binary.BigEndian.PutUint16(b[12:], ethTypeIPv4)
	ip := b[EthLen:]
	ip[0] = 0x45 // version 4, 5 words
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], uint16(f.Len-EthLen))
	binary.BigEndian.PutUint16(ip[4:], 0) // id
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8] = 64 // ttl
	ip[9] = 17 // UDP
	src, dst := f.SrcIP.As4(), f.DstIP.As4()
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	udp := b[offUDP:]
	binary.BigEndian.PutUint16(udp[0:], f.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], f.DstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(f.Len-EthLen-IPv4Len))
	for i := OffPayload; i < f.Len; i += len(payloadPattern) {
		copy(b[i:], payloadPattern)
	}
	FixChecksums(b)
	return f.Len
}

// FixChecksums recomputes the IPv4 header and UDP checksums of frame b.
func FixChecksums(b []byte) {
	ip := b[EthLen : EthLen+IPv4Len]
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^Fold(Sum(ip, 0)))
	udpLen := int(binary.BigEndian.Uint16(b[offUDPLen:]))
	udp := b[offUDP : offUDP+udpLen]
	udp[6], udp[7] = 0, 0
	s := Sum(b[offIPSrc:offIPSrc+8], 17+uint32(udpLen)) // pseudo header
	c := ^Fold(Sum(udp, s))
	if c == 0 {
		c = 0xffff // 0 means "no checksum" in UDP over IPv4
	}
	binary.BigEndian.PutUint16(udp[6:], c)
}

// SetLen changes the length of frame b (built by Build, with room for n
// bytes) to n and fixes lengths and checksums.
func SetLen(b []byte, n int) {
	binary.BigEndian.PutUint16(b[offIPLen:], uint16(n-EthLen))
	binary.BigEndian.PutUint16(b[offUDPLen:], uint16(n-EthLen-IPv4Len))
	for i := OffPayload; i < n; i += len(payloadPattern) {
		copy(b[i:n], payloadPattern)
	}
	FixChecksums(b[:n])
}

// Sum adds b as big-endian 16-bit words to s (one's complement, unfolded).
func Sum(b []byte, s uint32) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)&1 != 0 {
		s += uint32(b[n]) << 8
	}
	return s
}

// Fold folds a 32-bit one's complement sum into 16 bits.
func Fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// Checksum returns the Internet checksum of b.
func Checksum(b []byte) uint16 { return ^Fold(Sum(b, 0)) }

// ValidChecksums reports whether the IPv4 header and UDP checksums of frame
// b are correct.
func ValidChecksums(b []byte) bool {
	if len(b) < HeadersLen {
		return false
	}
	if Fold(Sum(b[EthLen:EthLen+IPv4Len], 0)) != 0xffff {
		return false
	}
	udpLen := int(binary.BigEndian.Uint16(b[offUDPLen:]))
	if udpLen < UDPLen || offUDP+udpLen > len(b) {
		return false
	}
	if binary.BigEndian.Uint16(b[offUDPCsum:]) == 0 {
		return true
	}
	s := Sum(b[offIPSrc:offIPSrc+8], 17+uint32(udpLen))
	return Fold(Sum(b[offUDP:offUDP+udpLen], s)) == 0xffff
}

// replace16 writes v over the 16-bit word at off and patches the checksums
// at csums incrementally (RFC 1624).
func replace16(b []byte, off int, v uint16, csums ...int) {
	old := binary.BigEndian.Uint16(b[off:])
	if old == v {
		return
	}
	for _, c := range csums {
		adjust(b, c, old, v)
	}
	binary.BigEndian.PutUint16(b[off:], v)
}

func adjust(b []byte, csumOff int, old, v uint16) {
	c := binary.BigEndian.Uint16(b[csumOff:])
	if csumOff == offUDPCsum && c == 0 {
		return // the sender chose no UDP checksum
	}
	nc := ^Fold(uint32(^c) + uint32(^old) + uint32(v))
	if csumOff == offUDPCsum && nc == 0 {
		nc = 0xffff
	}
	binary.BigEndian.PutUint16(b[csumOff:], nc)
}

// SetSrcIP sets the source address and fixes both checksums.
func SetSrcIP(b []byte, ip uint32) {
	replace16(b, offIPSrc, uint16(ip>>16), offIPCsum, offUDPCsum)
	replace16(b, offIPSrc+2, uint16(ip), offIPCsum, offUDPCsum)
}

// SetDstIP sets the destination address and fixes both checksums.
func SetDstIP(b []byte, ip uint32) {
	replace16(b, offIPDst, uint16(ip>>16), offIPCsum, offUDPCsum)
	replace16(b, offIPDst+2, uint16(ip), offIPCsum, offUDPCsum)
}

// SetSrcPort sets the UDP source port and fixes the checksum.
func SetSrcPort(b []byte, p uint16) { replace16(b, offUDP, p, offUDPCsum) }

// SetDstPort sets the UDP destination port and fixes the checksum.
func SetDstPort(b []byte, p uint16) { replace16(b, offUDP+2, p, offUDPCsum) }

// SetPayload32 writes v big-endian at payload offset off (even) and fixes
// the UDP checksum.
func SetPayload32(b []byte, off int, v uint32) {
	replace16(b, OffPayload+off, uint16(v>>16), offUDPCsum)
	replace16(b, OffPayload+off+2, uint16(v), offUDPCsum)
}

// Payload32 reads the big-endian word at payload offset off.
func Payload32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[OffPayload+off:]) }

// Reply turns a received frame into its answer in place: MACs, addresses
// and ports swapped. The checksums stay valid (a sum does not depend on
// order).
func Reply(b []byte) {
	if len(b) < EthLen {
		return
	}
	var t [6]byte
	copy(t[:], b[0:6])
	copy(b[0:6], b[6:12])
	copy(b[6:12], t[:])
	if len(b) < HeadersLen || binary.BigEndian.Uint16(b[12:]) != ethTypeIPv4 {
		return
	}
	var a [4]byte
	copy(a[:], b[offIPSrc:offIPSrc+4])
	copy(b[offIPSrc:offIPSrc+4], b[offIPDst:offIPDst+4])
	copy(b[offIPDst:offIPDst+4], a[:])
	var p [2]byte
	copy(p[:], b[offUDP:offUDP+2])
	copy(b[offUDP:offUDP+2], b[offUDP+2:offUDP+4])
	copy(b[offUDP+2:offUDP+4], p[:])
}

// Range is an address and port range: "10.0.0.1", "10.0.0.1:1234",
// "10.0.0.1:1000-10.0.0.9:1009".
type Range struct {
	First, Last         uint32 // IPv4 addresses, host order
	FirstPort, LastPort uint16
}

// Single reports whether the range holds one address and one port.
func (r Range) Single() bool { return r.First == r.Last && r.FirstPort == r.LastPort }

// ParseRange parses addr[:port][-addr[:port]]. def is the port used when
// none is given.
func ParseRange(s string, def uint16) (Range, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, pa, err := parseAddrPort(lo, def)
	if err != nil {
		return Range{}, fmt.Errorf("range %q: %w", s, err)
	}
	r := Range{First: a, Last: a, FirstPort: pa, LastPort: pa}
	if isRange {
		b, pb, err := parseAddrPort(hi, pa)
		if err != nil {
			return Range{}, fmt.Errorf("range %q: %w", s, err)
		}
		if b < a || pb < pa {
			return Range{}, fmt.Errorf("range %q: end before start", s)
		}
		r.Last, r.LastPort = b, pb
	}
	return r, nil
}

func parseAddrPort(s string, def uint16) (uint32, uint16, error) {
	host, port, hasPort := strings.Cut(s, ":")
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return 0, 0, fmt.Errorf("%q is not an IPv4 address", host)
	}
	p := def
	if hasPort {
		v, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return 0, 0, fmt.Errorf("%q is not a port", port)
		}
		p = uint16(v)
	}
	b := ip.As4()
	return binary.BigEndian.Uint32(b[:]), p, nil
}

// Addr returns the address a as a netip.Addr.
func Addr(a uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
}

// Answer writes into out the answer a host at (mac, ip) gives to in, if in
// is an ARP request for ip or an ICMP echo request to ip, and returns its
// length; 0 for anything else. out must hold len(in) bytes (and at least
// 42). It lets pkt-gen -f pong answer arping and ping.
func Answer(in, out []byte, mac net.HardwareAddr, ip netip.Addr) int {
	if len(in) < EthLen || len(out) < len(in) || len(out) < 42 || !ip.Is4() {
		return 0
	}
	a := ip.As4()
	switch binary.BigEndian.Uint16(in[12:]) {
	case 0x0806: // ARP
		arp := in[EthLen:]
		if len(arp) < 28 || binary.BigEndian.Uint16(arp[0:]) != 1 || binary.BigEndian.Uint16(arp[2:]) != ethTypeIPv4 ||
			arp[4] != 6 || arp[5] != 4 || binary.BigEndian.Uint16(arp[6:]) != 1 || !bytes.Equal(arp[24:28], a[:]) {
			return 0
		}
		n := EthLen + 28
		o := out[:n]
		copy(o[0:6], in[6:12])
		copy(o[6:12], mac)
		binary.BigEndian.PutUint16(o[12:], 0x0806)
		r := o[EthLen:]
		copy(r[0:6], arp[0:6])
		binary.BigEndian.PutUint16(r[6:], 2) // reply
		copy(r[8:14], mac)
		copy(r[14:18], a[:])
		copy(r[18:24], arp[8:14])  // sender's MAC
		copy(r[24:28], arp[14:18]) // sender's IP
		return n
	case ethTypeIPv4:
		ipv4 := in[EthLen:]
		if len(ipv4) < 20 || ipv4[0]>>4 != 4 || ipv4[9] != 1 || !bytes.Equal(ipv4[16:20], a[:]) {
			return 0
		}
		ihl := int(ipv4[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ipv4[2:]))
		if ihl < 20 || total < ihl+8 || EthLen+total > len(in) || ipv4[ihl] != 8 {
			return 0
		}
		n := EthLen + total
		o := out[:n]
		copy(o, in[:n])
		copy(o[0:6], in[6:12])
		copy(o[6:12], mac)
		oip := o[EthLen:]
		copy(oip[12:16], ipv4[16:20])
		copy(oip[16:20], ipv4[12:16])
		icmp := oip[ihl:total]
		icmp[0] = 0 // echo reply
		icmp[2], icmp[3] = 0, 0
		binary.BigEndian.PutUint16(icmp[2:], offload.Checksum(icmp))
		return n
	}
	return 0
}
