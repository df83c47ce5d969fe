package ptnet

import (
	"encoding/binary"
	"testing"

	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

// BenchmarkTakeTx measures the device side of a guest's transmit queue
// alone: a round takes 256 frames of 64 bytes (one descriptor each, sealed
// memory: read in place) and gives the chains back used; the driver's side
// makes them available again at no cost. It reports nanoseconds a frame.
func BenchmarkTakeTx(b *testing.B) {
	for _, packed := range []bool{false, true} {
		name := map[bool]string{false: "split", true: "packed"}[packed]
		b.Run(name, func(b *testing.B) { benchTakeTx(b, packed) })
	}
}

// benchNum and benchHdrLen are the ring size and header of the benchmarks.
const benchNum, benchHdrLen = 256, 12

// benchQueue is a started queue of benchNum entries on heap memory for a
// benchmark (a transmit queue with tx), and publish, which makes every
// descriptor available (again) for round number round: buffers of bufSize
// bytes, each with len bytes, writable unless tx.
func benchQueue(b *testing.B, packed, tx bool, bufSize, length uint32) (q *queue, publish func(round uint16)) {
	mem := &heapMemory{base: 0x1000, b: make([]byte, 2<<20)}
	ds, as, us := ringSizes(benchNum, packed, true)
	desc, _ := mem.slice(0x1000, ds)
	avail, _ := mem.slice(0x1000+ds, as+2)
	used, _ := mem.slice(0x1000+(ds+as+4+3)&^3, us+2)
	bufs := uint64(0x1000 + 64<<10)
	feats := uint64(backendFeatures &^ vhostuser.FeatRingPacked)
	if packed {
		feats |= vhostuser.FeatRingPacked
	}
	q = &queue{tx: tx, hdrLen: benchHdrLen, mrg: true, feats: feats, mem: mem}
	if err := q.vq.setup(benchNum, packed, desc, avail[:as], used[:us], true); err != nil {
		b.Fatal(err)
	}
	q.ready, q.started, q.enabled = true, true, true
	if packed {
		q.vq.setNext(cursor{wrap: true})
		q.vq.usedWrap = true
	}
	write := uint16(vhostuser.DescFWrite)
	if tx {
		write = 0
	}
	le := binary.LittleEndian
	wrap := true
	publish = func(round uint16) {
		for i := range uint16(benchNum) {
			d := desc[int(i)*16:]
			le.PutUint64(d, bufs+uint64(i)*uint64(bufSize))
			le.PutUint32(d[8:], length)
			if packed {
				fl := write | vhostuser.DescFUsed
				if wrap {
					fl = write | vhostuser.DescFAvail
				}
				le.PutUint16(d[12:], i)
				le.PutUint16(d[14:], fl)
			} else {
				le.PutUint16(d[12:], write)
				le.PutUint16(avail[4+2*int(i):], i)
			}
		}
		if packed {
			wrap = !wrap
		} else {
			vhostuser.Store32(avail, 0, uint32(round+1)*benchNum<<16)
		}
	}
	return q, publish
}

func benchTakeTx(b *testing.B, packed bool) {
	q, publish := benchQueue(b, packed, true, 128, benchHdrLen+64)
	p := &Port{log: newDiscardLogger()}
	batch := frame.NewBatch()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		publish(uint16(i))
		batch.Reset()
		n, err := p.takeTx(q, batch)
		if err != nil || n != benchNum {
			b.Fatalf("took %d frames, %v", n, err)
		}
		p.releaseTx(q, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchNum), "ns/frame")
}

// BenchmarkDeliver measures the device side of a guest's receive queue
// alone: Deliver writes 256 frames of 64 bytes into buffers of 2 KiB (one
// descriptor each, as DPDK's virtio-user and Linux post them); the
// driver's side makes them available again at no cost. It reports
// nanoseconds a frame.
func BenchmarkDeliver(b *testing.B) {
	for _, packed := range []bool{false, true} {
		name := map[bool]string{false: "split", true: "packed"}[packed]
		b.Run(name, func(b *testing.B) { benchDeliver(b, packed) })
	}
}

func benchDeliver(b *testing.B, packed bool) {
	q, publish := benchQueue(b, packed, false, 2048, 2048)
	p := &Port{log: newDiscardLogger(), queues: []*queue{q}}
	p.caps.Store(frame.OffloadCaps{})
	batch := frame.NewBatch()
	which := make([]uint16, benchNum)
	data := make([]byte, 64)
	for i := range which {
		batch.Add(data, 0)
		which[i] = uint16(i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		publish(uint16(i))
		if n, _, err := p.Deliver(0, batch, which); err != nil || n != benchNum {
			b.Fatalf("delivered %d frames, %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchNum), "ns/frame")
}
