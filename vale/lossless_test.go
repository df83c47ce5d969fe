package vale

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/vale/valetest"
)

// frameTags returns n frames from src to dst tagged prefix0, prefix1, ...
func frameTags(dst, src string, prefix string, n int) ([]valetest.Frame, []string) {
	var fs []valetest.Frame
	var want []string
	for i := range n {
		tag := fmt.Sprintf("%s%d", prefix, i)
		fs = append(fs, valetest.Eth(valetest.MAC(dst), valetest.MAC(src), tag))
		want = append(want, tag)
	}
	return fs, want
}

// A lossless destination without room holds the sender's frames back:
// nothing is dropped, the frames come out in order as room is made.
func TestLosslessHoldsSender(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{Lossless: true, StuckTimeout: time.Hour}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	b.Send(valetest.Eth(valetest.MAC("ff:ff:ff:ff:ff:ff"), valetest.MAC("02:00:00:00:00:0b"), "learn"))
	a.Take()
	b.SetRoom(0)
	frames, want := frameTags("02:00:00:00:00:0b", "02:00:00:00:00:0a", "f", 20)
	a.Queue(frames...)
	testutil.WaitFor(t, "the sender to wait", func() bool { return statsOf(sw, "vale0:a").Waits > 0 })
	if got := b.Take(); len(got) != 0 {
		t.Fatalf("a destination without room got %d frames", len(got))
	}
	b.MakeRoom(7)
	testutil.WaitFor(t, "7 frames", func() bool { return b.Received() == 7 })
	done := a.Released()
	if done != 7 {
		t.Fatalf("the sender got %d frames back, 7 were taken", done)
	}
	b.MakeRoom(1000)
	testutil.WaitFor(t, "every frame", func() bool { return b.Received() == 20 })
	if got := valetest.Tags(b.Take()); !slices.Equal(got, want) {
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
	b.SetRoom(3)
	frames, want := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "bc", 12)
	a.Queue(frames...)
	testutil.WaitFor(t, "3 frames at b", func() bool { return b.Received() == 3 })
	testutil.WaitFor(t, "the sender to wait", func() bool { return statsOf(sw, "vale0:a").Waits > 0 })
	early := c.Received()
	if early != 3 {
		t.Fatalf("c got %d frames while b had room for 3", early)
	}
	b.MakeRoom(100)
	testutil.WaitFor(t, "every frame", func() bool {
		return b.Received() == 12 && c.Received() == 12
	})
	if gb, gc := valetest.Tags(b.Take()), valetest.Tags(c.Take()); !slices.Equal(gb, want) || !slices.Equal(gc, want) {
		t.Fatalf("b got %v, c got %v, want %v", gb, gc, want)
	}
}

// A lossless destination that makes no room for the stuck timeout is
// dropped to, and counted; the sender goes on.
func TestLosslessStuck(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{Lossless: true, StuckTimeout: 50 * time.Millisecond}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	b.SetRoom(0)
	frames, _ := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "s", 30)
	start := time.Now()
	a.Send(frames...)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("frames dropped after %v, before the stuck timeout", d)
	}
	if st := statsOf(sw, "vale0:b"); st.DropStuck != 30 || st.DropFull != 0 {
		t.Fatalf("destination counters %+v, want 30 stuck drops", st)
	}
	// With room again, it is lossless again.
	b.MakeRoom(5)
	more, want := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "m", 5)
	a.Send(more...)
	if got := valetest.Tags(b.Take()); !slices.Equal(got, want) {
		t.Fatalf("after the stall: %v, want %v", got, want)
	}
}

// Modes per port: a drop port on a lossless switch loses frames, a
// lossless port on a drop switch does not.
func TestPortModes(t *testing.T) {
	sw := New("vale0", Config{StuckTimeout: time.Hour})
	defer sw.Close()
	a, drop, keep := valetest.NewPort("vale0:a"), valetest.NewPort("vale0:drop"), valetest.NewPort("vale0:keep")
	for p, m := range map[*valetest.Port]Mode{a: ModeDefault, drop: ModeDefault, keep: ModeLossless} {
		if _, err := sw.Attach(p, m); err != nil {
			t.Fatal(err)
		}
		defer sw.Detach(p)
	}
	for _, p := range []*valetest.Port{drop, keep} {
		p.SetRoom(2)
	}
	frames, want := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "x", 6)
	a.Queue(frames...)
	testutil.WaitFor(t, "2 frames each", func() bool { return len(drop.Take()) == 2 || statsOf(sw, "vale0:drop").RxPackets == 2 })
	testutil.WaitFor(t, "the sender to wait", func() bool { return statsOf(sw, "vale0:a").Waits > 0 })
	keep.MakeRoom(10)
	testutil.WaitFor(t, "every frame at keep", func() bool { return statsOf(sw, "vale0:keep").RxPackets == 6 })
	if got := valetest.Tags(keep.Take()); !slices.Equal(got, want) {
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
	evil.SetRoom(0)
	first, _ := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", "first", 4)
	a.Send(first...)
	waited := evil.WaitRoomCalls()
	var want []string
	for i := range 50 {
		frames, tags := frameTags("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:0a", fmt.Sprintf("b%d.", i), 8)
		a.Send(frames...)
		want = append(want, tags...)
	}
	more := evil.WaitRoomCalls() - waited
	if more != 0 {
		t.Errorf("the switch waited %d more times for a port that never reads while another took the flood", more)
	}
	if got := valetest.Tags(good.Take()); len(got) != 4+len(want) || !slices.Equal(got[4:], want) {
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
