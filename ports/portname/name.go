// Package portname parses netmap's port names (netmap:eth0-1/x,
// vale0:a{3, vale0:b/rt, vale0:c@conf:rings=2) into what they ask for: the
// port, the rings to bind, the flags, monitors and pipe ends, and the
// @conf options; and it keeps track of which rings a binding claims.
package portname

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/valeswitch/vale/ports"
)

// RegMode says which rings of a port an open binds (netmap's nr_mode).
type RegMode int

// Binding modes, as netmap's NR_REG_*.
const (
	RegAllNIC RegMode = iota // all hardware (non-host) ring pairs: no suffix
	RegOneNIC                // one ring pair: "-N"
	RegSW                    // all host ring pairs: "^"
	RegOneSW                 // one host ring pair: "^N"
	RegNICSW                 // hardware and host rings: "*"
)

// String describes the mode.
func (m RegMode) String() string {
	switch m {
	case RegAllNIC:
		return "all rings"
	case RegOneNIC:
		return "one ring pair"
	case RegSW:
		return "host rings"
	case RegOneSW:
		return "one host ring pair"
	case RegNICSW:
		return "all and host rings"
	}
	return fmt.Sprintf("mode %d", int(m))
}

// RegFlags are the "/" flags of a name (netmap's nr_flags).
type RegFlags uint32

// Flags, one per letter after "/".
const (
	FlagExclusive RegFlags = 1 << iota // "x": no one else may bind the same rings
	FlagZCopyMon                       // "z": zero-copy monitor
	FlagMonitorTx                      // "t": monitor what the port transmits
	FlagMonitorRx                      // "r": monitor what the port receives
	FlagRxOnly                         // "R": bind RX rings only
	FlagTxOnly                         // "T": bind TX rings only
)

var flagLetters = []struct {
	c byte
	f RegFlags
}{
	{'x', FlagExclusive}, {'z', FlagZCopyMon}, {'t', FlagMonitorTx},
	{'r', FlagMonitorRx}, {'R', FlagRxOnly}, {'T', FlagTxOnly},
}

// Conf holds the @conf: option: ring and slot counts for a port that the open
// creates. Zero means "not given". The more specific keys (tx-rings) win over
// the general ones (rings).
type Conf struct {
	Rings, TxRings, RxRings             uint32
	HostRings, HostTxRings, HostRxRings uint32
	Slots, TxSlots, RxSlots             uint32
	// Mode is what "lossless=" asks of a VALE port this open creates:
	// ModeUnset, ModeDrop (lossless=0) or ModeLossless (lossless=1).
	Mode uint32
}

// Modes a port may be asked for in @conf (see vale.Mode).
const (
	ModeUnset    = 0 // the switch's
	ModeDrop     = 1 // a full RX ring drops what the switch has for it
	ModeLossless = 2 // the switch holds senders back until it has room
)

// Geometry returns c without its mode: the part that shapes memory.
func (c Conf) Geometry() Conf {
	c.Mode = ModeUnset
	return c
}

// IsZero reports whether nothing was configured.
func (c Conf) IsZero() bool { return c == Conf{} }

// Apply returns g with the values c gives.
func (c Conf) Apply(g ports.Geometry) ports.Geometry {
	pick := func(specific, general, def uint32) uint32 {
		switch {
		case specific != 0:
			return specific
		case general != 0:
			return general
		}
		return def
	}
	g.TxRings = pick(c.TxRings, c.Rings, g.TxRings)
	g.RxRings = pick(c.RxRings, c.Rings, g.RxRings)
	g.TxSlots = pick(c.TxSlots, c.Slots, g.TxSlots)
	g.RxSlots = pick(c.RxSlots, c.Slots, g.RxSlots)
	return g
}

