package ptnet

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/guard"
	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/internal/sockfile"
	"github.com/valeswitch/vale/ports"
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
	state    string
	caps     atomic.Value // ports.OffloadCaps

	// errMu guards lastError, which the data path sets with a queue
	// locked (so not under mu).
	errMu     sync.Mutex
	lastError string

	// Counters shown in the port's state.
	rxNoBuf  atomic.Uint64 // frames for the guest dropped for lack of buffers
	txBadHdr atomic.Uint64 // frames from the guest with a header that did not apply
	breaks   atomic.Uint64 // queues stopped after a driver violation
	sessions atomic.Uint64 // frontend connections served
}

// ringMemory is guest memory by guest and by frontend address (a
// *memTable; heap memory in tests).
type ringMemory interface {
	guestMemory
	user(addr, n uint64) ([]byte, bool)
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
	base    uint16
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

	// Transmit side: the chains the last Recv took, and where frames are
	// copied to when the guest's memory could shrink under the mapping.
	heads  []uint16
	framed []bool // by chain of heads: whether it made a frame of the batch
	stage  []byte

	kicked  chan struct{}
	changed chan struct{}
	hdr     [vnetHdrMax]byte
	rxHeads [maxRxChains]uint16
	src     [][]byte // the pieces of a frame being written
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
	p.caps.Store(ports.OffloadCaps{})
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
func (p *Port) Offloads() ports.OffloadCaps { return p.caps.Load().(ports.OffloadCaps) }

// Describe tells vale-ctl about the port.
func (p *Port) Describe() ports.Desc {
	p.mu.Lock()
	state := []string{p.state}
	if p.conn != nil {
		state = append(state, fmt.Sprintf("features=%#x", p.features))
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
	}{{"rx-nobuf", &p.rxNoBuf}, {"tx-badhdr", &p.txBadHdr}, {"stopped-queues", &p.breaks}} {
		if n := c.v.Load(); n > 0 {
			state = append(state, fmt.Sprintf("%s=%d", c.name, n))
		}
	}
	n := len(p.queues) / 2
	return ports.Desc{Kind: "vhost-user", TxRings: n, RxRings: n, TxSlots: slots, RxSlots: slots, State: strings.Join(state, ",")}
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

// --- connections ---

func (p *Port) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.AcceptUnix()
		if err != nil {
			if !p.stopped.Load() {
				p.log.Error("vhost-user socket failed", "error", err)
			}
			return
		}
		p.mu.Lock()
		busy := p.conn != nil
		p.mu.Unlock()
		if busy {
			p.log.Warn("refused a second frontend connection while one is active")
			c.Close()
			continue
		}
		p.serve(c)
	}
}

func (p *Port) dialLoop() {
	defer p.wg.Done()
	logged := false
	for !p.stopped.Load() {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: p.cfg.Socket, Net: "unix"})
		if err != nil {
			if !logged {
				p.log.Info("waiting for the vhost-user frontend", "error", err)
				logged = true
			}
			select {
			case <-p.stopCh:
				return
			case <-time.After(p.cfg.Reconnect):
			}
			continue
		}
		logged = false
		p.serve(c)
	}
}

// serve runs one frontend connection to its end.
func (p *Port) serve(c *net.UnixConn) {
	p.mu.Lock()
	if p.stopped.Load() {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conn = c
	p.state = "connected"
	p.mu.Unlock()
	p.setLastErr("")
	p.sessions.Add(1)
	p.log.Info("vhost-user frontend connected")
	err := p.handleMessages(c)
	if err != nil && !p.stopped.Load() {
		p.setLastErr(err.Error())
	}
	p.disconnect()
	if err != nil && !p.stopped.Load() {
		p.log.Warn("vhost-user frontend disconnected", "error", err)
	} else {
		p.log.Info("vhost-user frontend disconnected")
	}
}

// handleMessages reads and serves messages until the connection ends or a
// message is refused (which ends it: the frontend sees the backend go and
// may reconnect, starting again from a clean device).
func (p *Port) handleMessages(c *net.UnixConn) error {
	// Setting up rings reads guest memory, which may fault.
	debug.SetPanicOnFault(true)
	for {
		m, err := readMessage(c)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				return nil
			}
			return err
		}
		reply, err := p.handleSafely(m)
		if err != nil {
			return fmt.Errorf("%s: %w", requestName(m.request), err)
		}
		if reply == nil && m.flags&flagNeedReply != 0 && p.protocolAcked(protoReplyAck) {
			reply = u64Payload(0)
		}
		if reply != nil {
			// A frontend that does not read its replies is dropped.
			c.SetWriteDeadline(time.Now().Add(replyTimeout))
			if _, err := c.Write(encodeReply(m.request, reply)); err != nil {
				return fmt.Errorf("reply to %s: %w", requestName(m.request), err)
			}
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, os.ErrClosed) || strings.Contains(err.Error(), "EOF") || errors.Is(err, unix.ECONNRESET)
}

