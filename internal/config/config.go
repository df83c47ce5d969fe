// Package config reads valed's TOML configuration file: the control
// socket's path, group and mode, log level, default port geometry, switch
// limits, metrics address, where state is kept, and the persistent
// interfaces and attachments to create at start. Unknown keys and bad
// values are refused with the file, line and key named. It also writes the
// attachments back into the file (vale-ctl -save) without touching the
// rest of it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale"
	"github.com/valeswitch/vale/vale/wire"
)

// Config is the whole file. The zero value, after Defaults, is valed's
// built-in configuration.
type Config struct {
	Control    Control     `toml:"control"`
	Log        Log         `toml:"log"`
	Ports      Ports       `toml:"ports"`
	Switch     Switch      `toml:"switch"`
	Metrics    Metrics     `toml:"metrics"`
	State      State       `toml:"state"`
	Limits     Limits      `toml:"limits"`
	Switches   []Named     `toml:"switches"`
	Interfaces []Interface `toml:"interface"`
	Attach     []Attach    `toml:"attach"`
}

// Control is the control socket.
type Control struct {
	Socket string `toml:"socket"` // path
	Group  string `toml:"group"`  // group owning the socket (name or number); "" keeps valed's
	Mode   string `toml:"mode"`   // permissions, octal, e.g. "0660"
}

// Log configures logging.
type Log struct {
	Level string `toml:"level"` // debug, info, warn, error
}

// Ports are the defaults of ports opened without @conf.
type Ports struct {
	Rings          uint32   `toml:"rings"`
	Slots          uint32   `toml:"slots"`
	BufSize        uint32   `toml:"buf_size"`
	ZeroCopyLevels int      `toml:"zmon_levels"`
	Poll           Duration `toml:"poll"`
}

// Switch configures every switch.
type Switch struct {
	MaxPorts     int       `toml:"max_ports"`
	MACAge       Duration  `toml:"mac_age"`
	Lossless     bool      `toml:"lossless"`      // hold senders back instead of dropping
	StuckTimeout Duration  `toml:"stuck_timeout"` // after which a lossless port without room is dropped to
	DropAfter    *Duration `toml:"drop_after"`    // a dropping port's wait for room; "0s" drops at once
}

// Named configures one switch: who may open ports on it (if Users or
// Groups is given: only they, root and CAP_NET_ADMIN) and its mode.
type Named struct {
	Name     string   `toml:"name"`     // the switch, e.g. "vale0"
	Users    []string `toml:"users"`    // user names or uids
	Groups   []string `toml:"groups"`   // group names or gids
	Lossless *bool    `toml:"lossless"` // unset: as [switch]
}

// Limits bound what each user (uid) other than root and holders of
// CAP_NET_ADMIN may hold; 0 keeps a limit's default.
type Limits struct {
	Connections int    `toml:"connections"` // control connections at once
	Ports       int    `toml:"ports"`       // VALE ports created
	Switches    int    `toml:"switches"`    // switches created
	Pipes       int    `toml:"pipes"`       // pipes created
	ExtraBufs   uint32 `toml:"extra_bufs"`  // extra buffers one port may ask for
	RegionMiB   int64  `toml:"region_mib"`  // memory of one port, pipe or monitor, MiB
}

// Metrics configures the Prometheus endpoint, off unless Listen is set.
type Metrics struct {
	Listen string `toml:"listen"` // host:port
}

// State is where valed keeps what outlives it.
type State struct {
	Dir     string `toml:"dir"`     // interface settings to restore after a crash
	Persist bool   `toml:"persist"` // save attachments into this file whenever they change
}

// Interface is a persistent interface to create (vale-ctl -n).
type Interface struct {
	Name  string `toml:"name"`
	Rings int    `toml:"rings,omitempty"`
	Slots int    `toml:"slots,omitempty"`
}

// Attach is an attachment to make (vale-ctl -a, -h, -a -vhost-user): the
// same model vale-ctl sends valed.
type Attach = wire.AttachRequest

// Duration is a time.Duration written as "5m", "50us".
type Duration struct{ time.Duration }

// UnmarshalText parses a duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %s", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes a duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Error is a problem in a configuration file, with where it is.
type Error struct {
	File string
	Line int    // 0 if unknown
	Key  string // dotted key, if any
	Msg  string
}

// Error formats the problem as file:line: key: message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

var decodeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// Load reads and checks the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse reads and checks a configuration named name.
func Parse(name string, data []byte) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: name, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		// Type mismatches come as plain errors that name the line and key.
		e := &Error{File: name, Msg: err.Error()}
		if m := decodeErrRE.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Key, e.Msg = m[2], m[3]
		}
		return nil, e
	}
	lines := keyLines(data)
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, &Error{File: name, Line: lines.find(k), Key: k, Msg: "unknown key"}
	}
	if err := c.check(); err != nil {
		var ce *checkError
		if errors.As(err, &ce) {
			return nil, &Error{File: name, Line: lines.find(ce.key), Key: ce.key, Msg: ce.msg}
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	return &c, nil
}

// checkError is a bad value of a key.
type checkError struct{ key, msg string }

func (e *checkError) Error() string { return e.key + ": " + e.msg }

func bad(key, format string, args ...any) error {
	return &checkError{key: key, msg: fmt.Sprintf(format, args...)}
}

// check validates the values (the ranges valed accepts, the limits of the
// packages that own them).
func (c *Config) check() error {
	for _, check := range []func() error{c.checkBasics, c.checkPorts, c.checkLimits, c.checkSwitches, c.checkInterfaces, c.checkAttach} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// checkBasics checks the control socket, log and metrics settings.
func (c *Config) checkBasics() error {
	if m := c.Control.Mode; m != "" {
		if v, err := strconv.ParseUint(m, 8, 32); err != nil || v > 0o777 {
			return bad("control.mode", "%q is not an octal permission like \"0660\"", m)
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	if l := c.Metrics.Listen; l != "" && !strings.Contains(l, ":") {
		return bad("metrics.listen", "%q: want host:port", l)
	}
	return nil
}

// checkPorts checks the default port geometry and the switch size.
func (c *Config) checkPorts() error {
	p := c.Ports
	switch {
	case p.Rings > ports.MaxRings:
		return bad("ports.rings", "%d: at most %d", p.Rings, ports.MaxRings)
	case p.Slots != 0 && (p.Slots < ports.MinSlots || p.Slots > ports.MaxSlots):
		return bad("ports.slots", "%d: want %d..%d", p.Slots, ports.MinSlots, ports.MaxSlots)
	case p.BufSize != 0 && (p.BufSize < ports.MinBufSize || p.BufSize > ports.MaxBufSize || p.BufSize%ports.MinBufSize != 0):
		return bad("ports.buf_size", "%d: want a multiple of %d in %d..%d", p.BufSize, ports.MinBufSize, ports.MinBufSize, ports.MaxBufSize)
	case p.ZeroCopyLevels < 0 || p.ZeroCopyLevels > ports.MaxZLevels:
		return bad("ports.zmon_levels", "%d: want 1..%d", p.ZeroCopyLevels, ports.MaxZLevels)
	case c.Switch.MaxPorts < 0 || c.Switch.MaxPorts > vale.MaxPortsLimit:
		return bad("switch.max_ports", "%d: want 1..%d", c.Switch.MaxPorts, vale.MaxPortsLimit)
	}
	return nil
}

// checkInterfaces checks the persistent interfaces.
func (c *Config) checkInterfaces() error {
	names := map[string]bool{}
	for _, i := range c.Interfaces {
		switch {
		case i.Name == "" || len(i.Name) > 15:
			return bad("interface.name", "%q: want 1..15 characters", i.Name)
		case names[i.Name]:
			return bad("interface.name", "%q given twice", i.Name)
		case i.Rings < 0 || i.Rings > ports.MaxRings:
			return bad("interface.rings", "%d (interface %s): want 1..%d", i.Rings, i.Name, ports.MaxRings)
		case i.Slots < 0 || i.Slots > ports.MaxBatch:
			return bad("interface.slots", "%d (interface %s): want 1..%d", i.Slots, i.Name, ports.MaxBatch)
		}
		names[i.Name] = true
	}
	return nil
}

// checkAttach checks the attachments.
func (c *Config) checkAttach() error {
	seen := map[string]bool{}
	for _, a := range c.Attach {
		switch {
		case !strings.HasPrefix(a.Name, "vale") || !strings.Contains(a.Name, ":"):
			return bad("attach.port", "%q: want valeX:NAME", a.Name)
		case seen[a.Name]:
			return bad("attach.port", "%q given twice", a.Name)
		case a.VhostUser == "" && a.VhostClient:
			return bad("attach.vhost_client", "set for %s without vhost_user", a.Name)
		case a.VhostUser != "" && a.Host:
			return bad("attach.host", "a vhost-user port (%s) has no host stack", a.Name)
		}
		switch {
		case !oneOf(a.XDPMode, "", "auto", "native", "drv", "generic", "skb"):
			return bad("attach.xdp_mode", "%q (%s): want auto, native or generic", a.XDPMode, a.Name)
		case !oneOf(a.Copy, "", "copy", "zerocopy"):
			return bad("attach.copy", "%q (%s): want copy or zerocopy", a.Copy, a.Name)
		case !oneOf(a.Mode, "", "drop", "lossless"):
			return bad("attach.mode", "%q (%s): want drop or lossless", a.Mode, a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// oneOf reports whether s is one of the choices.
func oneOf(s string, choices ...string) bool { return slices.Contains(choices, s) }

func (c *Config) checkLimits() error {
	l := c.Limits
	for _, v := range []struct {
		key string
		v   int64
	}{{"connections", int64(l.Connections)}, {"ports", int64(l.Ports)}, {"switches", int64(l.Switches)}, {"pipes", int64(l.Pipes)}} {
		if v.v < 0 || v.v > 1<<20 {
			return bad("limits."+v.key, "%d: want 1..%d (0 for the default)", v.v, 1<<20)
		}
	}
	if l.ExtraBufs > ports.MaxExtraBufs {
		return bad("limits.extra_bufs", "%d: at most %d", l.ExtraBufs, ports.MaxExtraBufs)
	}
	if l.RegionMiB < 0 || l.RegionMiB > 1<<16 {
		return bad("limits.region_mib", "%d: want 1..%d (0 for the default)", l.RegionMiB, 1<<16)
	}
	return nil
}

func (c *Config) checkSwitches() error {
	seen := map[string]bool{}
	for _, a := range c.Switches {
		switch {
		case a.Name == "" || !strings.HasPrefix(a.Name, "vale") || strings.ContainsAny(a.Name, ":{}^/@"):
			return bad("switches.name", "%q: want a switch name, e.g. vale0", a.Name)
		case seen[a.Name]:
			return bad("switches.name", "%q given twice", a.Name)
		}
		seen[a.Name] = true
		for _, u := range a.Users {
			if _, err := LookupUser(u); err != nil {
				return bad("switches.users", "%s (switch %s)", err, a.Name)
			}
		}
		for _, g := range a.Groups {
			if _, err := LookupGroup(g); err != nil {
				return bad("switches.groups", "%s (switch %s)", err, a.Name)
			}
		}
	}
	return nil
}

// LookupUser returns the uid of a user given by name or number.
func LookupUser(u string) (uint32, error) {
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		return uint32(n), nil
	}
	usr, err := user.Lookup(u)
	if err != nil {
		return 0, fmt.Errorf("no user %q", u)
	}
	n, err := strconv.ParseUint(usr.Uid, 10, 32)
	return uint32(n), err
}

// LookupGroup returns the gid of a group given by name or number.
func LookupGroup(g string) (uint32, error) {
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uint32(n), nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("no group %q", g)
	}
	n, err := strconv.ParseUint(grp.Gid, 10, 32)
	return uint32(n), err
}

// lineIndex maps dotted keys to the lines that set them.
type lineIndex map[string][]int

func (l lineIndex) find(key string) int {
	if ls := l[key]; len(ls) > 0 {
		return ls[0]
	}
	// A key of an unknown table: its header.
	for k, ls := range l {
		if strings.HasPrefix(key, k+".") && len(ls) > 0 {
			return ls[0]
		}
	}
	return 0
}

// keyLines finds, for each dotted key, the lines that set it: enough to
// point at a key the decoder left unused or a value the checks refused.
func keyLines(data []byte) lineIndex {
	idx := lineIndex{}
	table := ""
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[["):
			table = strings.TrimSpace(strings.Trim(strings.SplitN(line, "#", 2)[0], "[] \t"))
			idx[table] = append(idx[table], n+1)
		case strings.HasPrefix(line, "["):
			table = strings.TrimSpace(strings.Trim(strings.SplitN(line, "#", 2)[0], "[] \t"))
			idx[table] = append(idx[table], n+1)
		default:
			k, _, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			k = strings.Trim(strings.TrimSpace(k), `"'`)
			if table != "" {
				k = table + "." + k
			}
			idx[k] = append(idx[k], n+1)
		}
	}
	return idx
}
