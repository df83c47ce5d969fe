package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// sample is a packet the tests write and expect back.
type sample struct {
	data []byte
	ts   time.Time
	orig int
}

func samples(n int) []sample {
	base := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	var s []sample
	for i := range n {
		b := make([]byte, 60+i*7)
		for j := range b {
			b[j] = byte(i + j)
		}
		s = append(s, sample{data: b, ts: base.Add(time.Duration(i) * 1_234_567), orig: len(b) + i%2*10})
	}
	return s
}

func writePcap(t testing.TB, s []sample, nanos bool) []byte {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if nanos {
		w = pcapgo.NewWriterNanos(&buf)
	}
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, p := range s {
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: p.orig}
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func writePcapNG(t testing.TB, s []sample) []byte {
	var buf bytes.Buffer
	w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s {
		ci := gopacket.CaptureInfo{Timestamp: p.ts, CaptureLength: len(p.data), Length: p.orig}
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func check(t *testing.T, name string, tr *Trace, s []sample, res time.Duration) {
	t.Helper()
	if len(tr.Packets) != len(s) {
		t.Fatalf("%s: %d packets, want %d", name, len(tr.Packets), len(s))
	}
	var total uint64
	for i, p := range tr.Packets {
		want := s[i].ts.Truncate(res).UnixNano()
		if !bytes.Equal(p.Data, s[i].data) || p.Time != want || p.OrigLen != s[i].orig || p.Record != i+1 {
			t.Fatalf("%s: packet %d: %d bytes at %d orig %d record %d, want %d bytes at %d orig %d",
				name, i, len(p.Data), p.Time, p.OrigLen, p.Record, len(s[i].data), want, s[i].orig)
		}
		total += uint64(len(p.Data))
	}
	if tr.Bytes != total || tr.Snapped != len(s)/2 {
		t.Errorf("%s: %d bytes, %d snapped; want %d, %d", name, tr.Bytes, tr.Snapped, total, len(s)/2)
	}
}

func TestParseWritten(t *testing.T) {
	s := samples(9)
	tr, err := Parse(writePcap(t, s, false))
	if err != nil || tr.Format != Pcap || tr.Nanos {
		t.Fatalf("pcap: %+v %v", tr, err)
	}
	check(t, "pcap", tr, s, time.Microsecond)
	tr, err = Parse(writePcap(t, s, true))
	if err != nil || tr.Format != Pcap || !tr.Nanos {
		t.Fatalf("nanosecond pcap: %v", err)
	}
	check(t, "nanosecond pcap", tr, s, 1)
	tr, err = Parse(writePcapNG(t, s))
	if err != nil || tr.Format != PcapNG || !tr.Nanos {
		t.Fatalf("pcapng: %v", err)
	}
	check(t, "pcapng", tr, s, 1)
}

// swapPcap rewrites a little-endian pcap in big-endian order.
func swapPcap(b []byte) []byte {
	out := bytes.Clone(b)
	sw := func(off, size int) {
		switch size {
		case 2:
			binary.BigEndian.PutUint16(out[off:], binary.LittleEndian.Uint16(b[off:]))
		case 4:
			binary.BigEndian.PutUint32(out[off:], binary.LittleEndian.Uint32(b[off:]))
		}
	}
	for _, f := range [][2]int{{0, 4}, {4, 2}, {6, 2}, {8, 4}, {12, 4}, {16, 4}, {20, 4}} {
		sw(f[0], f[1])
	}
	for off := 24; off < len(b); {
		caplen := int(binary.LittleEndian.Uint32(b[off+8:]))
		for i := range 4 {
			sw(off+4*i, 4)
		}
		off += 16 + caplen
	}
	return out
}

func TestParseBigEndian(t *testing.T) {
	s := samples(5)
	tr, err := Parse(swapPcap(writePcap(t, s, true)))
	if err != nil {
		t.Fatal(err)
	}
	check(t, "big-endian pcap", tr, s, 1)
}

// ngBlock builds a little-endian pcapng block.
func ngBlock(typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := binary.LittleEndian.AppendUint32(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, n)
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, n)
}

func ngSHB() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 0x1a2b3c4d)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint64(b, ^uint64(0))
	return ngBlock(blockSHB, b)
}

func ngIDB(link uint16, snaplen uint32, opts ...[]byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, link)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, snaplen)
	for _, o := range opts {
		b = append(b, o...)
	}
	if len(opts) > 0 {
		b = append(b, 0, 0, 0, 0)
	}
	return ngBlock(blockIDB, b)
}

func ngOpt(code uint16, v ...byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func ngEPB(ifid uint32, ticks uint64, data []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, ifid)
	b = binary.LittleEndian.AppendUint32(b, uint32(ticks>>32))
	b = binary.LittleEndian.AppendUint32(b, uint32(ticks))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return ngBlock(blockEPB, append(b, data...))
}

