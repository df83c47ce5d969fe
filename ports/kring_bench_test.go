package ports

import (
	"testing"

	"github.com/valeswitch/vale/vale/frame"
)

// BenchmarkRingPath measures the ring machinery of one frame's walk, in one
// goroutine over heap memory: the application fills TX slots and syncs, the
// switch takes them (validating every slot) and copies them into an RX ring,
// releases the TX slots, and the application reads and releases the RX
// slots. Forwarding decisions are not included (see vale's BenchmarkForward).
func BenchmarkRingPath(b *testing.B) {
	for _, size := range []int{60, 1514} {
		b.Run(map[int]string{60: "64B", 1514: "1514B"}[size], func(b *testing.B) {
			g := DefaultGeometry()
			src, dst := newTestPort(b, g), newTestPort(b, g)
			tx, rx := src.tx[0], dst.rx[0]
			ktx, krx := src.ktx(0), dst.krx(0)
			for i := range tx.NumSlots() {
				copy(tx.Buf(tx.Slot(i).BufIdx), makeFrame(size, 1))
			}
			batch := frame.NewBatch()
			which := make([]uint16, MaxBatch)
			for i := range which {
				which[i] = uint16(i)
			}
			const burst = 512
			b.SetBytes(int64(size * burst))
			b.ReportAllocs()
			for b.Loop() {
				h := tx.Head()
				for range burst {
					s := tx.Slot(h)
					s.Len, s.Flags = uint16(size), 0
					h = tx.Next(h)
				}
				tx.SetHead(h)
				tx.SetCur(h)
				if err := syncRing(tx); err != nil {
					b.Fatal(err)
				}
				n, err := ktx.TxFrames(batch)
				if err != nil || len(batch.Frames) != burst {
					b.Fatalf("took %d frames, %v", len(batch.Frames), err)
				}
				if got, _, _, err := krx.RxFrames(batch, which[:len(batch.Frames)], 0); got != burst || err != nil {
					b.Fatalf("delivered %d, %v", got, err)
				}
				ktx.TxRelease(n)
				batch.Reset()
				if err := syncRing(rx); err != nil {
					b.Fatal(err)
				}
				rx.Advance(rx.Space())
				if err := syncRing(rx); err != nil {
					b.Fatal(err)
				}
				if err := syncRing(tx); err != nil {
					b.Fatal(err)
				}
			}
			perPkt := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / burst
			b.ReportMetric(perPkt, "ns/pkt")
		})
	}
}
