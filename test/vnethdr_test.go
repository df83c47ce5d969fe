package e2e

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/valeswitch/vale/internal/offload"
	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
	"github.com/valeswitch/vale/vale/frame"
)

// Virtio-net headers on VALE ports (PORT_HDR_SET): a port with a header
// sends a UDP frame with its checksum left to do and a 3000-byte TCP segment
// left to cut; a port without a header gets them completed (a correct
// checksum, MSS-sized segments), a port with a header gets them as sent,
// behind a header saying what is pending; frames from a port without a
// header come with a zero one; a header that makes no sense is dropped as
// invalid while good frames keep flowing.
func TestVnetHeaderPorts(t *testing.T) {
	d := startValed(t)
	h12, plain, h10 := d.open(t, "vale0:h12"), d.open(t, "vale0:plain"), d.open(t, "vale0:h10")
	for p, n := range map[*nmport.Port]int{h12: frame.VnetHdrLenMrg, h10: frame.VnetHdrLen} {
		if err := p.SetVnetHdrLen(n); err != nil {
			t.Fatal(err)
		}
		if got, err := p.VnetHdrLen(); got != n || err != nil {
			t.Fatalf("%s: header length %d, %v", p.Name(), got, err)
		}
	}
	if err := plain.SetVnetHdrLen(7); err == nil || !strings.Contains(err.Error(), "invalid virtio-net header length 7") {
		t.Errorf("length 7: %v", err)
	}
	if st := d.portStats(t, "vale0:h12"); !strings.Contains(st.State, "vnet_hdr=12") {
		t.Errorf("listing state %q", st.State)
	}
	// A copy monitor's frames carry no header, a zero-copy monitor's slots
	// the port's; neither may change the port's header.
	for name, want := range map[string]int{"vale0:h12/r": 0, "vale0:h12/z": frame.VnetHdrLenMrg} {
		m := d.open(t, name)
		if got, err := m.VnetHdrLen(); got != want || err != nil {
			t.Errorf("%s: header length %d, %v; want %d", name, got, err, want)
		}
		if err := m.SetVnetHdrLen(frame.VnetHdrLen); err == nil || !strings.Contains(err.Error(), "a monitor cannot change") {
			t.Errorf("%s: setting the header: %v", name, err)
		}
		m.Close()
	}
	if got, err := h12.VnetHdrLen(); got != frame.VnetHdrLenMrg || err != nil {
		t.Errorf("after its monitors, vale0:h12 has a header of %d, %v", got, err)
	}

	udp := udpFrame(t, []byte("checksum left to the switch"))
	udpWant := bytes.Clone(udp)
	udpOff := partialChecksum(udp, 34, 6)
	tcp := tcpSegment(t, 3000)
	tcpOff := partialChecksum(tcp, 34, 16)
	tcpOff.GSO, tcpOff.GSOSize, tcpOff.HdrLen = frame.GSOTCPv4, 1448, 54

	hdr := make([]byte, frame.VnetHdrLenMrg)
	frame.PutVnetHdr(hdr, udpOff, 1)
	sendChain(t, h12, append(bytes.Clone(hdr), udp...))
	frame.PutVnetHdr(hdr, tcpOff, 1)
	sendChain(t, h12, append(bytes.Clone(hdr), tcp...))

	got := rxChains(t, plain, 4)
	if len(got) != 4 || !bytes.Equal(got[0], udpWant) {
		t.Fatalf("the port without a header got %d frames; first %x, want %x", len(got), got[0], udpWant)
	}
	payload := 0
	for _, seg := range got[1:] {
		if !offload.Verify(seg) || len(seg) > 54+1448 {
			t.Errorf("segment of %d bytes, checksum good %v", len(seg), offload.Verify(seg))
		}
		payload += len(seg) - 54
	}
	if payload != 3000 {
		t.Errorf("segments carry %d bytes of payload, want 3000", payload)
	}

	got = rxChains(t, h10, 2)
	if len(got) != 2 {
		t.Fatalf("the port with a 10-byte header got %d frames", len(got))
	}
	for i, c := range []struct {
		f []byte
		o frame.Offload
	}{{udp, udpOff}, {tcp, tcpOff}} {
		o, err := frame.ParseVnetHdr(got[i], frame.OffloadCaps{Csum: true, TSO4: true, TSO6: true})
		if err != nil || o != c.o || !bytes.Equal(got[i][frame.VnetHdrLen:], c.f) {
			t.Errorf("frame %d: header %+v (%v), want %+v; %d bytes, want %d", i, o, err, c.o, len(got[i])-frame.VnetHdrLen, len(c.f))
		}
	}

	// From a port without a header: a zero header, num_buffers 1.
	sendChain(t, plain, udpWant)
	got = rxChains(t, h12, 1)
	if len(got) != 1 || !bytes.Equal(got[0][:frame.VnetHdrLenMrg], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}) || !bytes.Equal(got[0][frame.VnetHdrLenMrg:], udpWant) {
		t.Errorf("the 12-byte port got %x", got)
	}
	rxChains(t, h10, 1)

	// Hostile: a checksum start beyond the frame, an unknown segmentation
	// type. Both are dropped and counted; the good frame after them passes.
	bad := frame.Offload{NeedsCsum: true, CsumStart: 5000, CsumOffset: 6}
	frame.PutVnetHdr(hdr, bad, 1)
	sendChain(t, h12, append(bytes.Clone(hdr), udp...))
	frame.PutVnetHdr(hdr, frame.Offload{}, 1)
	hdr[1] = 9
	sendChain(t, h12, append(bytes.Clone(hdr), udp...))
	frame.PutVnetHdr(hdr, udpOff, 1)
	sendChain(t, h12, append(bytes.Clone(hdr), udp...))
	if got := rxChains(t, plain, 1); len(got) != 1 || !bytes.Equal(got[0], udpWant) {
		t.Errorf("after two bad headers the port without a header got %x", got)
	}
	testutil.WaitFor(t, "the bad headers counted", func() bool { return d.portStats(t, "vale0:h12").Stats.DropInvalid == 2 })
}

