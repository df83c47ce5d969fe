package vale

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
)

// frameTags returns n frames from src to dst tagged prefix0, prefix1, ...
func frameTags(dst, src string, prefix string, n int) ([]fakeFrame, []string) {
	var fs []fakeFrame
	var want []string
	for i := range n {
		tag := fmt.Sprintf("%s%d", prefix, i)
		fs = append(fs, eth(mac(dst), mac(src), tag))
		want = append(want, tag)
	}
	return fs, want
}

// A lossless destination without room holds the sender's frames back:
// nothing is dropped, the frames come out in order as room is made.
func TestLosslessHoldsSender(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{Lossless: true, StuckTimeout: time.Hour}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	b.send(eth(mac("ff:ff:ff:ff:ff:ff"), mac("02:00:00:00:00:0b"), "learn"))
	a.take()
	b.mu.Lock()
	b.room = 0
	b.mu.Unlock()
	frames, want := frameTags("02:00:00:00:00:0b", "02:00:00:00:00:0a", "f", 20)
	a.queueFrames(frames...)
	testutil.WaitFor(t, "the sender to wait", func() bool { return statsOf(sw, "vale0:a").Waits > 0 })
	if got := b.take(); len(got) != 0 {
		t.Fatalf("a destination without room got %d frames", len(got))
	}
	b.makeRoom(7)
	testutil.WaitFor(t, "7 frames", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.got) == 7 })
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	if done != 7 {
		t.Fatalf("the sender got %d frames back, 7 were taken", done)
	}
	b.makeRoom(1000)
	testutil.WaitFor(t, "every frame", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.got) == 20 })
	if got := tags(b.take()); !slices.Equal(got, want) {
		t.Fatalf("frames %v, want %v", got, want)
	}
	if st := statsOf(sw, "vale0:b"); st.DropFull != 0 || st.DropStuck != 0 || st.RxPackets != 20 {
		t.Fatalf("destination counters %+v", st)
	}
	if st := statsOf(sw, "vale0:a"); st.TxPackets != 20+0 {
		t.Fatalf("sender counters %+v (each frame counted once)", st)
	}
}

// A flood waits for its slowest lossless destination, and every port gets
// every frame once, in order: no duplicate to the ports that had room.
func TestLosslessFlood(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{Lossless: true, StuckTimeout: time.Hour}, "vale0:a", "vale0:b", "vale0:c")
	a, b, c := ps[0], ps[1], ps[2]
	b.mu.Lock()
	b.room = 3
	b.mu.Unlock()
	frames, want := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "bc", 12)
	a.queueFrames(frames...)
	testutil.WaitFor(t, "3 frames at b", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.got) == 3 })
	testutil.WaitFor(t, "the sender to wait", func() bool { return statsOf(sw, "vale0:a").Waits > 0 })
	c.mu.Lock()
	early := len(c.got)
	c.mu.Unlock()
	if early != 3 {
		t.Fatalf("c got %d frames while b had room for 3", early)
	}
	b.makeRoom(100)
	testutil.WaitFor(t, "every frame", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(b.got) == 12 && len(c.got) == 12
	})
	if gb, gc := tags(b.take()), tags(c.take()); !slices.Equal(gb, want) || !slices.Equal(gc, want) {
		t.Fatalf("b got %v, c got %v, want %v", gb, gc, want)
	}
}

// A lossless destination that makes no room for the stuck timeout is
// dropped to, and counted; the sender goes on.
func TestLosslessStuck(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{Lossless: true, StuckTimeout: 50 * time.Millisecond}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	b.mu.Lock()
	b.room = 0
	b.mu.Unlock()
	frames, _ := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "s", 30)
	start := time.Now()
	a.send(frames...)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("frames dropped after %v, before the stuck timeout", d)
	}
	if st := statsOf(sw, "vale0:b"); st.DropStuck != 30 || st.DropFull != 0 {
		t.Fatalf("destination counters %+v, want 30 stuck drops", st)
	}
	// With room again, it is lossless again.
	b.makeRoom(5)
	more, want := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "m", 5)
	a.send(more...)
	if got := tags(b.take()); !slices.Equal(got, want) {
		t.Fatalf("after the stall: %v, want %v", got, want)
	}
}