func (p *Port) protocolAcked(bit uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.protocol&bit != 0
}

// disconnect forgets the frontend: queues stopped, memory unmapped.
func (p *Port) disconnect() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	p.lockQueues()
	for _, q := range p.queues {
		q.reset()
	}
	if p.mem != nil {
		p.mem.unmap()
		p.mem = nil
	}
	p.unlockQueues()
	p.owner, p.features, p.protocol = false, 0, 0
	p.caps.Store(ports.OffloadCaps{})
	if p.stopped.Load() {
		p.state = "stopped"
	} else if p.cfg.Client {
		p.state = "connecting"
	} else {
		p.state = "listening"
	}
}

// lockQueues takes every queue's lock: the transmit queues first (their
// holders, the switch workers of this port, only ever wait for receive
// queues), then the receive queues.
func (p *Port) lockQueues() {
	for _, tx := range []bool{true, false} {
		for _, q := range p.queues {
			if q.tx == tx {
				q.mu.Lock()
			}
		}
	}
}

func (p *Port) unlockQueues() {
	for _, q := range p.queues {
		q.mu.Unlock()
	}
}

// reset puts a queue back to its initial state. Its lock is held.
func (q *queue) reset() {
	for _, e := range []**notify.Eventfd{&q.kick, &q.call, &q.errEv} {
		if *e != nil {
			(*e).Close()
			*e = nil
		}
	}
	q.vq = virtq{}
	q.num, q.addr, q.addrSet, q.base, q.mem = 0, vringAddr{}, false, 0, nil
	q.ready, q.started, q.enabled, q.broken = false, false, false, nil
	q.heads = q.heads[:0]
	q.wake()
}

// wake tells a switch worker waiting on the queue to look again.
func (q *queue) wake() {
	select {
	case q.changed <- struct{}{}:
	default:
	}
}

// live reports whether the queue is to be served.
func (q *queue) live() bool { return q.ready && q.started && q.broken == nil }

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

// --- control messages ---

// stateQueue decodes a vring state payload and the queue it names.
func (p *Port) stateQueue(m *message) (vringState, *queue, error) {
	s, err := m.state()
	if err != nil {
		return s, nil, err
	}
	q, err := p.queue(s.index)
	return s, q, err
}

func (p *Port) queue(i uint32) (*queue, error) {
	if int(i) >= len(p.queues) {
		return nil, fmt.Errorf("virtqueue %d: the device has %d", i, len(p.queues))
	}
	return p.queues[i], nil
}

// handleSafely is handle, with a fault in guest memory turned into an
// error.
func (p *Port) handleSafely(m *message) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			reply, err = nil, guard.Error(r)
		}
	}()
	return p.handle(m)
}

