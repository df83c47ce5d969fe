package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/nmport"
)

// pgCapture starts a valed, captures n frames arriving at vale0:b with
// nm-capture while pkt-gen -f tx -n n runs on vale0:a with args, and
// returns pkt-gen's output and the capture file.
func pgCapture(t *testing.T, n int, args ...string) (out, file string) {
	t.Helper()
	needTools(t, "tshark")
	d := startValed(t)
	file = filepath.Join(t.TempDir(), "cap.pcap")
	capt := start(t, d.sock, "nm-capture", "-i", "vale0:b"+bigRx, "-w", file, "-c", fmt.Sprint(n), "-q")
	d.waitPort(t, "vale0:b")
	out = d.run(t, 60*time.Second, "pkt-gen", append([]string{"-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate}, args...)...)
	if f, _, _ := captured(t, capt.Wait(30*time.Second)); f != uint64(n) {
		t.Fatalf("captured %d frames, want %d", f, n)
	}
	return out, file
}

// pgRow is one frame as tshark decodes it: field name to value.
type pgRow map[string]string

// pgFields reads fields of every frame of a capture with tshark, with IPv4
// header and UDP checksums verified (the .checksum.status fields: 1 is
// good).
func pgFields(t *testing.T, file string, fields ...string) []pgRow {
	t.Helper()
	args := []string{"-r", file, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	var rows []pgRow
	for _, l := range strings.Split(strings.TrimRight(toolOutput(t, "tshark", args...), "\n"), "\n") {
		if l == "" {
			continue
		}
		v := strings.Split(l, "\t")
		if len(v) != len(fields) {
			t.Fatalf("tshark %s: %d fields in %q, want %d", file, len(v), l, len(fields))
		}
		r := pgRow{}
		for i, f := range fields {
			r[f] = v[i]
		}
		rows = append(rows, r)
	}
	return rows
}

// pgUDPFields are the fields the checksum checks read.
var (
	pgUDP4 = []string{"frame.len", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "ip.len", "udp.length", "ip.checksum.status", "udp.checksum.status"}
	pgUDP6 = []string{"frame.len", "ipv6.src", "udp.srcport", "ipv6.dst", "udp.dstport", "ipv6.plen", "udp.length", "udp.checksum.status"}
)

// pgCheckUDP checks that every frame is a well-formed IPv4 or IPv6 UDP
// frame: lengths that agree with the frame's, and good checksums.
func pgCheckUDP(t *testing.T, rows []pgRow, v6 bool) {
	t.Helper()
	for i, r := range rows {
		n := int(atoi(t, r["frame.len"]))
		ok := r["udp.checksum.status"] == "1" && int(atoi(t, r["udp.length"])) == n-pgHeaders(v6)+8
		if v6 {
			ok = ok && int(atoi(t, r["ipv6.plen"])) == n-54
		} else {
			ok = ok && r["ip.checksum.status"] == "1" && int(atoi(t, r["ip.len"])) == n-14
		}
		if !ok {
			t.Fatalf("frame %d: lengths or checksums wrong: %v", i+1, r)
		}
	}
}

// pgHeaders is the length of the Ethernet, IP and UDP headers.
func pgHeaders(v6 bool) int {
	if v6 {
		return 62
	}
	return 42
}

// pgTuple is a frame's addresses and ports.
func pgTuple(r pgRow, v6 bool) string {
	ip := "ip"
	if v6 {
		ip = "ipv6"
	}
	return r[ip+".src"] + ":" + r["udp.srcport"] + " -> " + r[ip+".dst"] + ":" + r["udp.dstport"]
}

// pgTuples lists every combination of the sources and destinations given.
func pgTuples(srcs, sports, dsts, dports []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range srcs {
		for _, sp := range sports {
			for _, d := range dsts {
				for _, dp := range dports {
					m[s+":"+sp+" -> "+d+":"+dp] = true
				}
			}
		}
	}
	return m
}

// TestPktGenFlagsAddresses sends IPv4 (-4, the default) and IPv6 (-6)
// frames with address and port ranges, random addresses (-z, -Z, -o 512,
// -o 1024) and random lengths, and checks with tshark what arrives: every
// combination of a range, each as often, and correct lengths and IPv4
// header and UDP checksums in every frame.
func TestPktGenFlagsAddresses(t *testing.T) {
	cases := []struct {
		name  string
		v6    bool
		n     int
		args  []string
		every map[string]bool // each combination exactly n/len(every) times
		lens  [2]int          // frame lengths within
	}{
		{"v4 ranges", false, 48, []string{"-4", "-s", "10.0.0.1:1000-10.0.0.4:1002", "-d", "10.1.0.7:4000-10.1.0.7:4001", "-l", "128"},
			pgTuples([]string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}, []string{"1000", "1001", "1002"}, []string{"10.1.0.7"}, []string{"4000", "4001"}),
			[2]int{128, 128}},
		{"v4 defaults", false, 10, nil,
			pgTuples([]string{"10.0.0.1"}, []string{"1234"}, []string{"10.1.0.1"}, []string{"4321"}), [2]int{60, 60}},
		{"v4 random", false, 300, []string{"-z", "-o", "1024", "-l", "60", "-l", "300"}, nil, [2]int{60, 300}},
		{"v6 ranges", true, 72, []string{"-6", "-s", "[2001:db8::1]:1000-[2001:db8::4]:1002", "-d", "2001:db8:1::1-2001:db8:1::3", "-l", "100"},
			pgTuples([]string{"2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4"}, []string{"1000", "1001", "1002"},
				[]string{"2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3"}, []string{"4321"}),
			[2]int{100, 100}},
		{"v6 group", true, 12, []string{"-6", "-s", "6@[2001:db8::1:0]:5-[2001:db8::3:0]:6", "-d", "[2001:db8:1::9]:7"},
			pgTuples([]string{"2001:db8::1:0", "2001:db8::2:0", "2001:db8::3:0"}, []string{"5", "6"}, []string{"2001:db8:1::9"}, []string{"7"}),
			[2]int{62, 62}},
		{"v6 defaults", true, 10, []string{"-6"},
			pgTuples([]string{"fd00::1"}, []string{"1234"}, []string{"fd01::1"}, []string{"4321"}), [2]int{62, 62}},
		{"v6 random", true, 300, []string{"-6", "-o", "512", "-Z", "-l", "62", "-l", "400"}, nil, [2]int{62, 400}},
		{"v6 random ranges", true, 300, []string{"-6", "-z", "-Z", "-s", "[2001:db8::fff0]:65000-[2001:db8::ffff]:65535", "-d", "2001:db8:1::-2001:db8:1::ff"}, nil, [2]int{62, 62}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, file := pgCapture(t, c.n, c.args...)
			fields := pgUDP4
			if c.v6 {
				fields = pgUDP6
			}
			rows := pgFields(t, file, fields...)
			pgCheckUDP(t, rows, c.v6)
			seen := map[string]int{}
			lens := map[string]bool{}
			for _, r := range rows {
				seen[pgTuple(r, c.v6)]++
				lens[r["frame.len"]] = true
				if l := int(atoi(t, r["frame.len"])); l < c.lens[0] || l > c.lens[1] {
					t.Fatalf("frame of %d bytes, want [%d, %d]", l, c.lens[0], c.lens[1])
				}
			}
			if c.every != nil {
				for k := range c.every {
					if seen[k] != c.n/len(c.every) {
						t.Errorf("%s seen %d times, want %d (all: %v)", k, seen[k], c.n/len(c.every), seen)
					}
				}
				if len(seen) != len(c.every) {
					t.Errorf("%d combinations, want %d: %v", len(seen), len(c.every), seen)
				}
				return
			}
			// Random: hardly two frames alike, lengths all over the range.
			if len(seen) < c.n*9/10 || c.lens[0] != c.lens[1] && len(lens) < 50 {
				t.Errorf("%d different address/port combinations and %d lengths in %d random frames", len(seen), len(lens), c.n)
			}
		})
	}
}

// TestPktGenFlagsOptions checks -o's bits that change frames, each against
// what the capture shows: COPY and MEMCPY (frames copied from a template:
// the same frames), TS (the send time in the payload), UPDATE_CSUM
// (checksums recomputed: still right), PREFETCH and ACCESS (accepted, no
// effect), DUMP (the -X hexdump), and unknown bits refused.
func TestPktGenFlagsOptions(t *testing.T) {
	ranges := []string{"-s", "10.0.0.1:7-10.0.0.2:8", "-d", "10.1.0.1:9"}
	every := pgTuples([]string{"10.0.0.1", "10.0.0.2"}, []string{"7", "8"}, []string{"10.1.0.1"}, []string{"9"})
	for _, o := range []string{"4", "8", "3", "4096", "4100"} {
		t.Run("-o "+o, func(t *testing.T) {
			_, file := pgCapture(t, 40, append([]string{"-o", o, "-l", "80"}, ranges...)...)
			rows := pgFields(t, file, pgUDP4...)
			pgCheckUDP(t, rows, false)
			seen := map[string]int{}
			for _, r := range rows {
				seen[pgTuple(r, false)]++
			}
			for k := range every {
				if seen[k] != 10 {
					t.Errorf("%s seen %d times, want 10: %v", k, seen[k], seen)
				}
			}
		})
	}
	t.Run("-o 16 timestamp", func(t *testing.T) {
		for _, v6 := range []string{"-4", "-6"} {
			from := time.Now()
			_, file := pgCapture(t, 50, v6, "-o", "16", "-l", "100", "-l", "200")
			to := time.Now()
			fields := append([]string{"udp.payload"}, pgUDP4...)
			if v6 == "-6" {
				fields = append([]string{"udp.payload"}, pgUDP6...)
			}
			rows := pgFields(t, file, fields...)
			pgCheckUDP(t, rows, v6 == "-6")
			for i, r := range rows {
				p, err := hex.DecodeString(strings.ReplaceAll(r["udp.payload"], ":", ""))
				if err != nil || len(p) < 12 {
					t.Fatalf("frame %d: payload %q", i+1, r["udp.payload"])
				}
				at := time.Unix(int64(binary.BigEndian.Uint32(p[4:])), int64(binary.BigEndian.Uint32(p[8:])))
				if at.Before(from) || at.After(to) {
					t.Fatalf("frame %d: timestamp %v not within the run [%v, %v]", i+1, at, from, to)
				}
			}
		}
	})
	t.Run("-o 64 dump", func(t *testing.T) {
		out, _ := pgCapture(t, 5, "-o", "64")
		if !strings.Contains(out, "00000000  ff ff ff ff ff ff") {
			t.Errorf("no hexdump of the frame:\n%s", out)
		}
	})
	t.Run("unknown bits", func(t *testing.T) {
		d := startValed(t)
		for _, o := range []string{"128", "8192", "-1", "x"} {
			if out := d.runFail(t, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-o", o); !strings.Contains(out, "-o") {
				t.Errorf("-o %s: %s", o, out)
			}
		}
	})
}

// pgChains reads n frames from port p and returns, for each, the lengths
// of the slots it came in (chained with NS_MOREFRAG) and its bytes.
func pgChains(t *testing.T, p *nmport.Port, n int) (chains [][]int, frames [][]byte) {
	t.Helper()
	var cur []byte
	var lens []int
	testutil.WaitFor(t, fmt.Sprintf("%d frames on %s", n, p.Name()), func() bool {
		if err := p.RxSync(); err != nil {
			t.Fatal(err)
		}
		r := p.RxRing(0)
		for !r.Empty() {
			s := r.Slot(r.Head())
			cur = append(cur, r.Packet(r.Head())...)
			lens = append(lens, int(s.Len))
			if s.Flags&ports.NS_MOREFRAG == 0 {
				chains, frames = append(chains, lens), append(frames, cur)
				cur, lens = nil, nil
			}
			r.Advance(1)
		}
		return len(frames) >= n
	})
	return chains, frames
}

// pgWritePcap writes frames to a pcap file.
func pgWritePcap(t *testing.T, file string, frames [][]byte) {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pgCheckFrames writes frames to a pcap file and checks with tshark that
// they are n good UDP frames (IPv6 with v6) of length bytes.
func pgCheckFrames(t *testing.T, frames [][]byte, n, length int, v6 bool) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "frames.pcap")
	pgWritePcap(t, file, frames)
	fields := pgUDP4
	if v6 {
		fields = pgUDP6
	}
	rows := pgFields(t, file, fields...)
	pgCheckUDP(t, rows, v6)
	if len(rows) != n || rows[0]["frame.len"] != fmt.Sprint(length) {
		t.Errorf("tshark reads %d frames, the first %s bytes; want %d of %d", len(rows), rows[0]["frame.len"], n, length)
	}
}

// TestPktGenFlagsFragments sends frames cut into slots chained with
// NS_MOREFRAG (-F, -M, also frames longer than a buffer): a client sees each frame arrive as the chain
// pkt-gen made, reassembled a frame of the whole length with good
// checksums (tshark), and pkt-gen -f rx counts each chain once.
func TestPktGenFlagsFragments(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		v6    bool
		chain []int
	}{
		{"-F 4", []string{"-F", "4", "-l", "1000"}, false, []int{250, 250, 250, 250}},
		{"-F 4 uneven", []string{"-F", "4", "-l", "1001"}, false, []int{250, 250, 250, 251}},
		{"-M 256", []string{"-M", "256", "-l", "1000"}, false, []int{256, 256, 256, 232}},
		{"longer than a buffer", []string{"-F", "2", "-l", "5000"}, false, []int{2048, 2048, 904}},
		{"-6 -F 3 ranges", []string{"-6", "-F", "3", "-l", "300", "-s", "[2001:db8::1]:1-[2001:db8::2]:2"}, true, []int{100, 100, 100}},
		{"-o 4 copy -F 2", []string{"-o", "4", "-F", "2", "-l", "61"}, false, []int{30, 31}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needTools(t, "tshark")
			const n = 100
			total := 0
			for _, l := range c.chain {
				total += l
			}
			d := startValed(t)
			client := d.open(t, "vale0:b"+bigRx)
			rx := start(t, d.sock, "pkt-gen", "-i", "vale0:c"+bigRx, "-f", "rx", "-n", fmt.Sprint(n))
			d.waitPort(t, "vale0:c")
			tx := d.run(t, 60*time.Second, "pkt-gen", append([]string{"-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate}, c.args...)...)
			if p, b := totals(t, tx); p != n || b != uint64(n*total) {
				t.Errorf("sender reports %d packets %d bytes, want %d and %d", p, b, n, n*total)
			}
			chains, frames := pgChains(t, client, n)
			for i, ch := range chains {
				if fmt.Sprint(ch) != fmt.Sprint(c.chain) {
					t.Fatalf("frame %d came in slots of %v bytes, want %v", i+1, ch, c.chain)
				}
			}
			pgCheckFrames(t, frames, n, total, c.v6)
			if p, b := totals(t, rx.Wait(30*time.Second)); p != n || b != uint64(n*total) {
				t.Errorf("pkt-gen -f rx reports %d packets %d bytes, want %d and %d", p, b, n, n*total)
			}
		})
	}
	t.Run("bad", func(t *testing.T) {
		d := startValed(t)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"-F", "0"}, "-F 0 out of range [1, 63]"},
			{[]string{"-F", "64"}, "-F 64 out of range [1, 63]"},
			{[]string{"-F", "61", "-l", "60"}, "more fragments than the 60 bytes"},
			{[]string{"-M", "1", "-l", "100"}, "need 100 fragments"},
			{[]string{"-l", "5000"}, "larger than the port's buffers (2048): cut frames into slots with -F or -M"},
		} {
			out := d.runFail(t, "pkt-gen", append([]string{"-i", "vale0:a", "-f", "tx", "-n", "1"}, c.args...)...)
			if !strings.Contains(out, c.want) {
				t.Errorf("%v: %s, want %q", c.args, out, c.want)
			}
		}
	})
}

