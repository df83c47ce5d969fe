package vale

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports"
)

var (
	macA  = mac("02:00:00:00:00:0a")
	macB  = mac("02:00:00:00:00:0b")
	macC  = mac("02:00:00:00:00:0c")
	bcast = mac("ff:ff:ff:ff:ff:ff")
	mcast = mac("01:00:5e:00:00:01")
)

func TestLearningAndFlooding(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b", "vale0:c")
	a, b, c := ps[0], ps[1], ps[2]

	// Unknown destination: flooded to every other port, never back.
	a.send(eth(macB, macA, "a->b unknown"))
	if got := tags(b.take()); !slices.Equal(got, []string{"a->b unknown"}) {
		t.Errorf("b got %q", got)
	}
	if got := tags(c.take()); !slices.Equal(got, []string{"a->b unknown"}) {
		t.Errorf("c got %q", got)
	}
	if got := a.take(); len(got) != 0 {
		t.Errorf("flood came back to its source: %q", tags(got))
	}

	// A is known now: the answer goes to a only.
	b.send(eth(macA, macB, "b->a"))
	if got := tags(a.take()); !slices.Equal(got, []string{"b->a"}) {
		t.Errorf("a got %q", got)
	}
	if got := c.take(); len(got) != 0 {
		t.Errorf("c got %q after A was learned", tags(got))
	}

	// And B is known too.
	a.send(eth(macB, macA, "a->b known"))
	if got := tags(b.take()); !slices.Equal(got, []string{"a->b known"}) {
		t.Errorf("b got %q", got)
	}
	if got := c.take(); len(got) != 0 {
		t.Errorf("c got %q after B was learned", tags(got))
	}

	// Broadcast and multicast reach everyone else.
	c.send(eth(bcast, macC, "bcast"), eth(mcast, macC, "mcast"))
	for _, p := range []*fakePort{a, b} {
		if got := tags(p.take()); !slices.Equal(got, []string{"bcast", "mcast"}) {
			t.Errorf("%s got %q", p.name, got)
		}
	}
	if got := c.take(); len(got) != 0 {
		t.Errorf("broadcast came back to its source")
	}

	st := statsOf(sw, "vale0:a")
	if st.TxPackets != 2 || st.RxPackets != 3 || st.TxBytes != 120 {
		t.Errorf("a's counters %+v", st)
	}
	if info := sw.Info(); info.MACs != 3 || info.Learned != 3 {
		t.Errorf("switch info %+v, want 3 MACs learned", info)
	}
}

func TestNoLearn(t *testing.T) {
	_, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b", "vale0:c")
	a, b, c := ps[0], ps[1], ps[2]
	f := eth(macA, macC, "c no-learn")
	f.flags = ports.NS_NO_LEARN
	c.send(f)
	a.take()
	b.take()
	a.send(eth(macC, macA, "a->c"))
	if got := b.take(); len(got) != 1 {
		t.Errorf("C was learned despite NS_NO_LEARN: b got %q", tags(got))
	}
	if got := c.take(); len(got) != 1 {
		t.Errorf("c got %d frames", len(got))
	}
}

func TestNothingBackToSource(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	a.send(eth(bcast, macA, "learn a"))
	b.take()
	a.send(eth(macA, macA, "to itself"))
	if got := append(a.take(), b.take()...); len(got) != 0 {
		t.Errorf("frame to the sender's own address delivered: %q", tags(got))
	}
	if st := statsOf(sw, "vale0:a"); st.DropNoRoute != 1 {
		t.Errorf("no-route drops %d, want 1", st.DropNoRoute)
	}
}

func TestFullDestinationDropsAndCounts(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	b.mu.Lock()
	b.room = 3
	b.mu.Unlock()
	var frames []fakeFrame
	for i := range 10 {
		frames = append(frames, eth(macB, macA, fmt.Sprint(i)))
	}
	a.send(frames...) // returns: the sender is never blocked by a full receiver
	if got := tags(b.take()); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("b got %q", got)
	}
	st := statsOf(sw, "vale0:b")
	if st.RxPackets != 3 || st.DropFull != 7 {
		t.Errorf("b's counters %+v, want 3 received and 7 dropped", st)
	}
}

func TestUnicastAndFloodKeepOrder(t *testing.T) {
	_, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b", "vale0:c")
	a, b, c := ps[0], ps[1], ps[2]
	b.send(eth(bcast, macB, "learn b"))
	c.send(eth(bcast, macC, "learn c"))
	a.take()
	b.take()
	c.take()
	a.send(
		eth(macB, macA, "1 b"), eth(bcast, macA, "2 all"), eth(macC, macA, "3 c"),
		eth(macB, macA, "4 b"), eth(mac("02:00:00:00:00:99"), macA, "5 unknown"), eth(macB, macA, "6 b"),
	)
	if got := tags(b.take()); !slices.Equal(got, []string{"1 b", "2 all", "4 b", "5 unknown", "6 b"}) {
		t.Errorf("b got %q", got)
	}
	if got := tags(c.take()); !slices.Equal(got, []string{"2 all", "3 c", "5 unknown"}) {
		t.Errorf("c got %q", got)
	}
}

