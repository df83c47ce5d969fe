package ptnet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ptnet/ptnettest"
	"github.com/valeswitch/vale/ptnet/vhostuser"
	"github.com/valeswitch/vale/vale/frame"
)

func newTestPort(t *testing.T, pairs int) (*Port, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vhost.sock")
	p, err := New(Config{Name: "vale0:vm", Socket: sock, QueuePairs: pairs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Free() })
	return p, sock
}

// recvOne runs Recv once (with a timeout) and returns copies of the frames.
func recvOne(t *testing.T, p *Port, ring int) []frame.Frame {
	t.Helper()
	done := make(chan []frame.Frame, 1)
	go func() {
		b := frame.NewBatch()
		if err := p.Recv(ring, b); err != nil {
			done <- nil
			return
		}
		var out []frame.Frame
		for _, f := range b.Frames {
			c := frame.Frame{Data: append([]byte(nil), f.Data...), Offload: f.Offload}
			for _, m := range f.More {
				c.Data = append(c.Data, m...)
			}
			out = append(out, c)
		}
		p.Release(ring, b, len(b.Frames))
		done <- out
	}()
	select {
	case f := <-done:
		return f
	case <-time.After(5 * time.Second):
		q := p.queues[2*ring+1]
		q.mu.Lock()
		st := fmt.Sprintf("live=%v ready=%v started=%v enabled=%v broken=%v packed=%v next=%+v available=%v", q.live(), q.ready, q.started, q.enabled, q.broken, q.vq.packed, q.vq.next, q.vq.availableAt(q.vq.next))
		q.mu.Unlock()
		t.Fatalf("Recv returned nothing (%s; %s)", st, p.Describe().State)
	}
	return nil
}

func testFrame(n int, tag byte) []byte {
	f := make([]byte, n)
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x88, 0xb5})
	for i := 14; i < n; i++ {
		f[i] = tag + byte(i)
	}
	return f
}

// splitFeatures are the features of a frontend on split rings that uses
// its buffers out of order: the tests that lay out split rings by hand.
const splitFeatures = guestFeatures &^ (vhostuser.FeatRingPacked | vhostuser.FeatInOrder)

// guestFeatures are the features a frontend acks outside a migration.
const guestFeatures = backendFeatures &^ vhostuser.FeatLogAll

// ringModes are the virtqueue layouts a frontend may negotiate.
var ringModes = []struct {
	name  string
	feats uint64
}{
	{"split", splitFeatures},
	{"split-inorder", guestFeatures &^ vhostuser.FeatRingPacked},
	{"packed", guestFeatures &^ vhostuser.FeatInOrder},
	{"packed-inorder", guestFeatures},
}

// eachRingMode runs fn as a subtest in each ring mode, with the features
// to negotiate.
func eachRingMode(t *testing.T, fn func(t *testing.T, feats uint64)) {
	for _, m := range ringModes {
		t.Run(m.name, func(t *testing.T) { fn(t, m.feats) })
	}
}

// Frames cross both ways, whole, with the header and chain layouts a Linux
// guest uses, mergeable buffers included, in each ring mode.
func TestTransmitAndReceive(t *testing.T) { eachRingMode(t, testTransmitAndReceive) }

