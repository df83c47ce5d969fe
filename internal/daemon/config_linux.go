package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/valeswitch/vale/internal/config"
	"github.com/valeswitch/vale/ports/tap"
	"github.com/valeswitch/vale/vale/wire"
)

// Persistent interfaces and attachments from, and back into, valed's
// configuration file.

// LimitsFrom returns the limits a configuration sets.
func LimitsFrom(c config.Limits) Limits {
	return Limits{
		Connections: c.Connections, Ports: c.Ports, Switches: c.Switches, Pipes: c.Pipes,
		ExtraBufs: c.ExtraBufs, RegionSize: c.RegionMiB << 20,
	}.withDefaults()
}

// SwitchesFrom returns the settings of named switches a configuration
// gives, with users and groups resolved to ids.
func SwitchesFrom(named []config.Named) (map[string]SwitchSettings, error) {
	out := map[string]SwitchSettings{}
	for _, a := range named {
		var sa SwitchAccess
		for _, u := range a.Users {
			uid, err := config.LookupUser(u)
			if err != nil {
				return nil, fmt.Errorf("switch %s: %w", a.Name, err)
			}
			sa.UIDs = append(sa.UIDs, uid)
		}
		for _, g := range a.Groups {
			gid, err := config.LookupGroup(g)
			if err != nil {
				return nil, fmt.Errorf("switch %s: %w", a.Name, err)
			}
			sa.GIDs = append(sa.GIDs, gid)
		}
		st := SwitchSettings{Lossless: a.Lossless}
		if len(sa.UIDs)+len(sa.GIDs) > 0 {
			st.Access = &sa
		}
		out[a.Name] = st
	}
	return out, nil
}

// applyStartup creates the configuration's interfaces and attachments. A
// failure (an interface that is not there today) is logged, not fatal: the
// others still come up.
func (d *Daemon) applyStartup(c *config.Config) {
	for _, i := range c.Interfaces {
		if err := d.newIfaceUnsaved(wire.NewIfRequest{Name: i.Name, Rings: i.Rings, Slots: i.Slots}); err != nil {
			d.log.Error("persistent interface from the configuration", "interface", i.Name, "error", err)
		}
	}
	for _, a := range c.Attach {
		if _, err := d.attach1(a); err != nil {
			d.log.Error("attachment from the configuration", "port", a.Name, "error", err)
		}
	}
}

func (d *Daemon) attach1(r wire.AttachRequest) (any, error) {
	n, err := parseAttachName(r.Name)
	if err != nil {
		return nil, err
	}
	return d.attachUnsaved(&n, r)
}

// snapshot returns the persistent interfaces and attachments as they are
// now, sorted, as the configuration writes them.
func (d *Daemon) snapshot() ([]config.Interface, []config.Attach) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ifs []config.Interface
	for name, is := range d.ifaces {
		i := config.Interface{Name: name, Rings: is.rings}
		if is.slots != 0 && is.slots != tap.DefaultSlots {
			i.Slots = is.slots
		}
		ifs = append(ifs, i)
	}
	var atts []config.Attach
	for _, ss := range d.switches {
		for _, ps := range ss.ports {
			if ps.req != nil {
				atts = append(atts, *ps.req)
			}
		}
	}
	slices.SortFunc(ifs, func(a, b config.Interface) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(atts, func(a, b config.Attach) int { return strings.Compare(a.Name, b.Name) })
	return ifs, atts
}

// save writes the persistent interfaces and attachments into the
// configuration file (vale-ctl -save).
func (d *Daemon) save() error {
	if d.cfg.ConfigFile == "" {
		return errors.New("valed runs without a configuration file (valed -c FILE): nothing to save into")
	}
	ifs, atts := d.snapshot()
	if err := config.SaveAttachments(d.cfg.ConfigFile, ifs, atts); err != nil {
		return err
	}
	d.reloadMu.Lock()
	if d.applied != nil {
		d.applied.Interfaces, d.applied.Attach = ifs, atts
	}
	d.reloadMu.Unlock()
	d.log.Info("attachments saved", "file", d.cfg.ConfigFile, "interfaces", len(ifs), "attachments", len(atts))
	return nil
}

// persistChange saves after a change when the configuration says persist.
func (d *Daemon) persistChange() {
	if !d.cfg.Persist || d.cfg.ConfigFile == "" {
		return
	}
	if err := d.save(); err != nil {
		d.log.Error("save attachments", "error", err)
	}
}