// Modes per port: a drop port on a lossless switch loses frames, a
// lossless port on a drop switch does not.
func TestPortModes(t *testing.T) {
	sw := New("vale0", Config{StuckTimeout: time.Hour})
	defer sw.Close()
	a, drop, keep := newFakePort("vale0:a"), newFakePort("vale0:drop"), newFakePort("vale0:keep")
	for p, m := range map[*fakePort]Mode{a: ModeDefault, drop: ModeDefault, keep: ModeLossless} {
		if _, err := sw.Attach(p, m); err != nil {
			t.Fatal(err)
		}
		defer sw.Detach(p)
	}
	for _, p := range []*fakePort{drop, keep} {
		p.mu.Lock()
		p.room = 2
		p.mu.Unlock()
	}
	frames, want := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "x", 6)
	a.queueFrames(frames...)
	testutil.WaitFor(t, "2 frames each", func() bool { return len(drop.take()) == 2 || statsOf(sw, "vale0:drop").RxPackets == 2 })
	testutil.WaitFor(t, "the sender to wait", func() bool { return statsOf(sw, "vale0:a").Waits > 0 })
	keep.makeRoom(10)
	testutil.WaitFor(t, "every frame at keep", func() bool { return statsOf(sw, "vale0:keep").RxPackets == 6 })
	if got := tags(keep.take()); !slices.Equal(got, want) {
		t.Fatalf("keep got %v, want %v", got, want)
	}
	if st := statsOf(sw, "vale0:drop"); st.DropFull != 4 {
		t.Fatalf("drop port counters %+v, want 4 dropped", st)
	}
	for _, info := range sw.Ports() {
		want := map[string]string{"vale0:a": "drop", "vale0:drop": "drop", "vale0:keep": "lossless"}[info.Name]
		if info.Mode != want {
			t.Errorf("%s in mode %s, want %s", info.Name, info.Mode, want)
		}
	}
}

// A dropping port that never reads holds a flood back once, for its
// wait; after that it is dropped to, and the switch neither waits for it
// nor yields to it while another port takes the flood.
func TestDropperDoesNotSlowOthers(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{DropAfter: 20 * time.Millisecond}, "vale0:a", "vale0:good", "vale0:evil")
	a, good, evil := ps[0], ps[1], ps[2]
	evil.mu.Lock()
	evil.room = 0
	evil.mu.Unlock()
	first, _ := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "first", 4)
	a.send(first...)
	evil.mu.Lock()
	waited := evil.waits
	evil.mu.Unlock()
	var want []string
	for i := range 50 {
		frames, tags := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", fmt.Sprintf("b%d.", i), 8)
		a.send(frames...)
		want = append(want, tags...)
	}
	evil.mu.Lock()
	more := evil.waits - waited
	evil.mu.Unlock()
	if more != 0 {
		t.Errorf("the switch waited %d more times for a port that never reads while another took the flood", more)
	}
	if got := tags(good.take()); len(got) != 4+len(want) || !slices.Equal(got[4:], want) {
		t.Errorf("the good port got %d frames: %v", len(got), got)
	}
	if st := statsOf(sw, "vale0:evil"); st.DropFull != 4+400 || st.RxPackets != 0 {
		t.Errorf("the port that never reads: %+v", st)
	}
}

// A dropping ring may hold its senders for its wait at a time, and for
// 1/holdShare of the time overall: one that stalls again and again sees its
// holds shrink to what that share earns; one that rests gets them back.
// A lossless ring always gets its wait.
func TestHoldBudget(t *testing.T) {
	const wait = 5 * time.Millisecond
	var h hold
	now := int64(time.Second)
	if until := h.hold(now, wait, false); until != now+int64(wait) {
		t.Fatalf("a first hold may last %v, want %v", time.Duration(until-now), wait)
	}
	for range 20 { // stalls of 4 ms in every 5 ms
		h.release(now+int64(4*time.Millisecond), wait, false)
		now += int64(5 * time.Millisecond)
		h.hold(now, wait, false)
	}
	if got, most := time.Duration(h.hold(now, wait, false)-now), 5*time.Millisecond/holdShare; got > most {
		t.Errorf("a ring stalling 4 ms in every 5 may still hold %v, want at most %v", got, most)
	}
	h.release(now, wait, false)
	now += int64(time.Second)
	if got := time.Duration(h.hold(now, wait, false) - now); got != wait {
		t.Errorf("after a rest a hold may last %v, want %v", got, wait)
	}
	var l hold
	for range 20 {
		l.hold(now, time.Second, true)
		now += int64(900 * time.Millisecond)
		l.release(now, time.Second, true)
	}
	if got := time.Duration(l.hold(now, time.Second, true) - now); got != time.Second {
		t.Errorf("a lossless ring may hold %v, want its stuck timeout", got)
	}
}
