//go:build !amd64

package vhostuser

// PrefetchW does nothing on this architecture (see prefetch_amd64.go).
func PrefetchW(p, q *byte) {}
