package ptnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/valeswitch/vale/internal/guard"
	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

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
	h := handlers[m.request]
	if h == nil {
		return nil, fmt.Errorf("not supported (it was not offered)")
	}
	reply, err := h(p, m)
	if p.log.Enabled(context.Background(), slog.LevelDebug) && m.request != vhostuser.ReqSetMemTable {
		p.log.Debug("vhost-user request", "request", vhostuser.RequestName(m.request),
			"payload", fmt.Sprintf("%x", m.payload[:min(len(m.payload), 32)]), "reply", fmt.Sprintf("%x", reply), "error", err)
	}
	return reply, err
}

// handlers serves each request the backend takes, by request.
var handlers = map[uint32]func(p *Port, m *message) ([]byte, error){
	vhostuser.ReqGetFeatures:         func(*Port, *message) ([]byte, error) { return vhostuser.U64(backendFeatures), nil },
	vhostuser.ReqSetFeatures:         (*Port).onSetFeatures,
	vhostuser.ReqGetProtocolFeatures: func(*Port, *message) ([]byte, error) { return vhostuser.U64(backendProtocolFeatures), nil },
	vhostuser.ReqSetProtocolFeatures: (*Port).onSetProtocolFeatures,
	vhostuser.ReqSetOwner:            (*Port).onSetOwner,
	vhostuser.ReqResetOwner:          (*Port).onResetOwner,
	vhostuser.ReqSetMemTable:         (*Port).onSetMemTable,
	vhostuser.ReqSetVringNum:         (*Port).onSetVringNum,
	vhostuser.ReqSetVringAddr:        (*Port).onSetVringAddr,
	vhostuser.ReqSetVringBase:        (*Port).onSetVringBase,
	vhostuser.ReqGetVringBase:        (*Port).onGetVringBase,
	vhostuser.ReqSetVringKick:        (*Port).onSetVringFD,
	vhostuser.ReqSetVringCall:        (*Port).onSetVringFD,
	vhostuser.ReqSetVringErr:         (*Port).onSetVringFD,
	vhostuser.ReqGetQueueNum:         func(p *Port, _ *message) ([]byte, error) { return vhostuser.U64(uint64(len(p.queues) / 2)), nil },
	vhostuser.ReqSetVringEnable:      (*Port).onSetVringEnable,
	vhostuser.ReqSetLogBase:          (*Port).onSetLogBase,
	vhostuser.ReqSetLogFD:            (*Port).onSetLogFD,
	vhostuser.ReqSendRARP:            (*Port).onSendRARP,
}

func (p *Port) onSetFeatures(m *message) ([]byte, error) {
	v, err := m.u64()
	if err != nil {
		return nil, err
	}
	return nil, p.setFeatures(v)
}

func (p *Port) onSetProtocolFeatures(m *message) ([]byte, error) {
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
}

func (p *Port) onSetOwner(*message) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.owner {
		return nil, errors.New("the session has an owner already")
	}
	p.owner = true
	return nil, nil
}

// onResetOwner disables every ring (the request is deprecated; vhost-user.rst).
func (p *Port) onResetOwner(*message) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lockQueues()
	for _, q := range p.queues {
		q.enabled, q.started = false, false
		q.wake()
	}
	p.unlockQueues()
	return nil, nil
}

func (p *Port) onSetMemTable(m *message) ([]byte, error) {
	regions, err := m.memTable()
	if err != nil {
		closeFDs(m.fds)
		return nil, err
	}
	return nil, p.setMemTable(regions, m.fds)
}

