package afxdp

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/netdev"
)

// stateRecord is what an attachment changed on its interface, kept in a
// file while it lasts: a daemon that dies leaves the file, and the next one
// puts the settings back.
type stateRecord struct {
	Interface string          `json:"interface"`
	Ifindex   int             `json:"ifindex"`
	Offloads  netdev.Offloads `json:"offloads"` // as they were before
	PID       int             `json:"pid"`      // of the daemon that attached
}

type stateFile struct{ path string }

func statePath(dir, ifname string) string { return filepath.Join(dir, "afxdp-"+ifname+".json") }

// recordState writes the record of an attachment to dir (nothing if dir
// is empty).
func recordState(dir, ifname string, ifindex int, o netdev.Offloads) (*stateFile, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	b, err := json.Marshal(stateRecord{Interface: ifname, Ifindex: ifindex, Offloads: o, PID: os.Getpid()})
	if err != nil {
		return nil, err
	}
	path := statePath(dir, ifname)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return nil, fmt.Errorf("record attachment state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("record attachment state: %w", err)
	}
	return &stateFile{path: path}, nil
}

func (f *stateFile) remove() error {
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove attachment state: %w", err)
	}
	return nil
}

// RestoreStale undoes what attachments recorded in dir by daemons that are
// no longer running: it gives each interface back its offload settings and
// removes a vale XDP program left attached through netlink. valed calls it
// at start.
func RestoreStale(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	files, err := filepath.Glob(filepath.Join(dir, "afxdp-*.json"))
	if err != nil {
		return err
	}
	var errs []error
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var rec stateRecord
		if err := json.Unmarshal(b, &rec); err != nil || !strings.HasSuffix(path, "afxdp-"+rec.Interface+".json") {
			log.Warn("ignoring a malformed attachment record", "file", path)
			os.Remove(path)
			continue
		}
		if rec.PID != os.Getpid() && rec.PID > 0 && unix.Kill(rec.PID, 0) == nil {
			log.Warn("an attachment record belongs to a running process; leaving it", "file", path, "pid", rec.PID)
			continue
		}
		if l, err := netdev.Lookup(rec.Interface); err == nil && l.Attrs().Index == rec.Ifindex {
			if removed, err := RemoveStaleProgram(rec.Interface); err != nil {
				errs = append(errs, err)
			} else if removed {
				log.Info("removed a stale vale XDP program", "interface", rec.Interface)
			}
			if err := netdev.SetOffloads(rec.Interface, rec.Offloads); err != nil {
				errs = append(errs, err)
			} else {
				log.Info("restored the settings of an interface a previous valed had attached", "interface", rec.Interface,
					"gro", rec.Offloads.GRO, "lro", rec.Offloads.LRO, "pid", rec.PID)
			}
		}
		if err := os.Remove(path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
