package ptnet

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ptnet/ptnettest"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

// While a migration logs dirty pages, every page the device writes (the
// receive buffers a frame went to, the used rings, a packed ring's
// descriptors) is marked, and no page it only reads; when logging stops,
// nothing more is marked. In each ring mode.
func TestDirtyLog(t *testing.T) { eachRingMode(t, testDirtyLog) }

func testDirtyLog(t *testing.T, feats uint64) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(feats, 2, 64)
	rx, tx := f.Queues[0], f.Queues[1]
	log := f.EnableLogging()
	if st := p.Describe().State; !strings.Contains(st, "log-all") {
		t.Fatalf("logging on, the port shows %s", st)
	}

	// The guest sends: the device reads the buffer and writes a used entry.
	hdr := make([]byte, f.HdrLen)
	tx.SendFrame(hdr, testFrame(1000, 1), false)
	if got := recvOne(t, p, 0); len(got) != 1 {
		t.Fatalf("%d frames from the guest", len(got))
	}
	usedPart := tx.Used // the device writes here (split) ...
	if tx.Packed {
		usedPart = tx.Desc // ... or here (packed)
	}
	if !f.Dirty(log, usedPart) {
		t.Error("the transmit queue's used entries were not logged")
	}
	for off := uint64(0); off < uint64(len(f.Mem)); off += vhostuser.LogPage {
		if f.Dirty(log, off) && !near(off, tx.Used, tx.Desc, rx.Used, rx.Desc) {
			t.Fatalf("page at %#x logged: the device only read it", off)
		}
	}

	// A frame for the guest: its buffers and the used ring are written.
	rx.PostRx(8, 2048)
	f.Sync()
	clear(log)
	b := frame.NewBatch()
	b.Add(testFrame(3000, 2), 0) // two buffers: the general path
	b.Add(testFrame(100, 3), 0)  // one buffer: the fast path
	if n, _, err := p.Deliver(0, b, []uint16{0, 1}); n != 2 || err != nil {
		t.Fatalf("Deliver = %d, %v", n, err)
	}
	frames, _ := rx.RxFrames()
	if len(frames) != 2 {
		t.Fatalf("the guest got %d frames", len(frames))
	}
	rxUsed := rx.Used
	if rx.Packed {
		rxUsed = rx.Desc
	}
	if !f.Dirty(log, rxUsed) {
		t.Error("the receive queue's used entries were not logged")
	}
	for _, fr := range rxBufferOffsets(t, rx, 3) {
		if !f.Dirty(log, fr) {
			t.Errorf("receive buffer at %#x written but not logged", fr)
		}
	}

	// The migration ends: nothing more is logged.
	f.SetLogging(false)
	clear(log)
	tx.SendFrame(hdr, testFrame(200, 4), false)
	recvOne(t, p, 0)
	for i, v := range log {
		if v != 0 {
			t.Fatalf("byte %d of the log set after logging stopped", i)
		}
	}
}

// near reports whether page-aligned off is the page that holds one of the
// ring parts at offsets parts, or the next (a part of a 64-entry ring is
// under a page, and may straddle two).
func near(off uint64, parts ...uint64) bool {
	for _, p := range parts {
		if page := p &^ (vhostuser.LogPage - 1); off == page || off == page+vhostuser.LogPage {
			return true
		}
	}
	return false
}

// rxBufferOffsets returns where the first n receive buffers PostRx made
// lie in guest memory.
func rxBufferOffsets(t *testing.T, q *ptnettest.Queue, n int) []uint64 {
	t.Helper()
	offs := q.Buffers()
	if len(offs) < n {
		t.Fatalf("%d receive buffers, want %d", len(offs), n)
	}
	return offs[:n]
}

// SEND_RARP: the port sends a RARP from the migrated guest's address into
// the switch, once, with the guest's own frames.
func TestSendRARP(t *testing.T) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 2, 64)
	mac := [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	f.Send(vhostuser.ReqSendRARP, append(mac[:], 0, 0))
	got := recvOne(t, p, 0)
	if len(got) != 1 || !bytes.Equal(got[0].Data, rarpFrame(mac)) {
		t.Fatalf("the switch got %d frames, want the RARP", len(got))
	}
	d := got[0].Data
	if !bytes.Equal(d[:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) || !bytes.Equal(d[6:12], mac[:]) || d[12] != 0x80 || d[13] != 0x35 || len(d) != 60 {
		t.Fatalf("RARP frame % x", d)
	}
	// It goes once; the guest's frames come as before.
	f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(100, 5), false)
	if got := recvOne(t, p, 0); len(got) != 1 || !bytes.Equal(got[0].Data, testFrame(100, 5)) {
		t.Fatalf("after the RARP the switch got %d frames", len(got))
	}
	if st := p.Describe().State; !strings.Contains(st, "rarp=1") {
		t.Errorf("state %s", st)
	}
}

// A RARP the switch did not take (it released fewer frames) is sent
// again with the next round.
func TestRARPNotTakenIsResent(t *testing.T) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 2, 64)
	f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(100, 6), false)
	f.Sync()
	f.Send(vhostuser.ReqSendRARP, vhostuser.U64(0x563412005452))
	f.Sync()
	b := frame.NewBatch()
	if err := p.Recv(0, b); err != nil || len(b.Frames) != 2 {
		t.Fatalf("Recv: %d frames, %v", len(b.Frames), err)
	}
	p.Release(0, b, 1) // the guest's frame only
	if got := recvOne(t, p, 0); len(got) != 1 || got[0].Data[12] != 0x80 {
		t.Fatalf("the RARP was not sent again: %d frames", len(got))
	}
}