// TestPktGenFlagsPcap sends the first frame of a pcap file (-P) a few
// times: exactly its bytes arrive (tshark's reading of every field), -l
// is ignored, the second frame of the file never shows.
func TestPktGenFlagsPcap(t *testing.T) {
	dir := t.TempDir()
	first := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x42, 0x88, 0xb5}, []byte("the first frame of the file, sent as it is.")...)
	second := append(append([]byte{}, first[:14]...), []byte("the second frame, never sent")...)
	file := filepath.Join(dir, "in.pcap")
	pgWritePcap(t, file, [][]byte{first, second})
	_, capture := pgCapture(t, 5, "-P", file, "-l", "1000")
	rows := pgFields(t, capture, "frame.len", "eth.dst", "eth.src", "eth.type", "data.data")
	for i, r := range rows {
		got := r["eth.dst"] + " " + r["eth.src"] + " " + r["eth.type"] + " " + r["data.data"] + " " + r["frame.len"]
		want := fmt.Sprintf("ff:ff:ff:ff:ff:ff 02:00:00:00:00:42 0x88b5 %x %d", first[14:], len(first))
		if got != want {
			t.Errorf("frame %d: %s, want %s", i+1, got, want)
		}
	}
	if len(rows) != 5 {
		t.Errorf("%d frames", len(rows))
	}
	d := startValed(t)
	if out := d.runFail(t, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-P", filepath.Join(dir, "none.pcap")); !strings.Contains(out, "none.pcap") {
		t.Errorf("missing file: %s", out)
	}
}