// udpFrame builds an IPv4 UDP frame with correct checksums.
func udpFrame(t testing.TB, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 1, 0, 1}}
	u := &layers.UDP{SrcPort: 1234, DstPort: 4321}
	u.SetNetworkLayerForChecksum(ip)
	return serialize(t, eth, ip, u, gopacket.Payload(payload))
}

// tcpSegment builds an IPv4 TCP frame with n bytes of payload.
func tcpSegment(t testing.TB, n int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 1, 0, 1}}
	tc := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 1, Ack: 1, ACK: true, PSH: true, Window: 512}
	tc.SetNetworkLayerForChecksum(ip)
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i)
	}
	return serialize(t, eth, ip, tc, gopacket.Payload(payload))
}

func serialize(t testing.TB, l ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, l...); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// partialChecksum leaves the L4 checksum of f (an IPv4 frame whose L4
// header starts at start, checksum at start+off) as a sender with checksum
// offload does: the pseudo-header sum only.
func partialChecksum(f []byte, start, off int) frame.Offload {
	ip := f[14:start]
	var ph [12]byte
	copy(ph[:8], ip[12:20])
	ph[9] = ip[9]
	binary.BigEndian.PutUint16(ph[10:], uint16(len(f)-start))
	binary.BigEndian.PutUint16(f[start+off:], ^offload.Checksum(ph[:]))
	return frame.Offload{NeedsCsum: true, CsumStart: uint16(start), CsumOffset: uint16(off)}
}

// sendChain sends data as one frame from p's first TX ring, over as many
// slots as it takes (NS_MOREFRAG).
func sendChain(t testing.TB, p *nmport.Port, data []byte) {
	t.Helper()
	r := p.TxRing(0)
	for r.Space() < uint32(len(data)/r.BufSize()+1) {
		if _, err := p.Poll(nmport.PollOut, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	h := r.Head()
	for len(data) > 0 {
		s := r.Slot(h)
		n := copy(r.Buf(s.BufIdx)[:r.BufSize()], data)
		data = data[n:]
		s.Len, s.Flags = uint16(n), 0
		if len(data) > 0 {
			s.Flags = ports.NS_MOREFRAG
		}
		h = r.Next(h)
	}
	r.SetHead(h)
	r.SetCur(h)
	if err := p.TxSync(); err != nil {
		t.Fatal(err)
	}
}

// rxChains reads want frames from p, joining the slots of a chain.
func rxChains(t testing.TB, p *nmport.Port, want int) [][]byte {
	t.Helper()
	var got [][]byte
	var cur []byte
	for len(got) < want {
		ev, err := p.Poll(nmport.PollIn, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ev == 0 {
			break
		}
		for _, r := range p.RxRings() {
			for !r.Empty() && len(got) < want {
				s := r.Slot(r.Head())
				cur = append(cur, r.Packet(r.Head())...)
				if s.Flags&ports.NS_MOREFRAG == 0 {
					got = append(got, cur)
					cur = nil
				}
				r.Advance(1)
			}
		}
	}
	return got
}