// handle serves one message and returns its reply payload, if it has one.
func (p *Port) handle(m *message) ([]byte, error) {
	switch m.request {
	case reqGetFeatures:
		return u64Payload(backendFeatures), nil
	case reqSetFeatures:
		v, err := m.u64()
		if err != nil {
			return nil, err
		}
		return nil, p.setFeatures(v)
	case reqGetProtocolFeatures:
		return u64Payload(backendProtocolFeatures), nil
	case reqSetProtocolFeatures:
		v, err := m.u64()
		if err != nil {
			return nil, err
		}
		if v&^backendProtocolFeatures != 0 {
			return nil, fmt.Errorf("protocol features %#x were not offered", v&^backendProtocolFeatures)
		}
		p.mu.Lock()
		p.protocol = v
		p.mu.Unlock()
		return nil, nil
	case reqSetOwner:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.owner {
			return nil, errors.New("the session has an owner already")
		}
		p.owner = true
		return nil, nil
	case reqResetOwner:
		// Deprecated: disable every ring (vhost-user.rst).
		p.mu.Lock()
		defer p.mu.Unlock()
		p.lockQueues()
		for _, q := range p.queues {
			q.enabled, q.started = false, false
			q.wake()
		}
		p.unlockQueues()
		return nil, nil
	case reqSetMemTable:
		regions, err := m.memTable()
		if err != nil {
			closeFDs(m.fds)
			return nil, err
		}
		return nil, p.setMemTable(regions, m.fds)
	case reqSetVringNum:
		s, q, err := p.stateQueue(m)
		if err != nil {
			return nil, err
		}
		if s.num == 0 || s.num > maxQueueSize || s.num&(s.num-1) != 0 {
			return nil, fmt.Errorf("virtqueue %d: size %d (a power of two up to %d)", s.index, s.num, maxQueueSize)
		}
		q.mu.Lock()
		q.num = uint16(s.num)
		q.ready = false
		err = p.mapRing(q)
		q.mu.Unlock()
		return nil, err
	case reqSetVringAddr:
		a, err := m.addr()
		if err != nil {
			return nil, err
		}
		q, err := p.queue(a.index)
		if err != nil {
			return nil, err
		}
		q.mu.Lock()
		q.addr, q.addrSet, q.ready = a, true, false
		err = p.mapRing(q)
		q.mu.Unlock()
		return nil, err
	case reqSetVringBase:
		s, q, err := p.stateQueue(m)
		if err != nil {
			return nil, err
		}
		if s.num > 0xffff {
			return nil, fmt.Errorf("virtqueue %d: base %d", s.index, s.num)
		}
		q.mu.Lock()
		q.base = uint16(s.num)
		q.vq.lastAvail = q.base
		q.mu.Unlock()
		return nil, nil
	case reqGetVringBase:
		s, q, err := p.stateQueue(m)
		if err != nil {
			return nil, err
		}
		q.mu.Lock()
		base := q.vq.lastAvail
		if !q.ready {
			base = q.base
		}
		q.started = false
		if q.kick != nil {
			q.kick.Close()
			q.kick = nil
		}
		q.wake()
		q.mu.Unlock()
		return statePayload(vringState{s.index, uint32(base)}), nil
	case reqSetVringKick, reqSetVringCall, reqSetVringErr:
		v, err := m.u64()
		if err != nil {
			closeFDs(m.fds)
			return nil, err
		}
		q, err := p.queue(uint32(v & 0xff))
		if err != nil {
			closeFDs(m.fds)
			return nil, err
		}
		if v&^0x1ff != 0 {
			closeFDs(m.fds)
			return nil, fmt.Errorf("payload %#x has bits beyond the index and the no-descriptor flag", v)
		}
		fd := -1
		if len(m.fds) == 1 {
			fd = m.fds[0]
		}
		return nil, p.setEventFD(q, m.request, fd)
	case reqGetQueueNum:
		return u64Payload(uint64(len(p.queues) / 2)), nil
	case reqSetVringEnable:
		s, q, err := p.stateQueue(m)
		if err != nil {
			return nil, err
		}
		if s.num > 1 {
			return nil, fmt.Errorf("virtqueue %d: enable %d", s.index, s.num)
		}
		q.mu.Lock()
		q.enabled = s.num == 1
		q.wake()
		q.mu.Unlock()
		return nil, nil
	}
	return nil, fmt.Errorf("not supported (it was not offered)")
}