func testTransmitAndReceive(t *testing.T, feats uint64) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(feats, 2, 256)
	f.Sync()
	rx, tx := f.Queues[0], f.Queues[1]
	hdr := make([]byte, f.HdrLen)
	a, b := testFrame(60, 1), testFrame(1514, 2)
	tx.SendFrame(hdr, a, false)
	tx.SendFrame(hdr, b, true)
	var got []frame.Frame
	for len(got) < 2 {
		got = append(got, recvOne(t, p, 0)...)
	}
	if !bytes.Equal(got[0].Data, a) || !bytes.Equal(got[1].Data, b) {
		t.Fatalf("the switch got %d frames, not the ones sent", len(got))
	}
	if n := len(tx.UsedEntries()); n != 2 {
		t.Errorf("%d chains returned to the driver, want 2", n)
	}

	rx.PostRx(16, 2048)
	f.Sync()
	big := testFrame(5000, 3) // three 2 KiB buffers
	batch := frame.NewBatch()
	batch.Add(a, 0)
	batch.Add(big[:1000], 0)
	batch.AddFragment(big[1000:])
	n, bytes_, err := p.Deliver(0, batch, []uint16{0, 1})
	if err != nil || n != 2 || bytes_ != 60+5000 {
		t.Fatalf("Deliver = %d, %d, %v", n, bytes_, err)
	}
	frames, _ := rx.RxFrames()
	if len(frames) != 2 || !bytes.Equal(frames[0], a) || !bytes.Equal(frames[1], big) {
		t.Fatalf("the guest got %d frames: %v", len(frames), lens(frames))
	}
	var cnt [8]byte
	if k, _ := unix.Read(rx.Call, cnt[:]); k != 8 {
		t.Error("the guest was not signalled")
	}
	if d := p.Describe(); d.Kind != "vhost-user" || !strings.Contains(d.State, "connected") || !strings.Contains(d.State, "queues=1/1") {
		t.Errorf("Describe = %+v", d)
	}
}

func lens(fs [][]byte) []int {
	var l []int
	for _, f := range fs {
		l = append(l, len(f))
	}
	return l
}

// Without buffers the frames are dropped (counted), never waited for.
func TestReceiveWithoutBuffers(t *testing.T) { eachRingMode(t, testReceiveWithoutBuffers) }

func testReceiveWithoutBuffers(t *testing.T, feats uint64) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(feats, 2, 64)
	f.Sync()
	batch := frame.NewBatch()
	batch.Add(testFrame(60, 0), 0)
	if n, _, err := p.Deliver(0, batch, []uint16{0}); n != 0 || err != nil {
		t.Fatalf("Deliver without buffers = %d, %v", n, err)
	}
	if !strings.Contains(p.Describe().State, "rx-nobuf=1") {
		t.Errorf("state %q", p.Describe().State)
	}
}

// The header's offloads enter the switch; a header asking for what was
// not negotiated drops its frame, not the queue.
func TestOffloadHeaders(t *testing.T) { eachRingMode(t, testOffloadHeaders) }

func testOffloadHeaders(t *testing.T, feats uint64) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(feats&^vhostuser.FeatNetHostTSO6, 2, 64)
	f.Sync()
	tx := f.Queues[1]
	h := make([]byte, f.HdrLen)
	h[0] = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	binary.LittleEndian.PutUint16(h[6:], 34)
	binary.LittleEndian.PutUint16(h[8:], 16)
	h[1] = frame.GSOTCPv4
	binary.LittleEndian.PutUint16(h[2:], 54)
	binary.LittleEndian.PutUint16(h[4:], 1448)
	tx.SendFrame(h, testFrame(3000, 1), false)
	h6 := bytes.Clone(h)
	h6[1] = frame.GSOTCPv6 // not negotiated
	tx.SendFrame(h6, testFrame(3000, 2), false)
	tx.SendFrame(make([]byte, f.HdrLen), testFrame(60, 3), false)
	var got []frame.Frame
	deadline := time.Now().Add(5 * time.Second)
	for len(tx.UsedEntries()) < 3 || len(got) < 2 {
		got = append(got, recvOne(t, p, 0)...)
		if time.Now().After(deadline) {
			t.Fatal("frames did not arrive")
		}
	}
	want := frame.Offload{NeedsCsum: true, CsumStart: 34, CsumOffset: 16, GSO: frame.GSOTCPv4, GSOSize: 1448, HdrLen: 54}
	if len(got) != 2 || got[0].Offload != want || !got[1].Offload.IsZero() {
		t.Fatalf("got %+v", got)
	}
	if !strings.Contains(p.Describe().State, "tx-badhdr=1") {
		t.Errorf("state %q", p.Describe().State)
	}
	if c := p.Offloads(); !c.Csum || !c.TSO4 || !c.TSO6 {
		t.Errorf("offloads %+v", c)
	}
}