func TestRuntsDropped(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b")
	ps[0].send(fakeFrame{data: []byte{1, 2, 3}}, fakeFrame{data: nil}, eth(bcast, macA, "ok"))
	if got := tags(ps[1].take()); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("b got %q", got)
	}
	if st := statsOf(sw, "vale0:a"); st.DropInvalid != 2 || st.TxPackets != 3 {
		t.Errorf("a's counters %+v, want 2 invalid of 3", st)
	}
}

// TestRingChoice checks netmap's rule: frames from TX ring r go to RX ring
// r modulo the destination's RX ring count.
func TestRingChoice(t *testing.T) {
	sw := New("vale0", Config{})
	defer sw.Close()
	a, b, c := newFakePort("vale0:a"), newFakePort("vale0:b"), newFakePort("vale0:c")
	a.ntx, a.txRing = 4, 3
	b.nrx = 2
	c.nrx = 4
	for _, p := range []*fakePort{a, b, c} {
		if _, err := sw.Attach(p, ModeDefault); err != nil {
			t.Fatal(err)
		}
		defer sw.Detach(p)
	}
	a.send(eth(bcast, macA, "x"))
	for _, tt := range []struct {
		p    *fakePort
		ring int
	}{{b, 1}, {c, 3}} {
		tt.p.mu.Lock()
		rings := slices.Clone(tt.p.gotRing)
		tt.p.mu.Unlock()
		if !slices.Equal(rings, []int{tt.ring}) {
			t.Errorf("%s: delivered to rings %v, want [%d]", tt.p.name, rings, tt.ring)
		}
	}
}

func TestDetachForgetsAddresses(t *testing.T) {
	sw := New("vale0", Config{})
	defer sw.Close()
	a, b, c := newFakePort("vale0:a"), newFakePort("vale0:b"), newFakePort("vale0:c")
	for _, p := range []*fakePort{a, b, c} {
		if _, err := sw.Attach(p, ModeDefault); err != nil {
			t.Fatal(err)
		}
	}
	b.send(eth(bcast, macB, "learn b"))
	if err := sw.Detach(b); err != nil {
		t.Fatal(err)
	}
	if err := sw.Detach(b); err == nil {
		t.Error("second detach succeeded")
	}
	// A new port takes b's index; B's address must not lead to it.
	d := newFakePort("vale0:d")
	if idx, err := sw.Attach(d, ModeDefault); err != nil || idx != 1 {
		t.Fatalf("attach d: index %d, %v", idx, err)
	}
	a.take()
	c.take()
	a.send(eth(macB, macA, "to gone b"))
	if got := c.take(); len(got) != 1 {
		t.Errorf("frame for a detached port's address was not flooded (c got %d)", len(got))
	}
	if sw.Len() != 3 {
		t.Errorf("switch has %d ports", sw.Len())
	}
	for _, p := range []*fakePort{a, c, d} {
		sw.Detach(p)
	}
}

func TestManyPorts(t *testing.T) {
	const n = 300 // more than netmap's 254
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("vale0:p%d", i)
	}
	sw, ps := newTestSwitch(t, Config{}, names...)
	ps[0].send(eth(bcast, mac("02:00:00:00:01:00"), "hello all"))
	for _, p := range ps[1:] {
		if got := p.take(); len(got) != 1 {
			t.Fatalf("%s got %d frames", p.name, len(got))
		}
	}
	// Pairs talk; each frame reaches exactly its peer once learned.
	for i := 1; i < n; i += 2 {
		src := mac(fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff))
		ps[i].send(eth(bcast, src, "learn"))
	}
	for _, p := range ps {
		p.take()
	}
	for i := 2; i < n; i += 2 {
		dst := mac(fmt.Sprintf("02:00:00:00:%02x:%02x", (i-1)>>8, (i-1)&0xff))
		ps[i].send(eth(dst, mac("02:00:00:00:ff:ff"), fmt.Sprint(i)))
	}
	for i := 1; i < n-1; i += 2 {
		if got := tags(ps[i].take()); !slices.Equal(got, []string{fmt.Sprint(i + 1)}) {
			t.Fatalf("%s got %q", ps[i].name, got)
		}
	}
	if sw.Len() != n {
		t.Errorf("%d ports attached", sw.Len())
	}
}

func TestSwitchFull(t *testing.T) {
	_, _ = newTestSwitch(t, Config{MaxPorts: 2}, "vale0:a", "vale0:b")
	sw := New("vale1", Config{MaxPorts: 1})
	defer sw.Close()
	a := newFakePort("vale1:a")
	if _, err := sw.Attach(a, ModeDefault); err != nil {
		t.Fatal(err)
	}
	defer sw.Detach(a)
	if _, err := sw.Attach(newFakePort("vale1:b"), ModeDefault); err == nil {
		t.Error("attach beyond MaxPorts succeeded")
	}
	if _, err := sw.Attach(newFakePort("vale1:a"), ModeDefault); err == nil {
		t.Error("second port with the same name attached")
	}
}

func TestMACAging(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{MACAge: time.Second}, "vale0:a", "vale0:b")
	ps[0].send(eth(bcast, macA, "learn a"))
	if sw.Info().MACs != 1 {
		t.Fatal("A not learned")
	}
	testutil.WaitFor(t, "A to age out", func() bool { return sw.Info().MACs == 0 })
	if sw.Info().Aged != 1 {
		t.Errorf("aged count %d", sw.Info().Aged)
	}
}