func TestParseNGResolutions(t *testing.T) {
	frame := bytes.Repeat([]byte{0xab}, 61)
	var f []byte
	f = append(f, ngSHB()...)
	f = append(f, ngIDB(1, 0)...)                                                 // 0: µs (default)
	f = append(f, ngIDB(1, 0, ngOpt(9, 0x80|10))...)                              // 1: 2^-10 s
	f = append(f, ngIDB(1, 0, ngOpt(9, 3), ngOpt(14, 5, 0, 0, 0, 0, 0, 0, 0))...) // 2: ms, +5 s
	f = append(f, ngBlock(4, []byte{0, 0, 0, 0})...)                              // a name resolution block, skipped
	f = append(f, ngEPB(0, 1_500_000, frame)...)
	f = append(f, ngEPB(1, 3*1024+512, frame)...)
	f = append(f, ngEPB(2, 2500, frame)...)
	spb := binary.LittleEndian.AppendUint32(nil, uint32(len(frame)))
	f = append(f, ngBlock(blockSPB, append(spb, frame...))...)
	tr, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{1_500_000_000, 3_500_000_000, 7_500_000_000, 7_500_000_000}
	if len(tr.Packets) != len(want) {
		t.Fatalf("%d packets", len(tr.Packets))
	}
	for i, p := range tr.Packets {
		if p.Time != want[i] || !bytes.Equal(p.Data, frame) {
			t.Errorf("packet %d at %d (%d bytes), want %d", i+1, p.Time, len(p.Data), want[i])
		}
	}
	if tr.Nanos {
		t.Error("resolutions of 1 µs and coarser reported as finer")
	}
}

func TestParseErrors(t *testing.T) {
	s := samples(4)
	pcap := writePcap(t, s, false)
	// Offsets of the records: 24, then 16 + len(data) each.
	offs := []int{24}
	for _, p := range s {
		offs = append(offs, offs[len(offs)-1]+16+len(p.data))
	}
	ng := writePcapNG(t, s)
	ngTrunc := ng[:len(ng)-10]

	corrupt := bytes.Clone(pcap)
	binary.LittleEndian.PutUint32(corrupt[offs[2]+8:], 0xfffffff0)
	ngCorrupt := bytes.Clone(ng)
	binary.LittleEndian.PutUint32(ngCorrupt[len(ng)-4:], 12345) // last block's trailing length

	for _, c := range []struct {
		name    string
		data    []byte
		packets int
		record  int
		offset  int
		is      error
		msg     string
	}{
		{"pcap cut in the last record", pcap[:len(pcap)-30], 3, 4, offs[3], ErrTruncated, "captured length 81 but only 51 bytes left"},
		{"pcap cut in a record header", pcap[:offs[2]+5], 2, 3, offs[2], ErrTruncated, "record header has 5 of 16 bytes"},
		{"pcap with a corrupt length", corrupt, 2, 3, offs[2], ErrCorrupt, "captured length 4294967280 larger than 262144"},
		{"pcapng cut", ngTrunc, 3, 4, -1, ErrTruncated, "block type 0x6"},
		{"pcapng with a corrupt block", ngCorrupt, 3, 4, -1, ErrCorrupt, "at the end"},
	} {
		tr, err := Parse(c.data)
		var re *RecordError
		if !errors.As(err, &re) || !errors.Is(err, c.is) || tr == nil {
			t.Errorf("%s: %v, want a record error", c.name, err)
			continue
		}
		if len(tr.Packets) != c.packets || re.Record != c.record || c.offset >= 0 && re.Offset != int64(c.offset) ||
			!strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "record ") {
			t.Errorf("%s: %d packets, %v (record %d offset %d); want %d packets, record %d offset %d, %q",
				c.name, len(tr.Packets), err, re.Record, re.Offset, c.packets, c.record, c.offset, c.msg)
		}
	}

	for _, c := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "not a pcap"},
		{"text", []byte("hello, world, this is not a trace"), "not a pcap"},
		{"short header", pcap[:20], "pcap file header"},
		{"no packets", pcap[:24], "no packets"},
		{"not Ethernet", func() []byte {
			b := bytes.Clone(pcap)
			binary.LittleEndian.PutUint32(b[20:], 101)
			return b
		}(), "link type 101"},
		{"short section header", ng[:10], "pcapng section header"},
	} {
		if tr, err := Parse(c.data); err == nil || tr != nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, %v; want an error with %q", c.name, tr, err, c.msg)
		}
	}
}

// FuzzParseTrace checks that Parse never panics, and that what it returns
// is consistent with its input.
func FuzzParseTrace(f *testing.F) {
	s := samples(3)
	f.Add(writePcap(f, s, false))
	f.Add(swapPcap(writePcap(f, s[:1], true)))
	f.Add(writePcapNG(f, s))
	f.Add(append(append(ngSHB(), ngIDB(1, 0, ngOpt(9, 0x80|30))...), ngEPB(0, 1<<40, []byte{1, 2, 3})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Parse(data)
		if tr == nil {
			if err == nil {
				t.Fatal("nil trace without an error")
			}
			return
		}
		var re *RecordError
		if err != nil && (!errors.As(err, &re) || re.Offset < 0 || re.Offset >= int64(len(data)) || re.Record != len(tr.Packets)+1) {
			t.Fatalf("error %v with a trace of %d packets", err, len(tr.Packets))
		}
		var total uint64
		for i, p := range tr.Packets {
			if p.Record != i+1 || p.Offset < 0 || p.Offset >= int64(len(data)) || len(p.Data) > maxCapLen || p.OrigLen < len(p.Data) {
				t.Fatalf("packet %d: record %d offset %d length %d orig %d", i, p.Record, p.Offset, len(p.Data), p.OrigLen)
			}
			total += uint64(len(p.Data))
		}
		if total != tr.Bytes {
			t.Fatalf("bytes %d, packets hold %d", tr.Bytes, total)
		}
	})
}
