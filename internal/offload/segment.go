package offload

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/valeswitch/vale/vale/frame"
)

// MaxFrame is the largest frame Complete takes: a 64 KiB IP packet behind
// an Ethernet header and a VLAN tag.
const MaxFrame = 65535 + 18

// MaxSegments is the most segments Complete makes of one frame.
const MaxSegments = 256

// ErrMalformed is returned (wrapped) for frames whose pending offload does
// not describe them: they cannot be completed and must be dropped.
var ErrMalformed = errors.New("offload does not match the frame")

// Completer does what senders leave to offload: it computes partial
// checksums and cuts TCP segments larger than the MTU into frames, in
// memory of its own (one Completer per goroutine).
type Completer struct {
	frame []byte   // the linearized frame
	arena []byte   // segments
	segs  [][]byte // views into arena (or frame)
}

// NewCompleter allocates a Completer's scratch memory.
func NewCompleter() *Completer {
	return &Completer{
		frame: make([]byte, 0, MaxFrame),
		arena: make([]byte, 0, MaxFrame+MaxSegments*128),
		segs:  make([][]byte, 0, MaxSegments),
	}
}

// Complete returns the frames f becomes once the work o describes is done:
// one frame with its checksum computed, or the segments of a TCP frame,
// each with its own IP and TCP headers and checksums. The frames are valid
// until the next call.
func (c *Completer) Complete(f *frame.Frame) ([][]byte, error) {
	o := f.Offload
	n := f.Len()
	if n > MaxFrame {
		return nil, fmt.Errorf("%w: %d-byte frame", ErrMalformed, n)
	}
	c.frame = append(c.frame[:0], f.Data...)
	for _, m := range f.More {
		c.frame = append(c.frame, m...)
	}
	c.segs = c.segs[:0]
	switch o.GSO {
	case frame.GSONone:
		if o.NeedsCsum {
			if err := checksumAt(c.frame, int(o.CsumStart), int(o.CsumOffset)); err != nil {
				return nil, err
			}
		}
		c.segs = append(c.segs, c.frame)
		return c.segs, nil
	case frame.GSOTCPv4, frame.GSOTCPv6:
		return c.segment(o)
	}
	return nil, fmt.Errorf("%w: segmentation type %d not supported", ErrMalformed, o.GSO)
}

// checksumAt computes the one's complement sum of f[start:] (whose field
// at start+offset holds the pseudo-header sum) and stores it there.
func checksumAt(f []byte, start, offset int) error {
	if start >= len(f) || start+offset+2 > len(f) {
		return fmt.Errorf("%w: checksum at %d+%d in %d bytes", ErrMalformed, start, offset, len(f))
	}
	c := ^fold(sum(f[start:], 0))
	binary.BigEndian.PutUint16(f[start+offset:], c)
	return nil
}

// segment cuts a TCP frame into segments of o.GSOSize payload bytes. The
// headers are read from the frame itself (o.HdrLen is only a hint).
func (c *Completer) segment(o frame.Offload) ([][]byte, error) {
	f := c.frame
	off, length, _, _, ok := l4(f)
	if !ok || (off+length) > len(f) {
		return nil, fmt.Errorf("%w: not TCP over IP", ErrMalformed)
	}
	l3 := l3Start(f)
	v4 := f[l3]>>4 == 4
	if v4 != (o.GSO == frame.GSOTCPv4) || f[l3+ipProtoOffset(v4)] != protoTCP {
		return nil, fmt.Errorf("%w: segmentation type %d for another protocol", ErrMalformed, o.GSO)
	}
	thl := int(f[off+12]>>4) * 4
	if thl < 20 || off+thl > len(f) {
		return nil, fmt.Errorf("%w: TCP header of %d bytes", ErrMalformed, thl)
	}
	hdr := off + thl
	end := off + length // IP packet end; anything after is link padding
	payload := end - hdr
	mss := int(o.GSOSize)
	if mss == 0 {
		return nil, fmt.Errorf("%w: segment size 0", ErrMalformed)
	}
	if payload <= mss {
		// Nothing to cut: finish the checksums.
		if err := finishSegment(f[:end], l3, off, v4); err != nil {
			return nil, err
		}
		c.segs = append(c.segs, f[:end])
		return c.segs, nil
	}
	nseg := (payload + mss - 1) / mss
	if nseg > MaxSegments || nseg*(hdr+mss) > cap(c.arena) {
		return nil, fmt.Errorf("%w: %d segments", ErrMalformed, nseg)
	}
	seq := binary.BigEndian.Uint32(f[off+4:])
	flags := f[off+13]
	var id uint16
	if v4 {
		id = binary.BigEndian.Uint16(f[l3+4:])
	}
	a := c.arena[:0]
	for k := 0; k < nseg; k++ {
		start := hdr + k*mss
		stop := min(start+mss, end)
		segLen := hdr + stop - start
		base := len(a)
		a = append(a, f[:hdr]...)
		a = append(a, f[start:stop]...)
		s := a[base : base+segLen]
		binary.BigEndian.PutUint32(s[off+4:], seq+uint32(k*mss))
		fl := flags
		if k > 0 {
			fl &^= 0x80 // CWR only on the first
		}
		if k < nseg-1 {
			fl &^= 0x09 // FIN and PSH only on the last
		}
		s[off+13] = fl
		if v4 {
			binary.BigEndian.PutUint16(s[l3+2:], uint16(segLen-l3))
			binary.BigEndian.PutUint16(s[l3+4:], id+uint16(k))
		} else {
			binary.BigEndian.PutUint16(s[l3+4:], uint16(segLen-l3-40))
		}
		if err := finishSegment(s, l3, off, v4); err != nil {
			return nil, err
		}
		c.segs = append(c.segs, s)
	}
	c.arena = a
	return c.segs, nil
}

func ipProtoOffset(v4 bool) int {
	if v4 {
		return 9
	}
	return 6
}

// finishSegment computes the IPv4 header checksum and the TCP checksum of
// one segment.
func finishSegment(s []byte, l3, off int, v4 bool) error {
	if v4 {
		ihl := int(s[l3]&0xf) * 4
		s[l3+10], s[l3+11] = 0, 0
		binary.BigEndian.PutUint16(s[l3+10:], ^fold(sum(s[l3:l3+ihl], 0)))
	}
	o, length, csumOff, pseudo, ok := l4(s)
	if !ok {
		return fmt.Errorf("%w: segment lost its headers", ErrMalformed)
	}
	s[csumOff], s[csumOff+1] = 0, 0
	binary.BigEndian.PutUint16(s[csumOff:], ^fold(sum(s[o:o+length], pseudo)))
	return nil
}
