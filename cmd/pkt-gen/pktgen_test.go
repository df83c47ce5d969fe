package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func mustRange(t *testing.T, s string, v6 bool, def uint16) addrRange {
	t.Helper()
	r, err := parseRange(s, v6, def)
	if err != nil {
		t.Fatalf("parseRange(%q): %v", s, err)
	}
	return r
}

// TestOdometer checks the order in which -s/-d ranges are walked: source
// port fastest, then source address, destination port, destination address.
func TestOdometer(t *testing.T) {
	src := mustRange(t, "10.0.0.1:1-10.0.0.2:2", false, 0)
	dst := mustRange(t, "10.1.0.1:7-10.1.0.1:8", false, 0)
	cfg := &config{src: src, dst: dst, length: 60, fn: fnTx}
	th := &thread{cfg: cfg}
	e := newEditor(th)
	type state struct {
		sip   uint32
		sport uint16
		dport uint16
	}
	var got []state
	for range 9 {
		got = append(got, state{e.srcVal & 0xff, e.srcPort, e.dstPort})
		e.step()
	}
	want := []state{
		{1, 1, 7}, {1, 2, 7}, {2, 1, 7}, {2, 2, 7},
		{1, 1, 8}, {1, 2, 8}, {2, 1, 8}, {2, 2, 8},
		{1, 1, 7},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("step %d: %+v, want %+v (all: %+v)", i, got[i], want[i], got)
		}
	}
	if !e.perFrame {
		t.Error("ranges did not make frames change per send")
	}
}

func TestParseRange4(t *testing.T) {
	r := mustRange(t, "10.0.0.1:1000-10.0.0.9:1009", false, 5)
	if r.v6 || r.lo != 0x0a000001 || r.hi != 0x0a000009 || r.loPort != 1000 || r.hiPort != 1009 {
		t.Errorf("got %+v", r)
	}
	if a := r.addr(0x0a000005); a != netip.MustParseAddr("10.0.0.5") {
		t.Errorf("addr: %v", a)
	}
	r = mustRange(t, "10.0.0.1", false, 5)
	if !r.single() || r.loPort != 5 {
		t.Errorf("single: %+v", r)
	}
	for _, bad := range []string{"2001:db8::1", "10.0.0.9-10.0.0.1", "10.0.0.1:x", "10.0.0.1:70000"} {
		if _, err := parseRange(bad, false, 5); err == nil {
			t.Errorf("parseRange(%q) accepted", bad)
		}
	}
}

func TestParseRange6(t *testing.T) {
	tests := []struct {
		in             string
		base           string
		group          int
		lo, hi         uint32
		loPort, hiPort uint16
	}{
		{"2001:db8::1", "2001:db8::1", 7, 1, 1, 99, 99},
		{"2001:db8::1-2001:db8::10", "2001:db8::1", 7, 1, 0x10, 99, 99},
		{"[2001:db8::1]:1000-[2001:db8::4]:1002", "2001:db8::1", 7, 1, 4, 1000, 1002},
		{"[2001:db8::1]:1000", "2001:db8::1", 7, 1, 1, 1000, 1000},
		{"[2001:db8::1]:1000-[2001:db8::1]", "2001:db8::1", 7, 1, 1, 1000, 1000},
		{"2001:db8:0:5::1-2001:db8:0:9::1", "2001:db8:0:5::1", 3, 5, 9, 99, 99},
		{"3@[2001:db8::1]:7", "2001:db8::1", 3, 0, 0, 7, 7},
		{"3@2001:db8:0:1::-3@2001:db8:0:2::", "2001:db8:0:1::", 3, 1, 2, 99, 99},
		{"5@fd00::1-fd00::1", "fd00::1", 5, 0, 0, 99, 99},
	}
	for _, tt := range tests {
		r := mustRange(t, tt.in, true, 99)
		want := addrRange{v6: true, base: netip.MustParseAddr(tt.base).As16(), group: tt.group,
			lo: tt.lo, hi: tt.hi, loPort: tt.loPort, hiPort: tt.hiPort}
		if r != want {
			t.Errorf("parseRange(%q) = %+v, want %+v", tt.in, r, want)
		}
	}
	r := mustRange(t, "2001:db8::1-2001:db8::10", true, 0)
	if a := r.addr(0xa); a != netip.MustParseAddr("2001:db8::a") {
		t.Errorf("addr: %v", a)
	}
	for _, bad := range []string{
		"10.0.0.1", "2001:db8::10-2001:db8::1", "[2001:db8::1]:2-[2001:db8::1]:1",
		"2001:db8::1:1-2001:db8::2:2", // two groups differ
		"8@2001:db8::1", "x@2001:db8::1", "1@2001:db8::1-2@2001:db8::1",
		"7@2001:db8::1:1-2001:db8::2:1", // differs outside the group
		"[2001:db8::1", "[2001:db8::1]1", "[2001:db8::1]:x", "2001:db8::1:1000:1:1:1:1:1",
		"fe80::1%eth0",
	} {
		if _, err := parseRange(bad, true, 0); err == nil {
			t.Errorf("parseRange(%q) accepted", bad)
		}
	}
}

