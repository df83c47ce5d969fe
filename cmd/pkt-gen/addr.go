package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	"github.com/valeswitch/vale/internal/pkt"
)

// defaultGroup is the 16-bit group of an IPv6 address that a range varies
// when nothing says otherwise: the last one, as in netmap's pkt-gen.
const defaultGroup = 7

// addrRange is what -s or -d describes: the addresses and ports the editor
// walks. An IPv4 range varies the whole address between lo and hi; an IPv6
// range, as netmap's pkt-gen does, varies one 16-bit group of the address
// (group), the other groups staying those of base.
type addrRange struct {
	v6             bool
	base           [16]byte // the first address (IPv4: its first 4 bytes)
	group          int      // IPv6: the group (0..7) that varies
	lo, hi         uint32   // the varying value: the IPv4 address, or the group
	loPort, hiPort uint16
}

// single reports whether the range holds one address and one port.
func (r addrRange) single() bool { return r.lo == r.hi && r.loPort == r.hiPort }

// span is the largest varying value: a whole IPv4 address, or one group.
func (r addrRange) span() uint32 {
	if r.v6 {
		return 0xffff
	}
	return 0xffffffff
}

// addr returns the address whose varying part is v.
func (r addrRange) addr(v uint32) netip.Addr {
	b := r.base
	if !r.v6 {
		binary.BigEndian.PutUint32(b[:4], v)
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	binary.BigEndian.PutUint16(b[2*r.group:], uint16(v))
	return netip.AddrFrom16(b)
}

// random draws an address value and a port within the range, or anywhere
// (any value of the varying part, any port) when the range is a single
// address and port, as -z and -Z do.
func (r addrRange) random(rng *rand.Rand) (uint32, uint16) {
	if r.single() {
		return rng.Uint32() & r.span(), uint16(rng.Uint32())
	}
	return r.lo + uint32(rng.Int64N(int64(r.hi-r.lo)+1)),
		r.loPort + uint16(rng.IntN(int(r.hiPort-r.loPort)+1))
}

// parseRange parses -s or -d: addr[:port][-addr[:port]] for IPv4,
// [group@]addr or [group@][addr][:port], twice with "-" for a range, for
// IPv6 (netmap's syntax: brackets around an address followed by a port, and
// group, 0 to 7, the 16-bit group of the address that varies). Without a
// group, an IPv6 range varies the one group in which its ends differ (the
// last when they do not). def is the port when none is given; the end of a
// range gets the start's.
func parseRange(s string, v6 bool, def uint16) (addrRange, error) {
	if !v6 {
		r, err := pkt.ParseRange(s, def)
		if err != nil {
			return addrRange{}, err
		}
		a := addrRange{lo: r.First, hi: r.Last, loPort: r.FirstPort, hiPort: r.LastPort}
		binary.BigEndian.PutUint32(a.base[:], r.First)
		return a, nil
	}
	r, err := parseRange6(s, def)
	if err != nil {
		return addrRange{}, fmt.Errorf("range %q: %w", s, err)
	}
	return r, nil
}

// end6 is one end of an IPv6 range.
type end6 struct {
	addr  [16]byte
	port  uint16
	group int // -1: not given
}

func parseRange6(s string, def uint16) (addrRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := parseEnd6(lo, def)
	if err != nil {
		return addrRange{}, err
	}
	last := first
	if isRange {
		if last, err = parseEnd6(hi, first.port); err != nil {
			return addrRange{}, err
		}
	}
	g, err := rangeGroup(first, last)
	if err != nil {
		return addrRange{}, err
	}
	r := addrRange{v6: true, base: first.addr, group: g, loPort: first.port, hiPort: last.port,
		lo: uint32(binary.BigEndian.Uint16(first.addr[2*g:])), hi: uint32(binary.BigEndian.Uint16(last.addr[2*g:]))}
	if r.hi < r.lo || r.hiPort < r.loPort {
		return addrRange{}, errors.New("end before start")
	}
	return r, nil
}

// rangeGroup returns the group an IPv6 range varies: the one given (the
// same at both ends if given twice), else the only one in which the ends
// differ, else the last. The ends must not differ anywhere else.
func rangeGroup(first, last end6) (int, error) {
	var differ []int
	for i := range 8 {
		if first.addr[2*i] != last.addr[2*i] || first.addr[2*i+1] != last.addr[2*i+1] {
			differ = append(differ, i)
		}
	}
	g := max(first.group, last.group)
	switch {
	case first.group >= 0 && last.group >= 0 && first.group != last.group:
		return 0, fmt.Errorf("groups %d and %d differ", first.group, last.group)
	case g < 0 && len(differ) > 1:
		return 0, fmt.Errorf("the addresses differ in groups %v: a range varies one 16-bit group (give it as group@addr)", differ)
	case g < 0 && len(differ) == 1:
		return differ[0], nil
	case g < 0:
		return defaultGroup, nil
	}
	for _, d := range differ {
		if d != g {
			return 0, fmt.Errorf("the addresses differ in group %d, not only in group %d", d, g)
		}
	}
	return g, nil
}

// parseEnd6 parses [group@]addr or [group@][addr][:port].
func parseEnd6(s string, def uint16) (end6, error) {
	e := end6{port: def, group: -1}
	if g, rest, ok := strings.Cut(s, "@"); ok {
		n, err := strconv.Atoi(g)
		if err != nil || n < 0 || n > 7 {
			return e, fmt.Errorf("group %q is not in [0, 7]", g)
		}
		e.group, s = n, rest
	}
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return e, fmt.Errorf("%q lacks its ]", s)
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			port, ok := strings.CutPrefix(rest, ":")
			v, err := strconv.ParseUint(port, 10, 16)
			if !ok || err != nil {
				return e, fmt.Errorf("%q is not :port", rest)
			}
			e.port = uint16(v)
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is6() || ip.Zone() != "" {
		return e, fmt.Errorf("%q is not an IPv6 address (a port needs brackets: [addr]:port)", host)
	}
	e.addr = ip.As16()
	return e, nil
}