// A descriptor chain that loops, or points outside the guest's memory,
// stops its queue (and signals the error eventfd); the other queue works.
func TestBrokenChains(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(q *ptnettest.Queue)
	}{
		{"loop", func(q *ptnettest.Queue) {
			buf := q.Frontend().Alloc(64, 8)
			q.SetDesc(0, buf, 64, vhostuser.DescFNext, 1)
			q.SetDesc(1, buf, 64, vhostuser.DescFNext, 0)
		}},
		{"outside memory", func(q *ptnettest.Queue) {
			q.SetDesc(0, uint64(len(q.Frontend().Mem))+4096, 64, 0, 0)
		}},
		{"writable", func(q *ptnettest.Queue) {
			q.SetDesc(0, q.Frontend().Alloc(64, 8), 64, vhostuser.DescFWrite, 0)
		}},
		{"next beyond ring", func(q *ptnettest.Queue) {
			q.SetDesc(0, q.Frontend().Alloc(64, 8), 64, vhostuser.DescFNext, 999)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, sock := newTestPort(t, 1)
			f := ptnettest.NewFrontend(t, sock)
			f.Handshake(splitFeatures, 2, 64)
			tx, rx := f.Queues[1], f.Queues[0]
			errFD, _ := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
			f.Send(vhostuser.ReqSetVringErr, vhostuser.U64(1), errFD)
			f.Sync()
			go drain(p, 0)
			tc.setup(tx)
			tx.Publish(0)
			testutil.WaitFor(t, "the queue to stop", func() bool { return strings.Contains(p.Describe().State, "stopped-queues=1") })
			var b [8]byte
			if n, _ := unix.Read(errFD, b[:]); n != 8 {
				t.Error("the error eventfd was not signalled")
			}
			unix.Close(errFD)
			rx.PostRx(4, 2048)
			f.Sync()
			batch := frame.NewBatch()
			batch.Add(testFrame(60, 0), 0)
			if n, _, _ := p.Deliver(0, batch, []uint16{0}); n != 1 {
				t.Error("the receive queue stopped too")
			}
		})
	}
}

// drain plays a switch worker: it takes frames from TX ring r until the
// port stops.
func drain(p *Port, r int) {
	b := frame.NewBatch()
	for {
		b.Reset()
		if err := p.Recv(r, b); err != nil {
			return
		}
		p.Release(r, b, len(b.Frames))
	}
}