// Name is a parsed port name, netmap's grammar:
//
//	portspec  := subsystem ':' vpname mode* option*
//	subsystem := "netmap" | "vale" ident?
//	vpname    := ident | ident '{' ident | ident '}' ident
//	mode      := '^' [N] | '*' | '-' N | '@' N | '/' flag+
//	flag      := 'x' | 'z' | 't' | 'r' | 'R' | 'T'
//	option    := '@' name [':' key=value (',' key=value)*]
//
// For example vale0:a, vale0:a-1/x, vale:b@conf:rings=2,slots=2048,
// netmap:eth0^ and netmap:p{1. A bare vale switch name ("vale:") selects the
// default switch "vale".
type Name struct {
	Subsystem string   // "netmap" or "vale"
	Switch    string   // for vale names: "vale" plus the identifier, e.g. "vale0"
	Port      string   // the port (interface) name, without pipe suffix
	Pipe      byte     // '{' (master end), '}' (slave end) or 0
	PipeID    string   // pipe identifier after '{' or '}'
	Mode      RegMode  // which rings to bind
	Ring      int      // ring for RegOneNIC and RegOneSW
	MemID     int      // "@N": allocator to use; 0 if not given
	Flags     RegFlags // "/" flags
	Conf      Conf     // "@conf:" option
	Options   []string // names of the "@" options given, in order
}

// maxNameLen is netmap's NETMAP_REQ_IFNAMSIZ: the name without the "netmap:"
// prefix must be shorter.
const maxNameLen = 64

// maxRing is netmap's NETMAP_RING_MASK: ring numbers must be smaller.
const maxRing = 0x0fff

// ParseName parses a port name. Errors name the part that was not understood.
func ParseName(s string) (Name, error) {
	var n Name
	rest, err := n.parsePrefix(s)
	if err == nil {
		rest, err = n.parsePort(rest)
	}
	if err == nil {
		err = n.parseModifiers(rest)
	}
	if err != nil {
		return Name{}, fmt.Errorf("port name %q: %w", s, err)
	}
	return n, nil
}

// parsePrefix reads "netmap:" or "valeX:" and returns what follows.
func (n *Name) parsePrefix(s string) (string, error) {
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		if strings.HasPrefix(s, "netmap") || strings.HasPrefix(s, "vale") {
			return "", errors.New("missing ':' after the prefix")
		}
		return "", errors.New("prefix unknown or missing (use netmap:NAME or valeX:NAME)")
	}
	prefix := s[:colon]
	switch {
	case prefix == "netmap":
		n.Subsystem = "netmap"
	case strings.HasPrefix(prefix, "vale"):
		if !isIdent(prefix[len("vale"):], true) {
			return "", fmt.Errorf("invalid switch identifier %q", prefix[len("vale"):])
		}
		n.Subsystem, n.Switch = "vale", prefix
	case strings.HasPrefix(prefix, "netmap"):
		return "", errors.New("no identifier allowed between 'netmap' and ':'")
	default:
		return "", fmt.Errorf("prefix %q unknown (use netmap:NAME or valeX:NAME)", prefix)
	}
	return s[colon+1:], nil
}

// parsePort reads the port name, with its pipe suffix, which runs to the
// first mode character, and returns what follows.
func (n *Name) parsePort(rest string) (string, error) {
	end := strings.IndexAny(rest, "-*^/@")
	if end < 0 {
		end = len(rest)
	}
	vp := rest[:end]
	rest = rest[end:]
	if vp == "" {
		return "", errors.New("empty port name")
	}
	// netmap's limit applies to what reaches the kernel: the whole name for
	// VALE ports, the interface name for netmap: ones.
	if full := len(vp) + len(n.Switch) + 1; (n.Subsystem == "vale" && full >= maxNameLen) || len(vp) >= maxNameLen {
		return "", fmt.Errorf("port name too long (at most %d bytes)", maxNameLen-1)
	}
	if i := strings.IndexAny(vp, "{}"); i >= 0 {
		n.Pipe, n.PipeID = vp[i], vp[i+1:]
		vp = vp[:i]
		switch {
		case n.PipeID == "":
			return "", fmt.Errorf("empty pipe identifier after %q", string(n.Pipe))
		case !isIdent(n.PipeID, false):
			return "", fmt.Errorf("invalid pipe identifier %q", n.PipeID)
		case vp == "":
			return "", fmt.Errorf("empty port name before %q", string(n.Pipe))
		}
	}
	if n.Subsystem == "vale" && !isIdent(vp, false) {
		return "", fmt.Errorf("invalid VALE port name %q (letters, digits and '_' only)", vp)
	}
	if n.Subsystem == "netmap" && !isIfName(vp) {
		return "", fmt.Errorf("invalid interface name %q", vp)
	}
	n.Port = vp
	return rest, nil
}

