package vale

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valeswitch/vale/ports"
)

// fakePort is an in-process port: frames queued with send come out of Recv,
// frames the switch delivers are kept for inspection.
type fakePort struct {
	name   string
	ntx    int
	nrx    int
	txRing int // the TX ring send queues on

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []fakeFrame
	got     [][]byte
	gotOff  []ports.Offload
	gotRing []int
	room    int // frames Deliver still accepts; negative = unlimited
	stopped bool
	sent    int // frames handed to the switch (counted again if handed again)
	done    int // frames released
	waits   int // calls of WaitRoom
}

type fakeFrame struct {
	data  []byte
	flags uint16
	off   ports.Offload
}

func newFakePort(name string) *fakePort {
	p := &fakePort{name: name, ntx: 1, nrx: 1, room: -1}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *fakePort) Name() string { return p.name }

func (p *fakePort) Describe() ports.Desc {
	return ports.Desc{Kind: "fake", TxRings: p.ntx, RxRings: p.nrx, TxSlots: 1024, RxSlots: 1024}
}

func (p *fakePort) Recv(r int, b *ports.Batch) error {
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
		if !f.off.IsZero() {
			b.AddOffload(f.data, f.off)
			continue
		}
		b.Add(f.data, f.flags)
	}
	p.sent += n
	return nil
}

// Release forgets the first n frames of the queue: the others come again.
func (p *fakePort) Release(r int, b *ports.Batch, n int) {
	p.mu.Lock()
	p.queue = p.queue[n:]
	p.done += n
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Room tells how many frames Deliver would take.
func (p *fakePort) Room(r int, b *ports.Batch, which []uint16) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.room < 0 {
		return len(which)
	}
	return min(p.room, len(which))
}

// WaitRoom waits until makeRoom or the deadline.
func (p *fakePort) WaitRoom(r int, deadline time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waits++
	for p.room == 0 && !p.stopped && time.Now().Before(deadline) {
		p.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		p.mu.Lock()
	}
}

// makeRoom lets Deliver take n more frames.
func (p *fakePort) makeRoom(n int) {
	p.mu.Lock()
	p.room += n
	p.mu.Unlock()
}

func (p *fakePort) Deliver(r int, b *ports.Batch, which []uint16) (int, int, error) {
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

func (p *fakePort) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *fakePort) Free() error { return nil }

// send queues frames and waits until the switch has forwarded them.
func (p *fakePort) send(frames ...fakeFrame) {
	p.mu.Lock()
	p.queue = append(p.queue, frames...)
	target := p.done + len(p.queue)
	p.cond.Broadcast()
	for p.done < target {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// queueFrames queues frames without waiting.
func (p *fakePort) queueFrames(frames ...fakeFrame) {
	p.mu.Lock()
	p.queue = append(p.queue, frames...)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// take returns and forgets what the port received.
func (p *fakePort) take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.got
	p.got, p.gotRing, p.gotOff = nil, nil, nil
	return got
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// eth builds a frame from src to dst whose payload names it.
func eth(dst, src net.HardwareAddr, tag string) fakeFrame {
	b := append(append(append([]byte{}, dst...), src...), 0x88, 0xb5)
	b = append(b, tag...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return fakeFrame{data: b}
}

func tagOf(b []byte) string {
	end := 14
	for end < len(b) && b[end] != 0 {
		end++
	}
	return string(b[14:end])
}

func tags(frames [][]byte) []string {
	var s []string
	for _, f := range frames {
		s = append(s, tagOf(f))
	}
	return s
}

func newTestSwitch(t *testing.T, cfg Config, names ...string) (*Switch, []*fakePort) {
	t.Helper()
	sw := New("vale0", cfg)
	var ps []*fakePort
	for _, n := range names {
		p := newFakePort(n)
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

func statsOf(sw *Switch, name string) PortStats {
	for _, p := range sw.Ports() {
		if p.Name == name {
			return p.Stats
		}
	}
	panic(fmt.Sprintf("no port %s", name))
}
