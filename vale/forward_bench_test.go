package vale

import (
	"fmt"
	"testing"
	"time"

	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

// sinkPort takes every frame into its own buffers, as a destination with
// endless room would: the copy is real, nothing else is.
type sinkPort struct {
	name string
	bufs [][]byte
	next int
}

func newSinkPort(name string) *sinkPort {
	s := &sinkPort{name: name, bufs: make([][]byte, 1024)}
	for i := range s.bufs {
		s.bufs[i] = make([]byte, 2048)
	}
	return s
}

func (s *sinkPort) Name() string { return s.name }
func (s *sinkPort) Describe() wire.Desc {
	return wire.Desc{Kind: "sink", TxRings: 1, RxRings: 1}
}
func (s *sinkPort) Recv(int, *frame.Batch) error   { select {} }
func (s *sinkPort) Release(int, *frame.Batch, int) {}
func (s *sinkPort) Stop()                          {}
func (s *sinkPort) Free() error                    { return nil }

// Room counts the frames as the shared-memory port's does: one look at
// each frame, so that the benchmark pays what a round holding its
// destinations to their room pays.
func (s *sinkPort) Room(_ int, b *frame.Batch, which []uint16) int {
	space := frame.MaxBatch // endless room: all of a round fits
	for n, i := range which {
		if len(b.Frames[i].More) > 0 || space == 0 {
			return n
		}
		space--
	}
	return len(which)
}
func (s *sinkPort) WaitRoom(int, time.Time) {}
func (s *sinkPort) Deliver(_ int, b *frame.Batch, which []uint16) (int, int, error) {
	bytes := 0
	for _, i := range which {
		d := b.Frames[i].Data
		copy(s.bufs[s.next], d)
		s.next = (s.next + 1) & 1023
		bytes += len(d)
	}
	return len(which), bytes, nil
}

// BenchmarkForward measures one forwarding round of a full batch, without
// syscalls or other goroutines: learning, lookup, grouping and the copy into
// the destinations. ns/pkt is the figure to compare with netmap's VALE.
func BenchmarkForward(b *testing.B) {
	cases := []struct {
		name    string
		size    int
		dests   int  // ports besides the source
		bcast   bool // destination broadcast instead of a learned address
		monitor bool // a copy monitor on the source (/t) and the destination (/r)
	}{
		{"unicast/64B", 60, 1, false, false},
		{"unicast/64B/monitored-t-and-r", 60, 1, false, true},
		{"unicast/1514B", 1514, 1, false, false},
		{"unicast/1514B/monitored-t-and-r", 1514, 1, false, true},
		{"broadcast/64B/2ports", 60, 1, true, false},
		{"broadcast/64B/8ports", 60, 7, true, false},
		{"unicast/64B/254ports", 60, 253, false, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			sw := New("vale0", Config{})
			defer sw.Close()
			src := newSinkPort("vale0:src")
			if _, err := sw.Attach(src, ModeDefault); err != nil {
				b.Fatal(err)
			}
			var dstMAC [6]byte
			var last *sinkPort
			for i := range c.dests {
				last = newSinkPort(fmt.Sprintf("vale0:d%d", i))
				if _, err := sw.Attach(last, ModeDefault); err != nil {
					b.Fatal(err)
				}
			}
			if c.monitor {
				if _, err := sw.AddMonitor(src, newSinkPort("mon-t"), 0, -1); err != nil {
					b.Fatal(err)
				}
				if _, err := sw.AddMonitor(last, newSinkPort("mon-r"), -1, 0); err != nil {
					b.Fatal(err)
				}
			}
			// The last destination's address is learned.
			dstMAC = [6]byte{2, 0, 0, 0, 0xd0, byte(c.dests)}
			sw.macs.mu.Lock()
			sw.macs.learn(mac48(dstMAC[:]), uint16(c.dests), 0)
			sw.macs.mu.Unlock()
			f := newForwarder(sw, sw.ports[0], 0)
			pkt := make([]byte, c.size)
			if c.bcast {
				copy(pkt, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			} else {
				copy(pkt, dstMAC[:])
			}
			copy(pkt[6:], []byte{2, 0, 0, 0, 0, 1})
			for range frame.MaxBatch {
				f.batch.Add(pkt, 0)
			}
			b.SetBytes(int64(c.size * frame.MaxBatch))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f.forward()
			}
			perPkt := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / frame.MaxBatch
			b.ReportMetric(perPkt, "ns/pkt")
			b.ReportMetric(1e3/perPkt, "Mpps")
		})
	}
}
