package ports

// Frame is one Ethernet frame in a [Batch]: a view of the buffers that hold
// it in the memory of the port that sent it. A frame spanning several slots
// (NS_MOREFRAG) has its first fragment in Data and the others in More.
type Frame struct {
	Data  []byte   // first (usually only) fragment
	More  [][]byte // further fragments, nil for single-slot frames
	Flags uint16   // NS_* flags of the first slot (NS_NO_LEARN matters to the switch)
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
	Time  int64
	frags [][]byte
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
}

// Add appends a single-fragment frame.
func (b *Batch) Add(data []byte, flags uint16) {
	b.Frames = append(b.Frames, Frame{Data: data, Flags: flags})
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
