package shm

import (
	"errors"
	"testing"
	"time"

	"github.com/valeswitch/vale/ports"
)

func TestSelectRings(t *testing.T) {
	tests := []struct {
		name string
		want Selection
		err  bool
	}{
		{"vale0:a", Selection{TxLast: 4, RxLast: 2}, false},
		{"vale0:a-1", Selection{TxFirst: 1, TxLast: 2, RxFirst: 1, RxLast: 2}, false},
		{"vale0:a-3", Selection{TxFirst: 3, TxLast: 4, RxFirst: 2, RxLast: 2}, false},
		{"vale0:a-4", Selection{}, true},
		{"vale0:a/T", Selection{TxLast: 4}, false},
		{"vale0:a-1/Rx", Selection{RxFirst: 1, RxLast: 2, Exclusive: true}, false},
	}
	for _, tt := range tests {
		n, err := ports.ParseName(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SelectRings(&n, 4, 2)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestBindExclusive(t *testing.T) {
	g := ports.DefaultGeometry()
	g.TxRings, g.RxRings = 2, 2
	p, err := New("vale0:x", g, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	ring0 := Selection{TxFirst: 0, TxLast: 1, RxFirst: 0, RxLast: 1}
	ring1 := Selection{TxFirst: 1, TxLast: 2, RxFirst: 1, RxLast: 2}
	b0, err := p.Bind(Selection{TxFirst: 0, TxLast: 1, RxFirst: 0, RxLast: 1, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Bind(ring0); err == nil {
		t.Error("bound a ring held exclusively")
	}
	b1, err := p.Bind(ring1)
	if err != nil {
		t.Fatalf("other ring: %v", err)
	}
	if _, err := p.Bind(Selection{TxFirst: 1, TxLast: 2, RxFirst: 1, RxLast: 2, Exclusive: true}); err == nil {
		t.Error("exclusive bind of a ring someone holds")
	}
	fds, err := b1.FDs()
	if err != nil || len(fds) != 3 {
		t.Fatalf("descriptors %v, %v", fds, err)
	}
	if left := b0.Close(); left != 1 {
		t.Errorf("%d bindings left", left)
	}
	if _, err := p.Bind(ring0); err != nil {
		t.Errorf("ring free again: %v", err)
	}
}

// TestRecvStop checks that Stop wakes a worker blocked in Recv.
func TestRecvStop(t *testing.T) {
	g := ports.DefaultGeometry()
	mem := make([]byte, mustLayout(t, g).Size)
	p, err := NewInMemory("vale0:m", g, mem, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	done := make(chan error)
	go func() { done <- p.Recv(0, ports.NewBatch()) }()
	time.Sleep(50 * time.Millisecond)
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

func mustLayout(t *testing.T, g ports.Geometry) ports.Layout {
	t.Helper()
	l, err := g.Layout()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestDefaultMAC(t *testing.T) {
	a, b := DefaultMAC("vale0:a"), DefaultMAC("vale0:b")
	if a.String() == b.String() || a[0] != 0x02 || DefaultMAC("vale0:a").String() != a.String() {
		t.Errorf("MACs %s %s", a, b)
	}
}
