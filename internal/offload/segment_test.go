package offload

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/valeswitch/vale/vale/frame"
)

// tcpFrame builds a TCP frame with correct checksums, payload bytes of
// payload, sequence number seq and the given flags and IPv4 id.
func tcpFrame(t testing.TB, v6 bool, payload []byte, seq uint32, psh, fin bool, id uint16) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var nl gopacket.NetworkLayer
	var l3 gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		nl, l3 = ip, ip
	} else {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Id: id, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 1, 0, 1}}
		nl, l3 = ip, ip
	}
	tc := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: seq, Ack: 9, ACK: true, PSH: psh, FIN: fin, Window: 512,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}}
	tc.SetNetworkLayerForChecksum(nl)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, eth, l3, tc, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// partial turns a frame's TCP checksum into the pseudo-header sum a sender
// with offload leaves, and returns the offload describing it.
func partial(f []byte) frame.Offload {
	off, _, csumOff, pseudo, _ := l4(f)
	binary.BigEndian.PutUint16(f[csumOff:], fold(pseudo))
	return frame.Offload{NeedsCsum: true, CsumStart: uint16(off), CsumOffset: uint16(csumOff - off)}
}

func TestCompleteChecksum(t *testing.T) {
	c := NewCompleter()
	want := tcpFrame(t, false, []byte("hello, checksum"), 1, true, false, 7)
	f := bytes.Clone(want)
	o := partial(f)
	// Split across fragments, as from a guest's descriptors.
	segs, err := c.Complete(&frame.Frame{Data: f[:20], More: [][]byte{f[20:41], f[41:]}, Offload: o})
	if err != nil || len(segs) != 1 || !bytes.Equal(segs[0], want) {
		t.Fatalf("Complete = %x, %v; want %x", segs, err, want)
	}
}

func TestSegment(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		c := NewCompleter()
		payload := make([]byte, 10000)
		for i := range payload {
			payload[i] = byte(i*31 + 7)
		}
		const mss, seq, id = 1448, 1000, 300
		big := tcpFrame(t, v6, payload, seq, true, true, id)
		o := partial(big)
		o.GSO, o.GSOSize = frame.GSOTCPv4, mss
		if v6 {
			o.GSO = frame.GSOTCPv6
		}
		segs, err := c.Complete(&frame.Frame{Data: big, Offload: o})
		if err != nil {
			t.Fatal(err)
		}
		n := (len(payload) + mss - 1) / mss
		if len(segs) != n {
			t.Fatalf("v6=%v: %d segments, want %d", v6, len(segs), n)
		}
		for k, s := range segs {
			lo, hi := k*mss, min((k+1)*mss, len(payload))
			last := k == n-1
			want := tcpFrame(t, v6, payload[lo:hi], seq+uint32(lo), last, last, id+uint16(k))
			if !bytes.Equal(s, want) {
				t.Errorf("v6=%v segment %d:\n got %x\nwant %x", v6, k, s, want)
			}
			if !Verify(s) {
				t.Errorf("v6=%v segment %d does not verify", v6, k)
			}
		}
	}
}

// Offloads that do not describe the frame are refused, never a panic.
func TestCompleteMalformed(t *testing.T) {
	c := NewCompleter()
	f := tcpFrame(t, false, make([]byte, 3000), 1, false, false, 1)
	for name, o := range map[string]frame.Offload{
		"csum beyond":  {NeedsCsum: true, CsumStart: 5000, CsumOffset: 16},
		"gso size 0":   {GSO: frame.GSOTCPv4},
		"udp gso":      {GSO: frame.GSOUDP, GSOSize: 100},
		"wrong family": {GSO: frame.GSOTCPv6, GSOSize: 1000},
		"tiny mss":     {GSO: frame.GSOTCPv4, GSOSize: 1},
	} {
		if _, err := c.Complete(&frame.Frame{Data: bytes.Clone(f), Offload: o}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := c.Complete(&frame.Frame{Data: f[:30], Offload: frame.Offload{GSO: frame.GSOTCPv4, GSOSize: 100}}); err == nil {
		t.Error("truncated frame accepted")
	}
}

func FuzzComplete(f *testing.F) {
	base := tcpFrame(f, false, make([]byte, 4000), 1, false, false, 1)
	f.Add(base, true, uint16(34), uint16(16), uint8(1), uint16(1000))
	f.Add(tcpFrame(f, true, make([]byte, 100), 1, false, false, 1), false, uint16(0), uint16(0), uint8(4), uint16(50))
	c := NewCompleter()
	f.Fuzz(func(t *testing.T, b []byte, csum bool, start, offset uint16, gso uint8, size uint16) {
		o := frame.Offload{NeedsCsum: csum, CsumStart: start, CsumOffset: offset, GSO: gso, GSOSize: size}
		segs, err := c.Complete(&frame.Frame{Data: b, Offload: o})
		if err != nil {
			return
		}
		for _, s := range segs {
			if len(s) > MaxFrame {
				t.Fatalf("segment of %d bytes", len(s))
			}
			if gso != frame.GSONone && !Verify(s) {
				t.Fatalf("segment does not verify: %x", s)
			}
		}
	})
}

func BenchmarkSegment64K(b *testing.B) {
	c := NewCompleter()
	f := tcpFrame(b, false, make([]byte, 65000), 1, false, false, 1)
	o := partial(f)
	o.GSO, o.GSOSize = frame.GSOTCPv4, 1448
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if _, err := c.Complete(&frame.Frame{Data: f, Offload: o}); err != nil {
			b.Fatal(err)
		}
	}
}
