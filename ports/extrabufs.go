package ports

import (
	"encoding/binary"
	"sync"
)

// ExtraBufs is the pool of a region's extra buffers (netmap's
// nr_extra_bufs): the buffers after every ring's, handed to bindings at
// register time, chained through their first four bytes from the
// binding's netmap_if bufs_head, and taken back at close from whatever
// chain bufs_head then holds. The pool itself lives in valed's memory;
// the chains live in the shared buffers and are read back with every
// index checked.
type ExtraBufs struct {
	mu      sync.Mutex
	bufs    []byte // the region's buffer pool
	bufSize int64
	numBufs uint32
	free    []uint32
	isFree  []bool // by buffer index
}

// NewExtraBufs makes the pool of the extra buffers of a region laid out as
// l, all free. mem is the region.
func NewExtraBufs(mem []byte, l *Layout) *ExtraBufs {
	x := &ExtraBufs{
		bufs:    mem[l.BufOfs : l.BufOfs+int64(l.NumBufs)*int64(l.BufSize)],
		bufSize: int64(l.BufSize), numBufs: l.NumBufs, isFree: make([]bool, l.NumBufs),
	}
	for i := l.NumBufs; i > l.NumBufs-l.ExtraBufs; i-- {
		x.put(i - 1)
	}
	return x
}

func (x *ExtraBufs) put(idx uint32) {
	x.free = append(x.free, idx)
	x.isFree[idx] = true
}

// Free returns how many extra buffers the pool holds.
func (x *ExtraBufs) Free() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.free)
}

// Grant takes up to n buffers from the pool, chains them (each one's first
// four bytes hold the next one's index, the last one's 0) and returns the
// first (0 if none) and how many.
func (x *ExtraBufs) Grant(n uint32) (head, got uint32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for ; got < n && len(x.free) > 0; got++ {
		idx := x.free[len(x.free)-1]
		x.free = x.free[:len(x.free)-1]
		x.isFree[idx] = false
		binary.LittleEndian.PutUint32(x.bufs[int64(idx)*x.bufSize:], head)
		head = idx
	}
	return head, got
}

// Reclaim takes back the buffers chained from head, as a closing binding
// left them: any valid buffer index (an application may have swapped
// extra buffers into its rings and ring buffers into the chain, as netmap
// programs do) that is not free already, until the chain ends, leaves the
// pool, or comes back on itself. It returns how many it took.
func (x *ExtraBufs) Reclaim(head uint32) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for idx := head; idx >= reservedBufs && idx < x.numBufs && !x.isFree[idx]; n++ {
		next := binary.LittleEndian.Uint32(x.bufs[int64(idx)*x.bufSize:])
		x.put(idx)
		idx = next
	}
	return n
}
