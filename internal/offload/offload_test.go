package offload

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// frame builds a frame with correct checksums.
func makeFrame(t testing.TB, v6, udp, vlan bool, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	et := layers.EthernetTypeIPv4
	if v6 {
		et = layers.EthernetTypeIPv6
	}
	if vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 7, Type: et})
	} else {
		eth.EthernetType = et
	}
	var nl gopacket.NetworkLayer
	proto := layers.IPProtocolTCP
	if udp {
		proto = layers.IPProtocolUDP
	}
	if v6 {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		nl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, Flags: layers.IPv4DontFragment, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 1, 0, 1}}
		nl = ip
		ls = append(ls, ip)
	}
	if udp {
		u := &layers.UDP{SrcPort: 1234, DstPort: 4321}
		u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u)
	} else {
		tc := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 7, Ack: 9, ACK: true, Window: 512}
		tc.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tc)
	}
	p := make([]byte, payload)
	for i := range p {
		p[i] = byte(i * 7)
	}
	ls = append(ls, gopacket.Payload(p))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makePartial replaces the checksum with what Linux leaves for offload.
func makePartial(f []byte) {
	_, _, csumOff, pseudo, ok := l4(f)
	if !ok {
		panic("not TCP/UDP")
	}
	binary.BigEndian.PutUint16(f[csumOff:], fold(pseudo))
}

func TestCompletePartial(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, udp := range []bool{false, true} {
			for _, vlan := range []bool{false, true} {
				for _, n := range []int{0, 1, 17, 1400} {
					good := makeFrame(t, v6, udp, vlan, n)
					if !Verify(good) {
						t.Fatalf("v6=%v udp=%v vlan=%v len=%d: built frame does not verify", v6, udp, vlan, n)
					}
					f := bytes.Clone(good)
					if CompletePartial(f) && !bytes.Equal(f, good) {
						t.Errorf("v6=%v udp=%v vlan=%v len=%d: a complete checksum was changed", v6, udp, vlan, n)
					}
					makePartial(f)
					if Verify(f) && !bytes.Equal(f, good) {
						t.Errorf("v6=%v udp=%v vlan=%v len=%d: a partial checksum verifies", v6, udp, vlan, n)
					}
					if !CompletePartial(f) {
						t.Errorf("v6=%v udp=%v vlan=%v len=%d: partial checksum not recognised", v6, udp, vlan, n)
					}
					if !bytes.Equal(f, good) {
						t.Errorf("v6=%v udp=%v vlan=%v len=%d: completed checksum %x, want %x", v6, udp, vlan, n, f, good)
					}
				}
			}
		}
	}
}

// Frames that are not TCP or UDP over whole IP packets are left alone.
func TestCompletePartialIgnores(t *testing.T) {
	good := makeFrame(t, false, false, false, 100)
	frag := bytes.Clone(good)
	frag[14+6] |= 0x20 // more fragments
	makePartialRaw := func(f []byte) { binary.BigEndian.PutUint16(f[14+20+16:], 0x1234) }
	makePartialRaw(frag)
	for name, f := range map[string][]byte{
		"fragment":  frag,
		"truncated": good[:40],
		"runt":      good[:10],
		"arp":       append(append([]byte{}, good[:12]...), 0x08, 0x06, 0, 1),
		"bad total": func() []byte { b := bytes.Clone(good); b[16], b[17] = 0xff, 0xff; return b }(),
	} {
		before := bytes.Clone(f)
		if CompletePartial(f) || !bytes.Equal(f, before) {
			t.Errorf("%s: changed", name)
		}
	}
}

func FuzzCompletePartial(f *testing.F) {
	f.Add(makeFrame(f, false, false, false, 10))
	f.Add(makeFrame(f, true, true, true, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := bytes.Clone(b)
		if CompletePartial(c) {
			if !Verify(c) {
				t.Fatalf("completed frame does not verify: %x", c)
			}
			if len(c) != len(b) {
				t.Fatal("length changed")
			}
		} else if !bytes.Equal(c, b) {
			t.Fatal("frame changed without a completion")
		}
	})
}

func BenchmarkCheckComplete(b *testing.B) {
	f := makeFrame(b, false, false, false, 1400)
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		CompletePartial(f)
	}
}