// parseModifiers reads the ring selection, flags, memory id and options,
// in any order as netmap's state machine allows.
func (n *Name) parseModifiers(rest string) error {
	modeSet := false
	var err error
	for rest != "" && err == nil {
		c := rest[0]
		switch {
		case c == '^' || c == '*' || c == '-':
			if modeSet {
				return fmt.Errorf("more than one ring selection (at %q)", rest)
			}
			modeSet = true
			rest, err = n.parseRingSelection(c, rest[1:])
		case c == '/':
			rest, err = n.parseFlags(rest[1:])
		case c == '@' && len(rest) > 1 && isDigit(rest[1]):
			rest, err = n.parseMemID(rest[1:])
		case c == '@':
			// Options run to the end of the name.
			err, rest = n.parseOptions(rest[1:]), ""
		default:
			return fmt.Errorf("unknown modifier '%c' (at %q)", c, rest)
		}
	}
	return err
}

// parseRingSelection reads what follows ring selection c ('^', '*' or
// '-'): a ring number where one goes.
func (n *Name) parseRingSelection(c byte, rest string) (string, error) {
	var err error
	switch c {
	case '*':
		n.Mode = RegNICSW
	case '^':
		n.Mode = RegSW
		if rest != "" && isDigit(rest[0]) {
			n.Mode = RegOneSW
			n.Ring, rest, err = parseRing(rest)
		}
	case '-':
		n.Mode = RegOneNIC
		n.Ring, rest, err = parseRing(rest)
	}
	if err != nil {
		return "", err
	}
	if rest != "" && rest[0] != '/' && rest[0] != '@' {
		return "", fmt.Errorf("unexpected %q after the ring selection", rest)
	}
	return rest, nil
}

// parseFlags reads the flags after '/', up to the next '@'.
func (n *Name) parseFlags(rest string) (string, error) {
	if rest == "" || rest[0] == '@' {
		return "", errors.New("empty flag list after '/'")
	}
	for rest != "" && rest[0] != '@' {
		f, ok := flagFor(rest[0])
		if !ok {
			return "", fmt.Errorf("unrecognized flag '%c'", rest[0])
		}
		n.Flags |= f
		rest = rest[1:]
	}
	return rest, nil
}

// parseMemID reads the memory id after '@'.
func (n *Name) parseMemID(rest string) (string, error) {
	num, rest := leadingDigits(rest)
	v, err := strconv.Atoi(num)
	if err != nil || v <= 0 || v > 0xffff {
		return "", fmt.Errorf("invalid memory id %q", num)
	}
	if n.MemID != 0 {
		return "", errors.New("memory id given twice")
	}
	n.MemID = v
	if rest != "" && rest[0] != '/' && rest[0] != '@' {
		return "", fmt.Errorf("unexpected %q after the memory id", rest)
	}
	return rest, nil
}

func (n *Name) parseOptions(s string) error {
	for _, opt := range strings.Split(s, "@") {
		name, body, hasBody := opt, "", false
		if i := strings.IndexAny(opt, ":="); i >= 0 {
			name, body, hasBody = opt[:i], opt[i+1:], true
		}
		if name == "" {
			return fmt.Errorf("empty option name in %q", "@"+opt)
		}
		for _, o := range n.Options {
			if o == name {
				return fmt.Errorf("option @%s given twice", name)
			}
		}
		n.Options = append(n.Options, name)
		switch name {
		case "conf":
			if !hasBody || body == "" {
				return fmt.Errorf("option @conf needs key=value pairs")
			}
			if err := n.parseConf(body); err != nil {
				return err
			}
		case "share", "extmem", "offset":
			// Parsed so the name is understood, refused by Unsupported.
		default:
			return fmt.Errorf("unknown option @%s", name)
		}
	}
	return nil
}