// Malformed messages end the session (logged); the port then serves the
// next frontend from a clean state.
func TestBadMessages(t *testing.T) {
	p, sock := newTestPort(t, 1)
	for _, tc := range []struct {
		name string
		send func(f *ptnettest.Frontend) error
	}{
		{"short payload", func(f *ptnettest.Frontend) error { return f.TrySend(vhostuser.ReqSetFeatures, 0, []byte{1, 2}) }},
		{"features not offered", func(f *ptnettest.Frontend) error { return f.TrySend(vhostuser.ReqSetFeatures, 0, vhostuser.U64(1<<60)) }},
		{"queue index", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetVringNum, 0, vhostuser.State(7, 256))
		}},
		{"ring size", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetVringNum, 0, vhostuser.State(0, 100))
		}},
		{"too many regions", func(f *ptnettest.Frontend) error {
			pl := make([]byte, 8+32*9)
			binary.LittleEndian.PutUint32(pl, 9)
			return f.TrySend(vhostuser.ReqSetMemTable, 0, pl)
		}},
		{"fd count", func(f *ptnettest.Frontend) error {
			pl := make([]byte, 8+32)
			binary.LittleEndian.PutUint32(pl, 1)
			return f.TrySend(vhostuser.ReqSetMemTable, 0, pl) // no descriptor
		}},
		{"region beyond its file", func(f *ptnettest.Frontend) error {
			pl := make([]byte, 8+32)
			binary.LittleEndian.PutUint32(pl, 1)
			binary.LittleEndian.PutUint64(pl[16:], 1<<40)
			return f.TrySend(vhostuser.ReqSetMemTable, 0, pl, f.MemFD)
		}},
		{"descriptor on a request without one", func(f *ptnettest.Frontend) error {
			return f.TrySend(vhostuser.ReqSetOwner, 0, nil, f.MemFD)
		}},
		{"huge size", func(f *ptnettest.Frontend) error {
			b := make([]byte, vhostuser.HeaderSize)
			binary.LittleEndian.PutUint32(b, vhostuser.ReqSetOwner)
			binary.LittleEndian.PutUint32(b[4:], vhostuser.FlagVersion)
			binary.LittleEndian.PutUint32(b[8:], 1<<30)
			_, err := f.Conn.Write(b)
			return err
		}},
		{"bad version", func(f *ptnettest.Frontend) error {
			b := make([]byte, vhostuser.HeaderSize)
			binary.LittleEndian.PutUint32(b, vhostuser.ReqSetOwner)
			binary.LittleEndian.PutUint32(b[4:], 2)
			_, err := f.Conn.Write(b)
			return err
		}},
		{"unknown request", func(f *ptnettest.Frontend) error { return f.TrySend(999, 0, nil) }},
		{"ring outside memory", func(f *ptnettest.Frontend) error {
			f.Handshake(splitFeatures, 0, 0)
			a := make([]byte, 40)
			binary.LittleEndian.PutUint64(a[8:], 1<<50)
			f.TrySend(vhostuser.ReqSetVringNum, 0, vhostuser.State(0, 64))
			return f.TrySend(vhostuser.ReqSetVringAddr, 0, a)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ptnettest.NewFrontend(t, sock)
			if err := tc.send(f); err != nil {
				t.Fatal(err)
			}
			expectSessionEnd(t, p, f)
		})
	}
	// And a good frontend still works.
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 2, 64)
	f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(100, 9), false)
	if got := recvOne(t, p, 0); len(got) != 1 {
		t.Fatalf("after bad sessions: %d frames", len(got))
	}
}

// expectSessionEnd checks that the backend ended f's session after a bad
// message, without an answer, and recorded why.
func expectSessionEnd(t *testing.T, p *Port, f *ptnettest.Frontend) {
	t.Helper()
	f.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := f.Conn.Read(b[:]); err == nil {
		t.Fatal("the backend answered a bad message instead of ending the session")
	}
	testutil.WaitFor(t, "the port to listen again", func() bool { return !p.Connected() })
	if p.lastErr() == "" {
		t.Error("no error recorded")
	}
}

// REPLY_ACK: a request flagged need_reply gets its u64 0.
func TestReplyAck(t *testing.T) {
	_, sock := newTestPort(t, 2)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 0, 0)
	if err := f.TrySend(vhostuser.ReqSetVringEnable, vhostuser.FlagNeedReply, vhostuser.State(3, 1)); err != nil {
		t.Fatal(err)
	}
	if r := f.Reply(vhostuser.ReqSetVringEnable); binary.LittleEndian.Uint64(r) != 0 {
		t.Errorf("ack %x", r)
	}
	if n := f.GetU64(vhostuser.ReqGetQueueNum); n != 2 {
		t.Errorf("GET_QUEUE_NUM = %d", n)
	}
}