// TestPktGenFlagsRubbish sends rubbish (-r, -o 256): buffers as they are,
// with the length -l asks for. The port is held open between two runs so
// that its buffers outlive the first, which fills them with frames from
// 10.9.9.9: the rubbish runs, asked for frames from elsewhere, send those
// old frames again, at their own length.
func TestPktGenFlagsRubbish(t *testing.T) {
	needTools(t, "tshark")
	d := startValed(t)
	d.open(t, "vale0:a/R")
	d.waitPort(t, "vale0:a")
	d.run(t, 30*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", "10", "-s", "10.9.9.9", "-l", "100")
	for _, flag := range [][]string{{"-r"}, {"-o", "256"}} {
		file := filepath.Join(t.TempDir(), "rubbish.pcap")
		capt := start(t, d.sock, "nm-capture", "-i", "vale0:b"+bigRx, "-w", file, "-c", "20", "-q")
		d.waitPort(t, "vale0:b")
		out := d.run(t, 30*time.Second, "pkt-gen", append([]string{"-i", "vale0:a", "-f", "tx", "-n", "20", "-R", capRate, "-s", "10.8.8.8", "-l", "120"}, flag...)...)
		if p, b := totals(t, out); p != 20 || b != 20*120 {
			t.Errorf("%v: sent %d packets %d bytes", flag, p, b)
		}
		capt.Wait(30 * time.Second)
		for i, r := range pgFields(t, file, "frame.len", "ip.src", "ip.len") {
			if r["frame.len"] != "120" || r["ip.src"] != "10.9.9.9" || r["ip.len"] != "86" {
				t.Errorf("%v frame %d: %v, want the old 100-byte frame from 10.9.9.9 in 120 bytes", flag, i+1, r)
			}
		}
	}
}

var pgStatsRE = regexp.MustCompile(`main_thread [0-9.]+ [KMGT ]?pps \[avg/std [0-9.]+ [KMGT ]?/[0-9.]+ [KMGT ]?pps\]\([0-9.]+ [KMGT ]?pkts [0-9.]+ [KMGT ]?bps in \d+ usec\) [0-9.]+ avg_batch \d+ min_space`)

// TestPktGenFlagsStats checks that -A (and -o 2048) add netmap's
// "[avg/std X/Y pps]" to the periodic reports, on a sender and a receiver,
// and that the reports lack it otherwise.
func TestPktGenFlagsStats(t *testing.T) {
	d := startValed(t)
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b"+bigRx, "-f", "rx", "-n", "6000", "-A", "-T", "100")
	d.waitPort(t, "vale0:b")
	for _, flag := range []string{"-A", "-o 2048"} {
		out := d.run(t, 60*time.Second, "pkt-gen", append([]string{"-i", "vale0:a", "-f", "tx", "-n", "3000", "-R", "10000", "-T", "100"}, strings.Fields(flag)...)...)
		if !pgStatsRE.MatchString(out) {
			t.Errorf("%s: no report with [avg/std ...]:\n%s", flag, out)
		}
	}
	if out := rx.Wait(30 * time.Second); !pgStatsRE.MatchString(out) {
		t.Errorf("receiver: no report with [avg/std ...]:\n%s", out)
	}
	out := d.run(t, 60*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", "100", "-T", "100")
	if strings.Contains(out, "avg/std") || !strings.Contains(out, "pps (") {
		t.Errorf("without -A:\n%s", out)
	}
}

// TestPktGenFlagsIndirect checks that -I and -o 32 are refused with the
// reason.
func TestPktGenFlagsIndirect(t *testing.T) {
	d := startValed(t)
	for _, args := range [][]string{{"-I"}, {"-o", "32"}, {"-o", "36"}} {
		out := d.runFail(t, "pkt-gen", append([]string{"-i", "vale0:a", "-f", "tx"}, args...)...)
		if !strings.Contains(out, "NS_INDIRECT") || !strings.Contains(out, "cannot dereference") {
			t.Errorf("%v: %s", args, out)
		}
	}
}

// TestPktGenFlagsStartup checks netmap's start-up lines: "Sending on
// PORT: Q queues, T threads and C cpus." (Receiving from, for receivers),
// then, for senders, "src -> dst (smac -> dmac)" with the arguments as
// given and, without -S, the port's own MAC (the source of the frames).
func TestPktGenFlagsStartup(t *testing.T) {
	out, file := pgCapture(t, 3)
	mac := pgFields(t, file, "eth.src")[0]["eth.src"]
	pgFirstLines(t, out, "Sending on vale0:a: 1 queues, 1 threads and 1 cpus.", "10.0.0.1 -> 10.1.0.1 ("+mac+" -> ff:ff:ff:ff:ff:ff)")

	out, _ = pgCapture(t, 3, "-s", "10.0.0.1:1000-10.0.0.4:1003", "-d", "10.1.0.1:4000", "-S", "02:00:00:00:00:AA", "-D", "ff:ff:ff:ff:ff:ff")
	pgFirstLines(t, out, "Sending on vale0:a: 1 queues, 1 threads and 1 cpus.",
		"10.0.0.1:1000-10.0.0.4:1003 -> 10.1.0.1:4000 (02:00:00:00:00:AA -> ff:ff:ff:ff:ff:ff)")

	out, _ = pgCapture(t, 3, "-6", "-s", "[2001:db8::1]:5-[2001:db8::9]:5")
	pgFirstLines(t, out, "Sending on vale0:a: 1 queues, 1 threads and 1 cpus.", "[2001:db8::1]:5-[2001:db8::9]:5 -> fd01::1 ("+mac+" -> ff:ff:ff:ff:ff:ff)")

	d := startValed(t)
	rx := start(t, d.sock, "pkt-gen", "-i", "vale0:b", "-f", "rx", "-n", "3")
	d.waitPort(t, "vale0:b")
	d.run(t, 30*time.Second, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-n", "3")
	pgFirstLines(t, rx.Wait(30*time.Second), "Receiving from vale0:b: 1 queues, 1 threads and 1 cpus.")
}

// pgFirstLines checks the first lines of pkt-gen's output.
func pgFirstLines(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.SplitN(out, "\n", len(want)+1)
	if len(lines) < len(want) || strings.Join(lines[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Errorf("output starts\n%s\nwant\n%s", strings.Join(lines[:min(len(lines), len(want))], "\n"), strings.Join(want, "\n"))
	}
}

// pgPinned returns the CPU each of pid's threads pinned to one CPU is
// pinned to, sorted (the others may run on all the CPUs of the machine).
func pgPinned(t *testing.T, pid int) []int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var cpus []int
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue // the thread is gone
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				if c, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					cpus = append(cpus, c)
				}
			}
		}
	}
	sort.Ints(cpus)
	return cpus
}

