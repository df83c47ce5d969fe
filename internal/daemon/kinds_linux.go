package daemon

import (
	"net"

	"github.com/valeswitch/vale/afxdp"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/ports/shm"
	"github.com/valeswitch/vale/ports/tap"
	"github.com/valeswitch/vale/ptnet"
	"github.com/valeswitch/vale/vale"
)

// port is a switch port as valed holds it: a vale.Port (which frees
// itself) that also says what it is, what it serves that no other port
// may, and its own metrics. Each kind of port is wrapped once, where it is
// made; the rest of the daemon never asks which kind it holds.
type port interface {
	vale.Port
	// what says what the port is, in messages: "an interface (eth1,
	// AF_XDP)".
	what() string
	// serves names what the port serves that no other port may (an
	// interface, a vhost-user socket), or "".
	serves() string
	// collect reports the port's own metrics, labelled l.
	collect(m metricSink, l []string)
}

// mappable is what a port that applications open has beyond port: memory
// they map, and bindings to its rings.
type mappable interface {
	port
	Bind(sel portname.Selection, extra uint32) (*shm.Binding, error)
	Rings() (tx, rx int)
	Layout() ports.Layout
	RegionFD() int
	Mem() []byte
	NetmapIfs() *ports.NetmapIfs
	MAC() net.HardwareAddr
}

// clientPort is a VALE port applications open (shared memory).
type clientPort struct{ *shm.Port }

func (clientPort) what() string   { return "a port applications opened" }
func (clientPort) serves() string { return "" }

func (p clientPort) collect(m metricSink, l []string) {
	tx, rx := p.Occupancy()
	m.gauge(mPortOccupancy, float64(tx), append(l, "tx")...)
	m.gauge(mPortOccupancy, float64(rx), append(l, "rx")...)
}

// nicPort is a network interface attached over AF_XDP (vale-ctl -a).
type nicPort struct{ *afxdp.Port }

func (p nicPort) what() string   { return "an interface (" + p.Interface() + ", AF_XDP)" }
func (p nicPort) serves() string { return "interface " + p.Interface() }

func (p nicPort) collect(m metricSink, l []string) {
	m.gauge(mXDPInfo, 1, append(l, p.Interface(), p.Mode())...)
	xs, err := p.Stats()
	if err != nil {
		return
	}
	for _, ev := range []struct {
		name string
		v    uint64
	}{{"rx_dropped", xs.Rx_dropped}, {"rx_invalid_descs", xs.Rx_invalid_descs}, {"tx_invalid_descs", xs.Tx_invalid_descs},
		{"rx_ring_full", xs.Rx_ring_full}, {"rx_fill_ring_empty", xs.Rx_fill_ring_empty_descs}, {"tx_ring_empty", xs.Tx_ring_empty_descs}} {
		m.counter(mXDPStats, ev.v, append(l, ev.name)...)
	}
}

// vhostPort is a vhost-user port (vale-ctl -a -vhost-user).
type vhostPort struct{ *ptnet.Port }

func (p vhostPort) what() string   { return "a vhost-user port (" + p.Socket() + ")" }
func (p vhostPort) serves() string { return "vhost-user socket " + p.Socket() }

func (p vhostPort) collect(m metricSink, l []string) {
	vc := p.Counters()
	up := 0.0
	if p.Connected() {
		up = 1
	}
	m.gauge(mVhostUp, up, l...)
	m.gauge(mVhostFeatures, float64(p.Features()), l...)
	m.gauge(mVhostPairs, float64(vc.EnabledPairs), l...)
	m.counter(mVhostSessions, vc.Sessions, l...)
	m.counter(mVhostNoBuf, vc.RxNoBuf, l...)
	m.counter(mVhostBadHdr, vc.TxBadHeader, l...)
	m.counter(mVhostStopped, vc.StoppedQueues, l...)
}

// tapPort is a TAP device on a switch: a persistent interface (vale-ctl
// -a on a vale-ctl -n interface), which serves that interface, or a NIC's
// host port (vale-ctl -h), whose interface is its NIC's.
type tapPort struct {
	*tap.Port
	desc    string
	serving string
}

func (p tapPort) what() string               { return p.desc }
func (p tapPort) serves() string             { return p.serving }
func (tapPort) collect(metricSink, []string) {}