// A client port (valed connects, the frontend listens) reconnects after
// the frontend goes away, and GET_VRING_BASE stops a ring.
func TestClientReconnect(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "qemu.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := New(Config{Name: "vale0:vm", Socket: sock, Client: true, Reconnect: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	for round := range 2 {
		c, err := ln.AcceptUnix()
		if err != nil {
			t.Fatal(err)
		}
		f := ptnettest.OnConn(t, c)
		f.GPA, f.UVA = 0x1000000, 0x7e0000000000
		f.Handshake(splitFeatures, 2, 64)
		f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(80, byte(round)), false)
		if got := recvOne(t, p, 0); len(got) != 1 {
			t.Fatalf("round %d: %d frames", round, len(got))
		}
		f.Send(vhostuser.ReqGetVringBase, vhostuser.State(1, 0))
		if s := f.Reply(vhostuser.ReqGetVringBase); binary.LittleEndian.Uint32(s[4:]) != 1 {
			t.Errorf("round %d: vring base %d, want 1", round, binary.LittleEndian.Uint32(s[4:]))
		}
		f.Close()
	}
}

// The memory table can be set again while the rings run.
func TestMemTableAgain(t *testing.T) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 2, 64)
	for i := range 5 {
		f.SetMemTable()
		f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(70, byte(i)), false)
		if got := recvOne(t, p, 0); len(got) != 1 {
			t.Fatalf("after table %d: %d frames", i, len(got))
		}
	}
	_ = fmt.Sprint()
}

// A frontend that goes away in the middle of traffic leaves the port
// listening, its queues stopped, the switch side unharmed.
func TestFrontendVanishes(t *testing.T) {
	p, sock := newTestPort(t, 1)
	for round := range 3 {
		f := ptnettest.NewFrontend(t, sock)
		f.Handshake(splitFeatures, 2, 64)
		f.Queues[0].PostRx(32, 2048)
		f.Sync()
		stop := make(chan struct{})
		go func() {
			b := frame.NewBatch()
			b.Add(testFrame(100, 0), 0)
			for {
				select {
				case <-stop:
					return
				default:
					p.Deliver(0, b, []uint16{0})
				}
			}
		}()
		for i := range 10 {
			f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(64, byte(i)), false)
		}
		f.Close()
		testutil.WaitFor(t, "the port to notice", func() bool { return !p.Connected() })
		close(stop)
		if d := p.Describe(); !strings.HasPrefix(d.State, "listening") {
			t.Fatalf("round %d: state %q", round, d.State)
		}
	}
}

// A frontend that shrinks its memory file under valed's mapping makes the
// next access fault: the queue stops, valed does not crash, and the port
// serves the next frontend.
func TestGuestMemoryShrinks(t *testing.T) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(splitFeatures, 2, 64)
	f.Queues[0].PostRx(8, 2048)
	go drain(p, 0)
	f.Queues[1].SendFrame(make([]byte, f.HdrLen), testFrame(100, 1), false)
	testutil.WaitFor(t, "the first frame to be taken", func() bool { return len(f.Queues[1].UsedEntries()) == 1 })
	// Shrink the file: every page of the mapping is now beyond its end.
	if err := unix.Ftruncate(f.MemFD, 0); err != nil {
		t.Fatal(err)
	}
	unix.Write(f.Queues[1].Kick, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	b := frame.NewBatch()
	b.Add(testFrame(60, 2), 0)
	if n, _, _ := p.Deliver(0, b, []uint16{0}); n != 0 {
		t.Errorf("delivered %d frames into vanished memory", n)
	}
	testutil.WaitFor(t, "the queues to stop", func() bool { return strings.Contains(p.Describe().State, "stopped-queues=2") })
	if !strings.Contains(p.lastErr(), "fault") {
		t.Errorf("last error %q", p.lastErr())
	}
	f.Close()
	testutil.WaitFor(t, "the port to listen again", func() bool { return !p.Connected() })
	f2 := ptnettest.NewFrontend(t, sock)
	f2.Handshake(splitFeatures, 2, 64)
	f2.Queues[1].SendFrame(make([]byte, f2.HdrLen), testFrame(100, 3), false)
	testutil.WaitFor(t, "a frame from the next frontend", func() bool { return len(f2.Queues[1].UsedEntries()) == 1 })
}

