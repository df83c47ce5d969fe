package vale

import (
	"sync"
	"sync/atomic"
)

// macTable is the switch's learning table: MAC address -> port index, with
// aging. It is an open-addressing hash table with linear probing kept at most
// half full, so two addresses that hash to the same bucket both stay (netmap's
// table keeps one entry per bucket and forgets the other).
//
// Lookups and refreshes run under the read lock (a forwarding round holds it
// once); inserts, moves, aging and purges take the write lock. Refreshing an
// entry writes its timestamp atomically and only when the second changed.
type macTable struct {
	mu      sync.RWMutex
	entries []macEntry // power-of-two length
	count   int
	max     int

	learned atomic.Uint64 // new addresses learned
	moved   atomic.Uint64 // addresses that moved to another port
	aged    atomic.Uint64 // addresses forgotten for age
	full    atomic.Uint64 // addresses not learned because the table was full
}

type macEntry struct {
	key  uint64 // MAC | validBit; 0 = empty
	port uint16
	seen atomic.Uint32 // switch clock, seconds
}

const (
	validBit       = 1 << 48
	minMACBuckets  = 1024
	defaultMACSize = 16384
)

func newMACTable(max int) *macTable {
	if max <= 0 {
		max = defaultMACSize
	}
	return &macTable{entries: make([]macEntry, minMACBuckets), max: max}
}

func macHash(key uint64) uint64 { return (key * 0x9e3779b97f4a7c15) >> 32 }

// find returns the entry holding mac, or nil. Caller holds the lock (either).
func (t *macTable) find(mac uint64) *macEntry {
	key := mac | validBit
	mask := uint64(len(t.entries) - 1)
	for i := macHash(key) & mask; ; i = (i + 1) & mask {
		e := &t.entries[i]
		if e.key == key {
			return e
		}
		if e.key == 0 {
			return nil
		}
	}
}

// lookup returns the port that owns mac. Caller holds the read lock.
func (t *macTable) lookup(mac uint64) (uint16, bool) {
	if e := t.find(mac); e != nil {
		return e.port, true
	}
	return 0, false
}

// refresh marks mac as seen on port now. It reports false if the table does
// not know mac on that port yet, in which case the caller must learn it under
// the write lock. Caller holds the read lock.
func (t *macTable) refresh(mac uint64, port uint16, now uint32) bool {
	e := t.find(mac)
	if e == nil || e.port != port {
		return false
	}
	if e.seen.Load() != now {
		e.seen.Store(now)
	}
	return true
}

// learn records mac on port. Caller holds the write lock.
func (t *macTable) learn(mac uint64, port uint16, now uint32) {
	if e := t.find(mac); e != nil {
		if e.port != port {
			e.port = port
			t.moved.Add(1)
		}
		e.seen.Store(now)
		return
	}
	if t.count >= t.max {
		t.full.Add(1)
		return
	}
	if 2*(t.count+1) > len(t.entries) {
		t.rebuild(2*len(t.entries), func(*macEntry) bool { return true })
	}
	t.insert(mac|validBit, port, now)
	t.count++
	t.learned.Add(1)
}

func (t *macTable) insert(key uint64, port uint16, seen uint32) {
	mask := uint64(len(t.entries) - 1)
	i := macHash(key) & mask
	for t.entries[i].key != 0 {
		i = (i + 1) & mask
	}
	e := &t.entries[i]
	e.key, e.port = key, port
	e.seen.Store(seen)
}

// rebuild rehashes the entries that keep accepts into a table of n buckets
// and returns how many it dropped. Caller holds the write lock.
func (t *macTable) rebuild(n int, keep func(*macEntry) bool) int {
	old := t.entries
	t.entries = make([]macEntry, n)
	t.count = 0
	dropped := 0
	for i := range old {
		e := &old[i]
		if e.key == 0 {
			continue
		}
		if !keep(e) {
			dropped++
			continue
		}
		t.insert(e.key, e.port, e.seen.Load())
		t.count++
	}
	return dropped
}

// expire forgets the addresses not seen for more than age seconds at now.
func (t *macTable) expire(now, age uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	stale := false
	for i := range t.entries {
		if e := &t.entries[i]; e.key != 0 && now-e.seen.Load() > age {
			stale = true
			break
		}
	}
	if !stale {
		return
	}
	n := t.rebuild(t.size(), func(e *macEntry) bool { return now-e.seen.Load() <= age })
	t.aged.Add(uint64(n))
}

// purge forgets every address learned on port.
func (t *macTable) purge(port uint16) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rebuild(t.size(), func(e *macEntry) bool { return e.port != port })
}

// size returns the bucket count for the current number of entries.
func (t *macTable) size() int {
	n := minMACBuckets
	for 2*t.count > n {
		n *= 2
	}
	return n
}

// Len returns the number of addresses in the table.
func (t *macTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}
