package ports

// Ring index arithmetic for rings of any size (netmap does not require a
// power of two). All functions take indexes already known to be < n.

// next returns the slot after i.
func next(i, n uint32) uint32 {
	if i+1 == n {
		return 0
	}
	return i + 1
}

// prev returns the slot before i.
func prev(i, n uint32) uint32 {
	if i == 0 {
		return n - 1
	}
	return i - 1
}

// advance returns the slot k positions after i, for k <= n.
func advance(i, k, n uint32) uint32 {
	i += k
	if i >= n {
		i -= n
	}
	return i
}

// dist returns how many steps forward lead from a to b.
func dist(a, b, n uint32) uint32 {
	if b >= a {
		return b - a
	}
	return b + n - a
}

// inRange reports whether x lies in the cyclic interval [a, b].
func inRange(a, x, b, n uint32) bool {
	return x < n && dist(a, x, n) <= dist(a, b, n)
}
