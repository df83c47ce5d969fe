package pipes

import (
	"fmt"
	"sync"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/internal/shmem"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/wire"
)

// The two ends of a pair.
const (
	Master = 0 // NAME{ID
	Slave  = 1 // NAME}ID
)

// EndOf returns the end a pipe character names: '{' the master, '}' the
// slave.
func EndOf(c byte) int {
	if c == '}' {
		return Slave
	}
	return Master
}

// Pair is a pipe as valed holds it: the shared memory of both ends, their
// eventfds, and who holds which rings. valed is not on the data path.
type Pair struct {
	names  [2]string // "netmap:p{1", "netmap:p}1"
	geom   [2]ports.Geometry
	layout ports.Layout
	region *shmem.Region
	nifs   *ports.NetmapIfs
	notify [2][]*notify.Eventfd // by end, by ring pair

	mu     sync.Mutex
	users  [2]int
	claims [2]*portname.Claims
}

// NewPair creates the pipe whose master end is called master and slave end
// slave, with the master end's geometry g (the slave's mirrors it).
func NewPair(master, slave string, g ports.Geometry, zlevels int) (*Pair, error) {
	l, err := ports.PipeLayout(g, zlevels)
	if err != nil {
		return nil, err
	}
	region, err := shmem.NewRegion(master, l.Size)
	if err != nil {
		return nil, err
	}
	shmem.Populate(region.Mem, l.Hot())
	p := &Pair{names: [2]string{master, slave}, layout: l, region: region}
	p.nifs = ports.NewNetmapIfs(region.Mem, &p.layout)
	p.geom[Master] = g
	p.geom[Slave] = ports.Geometry{TxRings: g.RxRings, RxRings: g.TxRings, TxSlots: g.RxSlots, RxSlots: g.TxSlots, BufSize: g.BufSize}
	names := []string{master, slave}
	for end := range 2 {
		for z := 1; z <= l.ZLevels; z++ {
			names = append(names, fmt.Sprintf("%s/z%d", p.names[end], z))
		}
	}
	if err := ports.Init(region.Mem, l, names); err != nil {
		region.Close()
		return nil, err
	}
	for end := range 2 {
		gg := p.geom[end]
		p.claims[end] = portname.NewClaims(int(gg.TxRings), int(gg.RxRings))
		if p.notify[end], err = notify.NewEventfds(int(max(gg.TxRings, gg.RxRings))); err != nil {
			p.Free()
			return nil, err
		}
	}
	return p, nil
}

// Name returns the name of an end.
func (p *Pair) Name(end int) string { return p.names[end] }

// Geometry returns the geometry of an end.
func (p *Pair) Geometry(end int) ports.Geometry { return p.geom[end] }

// Layout returns the pair's memory layout.
func (p *Pair) Layout() ports.Layout { return p.layout }

// Mem returns the pair's memory as valed maps it.
func (p *Pair) Mem() []byte { return p.region.Mem }

// NetmapIfs returns the netmap_if slots of the pair's memory.
func (p *Pair) NetmapIfs() *ports.NetmapIfs { return p.nifs }

// RegionFD returns the memfd of the pair's memory.
func (p *Pair) RegionFD() int { return p.region.FD }

// Users returns the bindings of each end.
func (p *Pair) Users() [2]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.users
}

// Free releases the pair's memory and eventfds. Clients that mapped the
// memory keep their mappings.
func (p *Pair) Free() error {
	for end := range 2 {
		notify.CloseAll(p.notify[end])
	}
	p.nifs.Close() // a zero-copy monitor may outlive the pair
	return p.region.Close()
}

// Binding is one client's hold on an end.
type Binding struct {
	pair   *Pair
	end    int
	sel    portname.Selection
	nif    int64 // its netmap_if
	closed bool
}

// Bind gives a client the rings sel names on end.
func (p *Pair) Bind(end int, sel portname.Selection) (*Binding, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.claims[end].Take(p.names[end], sel); err != nil {
		return nil, err
	}
	nif, err := p.nifs.Write(end, sel.Bound(), p.names[end], 0)
	if err != nil {
		p.claims[end].Release(sel)
		return nil, fmt.Errorf("%s: %w", p.names[end], err)
	}
	p.users[end]++
	return &Binding{pair: p, end: end, sel: sel, nif: nif}, nil
}

// Reply fills the open reply for the binding and returns its descriptors
// (owned by the pair): the memory, the end's eventfds for the bound ring
// pairs, then the peer's for the same ring pairs.
func (b *Binding) Reply(r *wire.OpenReply) []int {
	p := b.pair
	nf, nl := b.sel.Notify()
	*r = wire.OpenReply{
		Kind: wire.KindPipe, Port: p.names[b.end], Geometry: p.geom[b.end],
		MemSize: p.layout.Size, IfOfs: p.layout.Ifaces[b.end].Ofs, PeerIfOfs: p.layout.Ifaces[1-b.end].Ofs,
		NifOfs: b.nif, MemID: p.nifs.MemID(), Pools: p.layout.Pools(),
		TxFirst: b.sel.TxFirst, TxLast: b.sel.TxLast, RxFirst: b.sel.RxFirst, RxLast: b.sel.RxLast,
		NotifyFirst: nf, NotifyLast: nl,
	}
	fds := []int{p.region.FD}
	for _, end := range []int{b.end, 1 - b.end} {
		for i := nf; i < nl; i++ {
			fds = append(fds, p.notify[end][i].FD())
		}
	}
	return fds
}

// Close releases the binding. It returns the number of bindings left on
// both ends together: the pair goes when there are none.
func (b *Binding) Close() int {
	p := b.pair
	p.mu.Lock()
	defer p.mu.Unlock()
	if !b.closed {
		b.closed = true
		p.claims[b.end].Release(b.sel)
		p.nifs.Release(b.nif)
		p.users[b.end]--
	}
	return p.users[0] + p.users[1]
}
