package ptnet

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/internal/sockfile"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

// Limits of a port.
const (
	MaxQueuePairs   = 16 // queue pairs a port offers at most (a switch port has at most 16 rings)
	maxTxChainBytes = vnetHdrMax + 65535 + 18
	maxRxChains     = 256 // chains one received frame may take (mergeable buffers)
	stageSize       = 2 << 20
	replyTimeout    = 5 * time.Second // for the frontend to make room for a reply
)

// Config configures a vhost-user port.
type Config struct {
	Name   string // the switch port, e.g. "vale0:vm1"
	Socket string // the vhost-user socket path
	Client bool   // connect to a frontend listening on Socket (QEMU server=on) instead of listening
	// StateDir, if set, records the socket valed creates, so that a valed
	// started after a crash may replace it (see package sockfile).
	StateDir   string
	QueuePairs int // queue pairs offered (GET_QUEUE_NUM); 0 means 1
	// Reconnect is how long a client waits between connection attempts.
	Reconnect time.Duration
	Logger    *slog.Logger
}

// Port is a vhost-user backend attached to a switch: TX ring i (frames into
// the switch) is the driver's transmit queue of pair i (virtqueue 2i+1),
// RX ring i its receive queue (virtqueue 2i).
type Port struct {
	cfg Config
	log *slog.Logger

	queues []*queue // by virtqueue index

	stopped atomic.Bool
	stopCh  chan struct{}
	wg      sync.WaitGroup
	ln      *sockfile.Listener

	// mu guards the connection and what it negotiated. Lock order: mu,
	// then the transmit queues, then the receive queues.
	mu       sync.Mutex
	conn     *net.UnixConn
	owner    bool
	features uint64
	protocol uint64
	mem      *memTable
	dlog     *dirtyLog // the dirty log of a migration, once set
	state    string
	caps     atomic.Value // frame.OffloadCaps

	// errMu guards lastError, which the data path sets with a queue
	// locked (so not under mu).
	errMu     sync.Mutex
	lastError string

	// pending is a RARP for the switch, sent with the next frames of the
	// first transmit queue (see announce).
	pending atomic.Pointer[[]byte]

	// Counters shown in the port's state.
	rxNoBuf  atomic.Uint64 // frames for the guest dropped for lack of buffers
	txBadHdr atomic.Uint64 // frames from the guest with a header that did not apply
	breaks   atomic.Uint64 // queues stopped after a driver violation
	sessions atomic.Uint64 // frontend connections served
	rarps    atomic.Uint64 // RARPs the frontend asked for (SEND_RARP)
}

// ringMemory is guest memory by guest and by frontend address (a
// *memTable; heap memory in tests).
type ringMemory interface {
	guestMemory
	user(addr, n uint64) ([]byte, bool)
	// guestAddr translates a frontend address to a guest one.
	guestAddr(user uint64) (uint64, bool)
	// stable reports whether the memory cannot shrink under its mapping:
	// the switch may then read frames in place.
	stable() bool
}

// queue is one virtqueue and what the frontend set up for it.
type queue struct {
	index int
	tx    bool // the driver's transmit queue (frames into the switch)

	mu      sync.Mutex
	vq      virtq
	num     uint16
	addr    vringAddr
	addrSet bool
	base    uint32 // as SET_VRING_BASE gave it
	mem     ringMemory
	ready   bool // rings mapped
	started bool // kick descriptor received, not stopped by GET_VRING_BASE
	enabled bool
	broken  error
	kick    *notify.Eventfd // the driver signals it after making buffers available
	call    *notify.Eventfd // the device signals it after using buffers
	errEv   *notify.Eventfd // the device signals it when it stops the queue
	hdrLen  int
	mrg     bool
	feats   uint64
	dlog    *dirtyLog // the frontend's dirty log, used while feats has VHOST_F_LOG_ALL

	// Transmit side: the chains the last Recv took, and where frames are
	// copied to when the guest's memory could shrink under the mapping.
	chains []chain
	framed []bool // by chain: whether it made a frame of the batch
	stage  []byte
	// announcing is the RARP the last Recv added after the chains' frames.
	announcing *[]byte

	kicked   chan struct{}
	changed  chan struct{}
	hdr      [vnetHdrMax]byte
	rxChains [maxRxChains]chain
	burst    [rxBurst]rxBuf
	plan     rxPlan
	src      [][]byte // the pieces of a frame being written
}

