package vale

import (
	"fmt"
	"testing"

	"github.com/valeswitch/vale/vale/valetest"
	"github.com/valeswitch/vale/vale/wire"
)

// newTestSwitch returns a switch with a fake port attached for each name.
func newTestSwitch(t *testing.T, cfg Config, names ...string) (*Switch, []*valetest.Port) {
	t.Helper()
	sw := New("vale0", cfg)
	var ps []*valetest.Port
	for _, n := range names {
		p := valetest.NewPort(n)
		if _, err := sw.Attach(p, ModeDefault); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			sw.Detach(p)
		}
		sw.Close()
	})
	return sw, ps
}

func statsOf(sw *Switch, name string) wire.PortStats {
	for _, p := range sw.Ports() {
		if p.Name == name {
			return p.Stats
		}
	}
	panic(fmt.Sprintf("no port %s", name))
}
