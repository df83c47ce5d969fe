package daemon

import (
	"fmt"

	"github.com/valeswitch/vale/internal/peer"
)

// Limits bound what one user (uid) may hold in valed, so that no local user
// can exhaust valed's descriptors, memory or switches. root and holders of
// CAP_NET_ADMIN in valed's user namespace are not limited. A zero field
// takes its default (DefaultLimits).
type Limits struct {
	Connections int    // control connections open at once
	Ports       int    // VALE ports created and not yet destroyed
	Switches    int    // switches created and not yet destroyed
	Pipes       int    // pipes created and not yet destroyed
	ExtraBufs   uint32 // extra buffers one port may ask for
	RegionSize  int64  // bytes of memory of one port, pipe or copy monitor
}

// DefaultLimits are the limits of a user unless configured.
func DefaultLimits() Limits {
	return Limits{Connections: 256, Ports: 64, Switches: 16, Pipes: 64, ExtraBufs: 4096, RegionSize: 1 << 30}
}

// withDefaults fills the zero fields of l.
func (l Limits) withDefaults() Limits {
	def := DefaultLimits()
	if l.Connections <= 0 {
		l.Connections = def.Connections
	}
	if l.Ports <= 0 {
		l.Ports = def.Ports
	}
	if l.Switches <= 0 {
		l.Switches = def.Switches
	}
	if l.Pipes <= 0 {
		l.Pipes = def.Pipes
	}
	if l.ExtraBufs == 0 {
		l.ExtraBufs = def.ExtraBufs
	}
	if l.RegionSize <= 0 {
		l.RegionSize = def.RegionSize
	}
	return l
}

// SwitchAccess restricts who may open ports on a switch: root, holders of
// CAP_NET_ADMIN, and the users and groups listed. Switches without one are
// open to anyone who can reach the control socket.
type SwitchAccess struct {
	UIDs []uint32
	GIDs []uint32
}

// allows reports whether c may open ports on a switch with access a.
func (a SwitchAccess) allows(c peer.Cred) bool {
	if c.Admin {
		return true
	}
	for _, u := range a.UIDs {
		if c.UID == u {
			return true
		}
	}
	for _, g := range a.GIDs {
		if c.InGroup(g) {
			return true
		}
	}
	return false
}

// usage is what one user holds.
type usage struct {
	conns, ports, switches, pipes int
}

// usageLocked returns the usage of uid, created if needed.
func (d *Daemon) usageLocked(uid uint32) *usage {
	u := d.usage[uid]
	if u == nil {
		u = &usage{}
		d.usage[uid] = u
	}
	return u
}

// releaseUsageLocked drops what uid holds of one kind (through fn) and
// forgets the user once it holds nothing.
func (d *Daemon) releaseUsageLocked(uid uint32, fn func(u *usage)) {
	u := d.usage[uid]
	if u == nil {
		return
	}
	fn(u)
	if *u == (usage{}) {
		delete(d.usage, uid)
	}
}

// limitError says which limit a user reached.
func limitError(what string, c peer.Cred, limit int, key string) error {
	return fmt.Errorf("%s: uid %d holds %d already, its limit (limits.%s in valed's configuration)", what, c.UID, limit, key)
}

// checkLimitLocked returns an error if c (unless admin) holds limit of
// something already.
func checkLimitLocked(c peer.Cred, held, limit int, what, key string) error {
	if c.Admin || held < limit {
		return nil
	}
	return limitError(what, c, limit, key)
}

// checkRegion refuses memory of size bytes to a user past the region
// limit.
func (d *Daemon) checkRegion(c peer.Cred, name string, size int64) error {
	if c.Admin || size <= d.limits.RegionSize {
		return nil
	}
	return fmt.Errorf("%s: %d bytes of memory exceed the %d a user may have for one port (limits.region_mib in valed's configuration)",
		name, size, d.limits.RegionSize)
}

// SwitchSettings are the settings of one switch, by name: who may open
// ports on it (nil: anyone who reaches the socket) and its mode (nil: the
// default of every switch).
type SwitchSettings struct {
	Access   *SwitchAccess
	Lossless *bool
}

// mayOpenOnLocked checks the access list of switch sw.
func (d *Daemon) mayOpenOnLocked(c peer.Cred, sw, port string) error {
	a := d.named[sw].Access
	if a == nil || a.allows(c) {
		return nil
	}
	return fmt.Errorf("%s: permission denied: switch %s admits only the users and groups its [[switches]] entry lists", port, sw)
}

// losslessLocked returns the mode of switch sw's ports attached with
// vale.ModeDefault.
func (d *Daemon) losslessLocked(sw string) bool {
	if l := d.named[sw].Lossless; l != nil {
		return *l
	}
	return d.cfg.Switch.Lossless
}
