// Package frame holds the switch's working types: the frames a port hands
// to the switch in one round (a Batch of Frame views into the port's
// memory) and the offloads a frame may leave pending. Every kind of port
// and the switch share them; nothing here knows about shared memory.
package frame

// Limits of a round.
const (
	MaxBatch = 1024 // slots the switch takes from a ring per round
	MaxFrags = 64   // slots a single frame may span (NS_MOREFRAG)
)

// Frame is one Ethernet frame in a [Batch]: a view of the buffers that hold
// it in the memory of the port that sent it. A frame spanning several slots
// (NS_MOREFRAG) has its first fragment in Data and the others in More.
type Frame struct {
	Data  []byte   // first (usually only) fragment
	More  [][]byte // further fragments, nil for single-slot frames
	Flags uint16   // NS_* flags of the first slot (NS_NO_LEARN matters to the switch)
	// Offload is what the sender left undone (a partial checksum, a TCP
	// segment larger than the MTU), as a virtio-net header says it; the
	// zero value means a complete frame.
	Offload Offload
}

// Offload describes the work a frame's sender left to its receiver, with
// the meaning of the virtio-net header's fields (virtio 1.x, 5.1.6).
type Offload struct {
	// NeedsCsum: the checksum from CsumStart to the end of the frame goes
	// at CsumStart+CsumOffset (which holds the pseudo-header sum).
	NeedsCsum  bool
	CsumStart  uint16
	CsumOffset uint16
	// GSO is GSONone or the kind of segmentation left to do: the frame is
	// one TCP segment of up to 64 KiB to cut into GSOSize-byte payloads
	// behind headers of HdrLen bytes.
	GSO     uint8
	ECN     bool // the segments carry ECN (CWR is set on the first only)
	GSOSize uint16
	HdrLen  uint16
}

// Kinds of segmentation offload (VIRTIO_NET_HDR_GSO_*).
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3
	GSOTCPv6 = 4
)

// IsZero reports whether nothing is left to do.
func (o Offload) IsZero() bool { return o == Offload{} }

// OffloadCaps says which pending work a port takes from the switch as it
// is: partial checksums and TCP segmentation over IPv4 and IPv6.
type OffloadCaps struct {
	Csum, TSO4, TSO6 bool
}

// Accepts reports whether a port with caps c takes a frame with o pending.
func (c OffloadCaps) Accepts(o Offload) bool {
	switch o.GSO {
	case GSONone:
	case GSOTCPv4:
		if !c.TSO4 {
			return false
		}
	case GSOTCPv6:
		if !c.TSO6 {
			return false
		}
	default:
		return false
	}
	return !o.NeedsCsum || c.Csum
}

// Len returns the length of the whole frame.
func (f *Frame) Len() int {
	n := len(f.Data)
	for _, m := range f.More {
		n += len(m)
	}
	return n
}

// Batch is the set of frames a port hands to the switch in one round. It is
// allocated once per worker and reused, so forwarding does not allocate.
type Batch struct {
	Frames []Frame
	// Time is when the switch took the batch (CLOCK_REALTIME, ns); ports
	// that timestamp deliveries use it.
	Time int64
	// Offloads counts the frames with pending offloads (see AddOffload).
	Offloads int
	frags    [][]byte
}

// NewBatch returns an empty batch able to hold a full round of frames.
func NewBatch() *Batch {
	return &Batch{
		Frames: make([]Frame, 0, MaxBatch+MaxFrags),
		frags:  make([][]byte, 0, MaxBatch+MaxFrags),
	}
}

// Reset empties the batch. The frames are not zeroed: Add overwrites every
// field, and what they point to is port memory, not the Go heap.
func (b *Batch) Reset() {
	b.Frames = b.Frames[:0]
	b.frags = b.frags[:0]
	b.Offloads = 0
}

// Add appends a single-fragment frame.
func (b *Batch) Add(data []byte, flags uint16) {
	b.Frames = append(b.Frames, Frame{Data: data, Flags: flags})
}

// AddOffload appends a single-fragment frame with work left to do (none if
// o is zero).
func (b *Batch) AddOffload(data []byte, o Offload) {
	b.Frames = append(b.Frames, Frame{Data: data, Offload: o})
	if !o.IsZero() {
		b.Offloads++
	}
}

// AddFragment appends a fragment to the last frame of the batch.
func (b *Batch) AddFragment(data []byte) {
	f := &b.Frames[len(b.Frames)-1]
	if f.More == nil {
		start := len(b.frags)
		b.frags = append(b.frags, data)
		f.More = b.frags[start:len(b.frags):len(b.frags)]
		return
	}
	// The fragments of the last frame are at the end of b.frags.
	start := len(b.frags) - len(f.More)
	b.frags = append(b.frags, data)
	f.More = b.frags[start:len(b.frags):len(b.frags)]
}

// Truncate drops the frames from the n-th on (a port that took them from
// its ring gives them back), with their fragments and offload counts.
func (b *Batch) Truncate(n int) {
	frags := 0
	for i := n; i < len(b.Frames); i++ {
		frags += len(b.Frames[i].More)
		if !b.Frames[i].Offload.IsZero() {
			b.Offloads--
		}
	}
	b.Frames = b.Frames[:n]
	b.frags = b.frags[:len(b.frags)-frags]
}