func (n *Name) parseConf(body string) error {
	seen := map[string]bool{}
	for _, kv := range strings.Split(body, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("@conf: %q is not key=value", kv)
		}
		key := strings.ReplaceAll(k, "_", "-")
		if seen[key] {
			return fmt.Errorf("@conf: key %q given twice", k)
		}
		seen[key] = true
		c := &n.Conf
		if key == "lossless" {
			switch v {
			case "1", "yes", "on", "true":
				c.Mode = ModeLossless
			case "0", "no", "off", "false":
				c.Mode = ModeDrop
			default:
				return fmt.Errorf("@conf: lossless=%q: want 1 or 0", v)
			}
			continue
		}
		dst := map[string]*uint32{
			"rings": &c.Rings, "tx-rings": &c.TxRings, "rx-rings": &c.RxRings,
			"host-rings": &c.HostRings, "host-tx-rings": &c.HostTxRings, "host-rx-rings": &c.HostRxRings,
			"slots": &c.Slots, "tx-slots": &c.TxSlots, "rx-slots": &c.RxSlots,
		}[key]
		if dst == nil {
			return fmt.Errorf("@conf: unknown key %q", k)
		}
		num, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("@conf: %s=%q is not a number", k, v)
		}
		*dst = uint32(num)
	}
	return nil
}

// Unsupported returns an error naming the first part of n that vale does not
// implement, or nil.
func (n *Name) Unsupported() error {
	what := func(part, msg string) error {
		return fmt.Errorf("port name %q: %s (%q) not supported", n.String(), msg, part)
	}
	// The host port of an interface attached with vale-ctl -h is a port of
	// its switch, "valeX:IFNAME^": it can be monitored, not opened.
	hostMonitor := n.Subsystem == "vale" && n.Mode == RegSW && n.IsMonitor()
	switch {
	case n.Subsystem == "netmap" && n.Pipe == 0:
		return fmt.Errorf("port name %q: netmap:%s: no such port (VALE ports valeX:Y and pipes NAME{ID, NAME}ID can be opened; attach an interface to a switch with vale-ctl -a valeX:%s)", n.String(), n.Port, n.Port)
	case (n.Mode == RegSW || n.Mode == RegOneSW) && !hostMonitor:
		return fmt.Errorf("port name %q: host rings (\"^\") cannot be opened: the host port of an interface attached with vale-ctl -h belongs to its switch (monitor it with %s^/rt)", n.String(), n.PortName())
	case n.Mode == RegNICSW:
		return what("*", "host rings on a VALE port")
	case n.IsMonitor() && n.Mode != RegAllNIC && !hostMonitor:
		return what(n.String(), "a monitor of some rings only")
	case n.IsMonitor() && n.Flags&(FlagExclusive|FlagRxOnly|FlagTxOnly) != 0:
		return what("/"+n.flagString(FlagExclusive|FlagRxOnly|FlagTxOnly), "binding flags on a monitor")
	case n.Flags&FlagZCopyMon != 0 && n.Flags&(FlagMonitorRx|FlagMonitorTx) != 0:
		return fmt.Errorf("port name %q: /z monitors both directions; do not combine it with /r or /t", n.String())
	case n.Flags&FlagRxOnly != 0 && n.Flags&FlagTxOnly != 0:
		return fmt.Errorf("port name %q: /R and /T together bind no rings", n.String())
	case n.MemID != 0:
		return what("@"+strconv.Itoa(n.MemID), "memory ids")
	case n.Conf.HostRings|n.Conf.HostTxRings|n.Conf.HostRxRings != 0:
		return what("@conf:host-rings", "host rings on a VALE port")
	}
	for _, o := range n.Options {
		if o != "conf" {
			return what("@"+o, "option")
		}
	}
	return nil
}

