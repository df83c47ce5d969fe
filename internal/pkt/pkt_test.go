package pkt

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/valeswitch/vale/internal/offload"
)

func testFrame(n int) []byte {
	f := &Frame{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		SrcIP: netip.MustParseAddr("10.0.0.1"), DstIP: netip.MustParseAddr("10.1.0.1"),
		SrcPort: 1234, DstPort: 4321, Len: n,
	}
	b := make([]byte, 2048)
	Build(b, f)
	return b
}

func TestBuildChecksums(t *testing.T) {
	for _, n := range []int{HeadersLen, 60, 61, 1514} {
		b := testFrame(n)[:n]
		if !ValidChecksums(b) {
			t.Errorf("frame of %d bytes has bad checksums", n)
		}
		b[OffPayload-1] ^= 1
		if ValidChecksums(b) {
			t.Errorf("corrupted frame of %d bytes passes", n)
		}
	}
}

// TestIncrementalUpdates checks every incremental checksum update against a
// full recomputation.
func TestIncrementalUpdates(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := testFrame(128)[:128]
	for i := range 10000 {
		switch i % 5 {
		case 0:
			SetSrcIP(b, rng.Uint32())
		case 1:
			SetDstIP(b, rng.Uint32())
		case 2:
			SetSrcPort(b, uint16(rng.Uint32()))
		case 3:
			SetDstPort(b, uint16(rng.Uint32()))
		case 4:
			SetPayload32(b, 0, rng.Uint32())
		}
		if !ValidChecksums(b) {
			t.Fatalf("step %d: checksums wrong after incremental update", i)
		}
	}
	want := append([]byte(nil), b...)
	FixChecksums(want)
	if string(want) != string(b) {
		t.Error("incremental checksums differ from recomputed ones")
	}
}

func TestSetLenAndReply(t *testing.T) {
	b := testFrame(200)
	for _, n := range []int{200, 60, 1000, 43} {
		SetLen(b, n)
		if !ValidChecksums(b[:n]) {
			t.Errorf("length %d: bad checksums", n)
		}
	}
	f := b[:60]
	SetLen(b, 60)
	orig := append([]byte(nil), f...)
	Reply(f)
	if !ValidChecksums(f) || f[0] != orig[6] || f[offIPSrc] != orig[offIPDst] || f[offUDP] != orig[offUDP+2] {
		t.Error("reply did not swap addresses, or broke checksums")
	}
	Reply(f)
	if string(f) != string(orig) {
		t.Error("double reply is not the identity")
	}
	Reply(make([]byte, 5)) // too short: must not panic
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in   string
		want Range
		err  bool
	}{
		{in: "10.0.0.1", want: Range{First: 0x0a000001, Last: 0x0a000001, FirstPort: 9, LastPort: 9}},
		{in: "10.0.0.1:80", want: Range{First: 0x0a000001, Last: 0x0a000001, FirstPort: 80, LastPort: 80}},
		{in: "10.0.0.1:80-10.0.0.9:90", want: Range{First: 0x0a000001, Last: 0x0a000009, FirstPort: 80, LastPort: 90}},
		{in: "10.0.0.1-10.0.0.3", want: Range{First: 0x0a000001, Last: 0x0a000003, FirstPort: 9, LastPort: 9}},
		{in: "10.0.0.9-10.0.0.1", err: true},
		{in: "::1", err: true},
		{in: "10.0.0.1:99999", err: true},
		{in: "host", err: true},
	}
	for _, tt := range tests {
		got, err := ParseRange(tt.in, 9)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParseRange(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

// Answer replies to ARP requests and pings for its address only.
func TestAnswer(t *testing.T) {
	me := net.HardwareAddr{2, 0, 0, 0, 0, 9}
	ip := netip.MustParseAddr("10.9.0.9")
	arp := make([]byte, 60)
	copy(arp, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06,
		0, 1, 0x08, 0x00, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 9, 0, 1, 0, 0, 0, 0, 0, 0, 10, 9, 0, 9})
	out := make([]byte, 2048)
	n := Answer(arp, out, me, ip)
	if n != 42 || out[21] != 2 || !bytes.Equal(out[22:28], me) || !bytes.Equal(out[0:6], arp[6:12]) {
		t.Fatalf("ARP answer %x", out[:n])
	}
	arp[41] = 8 // someone else's address
	if Answer(arp, out, me, ip) != 0 {
		t.Error("answered an ARP request for another address")
	}
	echo := make([]byte, 98)
	copy(echo, []byte{2, 0, 0, 0, 0, 9, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 9, 0, 1, 10, 9, 0, 9, 8, 0})
	binary.BigEndian.PutUint16(echo[36:], offload.Checksum(echo[34:98]))
	n = Answer(echo, out, me, ip)
	if n != 98 || out[34] != 0 || offload.Checksum(out[34:98]) != 0 || !bytes.Equal(out[26:30], ip.AsSlice()) {
		t.Fatalf("echo reply %x", out[:n])
	}
}
