package replay

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func mustSched(t *testing.T, bw, delay, loss string) *Scheduler {
	t.Helper()
	b, err := ParseBandwidth(bw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDelay(delay)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLoss(loss)
	if err != nil {
		t.Fatal(err)
	}
	return NewScheduler(b, d, l, newRand())
}

func TestScheduleUnlimited(t *testing.T) {
	s := mustSched(t, "", "", "")
	if s.Paced() {
		t.Error("no -B, no -D: paced")
	}
	for i := range 10 {
		if at, lost := s.Next(60, 1000); at != 0 || lost {
			t.Fatalf("packet %d: at %d lost %v", i, at, lost)
		}
	}
}

func TestScheduleConstant(t *testing.T) {
	// 100 Mbit/s, 1250-byte packets: one every 100 µs, the first leaving
	// when its last bit does.
	s := mustSched(t, "constant,100M", "", "")
	if !s.Paced() {
		t.Error("-B: not paced")
	}
	for i := range 1000 {
		at, lost := s.Next(1250, 0)
		if lost || at != int64(i+1)*100_000 {
			t.Fatalf("packet %d at %d lost %v, want %d", i, at, lost, (i+1)*100_000)
		}
	}
}

func TestScheduleNoRoundingDrift(t *testing.T) {
	// 60 bytes at 7 Mbit/s is 68571.43 ns: a million packets must end at
	// a million times that, not drift by the rounding of each.
	s := mustSched(t, "7M", "", "")
	var at int64
	for range 1_000_000 {
		at, _ = s.Next(60, 0)
	}
	if want := 480e15 / 7e6; math.Abs(float64(at)-want) > 1 {
		t.Errorf("last departure %d, want %.0f", at, want)
	}
}

func TestScheduleEther(t *testing.T) {
	s := mustSched(t, "ether,1G", "", "")
	at, _ := s.Next(60, 0)
	at2, _ := s.Next(60, 0)
	if at != 672 || at2 != 1344 {
		t.Errorf("departures %d %d, want 672 1344", at, at2)
	}
}

func TestScheduleReal(t *testing.T) {
	gaps := []int64{0, 3_000_000, 1_000_000, 0, 5_000_000}
	for _, speedup := range []float64{1, 2, 0.5} {
		b := Bandwidth{Mode: Real, Speedup: speedup}
		s := NewScheduler(b, Delay{}, nil, newRand())
		var want float64
		for i, g := range gaps {
			want += float64(g) / speedup
			if at, _ := s.Next(100, g); at != int64(want) {
				t.Errorf("speedup %v packet %d at %d, want %.0f", speedup, i, at, want)
			}
		}
	}
}

func TestScheduleRealWithLoss(t *testing.T) {
	// Whatever is lost, the packets kept leave at their trace times.
	s := mustSched(t, "real", "", "0.5")
	var ts int64
	for i := range 1000 {
		gap := int64(1000 + i)
		ts += gap
		if at, lost := s.Next(60, gap); !lost && at != ts {
			t.Fatalf("packet %d at %d, want its trace time %d", i, at, ts)
		}
	}
}

func TestScheduleDelayNoReorder(t *testing.T) {
	for _, d := range []string{"constant,1m", "uniform,0,1m", "exp,10u,200u"} {
		s := mustSched(t, "constant,1G", d, "")
		var prev int64
		var sum float64
		const n = 100_000
		for i := range n {
			at, _ := s.Next(125, 0) // tt = 1 µs
			if at < prev+1000 {
				t.Fatalf("%s: packet %d at %d, previous at %d: closer than the transmit time", d, i, at, prev)
			}
			prev = at
			sum += float64(at) - float64(i+1)*1000
		}
		if d == "constant,1m" && prev != n*1000+int64(time.Millisecond) {
			t.Errorf("%s: last packet at %d", d, prev)
		}
		t.Logf("%s: average extra delay %.0f ns", d, sum/n)
	}
}

func TestDelaySample(t *testing.T) {
	r := newRand()
	for _, c := range []struct {
		in       string
		min, avg float64
	}{{"uniform,1u,3u", 1000, 2000}, {"exp,1u,5u", 1000, 5000}, {"7u", 7000, 7000}} {
		d, _ := ParseDelay(c.in)
		var sum float64
		lo := math.Inf(1)
		const n = 200_000
		for range n {
			v := d.Sample(r)
			sum += v
			lo = min(lo, v)
		}
		if lo < c.min || math.Abs(sum/n-c.avg) > c.avg*0.01 {
			t.Errorf("%s: min %.0f average %.0f, want >= %.0f and %.0f", c.in, lo, sum/n, c.min, c.avg)
		}
	}
}

func TestScheduleLoss(t *testing.T) {
	for _, c := range []struct {
		loss    string
		length  int
		nominal float64
	}{
		{"plr,0.1", 60, 0.1},
		{"0.5", 60, 0.5},
		{"ber,1e-4", 125, 1 - math.Pow(1-1e-4, 1000)},
		{"plr,0", 60, 0},
		{"plr,1", 60, 1},
	} {
		s := mustSched(t, "constant,1G", "", c.loss)
		const n = 200_000
		var kept int
		var prev int64
		for range n {
			at, lost := s.Next(c.length, 0)
			if !lost {
				kept++
				// Lost packets do not occupy the link.
				if at != prev+int64(c.length)*8 {
					t.Fatalf("%s: kept packet at %d after %d", c.loss, at, prev)
				}
				prev = at
			}
		}
		actual, nominal := s.LossRates()
		if math.Abs(nominal-c.nominal) > 1e-9 || math.Abs(actual-c.nominal) > 0.005 || s.Lost != uint64(n-kept) {
			t.Errorf("%s: actual %v nominal %v (lost %d kept %d), want %v", c.loss, actual, nominal, s.Lost, kept, c.nominal)
		}
	}
}
