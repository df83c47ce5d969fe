package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
)

// Format is a trace file format.
type Format int

// Trace formats.
const (
	Pcap   Format = iota // libpcap's classic format
	PcapNG               // pcapng
)

// String returns the format's usual name.
func (f Format) String() string {
	if f == PcapNG {
		return "pcapng"
	}
	return "pcap"
}

// linkEthernet is LINKTYPE_ETHERNET, the only link type nmreplay sends.
const linkEthernet = 1

// maxCapLen is the largest captured length a record may claim (libpcap's
// MAXIMUM_SNAPLEN); anything above is taken as corruption.
const maxCapLen = 262144

// Errors wrapped by RecordError.
var (
	ErrTruncated = errors.New("truncated")
	ErrCorrupt   = errors.New("corrupt")
)

// Packet is one packet record of a trace.
type Packet struct {
	Data    []byte // captured bytes (a view into the file's contents)
	Time    int64  // timestamp, ns since the Unix epoch
	OrigLen int    // length on the wire (may exceed len(Data))
	Record  int    // 1-based number of the record among the packets
	Offset  int64  // byte offset of the record in the file
}

// Trace is a parsed trace.
type Trace struct {
	Format  Format
	Nanos   bool     // pcap: nanosecond timestamps; pcapng: a resolution finer than 1 µs
	Packets []Packet // in file order
	Bytes   uint64   // captured bytes of all packets
	Snapped int      // packets captured shorter than they were on the wire
}

// RecordError is a bad record: what is wrong, which record (1-based, counting
// packets; for a bad non-packet block of a pcapng file, the number the next
// packet would have had) and where it starts.
type RecordError struct {
	Record int
	Offset int64
	Err    error
}

// Error describes the record and what is wrong with it.
func (e *RecordError) Error() string {
	return fmt.Sprintf("record %d at byte offset %d: %v", e.Record, e.Offset, e.Err)
}

// Unwrap returns what is wrong (wrapping ErrTruncated or ErrCorrupt when
// the record is).
func (e *RecordError) Unwrap() error { return e.Err }

// Load reads and parses the trace in file path (see Parse).
func Load(path string) (*Trace, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return t, err
}

// Parse parses a pcap (microsecond or nanosecond, either byte order) or a
// pcapng trace of Ethernet frames. The packets keep pointing into data.
//
// If the file header is unusable it returns a nil trace and an error. If a
// record is truncated or corrupt, or is not an Ethernet frame, it returns
// the packets before it together with a *RecordError; the records after a
// bad one are not read. A trace without packets is an error.
func Parse(data []byte) (*Trace, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("not a pcap or pcapng file: only %d bytes: %w", len(data), ErrTruncated)
	}
	var t *Trace
	var err error
	if binary.LittleEndian.Uint32(data) == blockSHB {
		t, err = parseNG(data)
	} else {
		t, err = parsePcap(data)
	}
	if t == nil {
		return nil, err
	}
	if err == nil && len(t.Packets) == 0 {
		return nil, errors.New("the trace holds no packets")
	}
	return t, err
}

// parsePcap parses the classic format.
func parsePcap(data []byte) (*Trace, error) {
	var bo binary.ByteOrder
	t := &Trace{Format: Pcap}
	switch magic := binary.LittleEndian.Uint32(data); magic {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
		t.Nanos = magic == 0xa1b23c4d
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
		t.Nanos = magic == 0x4d3cb2a1
	default:
		return nil, fmt.Errorf("not a pcap or pcapng file (magic %#08x)", magic)
	}
	if len(data) < 24 {
		return nil, fmt.Errorf("pcap file header: %d of 24 bytes: %w", len(data), ErrTruncated)
	}
	if major := bo.Uint16(data[4:]); major != 2 {
		return nil, fmt.Errorf("pcap version %d.%d not supported", major, bo.Uint16(data[6:]))
	}
	if lt := bo.Uint32(data[20:]) & 0x03ffffff; lt != linkEthernet {
		return nil, fmt.Errorf("link type %d: only Ethernet (1) can be replayed", lt)
	}
	unit := int64(1000)
	if t.Nanos {
		unit = 1
	}
	off := 24
	for off < len(data) {
		rec := len(t.Packets) + 1
		bad := func(err error) (*Trace, error) {
			return t, &RecordError{Record: rec, Offset: int64(off), Err: err}
		}
		if len(data)-off < 16 {
			return bad(fmt.Errorf("%w: record header has %d of 16 bytes", ErrTruncated, len(data)-off))
		}
		h := data[off : off+16]
		caplen, origlen := bo.Uint32(h[8:]), bo.Uint32(h[12:])
		if caplen > maxCapLen {
			return bad(fmt.Errorf("%w: captured length %d larger than %d", ErrCorrupt, caplen, maxCapLen))
		}
		if int(caplen) > len(data)-off-16 {
			return bad(fmt.Errorf("%w: captured length %d but only %d bytes left", ErrTruncated, caplen, len(data)-off-16))
		}
		ts := int64(bo.Uint32(h))*1e9 + int64(bo.Uint32(h[4:]))*unit
		t.add(data[off+16:off+16+int(caplen)], ts, int(origlen), off)
		off += 16 + int(caplen)
	}
	return t, nil
}

