package ports

import "testing"

func TestRingArithmetic(t *testing.T) {
	tests := []struct {
		name             string
		n, i             uint32 // ring size, index under test
		next, prev       uint32 // expected neighbours of i
		k, advance       uint32 // i advanced by k
		distTo, wantDist uint32 // steps from i to distTo
		lo, hi           uint32 // cyclic interval
		wantIn           bool   // i in [lo, hi]
	}{
		{name: "middle", n: 8, i: 3, next: 4, prev: 2, k: 2, advance: 5, distTo: 6, wantDist: 3, lo: 2, hi: 5, wantIn: true},
		{name: "last wraps", n: 8, i: 7, next: 0, prev: 6, k: 3, advance: 2, distTo: 1, wantDist: 2, lo: 6, hi: 1, wantIn: true},
		{name: "first wraps back", n: 8, i: 0, next: 1, prev: 7, k: 8, advance: 0, distTo: 7, wantDist: 7, lo: 6, hi: 1, wantIn: true},
		{name: "not a power of two", n: 5, i: 4, next: 0, prev: 3, k: 4, advance: 3, distTo: 2, wantDist: 3, lo: 1, hi: 3, wantIn: false},
		{name: "empty interval holds its bound", n: 5, i: 2, next: 3, prev: 1, k: 0, advance: 2, distTo: 2, wantDist: 0, lo: 2, hi: 2, wantIn: true},
		{name: "outside wrapped interval", n: 10, i: 5, next: 6, prev: 4, k: 5, advance: 0, distTo: 4, wantDist: 9, lo: 8, hi: 2, wantIn: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := next(tt.i, tt.n); got != tt.next {
				t.Errorf("next(%d) = %d, want %d", tt.i, got, tt.next)
			}
			if got := prev(tt.i, tt.n); got != tt.prev {
				t.Errorf("prev(%d) = %d, want %d", tt.i, got, tt.prev)
			}
			if got := advance(tt.i, tt.k, tt.n); got != tt.advance {
				t.Errorf("advance(%d, %d) = %d, want %d", tt.i, tt.k, got, tt.advance)
			}
			if got := dist(tt.i, tt.distTo, tt.n); got != tt.wantDist {
				t.Errorf("dist(%d, %d) = %d, want %d", tt.i, tt.distTo, got, tt.wantDist)
			}
			if got := inRange(tt.lo, tt.i, tt.hi, tt.n); got != tt.wantIn {
				t.Errorf("inRange(%d, %d, %d) = %v, want %v", tt.lo, tt.i, tt.hi, got, tt.wantIn)
			}
		})
	}
}

func TestInRangeRejectsOutOfRing(t *testing.T) {
	if inRange(0, 8, 7, 8) {
		t.Error("index equal to the ring size accepted")
	}
	if inRange(0, 0xffffffff, 7, 8) {
		t.Error("huge index accepted")
	}
}

// TestRingInvariants walks every (head, tail) pair of small rings and checks
// that space and emptiness agree with netmap's definitions.
func TestRingInvariants(t *testing.T) {
	for n := uint32(2); n <= 9; n++ {
		for h := range n {
			for tl := range n {
				r := &Ring{num: n, head: h, tail: tl}
				space := r.Space()
				if space >= n {
					t.Fatalf("n=%d head=%d tail=%d: space %d >= n", n, h, tl, space)
				}
				if r.Empty() != (space == 0) {
					t.Fatalf("n=%d head=%d tail=%d: Empty()=%v but space %d", n, h, tl, r.Empty(), space)
				}
				if advance(h, space, n) != tl {
					t.Fatalf("n=%d head=%d tail=%d: head+space != tail", n, h, tl)
				}
			}
		}
	}
}
