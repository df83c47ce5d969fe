package shm

import (
	"errors"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/notify"
	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/ports/portname"
	"github.com/valeswitch/vale/vale/frame"
	"github.com/valeswitch/vale/vale/wire"
)

func TestBindAndReply(t *testing.T) {
	g := ports.DefaultGeometry()
	g.TxRings, g.RxRings = 2, 2
	p, err := New("vale0:x", g, Config{ZLevels: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	b0, err := p.Bind(portname.Selection{TxFirst: 0, TxLast: 1, RxFirst: 0, RxLast: 1, Exclusive: true}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bind(portname.Selection{TxFirst: 0, TxLast: 1}, 0); err == nil {
		t.Error("bound a ring held exclusively")
	}
	b1, err := p.Bind(portname.Selection{TxFirst: 1, TxLast: 2, RxFirst: 1, RxLast: 2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var r wire.OpenReply
	fds, err := b1.Reply(&r)
	if err != nil || len(fds) != 4 || r.NotifyFirst != 1 || r.NotifyLast != 2 || r.Kind != wire.KindVale { // memory, notify, kick, room
		t.Fatalf("reply %+v, descriptors %v, %v", r, fds, err)
	}
	if left := b0.Close(); left != 1 {
		t.Errorf("%d bindings left", left)
	}
	if p.Users() != 1 {
		t.Errorf("%d users", p.Users())
	}
}

// TestRecvStop checks that Stop wakes a worker blocked in Recv.
func TestRecvStop(t *testing.T) {
	g := ports.DefaultGeometry()
	l, err := ports.PortLayout(g, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, l.Size)
	p, err := NewInMemory("vale0:m", g, mem, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	done := make(chan error)
	go func() { done <- p.Recv(0, frame.NewBatch()) }()
	testutil.WaitParked(t, "shm.(*Port).Recv")
	p.Stop()
	select {
	case err := <-done:
		if !errors.Is(err, ports.ErrStopped) {
			t.Errorf("Recv returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not wake Recv")
	}
	if d := p.Describe(); d.State != "stopping" || d.Kind != "vale" || d.TxSlots != 1024 {
		t.Errorf("describe %+v", d)
	}
}

func TestDefaultMAC(t *testing.T) {
	a, b := DefaultMAC("vale0:a"), DefaultMAC("vale0:b")
	if a.String() == b.String() || a[0] != 0x02 || DefaultMAC("vale0:a").String() != a.String() {
		t.Errorf("MACs %s %s", a, b)
	}
}

// TestSplitBindingsWakeSeparately checks that two bindings splitting a ring
// pair (/T in one client, /R in another) sleep on eventfds of their own, and
// that the switch wakes only the one whose ticket it answers: with one
// eventfd per ring pair, the receiver could take the sender's wake-up and
// the sender would sleep forever.
func TestSplitBindingsWakeSeparately(t *testing.T) {
	g := ports.DefaultGeometry()
	g.TxRings, g.RxRings = 1, 1
	p, err := New("vale0:s", g, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	tx, err := p.Bind(portname.Selection{TxLast: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := p.Bind(portname.Selection{RxLast: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	txFD, rxFD := tx.NotifyFDs(), rx.NotifyFDs()
	if len(txFD) != 1 || len(rxFD) != 1 || txFD[0] == rxFD[0] {
		t.Fatalf("eventfds %v and %v", txFD, rxFD)
	}

	// The receiving client sleeps: a delivery wakes it, not the sender.
	l := p.Layout()
	iface, err := l.Iface(p.Mem(), 0)
	if err != nil {
		t.Fatal(err)
	}
	iface.Ring(ports.RX, 0, "vale0:s").Header().AppTicket().Store(7)
	b := frame.NewBatch()
	b.Add(make([]byte, 60), 0)
	if n, _, err := p.Deliver(0, b, []uint16{0}); n != 1 || err != nil {
		t.Fatalf("delivered %d, %v", n, err)
	}
	if notify.Drain(txFD[0]) || !notify.Drain(rxFD[0]) {
		t.Error("a delivery did not wake the receiver alone")
	}

	// A binding given back leaves the wake lists: its eventfd is reused,
	// drained, by the next binding, and the receiver's is not signalled.
	rx.Close()
	rx2, err := p.Bind(portname.Selection{RxLast: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fds := rx2.NotifyFDs(); len(fds) != 1 || fds[0] != rxFD[0] {
		t.Errorf("a new binding got %v, not the spare %v", fds, rxFD)
	}
	if got := len(p.rx[0].wake.get()); got != 1 {
		t.Errorf("%d bindings wake on rx ring 0", got)
	}
}

// TestDeliverCountsDrops checks that frames a full RX ring cannot take are
// counted in its header, where the client (nm-capture) reads them.
func TestDeliverCountsDrops(t *testing.T) {
	g := ports.DefaultGeometry()
	g.TxRings, g.RxRings, g.RxSlots = 1, 1, 64
	p, err := New("vale0:d", g, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	l := p.Layout()
	iface, err := l.Iface(p.Mem(), 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr := iface.Ring(ports.RX, 0, "vale0:d").Header()
	b := frame.NewBatch()
	which := make([]uint16, 100)
	for i := range which {
		b.Add(make([]byte, 60), 0)
		which[i] = uint16(i)
	}
	n, _, err := p.Deliver(0, b, which)
	if err != nil || n != 63 {
		t.Fatalf("delivered %d, %v; want the 63 a ring of 64 slots holds", n, err)
	}
	if d := hdr.Dropped(); d != 37 {
		t.Errorf("the ring counts %d frames dropped, want 37", d)
	}
	if n, _, _ := p.Deliver(0, b, which[:10]); n != 0 || hdr.Dropped() != 47 {
		t.Errorf("a full ring took %d and counts %d dropped, want 0 and 47", n, hdr.Dropped())
	}
}