// add appends a packet.
func (t *Trace) add(b []byte, ts int64, origlen, off int) {
	t.Packets = append(t.Packets, Packet{Data: b, Time: ts, OrigLen: max(origlen, len(b)), Record: len(t.Packets) + 1, Offset: int64(off)})
	t.Bytes += uint64(len(b))
	if origlen > len(b) {
		t.Snapped++
	}
}

// pcapng block types.
const (
	blockSHB = 0x0a0d0d0a // section header
	blockIDB = 1          // interface description
	blockPB  = 2          // packet (obsolete)
	blockSPB = 3          // simple packet
	blockEPB = 6          // enhanced packet
)

// ngIface is what the packets of an interface need from its description.
type ngIface struct {
	link    uint16
	snaplen uint32
	resol   uint8 // if_tsresol
	offset  int64 // if_tsoffset, seconds
}

// ns converts a timestamp in the interface's units to ns since the epoch.
func (i *ngIface) ns(ticks uint64) int64 {
	var ns uint64
	if i.resol&0x80 == 0 {
		switch e := int(i.resol); {
		case e <= 9:
			ns = ticks * pow10(9-e)
		case e-9 <= 19:
			ns = ticks / pow10(e-9)
		}
	} else {
		e := uint(i.resol & 0x7f)
		sec, frac := ticks, uint64(0)
		if e < 64 {
			sec, frac = ticks>>e, ticks&(1<<e-1)
		} else {
			sec, frac = 0, ticks
		}
		hi, lo := bits.Mul64(frac, 1e9)
		// (hi:lo) >> e, with e < 128 and frac < 2^e.
		var f uint64
		switch {
		case e == 0:
			f = lo
		case e < 64:
			f = lo>>e | hi<<(64-e)
		default:
			f = hi >> (e - 64)
		}
		ns = sec*1e9 + f
	}
	return int64(ns) + i.offset*1e9
}

func pow10(e int) uint64 {
	p := uint64(1)
	for range e {
		p *= 10
	}
	return p
}

// errNotCapture reports data that is neither pcap nor pcapng.
var errNotCapture = errors.New("not a pcap or pcapng file")

// ngReader is the state of a pcapng parse: the trace so far, the
// section's byte order and interfaces, and the last timestamp (for simple
// packet blocks, which have none).
type ngReader struct {
	t      *Trace
	data   []byte
	bo     binary.ByteOrder
	ifaces []ngIface
	lastTS int64
}

// parseNG parses a pcapng file.
func parseNG(data []byte) (*Trace, error) {
	r := &ngReader{t: &Trace{Format: PcapNG}, data: data}
	for off := 0; off < len(data); {
		btype, blen, err := r.frame(off)
		if err == nil {
			err = r.block(btype, blen, off)
		}
		switch {
		case errors.Is(err, errNotCapture):
			return nil, err
		case err != nil && off == 0:
			return nil, fmt.Errorf("pcapng section header: %w", err)
		case err != nil:
			return r.t, &RecordError{Record: len(r.t.Packets) + 1, Offset: int64(off), Err: fmt.Errorf("block type %#x: %w", btype, err)}
		}
		off += int(blen)
	}
	return r.t, nil
}

// frame reads the type and length of the block at off, checking its
// framing; a section header sets the byte order of what follows.
func (r *ngReader) frame(off int) (btype, blen uint32, err error) {
	data := r.data
	left := len(data) - off
	if left < 12 {
		return 0, 0, fmt.Errorf("%w: block header has %d of 12 bytes", ErrTruncated, left)
	}
	if binary.LittleEndian.Uint32(data[off:]) == blockSHB {
		switch binary.LittleEndian.Uint32(data[off+8:]) {
		case 0x1a2b3c4d:
			r.bo = binary.LittleEndian
		case 0x4d3c2b1a:
			r.bo = binary.BigEndian
		default:
			return blockSHB, 0, fmt.Errorf("%w: bad byte-order magic", ErrCorrupt)
		}
		r.ifaces = r.ifaces[:0]
	}
	if r.bo == nil {
		return 0, 0, errNotCapture
	}
	btype, blen = r.bo.Uint32(data[off:]), r.bo.Uint32(data[off+4:])
	if blen < 12 || blen%4 != 0 {
		return btype, 0, fmt.Errorf("%w: block length %d", ErrCorrupt, blen)
	}
	if blen > uint32(left) {
		return btype, 0, fmt.Errorf("%w: block length %d but only %d bytes left", ErrTruncated, blen, left)
	}
	if tail := r.bo.Uint32(data[off+int(blen)-4:]); tail != blen {
		return btype, 0, fmt.Errorf("%w: block length %d at the start, %d at the end", ErrCorrupt, blen, tail)
	}
	return btype, blen, nil
}

