// Package cli holds what vale's netmap-style command-line tools share: how
// they complete port names and how they print rates.
package cli

import (
	"fmt"
	"strings"
)

// PortName completes a port name as netmap's tools do: a name without a
// "netmap:" or "vale" prefix gets "netmap:".
func PortName(s string) string {
	if strings.HasPrefix(s, "netmap:") || strings.HasPrefix(s, "vale") {
		return s
	}
	return "netmap:" + s
}

// Norm prints v with a unit prefix (K, M, G, T) and three decimals, or as a
// plain integer when normalize is false, as netmap's norm() does: the caller
// appends the unit ("pps", "bps").
func Norm(v float64, normalize bool) string {
	if !normalize {
		return fmt.Sprintf("%.0f ", v)
	}
	units := []string{"", "K", "M", "G", "T"}
	i := 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.3f %s", v, units[i])
}
