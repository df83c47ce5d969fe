// Package valetest provides an in-process switch port for tests: frames
// queued on it come out of Recv, frames the switch delivers to it are kept
// for inspection, and its room for frames can be limited to make it a slow
// or full receiver. It implements vale.Port and vale.RoomPort without
// shared memory, threads of its own or sleeps on the data path.
package valetest

import (
	"sync"
	"time"

	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

// Frame is a frame to queue: its bytes, slot flags and pending offload.
type Frame struct {
	Data    []byte
	Flags   uint16
	Offload frame.Offload
}

// Port is a fake switch port. Its methods are safe for concurrent use.
type Port struct {
	name   string
	ntx    int
	nrx    int
	txRing int // the TX ring Send queues on

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []Frame
	got     [][]byte
	gotOff  []frame.Offload
	gotRing []int
	room    int // frames Deliver still accepts; negative = unlimited
	stopped bool
	done    int // frames released
	waits   int // calls of WaitRoom
}

// NewPort returns a port called name with one ring each way and unlimited
// room.
func NewPort(name string) *Port {
	p := &Port{name: name, ntx: 1, nrx: 1, room: -1}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// SetRings gives the port ntx TX and nrx RX rings, with queued frames on
// TX ring txRing. Call it before attaching the port.
func (p *Port) SetRings(ntx, nrx, txRing int) {
	p.mu.Lock()
	p.ntx, p.nrx, p.txRing = ntx, nrx, txRing
	p.mu.Unlock()
}

// SetRoom sets how many more frames Deliver takes (negative: any number).
func (p *Port) SetRoom(n int) {
	p.mu.Lock()
	p.room = n
	p.mu.Unlock()
}

// MakeRoom lets Deliver take n more frames.
func (p *Port) MakeRoom(n int) {
	p.mu.Lock()
	p.room += n
	p.mu.Unlock()
}

// Send queues frames and waits until the switch has taken them.
func (p *Port) Send(frames ...Frame) {
	p.mu.Lock()
	p.queue = append(p.queue, frames...)
	target := p.done + len(p.queue)
	p.cond.Broadcast()
	for p.done < target {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// Queue queues frames without waiting.
func (p *Port) Queue(frames ...Frame) {
	p.mu.Lock()
	p.queue = append(p.queue, frames...)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Take returns and forgets what the port received.
func (p *Port) Take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.got
	p.got, p.gotRing, p.gotOff = nil, nil, nil
	return got
}

// Received returns how many frames the port holds (received and not
// taken).
func (p *Port) Received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// ReceivedOffloads returns the offloads of the frames the port holds.
func (p *Port) ReceivedOffloads() []frame.Offload {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]frame.Offload(nil), p.gotOff...)
}

// ReceivedRings returns the RX ring each frame the port holds came on.
func (p *Port) ReceivedRings() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.gotRing...)
}

// Released returns how many frames the switch has taken from the port.
func (p *Port) Released() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// WaitRoomCalls returns how many times the switch waited for the port's
// room.
func (p *Port) WaitRoomCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waits
}

// Name returns the port's name.
func (p *Port) Name() string { return p.name }

// Describe describes the port as kind "fake".
func (p *Port) Describe() wire.Desc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return wire.Desc{Kind: "fake", TxRings: p.ntx, RxRings: p.nrx, TxSlots: 1024, RxSlots: 1024}
}

// Recv returns the queued frames (up to a batch) on the port's TX ring,
// waiting for some.
func (p *Port) Recv(r int, b *frame.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for (len(p.queue) == 0 || r != p.txRing) && !p.stopped {
		p.cond.Wait()
	}
	if p.stopped {
		return ports.ErrStopped
	}
	n := min(len(p.queue), ports.MaxBatch)
	for _, f := range p.queue[:n] {
		if !f.Offload.IsZero() {
			b.AddOffload(f.Data, f.Offload)
			continue
		}
		b.Add(f.Data, f.Flags)
	}
	return nil
}

// Release forgets the first n frames of the queue: the others come again.
func (p *Port) Release(r int, b *frame.Batch, n int) {
	p.mu.Lock()
	p.queue = p.queue[n:]
	p.done += n
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Room tells how many frames Deliver would take.
func (p *Port) Room(r int, b *frame.Batch, which []uint16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.room < 0 {
		return len(which)
	}
	return min(p.room, len(which))
}

// WaitRoom waits until MakeRoom, Stop or the deadline, looking every
// 100 µs (the fake has no wake-up of its own).
func (p *Port) WaitRoom(r int, deadline time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waits++
	for p.room == 0 && !p.stopped && time.Now().Before(deadline) {
		p.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		p.mu.Lock()
	}
}

// Deliver keeps the frames, as long as the port has room.
func (p *Port) Deliver(r int, b *frame.Batch, which []uint16) (int, int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, bytes := 0, 0
	for _, i := range which {
		if p.room == 0 {
			break
		}
		if p.room > 0 {
			p.room--
		}
		f := &b.Frames[i]
		data := append([]byte(nil), f.Data...)
		for _, m := range f.More {
			data = append(data, m...)
		}
		p.got = append(p.got, data)
		p.gotOff = append(p.gotOff, f.Offload)
		p.gotRing = append(p.gotRing, r)
		n++
		bytes += len(data)
	}
	return n, bytes, nil
}

// Stop makes Recv return ports.ErrStopped.
func (p *Port) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Free does nothing: the port holds nothing.
func (p *Port) Free() error { return nil }