// block reads the body of a block of type btype and length blen at off.
func (r *ngReader) block(btype, blen uint32, off int) error {
	body := r.data[off+8 : off+int(blen)-4]
	switch btype {
	case blockSHB:
		if len(body) < 16 {
			return fmt.Errorf("%w: section header of %d bytes", ErrCorrupt, blen)
		}
		if major := r.bo.Uint16(body[4:]); major != 1 {
			return fmt.Errorf("pcapng version %d.%d not supported", major, r.bo.Uint16(body[6:]))
		}
	case blockIDB:
		return r.iface(body, blen)
	case blockEPB, blockPB:
		return r.packet(btype, body, blen, off)
	case blockSPB:
		return r.simplePacket(body, blen, off)
	}
	return nil
}

// iface reads an interface description.
func (r *ngReader) iface(body []byte, blen uint32) error {
	bo := r.bo
	if len(body) < 8 {
		return fmt.Errorf("%w: interface description of %d bytes", ErrCorrupt, blen)
	}
	ifc := ngIface{link: bo.Uint16(body), snaplen: bo.Uint32(body[4:]), resol: 6}
	if err := ngOptions(bo, body[8:], func(code uint16, v []byte) error {
		switch {
		case code == 9 && len(v) == 1:
			ifc.resol = v[0]
		case code == 14 && len(v) == 8:
			ifc.offset = int64(bo.Uint64(v))
		case code == 9 || code == 14:
			return fmt.Errorf("option %d of %d bytes", code, len(v))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if ifc.resol&0x80 == 0 && ifc.resol > 6 || ifc.resol&0x80 != 0 && ifc.resol&0x7f >= 20 {
		r.t.Nanos = true // finer than a microsecond
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

// packet reads an enhanced packet block or an (obsolete) packet block.
func (r *ngReader) packet(btype uint32, body []byte, blen uint32, off int) error {
	bo := r.bo
	if len(body) < 20 {
		what := "enhanced packet block"
		if btype == blockPB {
			what = "packet block"
		}
		return fmt.Errorf("%w: %s of %d bytes", ErrCorrupt, what, blen)
	}
	ifid := bo.Uint32(body)
	if btype == blockPB {
		ifid = uint32(bo.Uint16(body))
	}
	if ifid >= uint32(len(r.ifaces)) {
		return fmt.Errorf("%w: interface %d not described", ErrCorrupt, ifid)
	}
	ifc := &r.ifaces[ifid]
	ticks := uint64(bo.Uint32(body[4:]))<<32 | uint64(bo.Uint32(body[8:]))
	caplen, origlen := bo.Uint32(body[12:]), bo.Uint32(body[16:])
	if caplen > maxCapLen || caplen > uint32(len(body)-20) {
		return fmt.Errorf("%w: captured length %d in a block of %d bytes", ErrCorrupt, caplen, blen)
	}
	if ifc.link != linkEthernet {
		return fmt.Errorf("link type %d: only Ethernet (1) can be replayed", ifc.link)
	}
	r.lastTS = ifc.ns(ticks)
	r.t.add(body[20:20+caplen], r.lastTS, int(origlen), off)
	return nil
}

// simplePacket reads a simple packet block: interface 0, no timestamp (it
// goes with the previous packet).
func (r *ngReader) simplePacket(body []byte, blen uint32, off int) error {
	if len(body) < 4 {
		return fmt.Errorf("%w: simple packet block of %d bytes", ErrCorrupt, blen)
	}
	if len(r.ifaces) == 0 {
		return fmt.Errorf("%w: interface 0 not described", ErrCorrupt)
	}
	origlen := r.bo.Uint32(body)
	caplen := origlen
	if s := r.ifaces[0].snaplen; s != 0 {
		caplen = min(caplen, s)
	}
	caplen = min(caplen, uint32(len(body)-4))
	if r.ifaces[0].link != linkEthernet {
		return fmt.Errorf("link type %d: only Ethernet (1) can be replayed", r.ifaces[0].link)
	}
	r.t.add(body[4:4+caplen], r.lastTS, int(origlen), off)
	return nil
}

// ngOptions walks a pcapng option list.
func ngOptions(bo binary.ByteOrder, b []byte, fn func(code uint16, v []byte) error) error {
	for len(b) >= 4 {
		code, n := bo.Uint16(b), int(bo.Uint16(b[2:]))
		if code == 0 {
			return nil
		}
		padded := (n + 3) &^ 3
		if padded > len(b)-4 {
			return fmt.Errorf("option %d of %d bytes overruns its block", code, n)
		}
		if err := fn(code, b[4:4+n]); err != nil {
			return err
		}
		b = b[4+padded:]
	}
	return nil
}