func (p *Port) setFeatures(v uint64) error {
	if v&^(backendFeatures|featLogAll) != 0 {
		return fmt.Errorf("features %#x were not offered", v&^(backendFeatures|featLogAll))
	}
	if v&featLogAll != 0 {
		return errors.New("dirty logging (VHOST_F_LOG_ALL) is not supported")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.features = v
	hdrLen := 10
	if v&(featVersion1|featNetMrgRxbuf) != 0 {
		hdrLen = 12
	}
	var errs []error
	p.lockQueues()
	for _, q := range p.queues {
		q.hdrLen, q.mrg, q.feats = hdrLen, v&featNetMrgRxbuf != 0, v
		if v&featProtocol == 0 {
			q.enabled = true // without protocol features, rings start enabled
		}
		if q.addrSet {
			// The event index lengthens both rings: they must still fit.
			if err := p.mapRing(q); err != nil {
				errs = append(errs, err)
			}
		}
		q.wake()
	}
	p.unlockQueues()
	p.caps.Store(ports.OffloadCaps{
		Csum: v&featNetGuestCsum != 0,
		TSO4: v&featNetGuestTSO4 != 0 && v&featNetGuestCsum != 0,
		TSO6: v&featNetGuestTSO6 != 0 && v&featNetGuestCsum != 0,
	})
	return errors.Join(errs...)
}

// setMemTable maps a new memory table and moves every ring onto it, with
// every queue locked so that no switch worker touches the old mappings.
func (p *Port) setMemTable(regions []memRegion, fds []int) error {
	t, err := mapTable(regions, fds)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lockQueues()
	old := p.mem
	p.mem = t
	var errs []error
	for _, q := range p.queues {
		q.mem = t
		if err := p.mapRing(q); err != nil {
			errs = append(errs, err)
		}
		q.wake()
	}
	p.unlockQueues()
	if old != nil {
		old.unmap()
	}
	p.log.Debug("memory table set", "regions", len(regions), "bytes", t.size(), "sealed", t.sealed)
	if !t.sealed {
		p.log.Info("guest memory is not sealed against shrinking: frames from the guest are copied before switching", "regions", len(regions))
	}
	return errors.Join(errs...)
}

// mapRing resolves a queue's ring addresses in the memory table, once it
// has its size, its addresses and the table. A ring already running (the
// table or the features changed) keeps its position; a new one starts at
// the base the frontend set. Its lock is held.
func (p *Port) mapRing(q *queue) error {
	if q.num == 0 || !q.addrSet || q.mem == nil {
		q.ready = false
		return nil
	}
	eventIdx := q.feats&featEventIdx != 0
	ds, as, us := ringSizes(q.num, eventIdx)
	desc, ok1 := q.mem.user(q.addr.desc, ds)
	avail, ok2 := padded(q.mem, q.addr.avail, as)
	used, ok3 := padded(q.mem, q.addr.used, us)
	if !ok1 || !ok2 || !ok3 {
		q.ready = false
		return fmt.Errorf("virtqueue %d: ring addresses %#x/%#x/%#x outside the memory table", q.index, q.addr.desc, q.addr.avail, q.addr.used)
	}
	base := q.vq.lastAvail
	if !q.ready {
		base = q.base
	}
	q.ready = false
	if err := q.vq.setup(q.num, desc, avail, used, eventIdx); err != nil {
		return fmt.Errorf("virtqueue %d: %w", q.index, err)
	}
	q.vq.lastAvail = base
	if err := q.attach(); err != nil {
		return fmt.Errorf("virtqueue %d: %w", q.index, err)
	}
	q.ready = true
	return nil
}

// padded returns the n bytes at frontend address addr, and 2 more when the
// memory has them: the ring's last 16-bit field then lies in a 32-bit word
// that can be read and written atomically.
func padded(m ringMemory, addr, n uint64) ([]byte, bool) {
	if b, ok := m.user(addr, n+2); ok {
		return b[:n], true
	}
	return m.user(addr, n)
}

// attach takes over a ring just mapped: the used ring says where the
// device left it (0 for a new ring, the last published index after a
// reconnection). A fault in guest memory becomes an error, with the
// caller's locks still held and released by it.
func (q *queue) attach() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = guard.Error(r)
		}
	}()
	q.vq.usedIdx = uint16(load32(q.vq.used, 0) >> 16)
	q.vq.usedFlags = 0
	q.vq.signalledValid = false
	if !q.tx {
		q.vq.disableKicks() // receive buffers are taken when frames come, not on kicks
	}
	return nil
}

