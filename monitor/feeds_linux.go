package monitor

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

// Feed is one monitor a client feeds.
type Feed struct {
	id     uint64
	copies bool // copy monitor (frames copied) rather than zero-copy (buffers swapped)
	txBase int
	rxBase int
	rings  []*ports.KRing // the monitor's receive rings
	kick   []int          // their eventfds
	mem    []byte         // a copy monitor's memory, mapped here
	batch  *frame.Batch
	which  []uint16
}

// NewFeed builds the feed an event describes. mem is the client's port
// memory for zero-copy monitors; fds are the descriptors that came with the
// event. On error the descriptors are closed.
func NewFeed(ev *wire.MonitorEvent, mem []byte, fds []int, port string) (*Feed, error) {
	f := &Feed{id: ev.ID, txBase: ev.TxBase, rxBase: ev.RxBase, copies: ev.Kind == wire.KindMonitor}
	fail := func(err error) (*Feed, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		if f.mem != nil {
			unix.Munmap(f.mem)
		}
		return nil, err
	}
	if f.copies {
		if len(fds) < 1 || ev.MemSize <= 0 {
			return fail(fmt.Errorf("copy monitor %d without memory", ev.ID))
		}
		m, err := unix.Mmap(fds[0], 0, int(ev.MemSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fail(fmt.Errorf("map monitor %d: %w", ev.ID, err))
		}
		unix.Close(fds[0])
		fds = fds[1:]
		f.mem, mem = m, m
		f.batch = frame.NewBatch()
	}
	iface, err := ports.OpenIface(mem, ev.IfOfs)
	if err != nil {
		return fail(fmt.Errorf("monitor %d: %w", ev.ID, err))
	}
	if n := iface.NumRings(ports.RX); n != ev.Rings || len(fds) != n {
		return fail(fmt.Errorf("monitor %d has %d rings and %d eventfds, announced %d", ev.ID, n, len(fds), ev.Rings))
	}
	for i := range ev.Rings {
		f.rings = append(f.rings, iface.KRing(ports.RX, i, iface.Name()))
	}
	f.kick = fds
	return f, nil
}

func (f *Feed) release() {
	for _, fd := range f.kick {
		unix.Close(fd)
	}
	if f.mem != nil {
		unix.Munmap(f.mem)
	}
}

// Feeds holds the monitors a client feeds. Add and Remove may run on any
// goroutine; the hooks and Reap run on the goroutine that syncs the rings.
type Feeds struct {
	feeds   atomic.Pointer[[]*Feed]
	mu      sync.Mutex
	retired []*Feed
	closed  bool
}

// Add starts feeding f.
func (t *Feeds) Add(f *Feed) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		f.release()
		return
	}
	var l []*Feed
	if old := t.feeds.Load(); old != nil {
		l = append(l, *old...)
	}
	l = append(l, f)
	t.feeds.Store(&l)
}

// Remove stops feeding monitor id. Its resources are released by the next
// Reap, on the syncing goroutine, so that no hook is using them.
func (t *Feeds) Remove(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.feeds.Load()
	if old == nil {
		return
	}
	var l []*Feed
	for _, f := range *old {
		if f.id == id {
			t.retired = append(t.retired, f)
		} else {
			l = append(l, f)
		}
	}
	t.feeds.Store(&l)
}

// Reap releases the feeds removed since the last call. Call it from the
// syncing goroutine, outside the hooks.
func (t *Feeds) Reap() {
	t.mu.Lock()
	r := t.retired
	t.retired = nil
	t.mu.Unlock()
	for _, f := range r {
		f.release()
	}
}

// Close releases every feed. No hook may run during or after Close.
func (t *Feeds) Close() {
	t.mu.Lock()
	t.closed = true
	if l := t.feeds.Load(); l != nil {
		t.retired = append(t.retired, *l...)
	}
	t.feeds.Store(nil)
	t.mu.Unlock()
	t.Reap()
}

// Len returns the number of monitors fed.
func (t *Feeds) Len() int {
	if l := t.feeds.Load(); l != nil {
		return len(*l)
	}
	return 0
}