// TestShortEventIdxRing is the attack of issue 11: a frontend negotiates
// the event index and places the used ring so that it ends exactly at the
// end of its memory region, two bytes short of avail_event. The ring is
// refused (the session ends with the reason), valed goes on, and the next
// frontend is served.
func TestShortEventIdxRing(t *testing.T) {
	p, sock := newTestPort(t, 1)
	go drain(p, 0)
	f := ptnettest.NewFrontend(t, sock)
	feats := f.GetU64(vhostuser.ReqGetFeatures)
	if feats&vhostuser.FeatEventIdx == 0 {
		t.Fatal("the event index is not offered")
	}
	f.Send(vhostuser.ReqSetOwner, nil)
	f.Send(vhostuser.ReqSetFeatures, vhostuser.U64(feats&^(vhostuser.FeatProtocol|vhostuser.FeatRingPacked)))
	f.SetMemTable()
	const num = 8
	ds, as, _ := vhostuser.RingSizes(num, true)
	desc, avail := f.Alloc(ds, 16), f.Alloc(as, 4)
	used := uint64(len(f.Mem)) - (4 + 8*num) // avail_event would be past the end
	f.Send(vhostuser.ReqSetVringNum, vhostuser.State(1, num))
	a := make([]byte, 40)
	le := binary.LittleEndian
	le.PutUint32(a, 1)
	le.PutUint64(a[8:], f.UVA+desc)
	le.PutUint64(a[16:], f.UVA+used)
	le.PutUint64(a[24:], f.UVA+avail)
	f.TrySend(vhostuser.ReqSetVringAddr, 0, a) // the backend may hang up at once
	kick, _ := unix.Eventfd(0, unix.EFD_CLOEXEC)
	defer unix.Close(kick)
	f.TrySend(vhostuser.ReqSetVringKick, 0, vhostuser.U64(1), kick)
	waitDisconnected(t, p)
	if e := p.lastErr(); !strings.Contains(e, "outside the memory table") {
		t.Fatalf("last error %q, want the ring refused", e)
	}
	g := ptnettest.NewFrontend(t, sock)
	g.Handshake(splitFeatures, 2, 64)
	g.Queues[1].SendFrame(make([]byte, g.HdrLen), testFrame(60, 1), false)
	testutil.WaitFor(t, "the frame to be taken", func() bool { return len(g.Queues[1].UsedEntries()) == 1 })
}

// A guest that sends the largest chains from memory that is not sealed
// (so frames are staged) fills the stage: a round takes what fits, the
// chain that does not fit waits whole for the next round, and every frame
// arrives once, intact, in order.
func TestStageFull(t *testing.T) { eachRingMode(t, testStageFull) }

func testStageFull(t *testing.T, feats uint64) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(feats, 2, 256)
	f.Sync()
	tx := f.Queues[1]
	hdr := make([]byte, f.HdrLen)
	const n, size = 40, 64000 // 40 frames of 64 KB do not fit a 2 MiB stage
	var sent [][]byte
	mem := f.Mem
	put := func(b []byte) uint64 {
		off := f.Alloc(uint64(len(b)), 8)
		copy(mem[off:], b)
		return off
	}
	for i := range n {
		// A chain of three: the header, then the frame in two halves, so
		// that a frame may be half staged when the stage fills.
		fr := testFrame(size, byte(i))
		tx.PostChains([]ptnettest.Desc{
			{Buf: put(hdr), Len: uint32(len(hdr)), Flags: vhostuser.DescFNext},
			{Buf: put(fr[:size/2]), Len: size / 2, Flags: vhostuser.DescFNext},
			{Buf: put(fr[size/2:]), Len: size - size/2},
		})
		sent = append(sent, fr)
	}
	first := recvOne(t, p, 0)
	if len(first) == 0 || len(first) >= n {
		t.Fatalf("the first round took %d of %d frames, want some but not all", len(first), n)
	}
	got := first
	for len(got) < n {
		got = append(got, recvOne(t, p, 0)...)
	}
	if len(got) != n {
		t.Fatalf("%d frames arrived, want %d", len(got), n)
	}
	for i, fr := range got {
		if !bytes.Equal(fr.Data, sent[i]) {
			t.Fatalf("frame %d differs from the one sent (%d bytes)", i, len(fr.Data))
		}
	}
	if c := p.Counters(); c.TxBadHeader != 0 || c.StoppedQueues != 0 {
		t.Errorf("counters %+v", c)
	}
}

