package vale

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/valeswitch/vale/internal/testutil"
	"github.com/valeswitch/vale/ports"
	"github.com/valeswitch/vale/vale/valetest"
)

var (
	macA  = valetest.MAC("02:00:00:00:00:0a")
	macB  = valetest.MAC("02:00:00:00:00:0b")
	macC  = valetest.MAC("02:00:00:00:00:0c")
	bcast = valetest.MAC("ff:ff:ff:ff:ff:ff")
	mcast = valetest.MAC("01:00:5e:00:00:01")
)

func TestLearningAndFlooding(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b", "vale0:c")
	a, b, c := ps[0], ps[1], ps[2]

	// Unknown destination: flooded to every other port, never back.
	a.Send(valetest.Eth(macB, macA, "a->b unknown"))
	if got := valetest.Tags(b.Take()); !slices.Equal(got, []string{"a->b unknown"}) {
		t.Errorf("b got %q", got)
	}
	if got := valetest.Tags(c.Take()); !slices.Equal(got, []string{"a->b unknown"}) {
		t.Errorf("c got %q", got)
	}
	if got := a.Take(); len(got) != 0 {
		t.Errorf("flood came back to its source: %q", valetest.Tags(got))
	}

	// A is known now: the answer goes to a only.
	b.Send(valetest.Eth(macA, macB, "b->a"))
	if got := valetest.Tags(a.Take()); !slices.Equal(got, []string{"b->a"}) {
		t.Errorf("a got %q", got)
	}
	if got := c.Take(); len(got) != 0 {
		t.Errorf("c got %q after A was learned", valetest.Tags(got))
	}

	// And B is known too.
	a.Send(valetest.Eth(macB, macA, "a->b known"))
	if got := valetest.Tags(b.Take()); !slices.Equal(got, []string{"a->b known"}) {
		t.Errorf("b got %q", got)
	}
	if got := c.Take(); len(got) != 0 {
		t.Errorf("c got %q after B was learned", valetest.Tags(got))
	}

	// Broadcast and multicast reach everyone else.
	c.Send(valetest.Eth(bcast, macC, "bcast"), valetest.Eth(mcast, macC, "mcast"))
	for _, p := range []*valetest.Port{a, b} {
		if got := valetest.Tags(p.Take()); !slices.Equal(got, []string{"bcast", "mcast"}) {
			t.Errorf("%s got %q", p.Name(), got)
		}
	}
	if got := c.Take(); len(got) != 0 {
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
	f := valetest.Eth(macA, macC, "c no-learn")
	f.Flags = ports.NS_NO_LEARN
	c.Send(f)
	a.Take()
	b.Take()
	a.Send(valetest.Eth(macC, macA, "a->c"))
	if got := b.Take(); len(got) != 1 {
		t.Errorf("C was learned despite NS_NO_LEARN: b got %q", valetest.Tags(got))
	}
	if got := c.Take(); len(got) != 1 {
		t.Errorf("c got %d frames", len(got))
	}
}

func TestNothingBackToSource(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	a.Send(valetest.Eth(bcast, macA, "learn a"))
	b.Take()
	a.Send(valetest.Eth(macA, macA, "to itself"))
	if got := append(a.Take(), b.Take()...); len(got) != 0 {
		t.Errorf("frame to the sender's own address delivered: %q", valetest.Tags(got))
	}
	if st := statsOf(sw, "vale0:a"); st.DropNoRoute != 1 {
		t.Errorf("no-route drops %d, want 1", st.DropNoRoute)
	}
}

func TestFullDestinationDropsAndCounts(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b")
	a, b := ps[0], ps[1]
	b.SetRoom(3)
	var frames []valetest.Frame
	for i := range 10 {
		frames = append(frames, valetest.Eth(macB, macA, fmt.Sprint(i)))
	}
	a.Send(frames...) // returns: the sender is never blocked by a full receiver
	if got := valetest.Tags(b.Take()); !slices.Equal(got, []string{"0", "1", "2"}) {
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
	b.Send(valetest.Eth(bcast, macB, "learn b"))
	c.Send(valetest.Eth(bcast, macC, "learn c"))
	a.Take()
	b.Take()
	c.Take()
	a.Send(
		valetest.Eth(macB, macA, "1 b"), valetest.Eth(bcast, macA, "2 all"), valetest.Eth(macC, macA, "3 c"),
		valetest.Eth(macB, macA, "4 b"), valetest.Eth(valetest.MAC("02:00:00:00:00:99"), macA, "5 unknown"), valetest.Eth(macB, macA, "6 b"),
	)
	if got := valetest.Tags(b.Take()); !slices.Equal(got, []string{"1 b", "2 all", "4 b", "5 unknown", "6 b"}) {
		t.Errorf("b got %q", got)
	}
	if got := valetest.Tags(c.Take()); !slices.Equal(got, []string{"2 all", "3 c", "5 unknown"}) {
		t.Errorf("c got %q", got)
	}
}

func TestRuntsDropped(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{}, "vale0:a", "vale0:b")
	ps[0].Send(valetest.Frame{Data: []byte{1, 2, 3}}, valetest.Frame{Data: nil}, valetest.Eth(bcast, macA, "ok"))
	if got := valetest.Tags(ps[1].Take()); !slices.Equal(got, []string{"ok"}) {
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
	a, b, c := valetest.NewPort("vale0:a"), valetest.NewPort("vale0:b"), valetest.NewPort("vale0:c")
	a.SetRings(4, 1, 3)
	b.SetRings(1, 2, 0)
	c.SetRings(1, 4, 0)
	for _, p := range []*valetest.Port{a, b, c} {
		if _, err := sw.Attach(p, ModeDefault); err != nil {
			t.Fatal(err)
		}
		defer sw.Detach(p)
	}
	a.Send(valetest.Eth(bcast, macA, "x"))
	for _, tt := range []struct {
		p    *valetest.Port
		ring int
	}{{b, 1}, {c, 3}} {
		rings := tt.p.ReceivedRings()
		if !slices.Equal(rings, []int{tt.ring}) {
			t.Errorf("%s: delivered to rings %v, want [%d]", tt.p.Name(), rings, tt.ring)
		}
	}
}

func TestDetachForgetsAddresses(t *testing.T) {
	sw := New("vale0", Config{})
	defer sw.Close()
	a, b, c := valetest.NewPort("vale0:a"), valetest.NewPort("vale0:b"), valetest.NewPort("vale0:c")
	for _, p := range []*valetest.Port{a, b, c} {
		if _, err := sw.Attach(p, ModeDefault); err != nil {
			t.Fatal(err)
		}
	}
	b.Send(valetest.Eth(bcast, macB, "learn b"))
	if err := sw.Detach(b); err != nil {
		t.Fatal(err)
	}
	if err := sw.Detach(b); err == nil {
		t.Error("second detach succeeded")
	}
	// A new port takes b's index; B's address must not lead to it.
	d := valetest.NewPort("vale0:d")
	if idx, err := sw.Attach(d, ModeDefault); err != nil || idx != 1 {
		t.Fatalf("attach d: index %d, %v", idx, err)
	}
	a.Take()
	c.Take()
	a.Send(valetest.Eth(macB, macA, "to gone b"))
	if got := c.Take(); len(got) != 1 {
		t.Errorf("frame for a detached port's address was not flooded (c got %d)", len(got))
	}
	if sw.Len() != 3 {
		t.Errorf("switch has %d ports", sw.Len())
	}
	for _, p := range []*valetest.Port{a, c, d} {
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
	ps[0].Send(valetest.Eth(bcast, valetest.MAC("02:00:00:00:01:00"), "hello all"))
	for _, p := range ps[1:] {
		if got := p.Take(); len(got) != 1 {
			t.Fatalf("%s got %d frames", p.Name(), len(got))
		}
	}
	// Pairs talk; each frame reaches exactly its peer once learned.
	for i := 1; i < n; i += 2 {
		src := valetest.MAC(fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff))
		ps[i].Send(valetest.Eth(bcast, src, "learn"))
	}
	for _, p := range ps {
		p.Take()
	}
	for i := 2; i < n; i += 2 {
		dst := valetest.MAC(fmt.Sprintf("02:00:00:00:%02x:%02x", (i-1)>>8, (i-1)&0xff))
		ps[i].Send(valetest.Eth(dst, valetest.MAC("02:00:00:00:ff:ff"), fmt.Sprint(i)))
	}
	for i := 1; i < n-1; i += 2 {
		if got := valetest.Tags(ps[i].Take()); !slices.Equal(got, []string{fmt.Sprint(i + 1)}) {
			t.Fatalf("%s got %q", ps[i].Name(), got)
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
	a := valetest.NewPort("vale1:a")
	if _, err := sw.Attach(a, ModeDefault); err != nil {
		t.Fatal(err)
	}
	defer sw.Detach(a)
	if _, err := sw.Attach(valetest.NewPort("vale1:b"), ModeDefault); err == nil {
		t.Error("attach beyond MaxPorts succeeded")
	}
	if _, err := sw.Attach(valetest.NewPort("vale1:a"), ModeDefault); err == nil {
		t.Error("second port with the same name attached")
	}
}

func TestMACAging(t *testing.T) {
	sw, ps := newTestSwitch(t, Config{MACAge: time.Second}, "vale0:a", "vale0:b")
	ps[0].Send(valetest.Eth(bcast, macA, "learn a"))
	if sw.Info().MACs != 1 {
		t.Fatal("A not learned")
	}
	testutil.WaitFor(t, "A to age out", func() bool { return sw.Info().MACs == 0 })
	if sw.Info().Aged != 1 {
		t.Errorf("aged count %d", sw.Info().Aged)
	}
}