// IsMonitor reports whether the name opens a monitor (/r, /t or /z).
func (n *Name) IsMonitor() bool {
	return n.Flags&(FlagMonitorRx|FlagMonitorTx|FlagZCopyMon) != 0
}

// PortName returns the name of the port itself, without ring selection,
// flags or options: "vale0:a", "netmap:eth0", "netmap:p{1".
func (n *Name) PortName() string {
	var b strings.Builder
	if n.Subsystem == "vale" {
		b.WriteString(n.Switch)
	} else {
		b.WriteString("netmap")
	}
	b.WriteByte(':')
	b.WriteString(n.Port)
	if n.Pipe != 0 {
		b.WriteByte(n.Pipe)
		b.WriteString(n.PipeID)
	}
	return b.String()
}

// String returns the name in canonical form.
func (n *Name) String() string {
	var b strings.Builder
	b.WriteString(n.PortName())
	switch n.Mode {
	case RegOneNIC:
		fmt.Fprintf(&b, "-%d", n.Ring)
	case RegSW:
		b.WriteByte('^')
	case RegOneSW:
		fmt.Fprintf(&b, "^%d", n.Ring)
	case RegNICSW:
		b.WriteByte('*')
	}
	if n.Flags != 0 {
		b.WriteByte('/')
		b.WriteString(n.flagString(^RegFlags(0)))
	}
	if n.MemID != 0 {
		fmt.Fprintf(&b, "@%d", n.MemID)
	}
	for _, o := range n.Options {
		b.WriteByte('@')
		b.WriteString(o)
		if o == "conf" {
			b.WriteByte(':')
			if n.Conf.IsZero() {
				b.WriteString("rings=0") // explicit "all defaults"
			} else {
				b.WriteString(n.Conf.String())
			}
		}
	}
	return b.String()
}

func (n *Name) flagString(mask RegFlags) string {
	var b strings.Builder
	for _, fl := range flagLetters {
		if n.Flags&mask&fl.f != 0 {
			b.WriteByte(fl.c)
		}
	}
	return b.String()
}

// String returns the key=value list of c.
func (c Conf) String() string {
	var parts []string
	add := func(k string, v uint32) {
		if v != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
	}
	add("rings", c.Rings)
	add("tx-rings", c.TxRings)
	add("rx-rings", c.RxRings)
	add("host-rings", c.HostRings)
	add("host-tx-rings", c.HostTxRings)
	add("host-rx-rings", c.HostRxRings)
	add("slots", c.Slots)
	add("tx-slots", c.TxSlots)
	add("rx-slots", c.RxSlots)
	switch c.Mode {
	case ModeDrop:
		parts = append(parts, "lossless=0")
	case ModeLossless:
		parts = append(parts, "lossless=1")
	}
	return strings.Join(parts, ",")
}

func flagFor(c byte) (RegFlags, bool) {
	for _, fl := range flagLetters {
		if fl.c == c {
			return fl.f, true
		}
	}
	return 0, false
}

func parseRing(s string) (int, string, error) {
	num, rest := leadingDigits(s)
	if num == "" {
		return 0, "", fmt.Errorf("expected a ring number at %q", s)
	}
	v, err := strconv.Atoi(num)
	if err != nil || v >= maxRing {
		return 0, "", fmt.Errorf("ring number %s out of range [0, %d)", num, maxRing)
	}
	return v, rest, nil
}

func leadingDigits(s string) (digits, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdent(s string, emptyOK bool) bool {
	if s == "" {
		return emptyOK
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')) {
			return false
		}
	}
	return true
}

// isIfName accepts the characters Linux allows in interface names, minus the
// ones the grammar uses as separators.
func isIfName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(":/{}-*^@", c) >= 0 {
			return false
		}
	}
	return true
}
