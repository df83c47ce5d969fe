package vale

import (
	"sync/atomic"

	"github.com/valeswitch/vale/vale/wire"
)

// portCounters is the live, atomically updated form of PortStats. Workers
// add once per round, not once per frame.
type portCounters struct {
	txPackets, txBytes   atomic.Uint64
	rxPackets, rxBytes   atomic.Uint64
	dropFull             atomic.Uint64
	dropInvalid, noRoute atomic.Uint64
	dropStuck, waits     atomic.Uint64
	resets               atomic.Uint64
}

func (c *portCounters) snapshot() wire.PortStats {
	return wire.PortStats{
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		DropFull: c.dropFull.Load(), DropInvalid: c.dropInvalid.Load(),
		DropNoRoute: c.noRoute.Load(), DropStuck: c.dropStuck.Load(), Waits: c.waits.Load(), Resets: c.resets.Load(),
	}
}