// TestPktGenFlagsCPUs checks -c with -p and -a: the start-up line counts
// -c's CPUs, thread i is pinned to CPU (a+i) modulo -c, and more CPUs than
// the machine has is an error.
func TestPktGenFlagsCPUs(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Fatalf("%d CPU: pinned threads cannot be told from the others with fewer than two", runtime.NumCPU())
	}
	const ncpu = 2
	pins := func(a, c int) []int { // thread i on (a+i) % c, sorted
		p := []int{a % c, (a + 1) % c}
		sort.Ints(p)
		return p
	}
	cases := []struct {
		args []string
		want []int // CPUs the two threads are pinned to, sorted
	}{
		{[]string{"-c", "1", "-a", "1"}, pins(1, 1)},
		{[]string{"-c", fmt.Sprint(ncpu), "-a", "1"}, pins(1, ncpu)},
		{[]string{"-c", fmt.Sprint(ncpu)}, nil},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			d := startValed(t)
			port := "vale0:a@conf:rings=2"
			p := start(t, d.sock, "pkt-gen", append([]string{"-i", port, "-f", "tx", "-p", "2", "-R", "1000", "-T", "100"}, c.args...)...)
			d.waitPort(t, "vale0:a")
			// Once pkt-gen reports, its threads run (and SIGINT stops it).
			testutil.WaitFor(t, fmt.Sprintf("pkt-gen reporting, its threads pinned to %v", c.want), func() bool {
				return fmt.Sprint(pgPinned(t, p.Cmd.Process.Pid)) == fmt.Sprint(c.want) && strings.Contains(p.Out.String(), "main_thread")
			})
			cpus := c.args[1]
			pgFirstLines(t, p.Out.String(), "Sending on "+port+": 2 queues, 2 threads and "+cpus+" cpus.")
			p.Cmd.Process.Signal(os.Interrupt)
			p.Wait(30 * time.Second)
		})
	}
	d := startValed(t)
	out := d.runFail(t, "pkt-gen", "-i", "vale0:a", "-f", "tx", "-c", fmt.Sprint(runtime.NumCPU()+1))
	if want := fmt.Sprintf("%d cpus is too high, have only %d cpus", runtime.NumCPU()+1, runtime.NumCPU()); !strings.Contains(out, want) {
		t.Errorf("-c too high: %s", out)
	}
}

