package portname

import (
	"errors"
	"syscall"
	"testing"
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
		n, err := ParseName(tt.name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SelectRings(&n, 4, 2)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestClaims(t *testing.T) {
	c := NewClaims(2, 2)
	ring0 := Selection{TxFirst: 0, TxLast: 1, RxFirst: 0, RxLast: 1}
	ring1 := Selection{TxFirst: 1, TxLast: 2, RxFirst: 1, RxLast: 2}
	excl0 := ring0
	excl0.Exclusive = true
	if err := c.Take("p", excl0); err != nil {
		t.Fatal(err)
	}
	if err := c.Take("p", ring0); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("bound a ring held exclusively: %v", err)
	}
	if err := c.Take("p", ring1); err != nil {
		t.Fatalf("other ring: %v", err)
	}
	excl1 := ring1
	excl1.Exclusive = true
	if err := c.Take("p", excl1); err == nil {
		t.Error("exclusive bind of a ring someone holds")
	}
	c.Release(excl0)
	if err := c.Take("p", ring0); err != nil {
		t.Errorf("ring free again: %v", err)
	}
	if err := c.Take("p", Selection{TxFirst: 0, TxLast: 3}); err == nil {
		t.Error("selection beyond the rings accepted")
	}
	if f, l := (Selection{TxFirst: 1, TxLast: 2}).Notify(); f != 1 || l != 2 {
		t.Errorf("notify range of a ports.TX-only selection: [%d, %d)", f, l)
	}
	if f, l := (Selection{TxFirst: 0, TxLast: 1, RxFirst: 2, RxLast: 3}).Notify(); f != 0 || l != 3 {
		t.Errorf("notify range of a mixed selection: [%d, %d)", f, l)
	}
}
