package monitor

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/wire"
)

func heapRegion(t *testing.T, l ports.Layout, names []string) []byte {
	t.Helper()
	words := make([]uint64, l.Size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), l.Size)
	if err := ports.Init(mem, l, names); err != nil {
		t.Fatal(err)
	}
	return mem
}

func eventfds(t *testing.T, n int) []int {
	t.Helper()
	var fds []int
	for range n {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	return fds
}

// fill puts frames of the given lengths in TX ring r and returns the range.
func fill(r *ports.Ring, lens ...int) (from, to uint32) {
	from = r.Head()
	for _, n := range lens {
		s := r.Slot(r.Head())
		b := r.Buf(s.BufIdx)
		for i := range n {
			b[i] = byte(n)
		}
		s.Len = uint16(n)
		r.Advance(1)
	}
	return from, r.Head()
}

func TestZeroCopyFeed(t *testing.T) {
	g := ports.Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64}
	l, err := ports.PortLayout(g, 1)
	if err != nil {
		t.Fatal(err)
	}
	mem := heapRegion(t, l, []string{"vale0:a", "vale0:a/z1"})
	port, _ := ports.OpenIface(mem, l.Ifaces[0].Ofs)
	zeroCopyIface := l.Ifaces[l.ZeroCopyMonitor(0, 1)]
	ev := &wire.MonitorEvent{Op: wire.MonitorAdd, ID: 7, Kind: wire.KindZeroCopyMonitor, IfOfs: zeroCopyIface.Ofs, TxBase: 0, RxBase: 1, Rings: 2}
	f, err := NewFeed(ev, mem, eventfds(t, 2), "vale0:a")
	if err != nil {
		t.Fatal(err)
	}
	var feeds Feeds
	feeds.Add(f)
	defer feeds.Close()
	if !feeds.Active() || feeds.Len() != 1 {
		t.Fatal("feed not active")
	}
	tx := port.Ring(ports.TX, 0, "vale0:a")
	from, to := fill(tx, 10, 20, 30)
	before := []uint32{tx.Slot(0).BufIdx, tx.Slot(1).BufIdx, tx.Slot(2).BufIdx}
	feeds.TxCompleted(0, tx, from, to)
	// The monitor reader sees the three frames, zero copy, marked NS_TXMON.
	zm, _ := ports.OpenIface(mem, zeroCopyIface.Ofs)
	zr := zm.Ring(ports.RX, 0, "z")
	zr.UpdateTail(zr.Header().Tail())
	if zr.Space() != 3 {
		t.Fatalf("zero-copy monitor got %d frames, want 3", zr.Space())
	}
	for i := range uint32(3) {
		s := zr.Slot(i)
		if s.BufIdx != before[i] || int(s.Len) != 10*(int(i)+1) || s.Flags&ports.NS_TXMON == 0 {
			t.Errorf("monitor slot %d: %+v (want buffer %d)", i, *s, before[i])
		}
		if ts := tx.Slot(i); ts.BufIdx == before[i] || ts.Flags&ports.NS_BUF_CHANGED == 0 {
			t.Errorf("tx slot %d kept its buffer or lacks NS_BUF_CHANGED: %+v", i, *ts)
		}
	}
	// A full monitor loses what does not fit, counted, and the port keeps
	// its buffers.
	for range 3 {
		from, to = fill(tx, 5, 5)
		feeds.TxCompleted(0, tx, from, to)
	}
	if d := zr.Header().Dropped(); d != 2 {
		t.Errorf("dropped %d, want 2 (7 slots of room for 9 frames)", d)
	}
	// Every buffer still has exactly one owner among both interfaces.
	owners := map[uint32]int{}
	for _, r := range []*ports.Ring{tx, port.Ring(ports.RX, 0, "x"), zr, zm.Ring(ports.RX, 1, "z")} {
		for i := range r.NumSlots() {
			owners[r.Slot(i).BufIdx]++
		}
	}
	for idx, n := range owners {
		if n != 1 {
			t.Errorf("buffer %d owned %d times", idx, n)
		}
	}
	feeds.Remove(7)
	if feeds.Active() {
		t.Error("removed feed still active")
	}
	feeds.Reap()
}

func TestCopyFeed(t *testing.T) {
	g := ports.Geometry{TxRings: 1, RxRings: 1, TxSlots: 8, RxSlots: 8, BufSize: 64}
	l, err := ports.PipeLayout(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem := heapRegion(t, l, []string{"netmap:p{1", "netmap:p}1"})
	end, _ := ports.OpenIface(mem, 0)
	ml, err := ports.MonitorLayout(1, 4, 64)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.MemfdCreate("monitor", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Ftruncate(fd, ml.Size); err != nil {
		t.Fatal(err)
	}
	view, err := unix.Mmap(fd, 0, int(ml.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(view)
	if err := ports.Init(view, ml, []string{"mon"}); err != nil {
		t.Fatal(err)
	}
	ev := &wire.MonitorEvent{Op: wire.MonitorAdd, ID: 1, Kind: wire.KindMonitor, MemSize: ml.Size, IfOfs: 0, TxBase: 0, RxBase: -1, Rings: 1}
	f, err := NewFeed(ev, nil, append([]int{fd}, eventfds(t, 1)...), "netmap:p{1")
	if err != nil {
		t.Fatal(err)
	}
	var feeds Feeds
	feeds.Add(f)
	defer feeds.Close()
	tx := end.Ring(ports.TX, 0, "p")
	from, to := fill(tx, 10, 20, 30, 40, 50)
	feeds.TxSent(0, tx, from, to)
	feeds.RxArrived(0, tx, from, to) // the RX direction is not monitored
	mon, _ := ports.OpenIface(view, 0)
	mr := mon.Ring(ports.RX, 0, "m")
	mr.UpdateTail(mr.Header().Tail())
	if mr.Space() != 3 || mr.Header().Dropped() != 2 {
		t.Fatalf("monitor holds %d frames and dropped %d; want 3 and 2", mr.Space(), mr.Header().Dropped())
	}
	for i := range uint32(3) {
		p := mr.Packet(i)
		if len(p) != 10*(int(i)+1) || p[0] != byte(len(p)) {
			t.Errorf("copy %d: %d bytes starting %d", i, len(p), p[0])
		}
	}
	if tx.Slot(0).Flags&ports.NS_BUF_CHANGED != 0 {
		t.Error("a copy monitor changed the port's buffers")
	}
}