func (p *Port) onSetVringNum(m *message) ([]byte, error) {
	s, q, err := p.stateQueue(m)
	if err != nil {
		return nil, err
	}
	if s.num == 0 || s.num > vhostuser.MaxQueueSize || s.num&(s.num-1) != 0 {
		return nil, fmt.Errorf("virtqueue %d: size %d (a power of two up to %d)", s.index, s.num, vhostuser.MaxQueueSize)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.num = uint16(s.num)
	q.ready = false
	return nil, p.mapRing(q)
}

func (p *Port) onSetVringAddr(m *message) ([]byte, error) {
	a, err := m.addr()
	if err != nil {
		return nil, err
	}
	q, err := p.queue(a.index)
	if err != nil {
		return nil, err
	}
	if a.flags&^vhostuser.VringFLog != 0 {
		return nil, fmt.Errorf("virtqueue %d: address flags %#x", a.index, a.flags)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addr, q.addrSet = a, true
	if !q.started {
		q.ready = false // a ring being set up starts from its base
	}
	// A running ring (QEMU sets the addresses again to turn logging on
	// for a migration) keeps its position.
	return nil, p.mapRing(q)
}

func (p *Port) onSetVringBase(m *message) ([]byte, error) {
	s, q, err := p.stateQueue(m)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.feats&vhostuser.FeatRingPacked == 0 && s.num > 0xffff {
		return nil, fmt.Errorf("virtqueue %d: base %d", s.index, s.num)
	}
	q.base = s.num
	if !q.ready {
		return nil, nil
	}
	// A ring mapped already starts from the new base.
	next, used, err := q.baseCursors()
	if err != nil {
		q.ready = false
		return nil, err
	}
	q.vq.setNext(next)
	if q.vq.packed {
		q.vq.usedIdx, q.vq.usedWrap = used.idx, used.wrap
	}
	return nil, nil
}

// baseCursors decodes the base the frontend set: the next available entry
// and the next used one. A packed ring's base holds the available slot
// and wrap counter in its low 16 bits and, from QEMU, the used ones in its
// high 16 bits (zero: the same as the available ones). Its lock is held.
func (q *queue) baseCursors() (next, used cursor, err error) {
	if q.feats&vhostuser.FeatRingPacked == 0 {
		return cursor{idx: uint16(q.base)}, cursor{}, nil
	}
	decode := func(v uint32) cursor { return cursor{idx: uint16(v & 0x7fff), wrap: v&0x8000 != 0} }
	next, used = decode(q.base), decode(q.base>>16)
	if q.base>>16 == 0 {
		used = next
	}
	if next.idx >= q.num || used.idx >= q.num {
		return next, used, fmt.Errorf("virtqueue %d: base %#x beyond a ring of %d", q.index, q.base, q.num)
	}
	return next, used, nil
}

// onGetVringBase stops the queue and answers where it stopped (a packed
// ring: the available and the used slots with their wrap counters).
func (p *Port) onGetVringBase(m *message) ([]byte, error) {
	s, q, err := p.stateQueue(m)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	base := q.base
	if q.ready {
		base = q.vq.base()
	}
	q.started = false
	if q.kick != nil {
		q.kick.Close()
		q.kick = nil
	}
	q.wake()
	return vhostuser.State(s.index, base), nil
}

// onSetVringFD serves SET_VRING_KICK, _CALL and _ERR.
func (p *Port) onSetVringFD(m *message) ([]byte, error) {
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
}

func (p *Port) onSetVringEnable(m *message) ([]byte, error) {
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

func (p *Port) setFeatures(v uint64) error {
	if v&^backendFeatures != 0 {
		return fmt.Errorf("features %#x were not offered", v&^backendFeatures)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.features = v
	hdrLen := 10
	if v&(vhostuser.FeatVersion1|vhostuser.FeatNetMrgRxbuf) != 0 {
		hdrLen = 12
	}
	var errs []error
	p.lockQueues()
	for _, q := range p.queues {
		q.hdrLen, q.mrg, q.feats = hdrLen, v&vhostuser.FeatNetMrgRxbuf != 0, v
		if v&vhostuser.FeatProtocol == 0 {
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
	p.caps.Store(frame.OffloadCaps{
		Csum: v&vhostuser.FeatNetGuestCsum != 0,
		TSO4: v&vhostuser.FeatNetGuestTSO4 != 0 && v&vhostuser.FeatNetGuestCsum != 0,
		TSO6: v&vhostuser.FeatNetGuestTSO6 != 0 && v&vhostuser.FeatNetGuestCsum != 0,
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
	q.plan = rxPlan{} // its buffers may lie in memory about to be unmapped
	if q.num == 0 || !q.addrSet || q.mem == nil {
		q.ready = false
		return nil
	}
	eventIdx := q.feats&vhostuser.FeatEventIdx != 0
	packed := q.feats&vhostuser.FeatRingPacked != 0
	ds, as, us := ringSizes(q.num, packed, eventIdx)
	desc, ok1 := q.mem.user(q.addr.desc, ds)
	avail, ok2 := padded(q.mem, q.addr.avail, as)
	used, ok3 := padded(q.mem, q.addr.used, us)
	if !ok1 || !ok2 || !ok3 {
		q.ready = false
		return fmt.Errorf("virtqueue %d: ring addresses %#x/%#x/%#x outside the memory table", q.index, q.addr.desc, q.addr.avail, q.addr.used)
	}
	next, usedAt := q.vq.next, cursor{q.vq.usedIdx, q.vq.usedWrap}
	if !q.ready || q.vq.packed != packed {
		var err error
		if next, usedAt, err = q.baseCursors(); err != nil {
			q.ready = false
			return err
		}
	}
	q.ready = false
	if err := q.vq.setup(q.num, packed, desc, avail, used, eventIdx); err != nil {
		return fmt.Errorf("virtqueue %d: %w", q.index, err)
	}
	q.vq.setNext(next)
	if err := q.attach(usedAt); err != nil {
		return fmt.Errorf("virtqueue %d: %w", q.index, err)
	}
	q.applyLog()
	q.ready = true
	p.log.Debug("virtqueue mapped", "index", q.index, "next", next.idx, "used", q.vq.usedIdx)
	return nil
}

// applyLog makes a mapped ring log its writes to guest memory when the
// frontend set a dirty log and VHOST_F_LOG_ALL is on, and stop when not.
// The ring's parts have guest addresses (the memory table gave them). Its
// lock is held.
func (q *queue) applyLog() {
	q.vq.log = nil
	if q.dlog == nil || q.feats&vhostuser.FeatLogAll == 0 {
		return
	}
	used, ok1 := q.mem.guestAddr(q.addr.used)
	desc, ok2 := q.mem.guestAddr(q.addr.desc)
	if ok1 && ok2 {
		q.vq.log, q.vq.usedGPA, q.vq.descGPA = q.dlog, used, desc
	}
}

// onSetLogBase maps the dirty log the frontend gives before a migration
// (replacing one it gave before) and answers once it is in use: the
// frontend then starts reading it.
func (p *Port) onSetLogBase(m *message) ([]byte, error) {
	size, offset, err := m.logBase()
	if err != nil {
		closeFDs(m.fds)
		return nil, err
	}
	if !p.protocolAcked(vhostuser.ProtoLogShmfd) {
		closeFDs(m.fds)
		return nil, errors.New("a dirty log without VHOST_USER_PROTOCOL_F_LOG_SHMFD")
	}
	l, err := mapLog(m.fds[0], size, offset)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.lockQueues()
	old := p.dlog
	p.dlog = l
	for _, q := range p.queues {
		q.dlog = l
		if q.ready {
			q.applyLog()
		}
	}
	p.unlockQueues()
	p.mu.Unlock()
	old.unmap()
	p.log.Info("dirty page log set", "bytes", size)
	return []byte{}, nil
}

// onSetLogFD takes the descriptor a frontend may give to be told of log
// updates; the device has nothing to tell it (the frontend reads the log
// when it syncs), so the descriptor is closed.
func (p *Port) onSetLogFD(m *message) ([]byte, error) {
	closeFDs(m.fds)
	_, err := m.u64()
	return nil, err
}

// onSendRARP has the switch learn where a migrated guest now is: the
// frontend (QEMU, after a migration, for a guest without
// VIRTIO_NET_F_GUEST_ANNOUNCE) gives the guest's MAC address, and the port
// sends a RARP from it into the switch, as if the guest had.
func (p *Port) onSendRARP(m *message) ([]byte, error) {
	if len(m.payload) != 8 {
		return nil, m.sizeError(8)
	}
	var mac [6]byte
	copy(mac[:], m.payload)
	p.announce(mac)
	return nil, nil
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

// attach takes over a ring just mapped: a split ring's used ring says
// where the device left it (0 for a new ring, the last published index
// after a reconnection), a packed ring's base or its position before the
// mapping changed (used). A fault in guest memory becomes an error, with
// the caller's locks still held and released by it.
func (q *queue) attach(used cursor) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = guard.Error(r)
		}
	}()
	if q.vq.packed {
		q.vq.usedIdx, q.vq.usedWrap = used.idx, used.wrap
	} else {
		q.vq.usedIdx = uint16(vhostuser.Load32(q.vq.used, 0) >> 16)
	}
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
		if e, err = notify.Adopt(fd, fmt.Sprintf("virtqueue %d %s descriptor", q.index, vhostuser.RequestName(request))); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch request {
	case vhostuser.ReqSetVringKick:
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
	case vhostuser.ReqSetVringCall:
		if q.call != nil {
			q.call.Close()
		}
		q.call = e
	case vhostuser.ReqSetVringErr:
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
