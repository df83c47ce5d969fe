package vhostuser

// PrefetchW asks the CPU to bring the cache lines at p and q (if q is not
// nil) into its cache for writing (PREFETCHW), ahead of writes to them:
// the device's writes into buffers and used entries the driver's CPU
// touched last then overlap instead of each waiting for its line. It has
// no other effect; a prefetch never faults.
//
//go:noescape
func PrefetchW(p, q *byte)