// reference builds with gopacket the frame pkt-gen's layout should build
// from the same fields, checksums computed by gopacket.
func reference(t *testing.T, v6 bool, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	var ip gopacket.SerializableLayer
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 64, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		udp.SetNetworkLayerForChecksum(ip6)
		ip = ip6
	} else {
		ip4 := &layers.IPv4{Version: 4, IHL: 5, Flags: layers.IPv4DontFragment, TTL: 64, Protocol: layers.IPProtocolUDP,
			SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		udp.SetNetworkLayerForChecksum(ip4)
		ip = ip4
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkFrame decodes b with gopacket and compares it with the frame
// gopacket serializes from the decoded fields: any checksum or length
// pkt-gen got wrong shows.
func checkFrame(t *testing.T, b []byte) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if eth == nil || udp == nil {
		t.Fatalf("not Ethernet/IP/UDP: % x", b)
	}
	var src, dst netip.Addr
	v6 := eth.EthernetType == layers.EthernetTypeIPv6
	if v6 {
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	} else {
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
	}
	want := reference(t, v6, eth.SrcMAC, eth.DstMAC, src, dst, uint16(udp.SrcPort), uint16(udp.DstPort), udp.Payload)
	if !samePadded(b, want) {
		t.Fatalf("frame\n% x\nwant (gopacket)\n% x", b, want)
	}
}

// samePadded reports whether frame b is gopacket's frame want, which
// gopacket pads to 60 bytes.
func samePadded(b, want []byte) bool {
	return bytes.Equal(b, want) || len(b) < 60 && len(want) == 60 && bytes.Equal(b, want[:len(b)])
}

func TestBuildMatchesGopacket(t *testing.T) {
	smac, _ := net.ParseMAC("02:00:00:00:00:01")
	dmac, _ := net.ParseMAC("ff:ff:ff:ff:ff:ff")
	for _, v6 := range []bool{false, true} {
		l := layoutOf(v6)
		src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.1.0.1")
		if v6 {
			src, dst = netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::ffff")
		}
		for _, n := range []int{l.payload, l.payload + 1, 60, 63, 64, 1514, 9000} {
			if n < l.payload {
				continue
			}
			b := make([]byte, n)
			l.build(b, &frameSpec{srcMAC: smac, dstMAC: dmac, src: src, dst: dst, srcPort: 1234, dstPort: 4321, length: n})
			want := reference(t, v6, smac, dmac, src, dst, 1234, 4321, b[l.payload:])
			if !samePadded(b, want) {
				t.Fatalf("v6 %v length %d:\n% x\nwant\n% x", v6, n, b, want)
			}
			if !strings.HasPrefix(string(b[l.payload:]), payloadPattern[:min(len(payloadPattern), n-l.payload)]) {
				t.Errorf("payload %q", b[l.payload:])
			}
		}
	}
}

// TestChecksumVector checks the IPv4 header checksum against a vector
// computed by hand: 45 00 00 2e 00 00 40 00 40 11 [csum] 0a 00 00 01 0a 01
// 00 01 sums to 0x4500+0x002e+0x4000+0x4011+0x0a00+0x0001+0x0a01+0x0001 =
// 0xd942, so the checksum is ^0xd942 = 0x26bd.
func TestChecksumVector(t *testing.T) {
	b := make([]byte, 60)
	layout4.build(b, &frameSpec{srcMAC: make(net.HardwareAddr, 6), dstMAC: make(net.HardwareAddr, 6),
		src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.1.0.1"), srcPort: 1234, dstPort: 4321, length: 60})
	if c := uint16(b[24])<<8 | uint16(b[25]); c != 0x26bd {
		t.Errorf("IPv4 header checksum %#04x, want 0x26bd", c)
	}
}

// editConfig is a config whose frames change in every way the editor knows.
func editConfig(t *testing.T, v6 bool, opts options) *config {
	src, dst := "10.0.0.1:1-10.0.0.9:9", "10.1.0.1"
	if v6 {
		src, dst = "[2001:db8::fff0]:65530-[2001:db8::ffff]:65535", "7@2001:db8:1::"
	}
	l := layoutOf(v6)
	return &config{src: mustRange(t, src, v6, 0), dst: mustRange(t, dst, v6, 7), v6: v6,
		length: 300, minLength: l.payload + 12, fn: fnTxSeq, opts: opts}
}

func TestEditKeepsChecksums(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, opts := range []options{optRandomDst | optTimestamp, optRandomSrc | optRandomDst, optUpdateCsum} {
			cfg := editConfig(t, v6, opts)
			th := &thread{cfg: cfg}
			openRand(th)
			e := newEditor(th)
			stamp := time.Unix(1700000000, 123456789)
			e.now = func() time.Time { return stamp }
			buf := make([]byte, 2048)
			e.l.build(buf, e.spec(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}))
			for i := range 2000 {
				n := e.edit(buf)
				if n < cfg.minLength || n > cfg.length {
					t.Fatalf("frame %d: length %d", i, n)
				}
				checkFrame(t, buf[:n])
				if seq, _ := payloadWord(buf[:n], 0); seq != uint32(i) {
					t.Fatalf("frame %d carries sequence %d", i, seq)
				}
				if opts&optTimestamp != 0 {
					sec, _ := payloadWord(buf[:n], stampOff)
					ns, _ := payloadWord(buf[:n], stampOff+4)
					if sec != 1700000000 || ns != 123456789 {
						t.Fatalf("frame %d: timestamp %d.%09d", i, sec, ns)
					}
				}
			}
		}
	}
}

// TestRangeCoverage walks IPv6 ranges and checks every combination comes
// out, in frames whose checksums gopacket agrees with.
func TestRangeCoverage(t *testing.T) {
	src := mustRange(t, "[2001:db8::1]:1000-[2001:db8::4]:1002", true, 0)
	dst := mustRange(t, "2001:db8:1::1-2001:db8:1::3", true, 4321)
	cfg := &config{src: src, dst: dst, v6: true, length: 100, fn: fnTx}
	th := &thread{cfg: cfg}
	openRand(th)
	e := newEditor(th)
	buf := make([]byte, 100)
	e.l.build(buf, e.spec(net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}))
	seen := map[string]bool{}
	for range 36 {
		n := e.edit(buf)
		checkFrame(t, buf[:n])
		p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.Default)
		ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		seen[fmt.Sprintf("%v %d %v %d", ip.SrcIP, udp.SrcPort, ip.DstIP, udp.DstPort)] = true
	}
	if len(seen) != 4*3*3 {
		t.Errorf("%d combinations in 36 frames: %v", len(seen), seen)
	}
	if !seen["2001:db8::1 1000 2001:db8:1::1 4321"] || !seen["2001:db8::4 1002 2001:db8:1::3 4321"] {
		t.Errorf("ends missing: %v", seen)
	}
}