// setEventFD installs a kick, call or error descriptor (-1: none). Each
// must be an eventfd.
func (p *Port) setEventFD(q *queue, request uint32, fd int) error {
	var e *notify.Eventfd
	if fd >= 0 {
		var err error
		if e, err = notify.Adopt(fd, fmt.Sprintf("virtqueue %d %s descriptor", q.index, requestName(request))); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch request {
	case reqSetVringKick:
		if q.kick != nil {
			q.kick.Close()
		}
		q.kick = e
		if e == nil {
			return fmt.Errorf("virtqueue %d: polling without a kick descriptor is not supported", q.index)
		}
		q.started = true
		q.broken = nil
		go relayKicks(e, q.kicked)
		q.wake()
	case reqSetVringCall:
		if q.call != nil {
			q.call.Close()
		}
		q.call = e
	case reqSetVringErr:
		if q.errEv != nil {
			q.errEv.Close()
		}
		q.errEv = e
	}
	return nil
}

// relayKicks turns the driver's kicks into wake-ups of the queue's switch
// worker, until the descriptor is closed.
func relayKicks(e *notify.Eventfd, kicked chan<- struct{}) {
	for e.Wait() == nil {
		select {
		case kicked <- struct{}{}:
		default:
		}
	}
}

// signal signals an eventfd the frontend gave (call or error), if any.
func signal(e *notify.Eventfd) {
	if e != nil {
		e.Signal()
	}
}

// breakQueue stops a queue the driver broke the rules of. Its lock is held.
func (p *Port) breakQueue(q *queue, err error) {
	if q.broken != nil {
		return
	}
	q.broken = err
	p.breaks.Add(1)
	signal(q.errEv)
	p.log.Warn("virtqueue stopped after a driver violation", "queue", q.index, "error", err)
	p.setLastErr(fmt.Sprintf("virtqueue %d: %v", q.index, err))
}

func (p *Port) setLastErr(s string) {
	p.errMu.Lock()
	p.lastError = s
	p.errMu.Unlock()
}

// lastErr returns the last error the frontend caused, if any.
func (p *Port) lastErr() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.lastError
}

// --- data path ---

// Recv waits until the driver's transmit queue of pair r has frames and
// appends them to b: views into guest memory, valid until Release (the
// queue stays locked in between).
func (p *Port) Recv(r int, b *ports.Batch) error {
	// The switch worker of this ring reads the frames from guest memory:
	// a fault must become a panic it can recover from.
	debug.SetPanicOnFault(true)
	q := p.queues[2*r+1]
	for {
		if p.stopped.Load() {
			return ports.ErrStopped
		}
		q.mu.Lock()
		if q.live() {
			n, err := p.takeTx(q, b)
			switch {
			case err != nil:
				b.Reset()
				p.releaseTx(q, -1)
				p.breakQueue(q, err)
			case n > 0 && q.enabled:
				return nil // Release unlocks
			case n > 0:
				// Started but disabled: consume and drop (vhost-user.rst).
				b.Reset()
				p.releaseTx(q, -1)
				q.mu.Unlock()
				continue
			default:
				if more, err := p.sleepy(q); err != nil {
					p.breakQueue(q, err)
				} else if more {
					q.mu.Unlock()
					continue
				}
			}
		}
		q.mu.Unlock()
		select {
		case <-q.kicked:
		case <-q.changed:
		case <-p.stopCh:
		}
	}
}

// sleepy asks the driver for a kick and reports whether frames came in
// the meantime. The queue's lock is held.
func (p *Port) sleepy(q *queue) (more bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			more, err = false, guard.Error(r)
		}
	}()
	q.vq.enableKicks()
	n, err := q.vq.pending()
	return n > 0, err
}