// Rings of 8 entries go round many times in both directions, with chains
// of one and two descriptors (a packed ring's chains then straddle its
// end, and both wrap counters flip): every frame arrives once, whole, in
// order, and where the ring stands is what GET_VRING_BASE answers.
func TestRingWraps(t *testing.T) { eachRingMode(t, testRingWraps) }

func testRingWraps(t *testing.T, feats uint64) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(feats, 2, 8)
	rx, tx := f.Queues[0], f.Queues[1]
	hdr := make([]byte, f.HdrLen)
	const rounds = 30
	for r := range rounds {
		// Three frames per round: 5 descriptors of the 8.
		var sent [][]byte
		for i := range 3 {
			fr := testFrame(60+r+i, byte(r*3+i))
			tx.SendFrame(hdr, fr, i != 1)
			sent = append(sent, fr)
		}
		var got []frame.Frame
		for len(got) < len(sent) {
			got = append(got, recvOne(t, p, 0)...)
		}
		for i := range sent {
			if i >= len(got) || !bytes.Equal(got[i].Data, sent[i]) {
				t.Fatalf("round %d: the switch got %d frames, not the ones sent", r, len(got))
			}
		}
		if n := len(tx.UsedEntries()); n != 3 {
			t.Fatalf("round %d: %d chains used, want 3", r, n)
		}
	}
	// Receive: 5 buffers of 1 KiB per round, a frame of 1500 bytes takes
	// two of them (mergeable), one of 100 bytes one.
	rx.PostRx(5, 1024)
	for r := range rounds {
		big, small := testFrame(1500, byte(r)), testFrame(100, byte(r+1))
		b := frame.NewBatch()
		b.Add(big, 0)
		b.Add(small, 0)
		if n, _, err := p.Deliver(0, b, []uint16{0, 1}); n != 2 || err != nil {
			t.Fatalf("round %d: Deliver = %d, %v", r, n, err)
		}
		frames, _ := rx.RxFrames()
		if len(frames) != 2 || !bytes.Equal(frames[0], big) || !bytes.Equal(frames[1], small) {
			t.Fatalf("round %d: the guest got %v", r, lens(frames))
		}
		rx.PostRx(3, 1024)
	}
	// Transmit: 30 rounds of 3 chains (split: available entries), 5
	// descriptors (packed: slots) in a ring of 8.
	const txSlots = rounds * 5
	want := uint32(rounds * 3)
	if feats&vhostuser.FeatRingPacked != 0 {
		next := uint32(txSlots % 8)
		if (txSlots/8)%2 == 0 {
			next |= 1 << 15 // the wrap counter starts at 1 and flips each lap
		}
		want = next | next<<16
	}
	f.Send(vhostuser.ReqGetVringBase, vhostuser.State(1, 0))
	if got := binary.LittleEndian.Uint32(f.Reply(vhostuser.ReqGetVringBase)[4:]); got != want {
		t.Errorf("GET_VRING_BASE = %#x, want %#x", got, want)
	}
}

