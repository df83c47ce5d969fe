package vale

import "testing"

func TestMACTableKeepsColliding(t *testing.T) {
	tb := newMACTable(0)
	tb.mu.Lock()
	// Many more addresses than buckets at the start: nothing may be lost
	// to a collision, as it would in a one-entry-per-bucket table.
	const n = 5000
	for i := range uint64(n) {
		tb.learn(0x020000000000|i, uint16(i%7), 1)
	}
	tb.mu.Unlock()
	if tb.Len() != n {
		t.Fatalf("table holds %d addresses, want %d", tb.Len(), n)
	}
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	for i := range uint64(n) {
		p, ok := tb.lookup(0x020000000000 | i)
		if !ok || p != uint16(i%7) {
			t.Fatalf("address %d: port %d, found %v", i, p, ok)
		}
	}
	if len(tb.entries) < 2*n {
		t.Errorf("table more than half full: %d entries in %d buckets", n, len(tb.entries))
	}
}

func TestMACTableMoveRefreshExpire(t *testing.T) {
	tb := newMACTable(0)
	const a, b = 0x0200000000aa, 0x0200000000bb
	tb.mu.Lock()
	tb.learn(a, 1, 10)
	tb.learn(b, 2, 10)
	tb.learn(a, 3, 11) // a moved
	tb.mu.Unlock()
	if tb.moved.Load() != 1 || tb.learned.Load() != 2 {
		t.Errorf("moved %d learned %d", tb.moved.Load(), tb.learned.Load())
	}
	tb.mu.RLock()
	if p, _ := tb.lookup(a); p != 3 {
		t.Errorf("a on port %d, want 3", p)
	}
	if !tb.refresh(b, 2, 20) {
		t.Error("refresh of a known address failed")
	}
	if tb.refresh(b, 5, 20) {
		t.Error("refresh on another port succeeded")
	}
	tb.mu.RUnlock()
	tb.expire(25, 10) // a last seen at 11: gone; b refreshed at 20: kept
	tb.mu.RLock()
	_, okA := tb.lookup(a)
	_, okB := tb.lookup(b)
	tb.mu.RUnlock()
	if okA || !okB || tb.aged.Load() != 1 {
		t.Errorf("after expiry a=%v b=%v aged=%d", okA, okB, tb.aged.Load())
	}
	tb.purge(2)
	if tb.Len() != 0 {
		t.Errorf("purge left %d addresses", tb.Len())
	}
}

func TestMACTableFull(t *testing.T) {
	tb := newMACTable(4)
	tb.mu.Lock()
	for i := range uint64(6) {
		tb.learn(0x020000000000|i, 1, 1)
	}
	tb.mu.Unlock()
	if tb.Len() != 4 || tb.full.Load() != 2 {
		t.Errorf("len %d, full %d", tb.Len(), tb.full.Load())
	}
}