// Active reports whether any monitor is fed: the hooks cost one atomic load
// otherwise.
func (t *Feeds) Active() bool {
	l := t.feeds.Load()
	return l != nil && len(*l) > 0
}

func (f *Feed) wake(ring int) { notify.Signal(f.kick[ring]) }

// swap hands slots [from, to) of r to monitor ring base+ring.
func (f *Feed) swap(base, ring int, r *ports.Ring, from, to uint32, flags uint16, ts int64) {
	if base < 0 || from == to || base+ring >= len(f.rings) {
		return
	}
	k := f.rings[base+ring]
	n, wake, err := k.SwapIn(r, from, to, flags, ts)
	if err != nil {
		n = 0 // the monitor's reader broke its ring; it sees the reset
	}
	if total := dist(r, from, to); total > n {
		k.Dropped(total - n)
	}
	if wake || err != nil {
		f.wake(base + ring)
	}
}

// copyIn copies the frames in slots [from, to) of r into monitor ring
// base+ring. A chain of NS_MOREFRAG slots cut at to is copied as far as it
// goes.
func (f *Feed) copyIn(base, ring int, r *ports.Ring, from, to uint32, ts int64) {
	if base < 0 || from == to || base+ring >= len(f.rings) {
		return
	}
	b := f.batch
	b.Reset()
	b.Time = ts
	chained := false
	for i := from; i != to; i = r.Next(i) {
		s := r.Slot(i)
		if chained {
			b.AddFragment(r.Packet(i))
		} else {
			b.Add(r.Packet(i), s.Flags)
		}
		chained = s.Flags&ports.NS_MOREFRAG != 0
	}
	for len(f.which) < len(b.Frames) {
		f.which = append(f.which, uint16(len(f.which)))
	}
	k := f.rings[base+ring]
	n, _, wake, err := k.RxFrames(b, f.which[:len(b.Frames)], ts)
	if err != nil {
		n = 0
	}
	if lost := len(b.Frames) - n; lost > 0 {
		k.Dropped(lost)
	}
	if wake || err != nil {
		f.wake(base + ring)
	}
}

func dist(r *ports.Ring, from, to uint32) int {
	if to >= from {
		return int(to - from)
	}
	return int(to + r.NumSlots() - from)
}

// TxSent is called with the slots [from, to) of TX ring ring the
// application just handed over: copy monitors of the TX direction get them.
func (t *Feeds) TxSent(ring int, r *ports.Ring, from, to uint32) {
	t.each(func(f *Feed, ts int64) {
		if f.copies {
			f.copyIn(f.txBase, ring, r, from, to, ts)
		}
	})
}

// RxArrived is called with the slots [from, to) of RX ring ring that just
// arrived: copy monitors of the RX direction get them.
func (t *Feeds) RxArrived(ring int, r *ports.Ring, from, to uint32) {
	t.each(func(f *Feed, ts int64) {
		if f.copies {
			f.copyIn(f.rxBase, ring, r, from, to, ts)
		}
	})
}

// TxCompleted is called with the slots [from, to) of TX ring ring the other
// side has finished with (netmap's old and new hwcur), before the
// application may reuse them: zero-copy monitors take their buffers, marked
// NS_TXMON.
func (t *Feeds) TxCompleted(ring int, r *ports.Ring, from, to uint32) {
	t.each(func(f *Feed, ts int64) {
		if !f.copies {
			f.swap(f.txBase, ring, r, from, to, ports.NS_TXMON, ts)
		}
	})
}

// RxReleased is called with the slots [from, to) of RX ring ring the
// application released, before the other side may reuse them: zero-copy
// monitors take their buffers.
func (t *Feeds) RxReleased(ring int, r *ports.Ring, from, to uint32) {
	t.each(func(f *Feed, ts int64) {
		if !f.copies {
			f.swap(f.rxBase, ring, r, from, to, 0, ts)
		}
	})
}

func (t *Feeds) each(fn func(f *Feed, ts int64)) {
	l := t.feeds.Load()
	if l == nil || len(*l) == 0 {
		return
	}
	ts := time.Now().UnixNano()
	for _, f := range *l {
		fn(f, ts)
	}
}
