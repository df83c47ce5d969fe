package daemon

import (
	"errors"
	"fmt"
	"time"

	"github.com/valeswitch/vale/internal/spin"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/wire"
)

// pollingPort is a port whose workers' waiting can change at run time.
type pollingPort interface {
	SetPolling(spin.Polling) error
	Polling() spin.Polling
}

// setPolling applies vale-ctl -p or -P to a port.
func (d *Daemon) setPolling(r wire.PollingRequest) error {
	if r.WindowNs < 0 || (r.WindowNs > 0 && r.Busy) || (len(r.CPUs) > 0 && !r.Busy) {
		return errors.New("polling: either busy (optionally on cpus) or a positive window")
	}
	n, err := portname.ParseName(r.Name)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ps := d.switchPortLocked(&n)
	if ps == nil {
		return fmt.Errorf("%s: no such port", r.Name)
	}
	pp, ok := ps.port.(pollingPort)
	if !ok {
		return fmt.Errorf("%s is %s, which has no polling: ports applications open and interfaces attached over AF_XDP do", ps.name(), ps.port.what())
	}
	pol := spin.Polling{Busy: r.Busy, CPUs: r.CPUs, Window: time.Duration(r.WindowNs)}
	if !pol.Busy && pol.Window == 0 {
		pol.Window = d.defaultPollWindow(ps)
	}
	if pol.Window > 0 {
		if _, nic := ps.port.(nicPort); nic {
			return fmt.Errorf("%s is %s: it busy-polls or sleeps, it has no poll window", ps.name(), ps.port.what())
		}
	}
	if err := pp.SetPolling(pol); err != nil {
		return err
	}
	d.log.Info("polling changed", "port", ps.name(), "polling", pol.String())
	return nil
}

// defaultPollWindow is the window a port's workers have unless vale-ctl
// changed it: valed's -poll for ports applications open, none for others.
func (d *Daemon) defaultPollWindow(ps *portState) time.Duration {
	if _, ok := ps.port.(clientPort); ok {
		return max(d.cfg.Port.Poll, 0)
	}
	return 0
}
