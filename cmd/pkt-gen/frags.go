package main

import "fmt"

// maxFrags is the most fragments a frame may have: netmap's -F limit (the
// switch takes chains of up to ports.MaxFrags slots).
const maxFrags = 63

// fragPlan is how tx cuts frames into slots chained with NS_MOREFRAG.
type fragPlan struct {
	size  int // bytes per fragment, but the last, which takes the rest
	count int // fragments of a frame of the longest length
}

// planFragments cuts frames of at most length bytes as netmap's pkt-gen
// does: into frags fragments of equal size, the last taking the remainder,
// or, if that makes them larger than fragSize (-M; 0 or more than a buffer:
// maxLen, a buffer), into as many fragments of fragSize bytes as needed. A
// frame too long for one buffer is cut even without -F or -M. Shorter
// frames (-l given twice) take fewer fragments.
func planFragments(length, frags, fragSize, maxLen int) (fragPlan, error) {
	limit := maxLen
	if fragSize > 0 && fragSize < limit {
		limit = fragSize
	}
	if frags > length {
		return fragPlan{}, fmt.Errorf("-F %d: more fragments than the %d bytes of a frame", frags, length)
	}
	p := fragPlan{size: length / frags, count: frags}
	if p.size > limit {
		p.size, p.count = limit, (length+limit-1)/limit
	}
	for length-(p.count-1)*p.size > maxLen {
		p.count++ // the remainder must fit a buffer
	}
	if p.count > maxFrags {
		return fragPlan{}, fmt.Errorf("frames of %d bytes need %d fragments of %d bytes (buffers of %d bytes), more than %d",
			length, p.count, p.size, maxLen, maxFrags)
	}
	return p, nil
}

// next returns the length of fragment k of a frame when left bytes of it
// remain.
func (p fragPlan) next(k, left int) int {
	if k < p.count-1 && left > p.size {
		return p.size
	}
	return left
}