// TestPktGenFlagsVnetHeader sends frames with a virtio-net header (-H):
// pkt-gen sets the header on its port and puts an empty one (no offload)
// before each frame. A port without headers gets the frames alone, good
// UDP by tshark; a port with a 12-byte header gets each frame after a
// header valed wrote (no offload, one buffer); pkt-gen -f rx on a port
// with a header counts the frames' bytes only. Without -H, pkt-gen uses
// the header its port has.
func TestPktGenFlagsVnetHeader(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		v6       bool
		preset   int // a header set on vale0:a before pkt-gen opens it
		length   int
		wantNote bool
	}{
		{"-H 10", []string{"-H", "10"}, false, 0, 60, true},
		{"-H 12 -6", []string{"-H", "12", "-6", "-l", "200"}, true, 0, 200, true},
		{"-H 12 -F 3", []string{"-H", "12", "-F", "3", "-l", "300"}, false, 0, 300, true},
		{"-H 0 on a port with one", []string{"-H", "0", "-l", "100"}, false, 12, 100, false},
		{"the port's header", []string{"-l", "100"}, false, 10, 100, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			needTools(t, "tshark")
			const n = 50
			d := startValed(t)
			plain := d.open(t, "vale0:b"+bigRx)
			withHdr := d.open(t, "vale0:c"+bigRx)
			if err := withHdr.SetVnetHdrLen(12); err != nil {
				t.Fatal(err)
			}
			if c.preset != 0 {
				holder := d.open(t, "vale0:a")
				if err := holder.SetVnetHdrLen(c.preset); err != nil {
					t.Fatal(err)
				}
			}
			rx := start(t, d.sock, "pkt-gen", "-i", "vale0:d"+bigRx, "-f", "rx", "-n", fmt.Sprint(n), "-H", "10")
			testutil.WaitFor(t, "the receiver's header", func() bool {
				st := d.portStats(t, "vale0:d")
				return st != nil && strings.Contains(st.State, "vnet_hdr=10")
			})
			tx := d.run(t, 60*time.Second, "pkt-gen", append([]string{"-i", "vale0:a", "-f", "tx", "-n", fmt.Sprint(n), "-R", capRate}, c.args...)...)
			if p, b := totals(t, tx); p != n || b != uint64(n*c.length) {
				t.Errorf("sender reports %d packets %d bytes, want %d and %d", p, b, n, n*c.length)
			}
			if got := strings.Contains(tx, "bytes of virtio-net header"); got != c.wantNote {
				t.Errorf("sender's note of its header: %v, want %v:\n%s", got, c.wantNote, tx)
			}
			_, frames := pgChains(t, plain, n)
			pgCheckFrames(t, frames, n, c.length, c.v6)
			// The 12-byte header counts the slots of the frame (all but
			// the last flagged NS_MOREFRAG) in num_buffers.
			chains, withHeaders := pgChains(t, withHdr, n)
			for i, f := range withHeaders {
				want := append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(chains[i])), 0}, frames[i]...)
				if !bytes.Equal(f, want) {
					t.Fatalf("frame %d on a port with a 12-byte header:\n%s\nwant\n%s", i+1, hex.Dump(f), hex.Dump(want))
				}
			}
			if p, b := totals(t, rx.Wait(30*time.Second)); p != n || b != uint64(n*c.length) {
				t.Errorf("pkt-gen -f rx -H 10 reports %d packets %d bytes, want %d and %d", p, b, n, n*c.length)
			}
		})
	}
	t.Run("bad", func(t *testing.T) {
		d := startValed(t)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"-i", "vale0:a", "-H", "7"}, "-H 7: a virtio-net header is 0, 10 or 12 bytes"},
			{[]string{"-i", "vale0:p{1", "-H", "10"}, "-H 10: "},
		} {
			out := d.runFail(t, "pkt-gen", append([]string{"-f", "tx", "-n", "1"}, c.args...)...)
			if !strings.Contains(out, c.want) {
				t.Errorf("%v: %s, want %q", c.args, out, c.want)
			}
		}
	})
}