// Dirty logs a frontend may give wrongly: each ends the session, and the
// next frontend is served as if nothing happened.
func TestBadDirtyLogs(t *testing.T) {
	p, sock := newTestPort(t, 1)
	small := memfd(t, 64)
	onDisk := filepath.Join(t.TempDir(), "log")
	os.WriteFile(onDisk, make([]byte, 4096), 0o600)
	for _, tc := range []struct {
		name string
		send func(f *ptnettest.Frontend) error
	}{
		{"no descriptor", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetLogBase, 0, vhostuser.Log(64, 0))
		}},
		{"beyond its file", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetLogBase, 0, vhostuser.Log(1<<20, 0), small)
		}},
		{"offset overflows", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetLogBase, 0, vhostuser.Log(64, ^uint64(0)-3), small)
		}},
		{"unaligned", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetLogBase, 0, vhostuser.Log(63, 1), small)
		}},
		{"short payload", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetLogBase, 0, vhostuser.U64(64), small)
		}},
		{"not a memory file", func(f *ptnettest.Frontend) error {
			var fds [2]int
			if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
				return err
			}
			defer unix.Close(fds[0])
			defer unix.Close(fds[1])
			return f.TrySend(vhostuser.ReqSetLogBase, 0, vhostuser.Log(64, 0), fds[0])
		}},
		{"without LOG_SHMFD", func(f *ptnettest.Frontend) error {
			f.Send(vhostuser.ReqSetProtocolFeatures, vhostuser.U64(vhostuser.ProtoMQ))
			return f.TrySend(vhostuser.ReqSetLogBase, 0, vhostuser.Log(64, 0), small)
		}},
		{"bad ring address flags", func(f *ptnettest.Frontend) error {
			f.Handshake(splitFeatures, 0, 0)
			a := vhostuser.Addr(0, f.UVA, f.UVA+4096, f.UVA+8192)
			a[4] = 0x80
			return f.TrySend(vhostuser.ReqSetVringAddr, 0, a)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ptnettest.NewFrontend(t, sock)
			f.Send(vhostuser.ReqSetProtocolFeatures, vhostuser.U64(vhostuser.ProtoMQ|vhostuser.ProtoLogShmfd))
			if err := tc.send(f); err != nil {
				t.Fatal(err)
			}
			expectSessionEnd(t, p, f)
		})
	}
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 2, 64)
	log := f.EnableLogging()
	f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(100, 9), false)
	if got := recvOne(t, p, 0); len(got) != 1 || !f.Dirty(log, f.Queues[1].Used) {
		t.Fatalf("after bad logs: %d frames, used ring logged %v", len(got), f.Dirty(log, f.Queues[1].Used))
	}
}

// memfd returns a memfd of n bytes, closed when the test ends.
func memfd(t *testing.T, n int64) int {
	fd, err := unix.MemfdCreate("t", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Ftruncate(fd, n); err != nil {
		t.Fatal(err)
	}
	return fd
}

// The frontend replaces the dirty log and turns logging on and off while
// frames flow both ways: every frame still arrives, exactly once, and
// valed never writes into a log it has unmapped.
func TestDirtyLogWhileTraffic(t *testing.T) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 2, 256)
	rx, tx := f.Queues[0], f.Queues[1]
	stop := make(chan struct{})
	done := make(chan struct{})
	var taken atomic.Int64
	go func() { // the switch's side: take and deliver
		defer close(done)
		b := frame.NewBatch()
		out := frame.NewBatch()
		out.Add(testFrame(100, 7), 0)
		for {
			select {
			case <-stop:
				return
			default:
			}
			b.Reset()
			if err := p.Recv(0, b); err != nil {
				return
			}
			for _, fr := range b.Frames {
				if len(fr.Data) == 80 {
					taken.Add(1)
				}
			}
			p.Release(0, b, len(b.Frames))
			p.Deliver(0, out, []uint16{0})
		}
	}()
	hdr := make([]byte, f.HdrLen)
	sent, used := 0, 0
	for round := range 40 {
		if round%2 == 0 {
			f.EnableLogging()
		} else {
			f.SetLogging(false)
		}
		rx.PostRx(4, 2048)
		for range 4 {
			tx.SendFrame(hdr, testFrame(80, byte(sent)), false)
			sent++
		}
		testutil.WaitFor(t, "the round's frames to be taken", func() bool {
			used += len(tx.UsedEntries())
			return used == sent
		})
	}
	frames, _ := rx.RxFrames()
	if len(frames) == 0 {
		t.Error("no frame reached the guest")
	}
	close(stop)
	f.Queues[1].SendFrame(hdr, testFrame(60, 0), false) // wakes the worker to see stop
	<-done
	if n := taken.Load(); n != int64(sent) {
		t.Errorf("the switch took %d frames, the guest sent %d", n, sent)
	}
	if st := p.Describe().State; strings.Contains(st, "stopped-queues") || strings.Contains(st, "last-error") {
		t.Fatalf("port state %s", st)
	}
}