func TestPlanFragments(t *testing.T) {
	tests := []struct {
		length, frags, size, maxLen int
		want                        []int
	}{
		{60, 1, 0, 2048, []int{60}},
		{60, 4, 0, 2048, []int{15, 15, 15, 15}},
		{61, 4, 0, 2048, []int{15, 15, 15, 16}},
		{1000, 1, 256, 2048, []int{256, 256, 256, 232}},
		{1000, 2, 256, 2048, []int{256, 256, 256, 232}},
		{1000, 8, 256, 2048, []int{125, 125, 125, 125, 125, 125, 125, 125}},
		{5000, 1, 0, 2048, []int{2048, 2048, 904}},
		{4097, 2, 0, 2048, []int{2048, 2048, 1}},
	}
	for _, tt := range tests {
		p, err := planFragments(tt.length, tt.frags, tt.size, tt.maxLen)
		if err != nil {
			t.Fatalf("%+v: %v", tt, err)
		}
		var got []int
		for k, left := 0, tt.length; left > 0; k++ {
			l := p.next(k, left)
			got = append(got, l)
			left -= l
		}
		if len(got) != p.count || !equalInts(got, tt.want) {
			t.Errorf("%+v: fragments %v (count %d)", tt, got, p.count)
		}
	}
	// A shorter frame (random lengths) takes fewer fragments.
	p, _ := planFragments(1000, 1, 256, 2048)
	if l0, l1 := p.next(0, 300), p.next(1, 44); l0 != 256 || l1 != 44 {
		t.Errorf("300 bytes: %d + %d", l0, l1)
	}
	for _, bad := range [][4]int{{60, 61, 0, 2048}, {65535, 1, 1000, 2048}} {
		if _, err := planFragments(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("planFragments%v accepted", bad)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOptions(t *testing.T) {
	c, err := parseFlags([]string{"-i", "vale0:a", "-f", "tx", "-o", "4", "-o", "4096", "-r", "-z", "-Z", "-X", "-A"})
	if err != nil {
		t.Fatal(err)
	}
	want := optCopy | optUpdateCsum | optRubbish | optRandomSrc | optRandomDst | optDump | optPPSStats
	if c.opts != want {
		t.Errorf("options %d, want %d", c.opts, want)
	}
	if s := (optPrefetch | optCopy | optRubbish).special(); s != " prefetch copy rubbish " {
		t.Errorf("special %q", s)
	}
	for _, args := range [][]string{{"-I"}, {"-o", "32"}, {"-o", "33"}} {
		_, err := parseFlags(append([]string{"-i", "vale0:a", "-f", "tx"}, args...))
		if err == nil || !strings.Contains(err.Error(), "NS_INDIRECT") {
			t.Errorf("%v: %v", args, err)
		}
	}
	for _, args := range [][]string{
		{"-o", "128"}, {"-o", "x"}, {"-F", "0"}, {"-F", "64"}, {"-M", "-1"}, {"-c", "-1"}, {"-c", "100000"},
		{"-6", "-l", "61"}, {"-6", "-f", "ping"}, {"-f", "txseq", "-r"}, {"-o", "16", "-l", "53"},
		{"-f", "rx", "-P", "x.pcap"},
	} {
		if _, err := parseFlags(append([]string{"-i", "vale0:a", "-f", "tx"}, args...)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestFamilyAndDefaults(t *testing.T) {
	c, err := parseFlags([]string{"-i", "vale0:a", "-f", "tx", "-4", "-6"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.v6 || c.length != 62 || c.srcText != "fd00::1" || c.dstText != "fd01::1" || c.src.loPort != 1234 || c.dst.loPort != 4321 {
		t.Errorf("-6 defaults: %+v", c)
	}
	c, _ = parseFlags([]string{"-i", "vale0:a", "-f", "tx", "-6", "-4"})
	if c.v6 || c.length != 60 || c.srcText != "10.0.0.1" {
		t.Errorf("-4 after -6: %+v", c)
	}
}

func TestCPUs(t *testing.T) {
	c, _ := parseFlags([]string{"-i", "vale0:a", "-f", "tx"})
	if c.cpus != 1 || c.pinCPU(0) != -1 {
		t.Errorf("defaults: %d cpus, pin %d", c.cpus, c.pinCPU(0))
	}
	c, _ = parseFlags([]string{"-i", "vale0:a", "-f", "tx", "-c", "0"})
	if c.cpus < 1 {
		t.Errorf("-c 0: %d cpus", c.cpus)
	}
	c, _ = parseFlags([]string{"-i", "vale0:a", "-f", "tx", "-c", "1", "-a", "0", "-p", "3"})
	if c.pinCPU(0) != 0 || c.pinCPU(1) != 0 || c.pinCPU(2) != 0 {
		t.Errorf("-c 1 -a 0: %d %d %d", c.pinCPU(0), c.pinCPU(1), c.pinCPU(2))
	}
}

func TestPPSWindow(t *testing.T) {
	var w ppsWindow
	if avg, std := w.add(0); avg != 0 || std != 0 {
		t.Errorf("no traffic: %v %v", avg, std)
	}
	w.add(100)
	avg, std := w.add(300)
	if avg != 200 || std != 100 {
		t.Errorf("avg %v std %v, want 200 100", avg, std)
	}
	for range statsWindow {
		avg, std = w.add(50)
	}
	if avg != 50 || std != 0 {
		t.Errorf("after a full window: %v %v", avg, std)
	}
	cfg := &config{opts: optPPSStats, normalize: true}
	line := (&ppsWindow{}).line(cfg, counters{pkts: 2000, bytes: 120000, events: 4}, 1000000, 5)
	if want := "2.000 Kpps [avg/std 2.000 K/0.000  pps](2.000 Kpkts 960.000 Kbps in 1000000 usec) 500.00 avg_batch 5 min_space"; line != want {
		t.Errorf("line\n%q\nwant\n%q", line, want)
	}
}

func TestFirstFrame(t *testing.T) {
	dir := t.TempDir()
	frames := [][]byte{[]byte("first frame, 28 bytes long.."), []byte("second")}
	for _, name := range []string{"a.pcap", "a.pcapng"} {
		path := filepath.Join(dir, name)
		writeCapture(t, path, frames)
		got, err := firstFrame(path)
		if err != nil || !bytes.Equal(got, frames[0]) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	c, err := parseFlags([]string{"-i", "vale0:a", "-f", "tx", "-l", "100", "-P", filepath.Join(dir, "a.pcap")})
	if err != nil || c.length != 28 || !bytes.Equal(c.template, frames[0]) {
		t.Errorf("-P: %v %+v", err, c)
	}
	if _, err := firstFrame(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing file was read")
	}
}

func writeCapture(t *testing.T, path string, frames [][]byte) {
	t.Helper()
	var out bytes.Buffer
	ci := func(b []byte) gopacket.CaptureInfo {
		return gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(b), Length: len(b)}
	}
	if strings.HasSuffix(path, "ng") {
		w, err := pcapgo.NewNgWriter(&out, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			if err := w.WritePacket(ci(f), f); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
	} else {
		w := pcapgo.NewWriter(&out)
		w.WriteFileHeader(65536, layers.LinkTypeEthernet)
		for _, f := range frames {
			if err := w.WritePacket(ci(f), f); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLimiter(t *testing.T) {
	l := limiter{rate: 0}
	if l.grant(512) != 512 {
		t.Error("unlimited limiter held frames back")
	}
	l = limiter{rate: 1e6, start: time.Now()}
	total := 0
	for time.Since(l.start) < 50*time.Millisecond {
		n := l.grant(64)
		l.sent += uint64(n)
		total += n
	}
	// 50 ms at 1 Mpps: about 50000 frames, never more than due.
	if total > 51000 || total < 20000 {
		t.Errorf("granted %d frames in 50 ms at 1 Mpps", total)
	}
}