// New creates a port and starts listening (or connecting) on its socket.
func New(cfg Config) (*Port, error) {
	if cfg.QueuePairs == 0 {
		cfg.QueuePairs = 1
	}
	if cfg.QueuePairs < 1 || cfg.QueuePairs > MaxQueuePairs {
		return nil, fmt.Errorf("%s: %d queue pairs (1..%d)", cfg.Name, cfg.QueuePairs, MaxQueuePairs)
	}
	if cfg.Socket == "" {
		return nil, fmt.Errorf("%s: no vhost-user socket path", cfg.Name)
	}
	if cfg.Reconnect == 0 {
		cfg.Reconnect = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Port{cfg: cfg, log: cfg.Logger.With("port", cfg.Name, "socket", cfg.Socket), stopCh: make(chan struct{})}
	p.caps.Store(frame.OffloadCaps{})
	for i := range 2 * cfg.QueuePairs {
		p.queues = append(p.queues, &queue{index: i, tx: i%2 == 1,
			kicked: make(chan struct{}, 1), changed: make(chan struct{}, 1)})
	}
	if cfg.Client {
		p.state = "connecting"
		p.wg.Add(1)
		go p.dialLoop()
		return p, nil
	}
	ln, err := sockfile.Listen("unix", cfg.Socket, cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	p.ln = ln
	p.state = "listening"
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Name returns the port's name.
func (p *Port) Name() string { return p.cfg.Name }

// Socket returns the vhost-user socket path.
func (p *Port) Socket() string { return p.cfg.Socket }

// Offloads returns what the guest takes as it is (vale.OffloadPort).
func (p *Port) Offloads() frame.OffloadCaps { return p.caps.Load().(frame.OffloadCaps) }

// Describe tells vale-ctl about the port.
func (p *Port) Describe() wire.Desc {
	p.mu.Lock()
	state := []string{p.state}
	if p.conn != nil {
		state = append(state, vhostuser.FeatureNames(p.features)...)
		enabled := 0
		for _, q := range p.queues {
			q.mu.Lock()
			if q.started && q.enabled && q.ready && q.broken == nil {
				enabled++
			}
			q.mu.Unlock()
		}
		state = append(state, fmt.Sprintf("queues=%d/%d", enabled/2, len(p.queues)/2))
	}
	q := p.queues[0]
	q.mu.Lock()
	slots := int(q.num)
	q.mu.Unlock()
	p.mu.Unlock()
	if e := p.lastErr(); e != "" {
		state = append(state, "last-error="+strings.ReplaceAll(e, " ", "_"))
	}
	for _, c := range []struct {
		name string
		v    *atomic.Uint64
	}{{"rx-nobuf", &p.rxNoBuf}, {"tx-badhdr", &p.txBadHdr}, {"stopped-queues", &p.breaks}, {"rarp", &p.rarps}} {
		if n := c.v.Load(); n > 0 {
			state = append(state, fmt.Sprintf("%s=%d", c.name, n))
		}
	}
	n := len(p.queues) / 2
	return wire.Desc{Kind: "vhost-user", TxRings: n, RxRings: n, TxSlots: slots, RxSlots: slots, State: strings.Join(state, ",")}
}

// Geometry returns the port's rings, for copy monitors sized like it.
func (p *Port) Geometry() ports.Geometry {
	n := uint32(len(p.queues) / 2)
	return ports.Geometry{TxRings: n, RxRings: n, TxSlots: 1024, RxSlots: 1024, BufSize: 2048}
}

// Features returns the virtio features the frontend acked.
func (p *Port) Features() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.features
}

// Connected reports whether a frontend is connected.
func (p *Port) Connected() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn != nil
}

// Stop makes pending and future Recv calls return ports.ErrStopped and
// closes the socket: the frontend sees the backend go.
func (p *Port) Stop() {
	if p.stopped.Swap(true) {
		return
	}
	close(p.stopCh)
	if p.ln != nil {
		p.ln.Close()
	}
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close()
	}
	p.mu.Unlock()
}

// Free waits for the connection goroutines and releases everything. The
// port must be stopped and detached from its switch.
func (p *Port) Free() error {
	p.Stop()
	p.wg.Wait()
	p.disconnect()
	return nil
}

// Counters are a vhost-user port's own counts.
type Counters struct {
	Sessions      uint64 // frontend connections served
	RxNoBuf       uint64 // frames for the guest dropped for lack of buffers
	TxBadHeader   uint64 // frames from the guest with a header that did not apply
	StoppedQueues uint64 // queues stopped after a driver violation
	EnabledPairs  int    // queue pairs started and enabled now
}

// Counters returns the port's counts.
func (p *Port) Counters() Counters {
	c := Counters{Sessions: p.sessions.Load(), RxNoBuf: p.rxNoBuf.Load(), TxBadHeader: p.txBadHdr.Load(), StoppedQueues: p.breaks.Load()}
	n := 0
	for _, q := range p.queues {
		q.mu.Lock()
		if q.live() && q.enabled {
			n++
		}
		q.mu.Unlock()
	}
	c.EnabledPairs = n / 2
	return c
}