// In a packed ring, a chain that never ends (every descriptor of the ring
// chained), one outside the guest's memory and a writable one on the
// transmit queue each stop the queue; the receive queue works on.
func TestBrokenPackedChains(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chain func(f *ptnettest.Frontend) []ptnettest.Desc
	}{
		{"endless", func(f *ptnettest.Frontend) []ptnettest.Desc {
			c := make([]ptnettest.Desc, 8)
			for i := range c {
				c[i] = ptnettest.Desc{Buf: f.Alloc(64, 8), Len: 64, Flags: vhostuser.DescFNext}
			}
			return c
		}},
		{"outside memory", func(f *ptnettest.Frontend) []ptnettest.Desc {
			return []ptnettest.Desc{{Buf: uint64(len(f.Mem)) + 4096, Len: 64}}
		}},
		{"writable", func(f *ptnettest.Frontend) []ptnettest.Desc {
			return []ptnettest.Desc{{Buf: f.Alloc(64, 8), Len: 64, Flags: vhostuser.DescFWrite}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, sock := newTestPort(t, 1)
			f := ptnettest.NewFrontend(t, sock)
			f.Handshake(backendFeatures, 2, 8)
			go drain(p, 0)
			f.Queues[1].PostChains(tc.chain(f))
			testutil.WaitFor(t, "the queue to stop", func() bool { return strings.Contains(p.Describe().State, "stopped-queues=1") })
			f.Queues[0].PostRx(4, 2048)
			f.Sync()
			batch := frame.NewBatch()
			batch.Add(testFrame(60, 0), 0)
			if n, _, _ := p.Deliver(0, batch, []uint16{0}); n != 1 {
				t.Error("the receive queue stopped too")
			}
		})
	}
}

// Room finds the receive buffers of the frames it is asked about, and the
// Deliver that follows writes into them: the frames arrive whole and in
// order whether Deliver takes all of them, a first part (the rest going
// to buffers found again), or comes after the memory table changed (the
// buffers Room found are forgotten). Frames that do not fit a single
// buffer take the general path between the others.
func TestRoomThenDeliver(t *testing.T) { eachRingMode(t, testRoomThenDeliver) }

func testRoomThenDeliver(t *testing.T, feats uint64) {
	p, sock := newTestPort(t, 1)
	f := ptnettest.NewFrontend(t, sock)
	f.Handshake(feats, 2, 64)
	rx := f.Queues[0]
	rx.PostRx(32, 2048)
	f.Sync()
	b := frame.NewBatch()
	var want [][]byte
	for i, n := range []int{60, 1514, 3000, 60, 200, 4000, 100} {
		fr := testFrame(n, byte(i))
		b.Add(fr, 0)
		want = append(want, fr)
	}
	which := []uint16{0, 1, 2, 3, 4, 5, 6}
	if n := p.Room(0, b, which); n != len(which) {
		t.Fatalf("Room = %d, want %d", n, len(which))
	}
	// Deliver a first part, then the rest.
	if n, _, err := p.Deliver(0, b, which[:4]); n != 4 || err != nil {
		t.Fatalf("Deliver = %d, %v", n, err)
	}
	if n, _, err := p.Deliver(0, b, which[4:]); n != 3 || err != nil {
		t.Fatalf("Deliver = %d, %v", n, err)
	}
	// Room, then a new memory table, then Deliver.
	if n := p.Room(0, b, which); n != len(which) {
		t.Fatalf("Room = %d", n)
	}
	f.SetMemTable()
	f.Sync()
	if n, _, err := p.Deliver(0, b, which); n != len(which) || err != nil {
		t.Fatalf("Deliver after a new memory table = %d, %v", n, err)
	}
	frames, _ := rx.RxFrames()
	if len(frames) != 2*len(want) {
		t.Fatalf("the guest got %d frames, want %d", len(frames), 2*len(want))
	}
	for i, fr := range frames {
		if !bytes.Equal(fr, want[i%len(want)]) {
			t.Fatalf("frame %d: %d bytes, not the one sent", i, len(fr))
		}
	}
}
