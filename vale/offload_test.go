package vale

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/valeswitch/vale/internal/offload"
	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/valetest"
)

// offloadPort is a fake port that takes offloaded frames as they are.
type offloadPort struct{ *valetest.Port }

func (p offloadPort) Offloads() frame.OffloadCaps {
	return frame.OffloadCaps{Csum: true, TSO4: true, TSO6: true}
}

// tsoFrame is a 20000-byte TCP segment from src to dst with its checksum
// left partial and segmentation pending, as a guest with offloads sends it.
func tsoFrame(t *testing.T, dst, src net.HardwareAddr) valetest.Frame {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	tc := &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 100, ACK: true, Window: 100}
	tc.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, eth, ip, tc, gopacket.Payload(make([]byte, 20000))); err != nil {
		t.Fatal(err)
	}
	f := append([]byte(nil), buf.Bytes()...)
	binary.BigEndian.PutUint16(f[14+20+16:], 0x1234) // not a complete checksum
	return valetest.Frame{Data: f, Offload: frame.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: frame.GSOTCPv4, GSOSize: 1460, HdrLen: 54}}
}

// A TSO frame goes as it is to a port that takes offloads, and in checksummed
// MTU-sized segments to one that does not; a bogus offload is dropped.
func TestOffloadCompletion(t *testing.T) {
	sw := New("vale0", Config{})
	src, plain := valetest.NewPort("src"), valetest.NewPort("plain")
	smart := offloadPort{valetest.NewPort("smart")}
	for _, p := range []Port{src, plain, smart} {
		if _, err := sw.Attach(p, ModeDefault); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, p := range []Port{src, plain, smart} {
			sw.Detach(p)
		}
		sw.Close()
	}()
	f := tsoFrame(t, valetest.MAC("ff:ff:ff:ff:ff:ff"), valetest.MAC("02:00:00:00:00:01"))
	src.Send(f)
	testutil.WaitFor(t, "deliveries", func() bool {
		return plain.Received() == 14 && smart.Received() == 1
	})
	if got := smart.ReceivedOffloads()[0]; got != f.Offload {
		t.Errorf("the offload port got offload %+v, want %+v", got, f.Offload)
	}
	for i, s := range plain.Take() {
		if len(s) > 1514 || !offload.Verify(s) {
			t.Errorf("segment %d: %d bytes, checksums verify %v", i, len(s), offload.Verify(s))
		}
	}
	if st := statsOf(sw, "plain"); st.RxPackets != 14 {
		t.Errorf("plain port counted %d frames, want 14 segments", st.RxPackets)
	}
	bad := f
	bad.Offload.GSOSize = 0
	src.Send(bad)
	if st := statsOf(sw, "src"); st.DropInvalid != 1 {
		t.Errorf("a bogus offload: %+v", st)
	}
}
