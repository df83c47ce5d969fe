package afxdp

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ring is the shared part of one AF_XDP ring: free-running 32-bit producer
// and consumer indexes and a flags word, each in memory shared with the
// kernel and touched only through atomics, plus cached copies so that each
// batch costs one atomic load and one atomic store.
type ring struct {
	producer *atomic.Uint32
	consumer *atomic.Uint32
	flags    *atomic.Uint32
	mask     uint32
	size     uint32

	cachedProd uint32
	cachedCons uint32
	mapping    []byte
}

// free returns how many entries a producer can write, looking at the
// kernel's consumer index only if the cached one shows fewer than want.
func (r *ring) free(want uint32) uint32 {
	n := r.size - (r.cachedProd - r.cachedCons)
	if n < want {
		r.cachedCons = r.consumer.Load()
		n = r.size - (r.cachedProd - r.cachedCons)
	}
	return n
}

// submit publishes n entries written after the cached producer index.
func (r *ring) submit(n uint32) {
	r.cachedProd += n
	r.producer.Store(r.cachedProd)
}

// available returns how many entries (at most want) a consumer can read,
// looking at the kernel's producer index only if the cached one shows fewer
// than want.
func (r *ring) available(want uint32) uint32 {
	n := r.cachedProd - r.cachedCons
	if n < want {
		r.cachedProd = r.producer.Load()
		n = r.cachedProd - r.cachedCons
	}
	// A producer index more than a ring ahead is impossible from a sane
	// kernel; never trust it with more than a ring's worth.
	return min(n, want, r.size)
}

// release gives n read entries back to the producer.
func (r *ring) release(n uint32) {
	r.cachedCons += n
	r.consumer.Store(r.cachedCons)
}

// needWakeup reports whether the kernel asked to be woken for this ring.
func (r *ring) needWakeup() bool { return r.flags.Load()&unix.XDP_RING_NEED_WAKEUP != 0 }

// addrRing is a fill or completion ring: entries are UMEM addresses.
type addrRing struct {
	ring
	addrs []uint64
}

// descRing is an RX or TX ring: entries are descriptors.
type descRing struct {
	ring
	descs []unix.XDPDesc
}