// takeTx takes up to a batch of the driver's frames. The queue's lock is
// held.
func (p *Port) takeTx(q *queue, b *ports.Batch) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, guard.Error(r)
		}
	}()
	pending, err := q.vq.pending()
	if err != nil {
		return 0, err
	}
	if pending == 0 {
		return 0, nil
	}
	q.vq.disableKicks()
	pending = min(pending, ports.MaxBatch)
	hdrLen := q.hdrLen
	// Frames read in place when the memory cannot shrink; else copied
	// (here, where a fault is recovered) into the stage.
	inPlace := q.mem.stable()
	if !inPlace && q.stage == nil {
		q.stage = make([]byte, 0, stageSize)
	}
	q.stage = q.stage[:0]
	for i := range pending {
		if !inPlace && len(q.stage)+maxTxChainBytes > cap(q.stage) {
			pending = i // the rest waits for the next round
			break
		}
		head, err := q.vq.head(i)
		if err != nil {
			return 0, err
		}
		got, added := 0, false
		var badHdr error
		var off ports.Offload
		if _, err := q.vq.walk(q.mem, head, false, maxTxChainBytes, func(buf []byte) {
			if got < hdrLen {
				k := copy(q.hdr[got:hdrLen], buf)
				got += k
				buf = buf[k:]
				if got == hdrLen {
					off, badHdr = parseVnetHdr(q.hdr[:hdrLen], q.feats)
				}
			}
			if len(buf) == 0 || badHdr != nil || got < hdrLen {
				return
			}
			if !inPlace {
				start := len(q.stage)
				q.stage = append(q.stage, buf...)
				buf = q.stage[start:len(q.stage):len(q.stage)]
			}
			if !added {
				b.AddOffload(buf, off)
				added = true
				return
			}
			b.AddFragment(buf)
		}); err != nil {
			return 0, err
		}
		q.heads = append(q.heads, head)
		q.framed = append(q.framed, added && badHdr == nil)
		if badHdr != nil {
			p.txBadHdr.Add(1)
			if added {
				drop(b)
			}
		}
	}
	q.vq.lastAvail += pending
	return int(pending), nil
}

// drop removes the last frame of b.
func drop(b *ports.Batch) {
	f := b.Frames[len(b.Frames)-1]
	if !f.Offload.IsZero() {
		b.Offloads--
	}
	b.Frames = b.Frames[:len(b.Frames)-1]
}

// Release gives the chains of the first n frames of the last Recv on ring
// r back to the driver (the others stay available, taken again by the
// next Recv) and unlocks the queue.
func (p *Port) Release(r int, _ *ports.Batch, n int) {
	q := p.queues[2*r+1]
	p.releaseTx(q, n)
	q.mu.Unlock()
}

// releaseTx returns the chains taken. The queue's lock is held.
func (p *Port) releaseTx(q *queue, frames int) {
	if len(q.heads) == 0 {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
		}
	}()
	k := len(q.heads)
	if frames >= 0 {
		// The chains up to the one of frame number frames (not included)
		// are used; the others go back to the available ring.
		seen := 0
		for i, f := range q.framed {
			if f && seen == frames {
				k = i
				break
			}
			if f {
				seen++
			}
		}
	}
	q.vq.lastAvail -= uint16(len(q.heads) - k)
	for _, h := range q.heads[:k] {
		q.vq.putUsed(h, 0)
	}
	q.heads, q.framed = q.heads[:0], q.framed[:0]
	if k == 0 {
		return
	}
	q.vq.publishUsed()
	if q.vq.needsSignal() {
		signal(q.call)
	}
}

// Deliver writes frames into the driver's receive buffers of pair r.
func (p *Port) Deliver(r int, b *ports.Batch, which []uint16) (frames, bytes int, err error) {
	q := p.queues[2*r]
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.live() || !q.enabled {
		return 0, 0, nil
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
			frames, bytes = 0, 0
		}
	}()
	for _, fi := range which {
		f := &b.Frames[fi]
		ok, err := p.putRx(q, f)
		if err != nil {
			p.breakQueue(q, err)
			break
		}
		if !ok {
			p.rxNoBuf.Add(uint64(len(which) - frames))
			break
		}
		frames++
		bytes += f.Len()
	}
	if frames > 0 {
		q.vq.publishUsed()
		if q.vq.needsSignal() {
			signal(q.call)
		}
	}
	return frames, bytes, nil
}