// Reload reads the configuration file again and applies what changed in
// it since it was last read: log level, metrics address, the socket's
// group and mode, and the interfaces and attachments added, removed or
// changed. Ports the change does not name are not touched. (SIGHUP,
// vale-ctl -reload.)
func (d *Daemon) Reload() error {
	if d.cfg.ConfigFile == "" {
		return errors.New("valed runs without a configuration file (valed -c FILE): nothing to reload")
	}
	c, err := config.Load(d.cfg.ConfigFile)
	if err != nil {
		return err
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	old := d.applied
	if old == nil {
		old = &config.Config{}
	}
	if c.Log.Level != old.Log.Level && d.cfg.LogLevel != nil {
		if err := d.cfg.LogLevel.UnmarshalText([]byte(orDefault(c.Log.Level, "info"))); err == nil {
			d.log.Info("log level changed", "level", d.cfg.LogLevel.Level())
		}
	}
	if c.Control.Socket != "" && c.Control.Socket != old.Control.Socket && c.Control.Socket != d.ln.Path() {
		d.log.Warn("the control socket's path changes only when valed restarts", "socket", c.Control.Socket)
	}
	if c.Control.Mode != old.Control.Mode || c.Control.Group != old.Control.Group {
		if err := d.setSocketAccess(c.Control.Group, c.Control.Mode); err != nil {
			d.log.Error("control socket access", "error", err)
		}
	}
	if c.Metrics.Listen != old.Metrics.Listen {
		d.restartMetrics(c.Metrics.Listen)
	}
	if err := d.applyPolicy(c); err != nil {
		return err
	}
	var errs []error
	// Removed or changed entries are undone first (an attachment before
	// the interface it may use), then added or changed ones are done.
	attKey := func(a config.Attach) string { return a.Name }
	ifKey := func(i config.Interface) string { return i.Name }
	for _, a := range changed(old.Attach, c.Attach, attKey) {
		if err := d.detachUnsaved(a.Name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, i := range changed(old.Interfaces, c.Interfaces, ifKey) {
		if err := d.delIfaceUnsaved(i.Name); err != nil {
			errs = append(errs, err)
		}
	}
	for _, i := range changed(c.Interfaces, old.Interfaces, ifKey) {
		if err := d.newIfaceUnsaved(wire.NewIfRequest{Name: i.Name, Rings: i.Rings, Slots: i.Slots}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, a := range changed(c.Attach, old.Attach, attKey) {
		if _, err := d.attach1(a); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.Name, err))
		}
	}
	d.applied = c
	d.log.Info("configuration reloaded", "file", d.cfg.ConfigFile, "errors", len(errs))
	return errors.Join(errs...)
}

// applyPolicy applies the limits, the switch restrictions and the switch
// modes of c. They bind what users do from now on; nothing held already is
// taken away.
func (d *Daemon) applyPolicy(c *config.Config) error {
	named, err := SwitchesFrom(c.Switches)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limits, d.named = LimitsFrom(c.Limits), named
	d.cfg.Switch.Lossless = c.Switch.Lossless
	for name, ss := range d.switches {
		ss.sw.SetLossless(d.losslessLocked(name))
	}
	return nil
}

// changed returns the entries of from that other lacks or has otherwise
// (entries are matched by key).
func changed[T comparable](from, other []T, key func(T) string) []T {
	byKey := map[string]T{}
	for _, e := range other {
		byKey[key(e)] = e
	}
	var out []T
	for _, e := range from {
		if o, ok := byKey[key(e)]; !ok || o != e {
			out = append(out, e)
		}
	}
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// setSocketAccess gives the control socket a group and permissions.
func (d *Daemon) setSocketAccess(group, mode string) error {
	if group != "" {
		gid, err := lookupGroup(group)
		if err != nil {
			return err
		}
		if err := d.ln.Chown(gid); err != nil {
			return err
		}
	}
	if mode != "" {
		m, err := strconv.ParseUint(mode, 8, 32)
		if err != nil {
			return fmt.Errorf("control socket mode %q: %w", mode, err)
		}
		if err := d.ln.Chmod(os.FileMode(m)); err != nil {
			return err
		}
	}
	return nil
}

// lookupGroup returns the id of a group given by name or number.
func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("control socket group: %w", err)
	}
	return strconv.Atoi(grp.Gid)
}