// putRx writes one frame, behind its header, into as many available
// chains as it needs (one without mergeable buffers). It reports false,
// having taken nothing, when the driver has not made room enough
// available. The queue's lock is held.
func (p *Port) putRx(q *queue, f *ports.Frame) (bool, error) {
	pending, err := q.vq.pending()
	if err != nil {
		return false, err
	}
	// Find the chains: capacities first, nothing written yet.
	nchains, err := q.chainsFor(q.hdrLen+f.Len(), 0, pending)
	if nchains == 0 || err != nil {
		return false, err
	}
	// Write the header (what is left to do, and the chain count), then the
	// frame across the chains.
	o := f.Offload
	if !p.Offloads().Accepts(o) {
		o = ports.Offload{}
	}
	putVnetHdr(q.hdr[:q.hdrLen], o, uint16(nchains))
	src := append(append(q.src[:0], q.hdr[:q.hdrLen], f.Data), f.More...)
	q.src = src[:0]
	si, so := 0, 0
	for c := range nchains {
		n := 0
		if _, err := q.vq.walk(q.mem, q.rxHeads[c], true, 1<<30, func(buf []byte) {
			for len(buf) > 0 && si < len(src) {
				k := copy(buf, src[si][so:])
				buf = buf[k:]
				n += k
				if so += k; so == len(src[si]) {
					si, so = si+1, 0
				}
			}
		}); err != nil {
			return false, err
		}
		q.vq.putUsed(q.rxHeads[c], uint32(n))
	}
	q.vq.lastAvail += uint16(nchains)
	return true, nil
}

// chainsFor finds the available chains from lastAvail+from on (of pending)
// that a frame of need bytes with its header takes, notes their heads in
// q.rxHeads, and returns how many: 0 if the driver has not made room
// enough available. The queue's lock is held.
func (q *queue) chainsFor(need int, from, pending uint16) (int, error) {
	nchains, room := 0, 0
	for room < need {
		if from+uint16(nchains) == pending || nchains == maxRxChains || (!q.mrg && nchains == 1) {
			return 0, nil
		}
		head, err := q.vq.head(from + uint16(nchains))
		if err != nil {
			return 0, err
		}
		c, err := q.vq.walk(q.mem, head, true, 1<<30, func([]byte) {})
		if err != nil {
			return 0, err
		}
		q.rxHeads[nchains] = head
		nchains++
		room += c
	}
	return nchains, nil
}

// Room tells how many of the frames which the driver's receive queue of
// pair r has buffers for now (see vale.RoomPort). A queue that is not
// served (no frontend, not started, stopped) has room for everything:
// Deliver drops what it is given, and nobody waits for a guest that is not
// there.
func (p *Port) Room(r int, b *ports.Batch, which []uint16) (n int) {
	q := p.queues[2*r]
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.live() || !q.enabled {
		return len(which)
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
			n = len(which)
		}
	}()
	pending, err := q.vq.pending()
	if err != nil {
		return len(which) // Deliver stops the queue
	}
	used := uint16(0)
	for n, fi := range which {
		k, err := q.chainsFor(q.hdrLen+b.Frames[fi].Len(), used, pending)
		if err != nil {
			return len(which)
		}
		if k == 0 {
			return n
		}
		used += uint16(k)
	}
	return len(which)
}

// WaitRoom asks the driver to kick when it makes more receive buffers
// available on the queue of pair r, and waits for that, or the deadline
// (see vale.RoomPort).
func (p *Port) WaitRoom(r int, deadline time.Time) {
	q := p.queues[2*r]
	more, ok := p.armRoom(q, true)
	if !ok || more {
		p.armRoom(q, false)
		return
	}
	timer := time.NewTimer(time.Until(deadline))
	select {
	case <-q.kicked:
	case <-q.changed:
	case <-p.stopCh:
	case <-timer.C:
	}
	timer.Stop()
	p.armRoom(q, false)
}

// armRoom enables (or disables again) the driver's kicks on a receive
// queue and, when enabling, reports whether buffers came meanwhile. ok is
// false for a queue that is not served.
func (p *Port) armRoom(q *queue, on bool) (more, ok bool) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.live() {
		return false, false
	}
	defer func() {
		if r := recover(); r != nil {
			p.breakQueue(q, guard.Error(r))
			more, ok = false, false
		}
	}()
	if !on {
		q.vq.disableKicks()
		return false, true
	}
	// Kick for buffers beyond those available now (too few for the frame
	// that waits), then look once more.
	idx := q.vq.availIdx()
	q.vq.enableKicksAfter(idx)
	return q.vq.availIdx() != idx, true
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
