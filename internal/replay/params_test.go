package replay

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestParseBandwidth(t *testing.T) {
	good := []struct {
		in   string
		want Bandwidth
	}{
		{"", Bandwidth{}},
		{"0", Bandwidth{}},
		{"100", Bandwidth{Mode: Constant, BPS: 100}},
		{"100M", Bandwidth{Mode: Constant, BPS: 100e6}},
		{"1.5m", Bandwidth{Mode: Constant, BPS: 1.5e6}},
		{"constant,10k", Bandwidth{Mode: Constant, BPS: 10e3}},
		{"constant,10K", Bandwidth{Mode: Constant, BPS: 10e3}},
		{"ether,1g", Bandwidth{Mode: Ether, BPS: 1e9}},
		{"ether,2.5G", Bandwidth{Mode: Ether, BPS: 2.5e9}},
		{"constant,1e6", Bandwidth{Mode: Constant, BPS: 1e6}},
		{"real", Bandwidth{Mode: Real, Speedup: 1}},
		{"real,2", Bandwidth{Mode: Real, Speedup: 2}},
		{"real,0.5", Bandwidth{Mode: Real, Speedup: 0.5}},
		{"real,1000", Bandwidth{Mode: Real, Speedup: 1000}},
	}
	for _, c := range good {
		got, err := ParseBandwidth(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseBandwidth(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	bad := []string{"x", "-1", "1T", "100Mbit", "constant", "constant,", "ether,x", "real,0", "real,1001",
		"real,-1", "real,1,2", "foo,1", "constant,1,2", "0.5", "1e16", "NaN", "inf", "0x10", ",1", "1,2"}
	for _, s := range bad {
		if b, err := ParseBandwidth(s); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseBandwidth(%q) = %+v, %v; want a syntax error", s, b, err)
		}
	}
}

func TestTxTime(t *testing.T) {
	b, _ := ParseBandwidth("100M")
	if tt := b.TxTime(1250, 0); tt != 100_000 {
		t.Errorf("constant 100M, 1250 B: %v ns, want 100000", tt)
	}
	b, _ = ParseBandwidth("ether,1G")
	if tt := b.TxTime(60, 0); tt != 672 {
		t.Errorf("ether 1G, 60 B: %v ns, want 672", tt)
	}
	b, _ = ParseBandwidth("real,4")
	if tt := b.TxTime(60, 4000); tt != 1000 {
		t.Errorf("real,4 gap 4000: %v ns, want 1000", tt)
	}
	if tt := b.TxTime(60, -5); tt != 0 {
		t.Errorf("real with a negative gap: %v, want 0", tt)
	}
}

func TestParseDelay(t *testing.T) {
	good := []struct {
		in   string
		want Delay
	}{
		{"", Delay{}},
		{"1", Delay{Mode: ConstDelay, Min: time.Second}},
		{"0.5", Delay{Mode: ConstDelay, Min: 500 * time.Millisecond}},
		{"10m", Delay{Mode: ConstDelay, Min: 10 * time.Millisecond}},
		{"10ms", Delay{Mode: ConstDelay, Min: 10 * time.Millisecond}},
		{"3u", Delay{Mode: ConstDelay, Min: 3 * time.Microsecond}},
		{"3us", Delay{Mode: ConstDelay, Min: 3 * time.Microsecond}},
		{"7n", Delay{Mode: ConstDelay, Min: 7}},
		{"7ns", Delay{Mode: ConstDelay, Min: 7}},
		{"2s", Delay{Mode: ConstDelay, Min: 2 * time.Second}},
		{"constant,1.5u", Delay{Mode: ConstDelay, Min: 1500}},
		{"uniform,1m,2m", Delay{Mode: Uniform, Min: time.Millisecond, Max: 2 * time.Millisecond}},
		{"uniform,1m,1m", Delay{Mode: Uniform, Min: time.Millisecond, Max: time.Millisecond}},
		{"exp,0,5u", Delay{Mode: Exponential, Min: 0, Max: 5 * time.Microsecond}},
	}
	for _, c := range good {
		got, err := ParseDelay(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDelay(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	bad := []string{"x", "-1", "1h", "1x", "uniform,2m,1m", "exp,2m,1m", "uniform,1m", "exp,1,2,3",
		"constant", "foo,1", "100000", "1e300", "nan", "m", "uniform,,1"}
	for _, s := range bad {
		if d, err := ParseDelay(s); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseDelay(%q) = %+v, %v; want a syntax error", s, d, err)
		}
	}
}

func TestParseLoss(t *testing.T) {
	good := []struct {
		in   string
		mode LossMode
		rate float64
	}{
		{"", NoLoss, 0},
		{"0.1", PLR, 0.1},
		{"plr,0.25", PLR, 0.25},
		{"plr,1", PLR, 1},
		{"ber,1e-6", BER, 1e-6},
		{"ber,0", BER, 0},
	}
	for _, c := range good {
		got, err := ParseLoss(c.in)
		if err != nil || got.Mode != c.mode || got.Rate != c.rate {
			t.Errorf("ParseLoss(%q) = %+v, %v; want mode %d rate %v", c.in, got, err, c.mode, c.rate)
		}
	}
	for _, s := range []string{"x", "-0.1", "1.1", "plr", "plr,", "ber,2", "foo,0.1", "plr,0.1,0.2", "0.1%"} {
		if l, err := ParseLoss(s); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseLoss(%q) = %+v, %v; want a syntax error", s, l, err)
		}
	}
	l, _ := ParseLoss("ber,1e-5")
	for _, n := range []int{0, 60, 1514, 9000} {
		want := 1 - math.Pow(1-1e-5, float64(8*n))
		if got := l.Prob(n); math.Abs(got-want) > 1e-9 {
			t.Errorf("ber 1e-5, %d bytes: %v, want %v", n, got, want)
		}
	}
	if p := l.Prob(-1); p != 0 {
		t.Errorf("negative length: %v", p)
	}
}

// FuzzParseBandwidth checks that whatever ParseBandwidth accepts is in range
// and prints in a form that parses back to the same value.
func FuzzParseBandwidth(f *testing.F) {
	for _, s := range []string{"100M", "ether,1g", "real,2", "constant,1e6", "0", "real"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBandwidth(s)
		if err != nil {
			return
		}
		if math.IsNaN(b.BPS) || b.BPS < 0 || b.BPS > MaxBPS || b.Mode == Real && (b.Speedup <= 0 || b.Speedup > MaxSpeedup) {
			t.Fatalf("ParseBandwidth(%q) = %+v out of range", s, b)
		}
		if tt := b.TxTime(MaxFrameLen, 1e12); math.IsNaN(tt) || tt < 0 || tt > 1e18 {
			t.Fatalf("%+v: transmit time %v", b, tt)
		}
		b2, err := ParseBandwidth(b.String())
		if err != nil || b2 != b {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, b, b.String(), b2, err)
		}
	})
}

// FuzzParseDelay is FuzzParseBandwidth for delays.
func FuzzParseDelay(f *testing.F) {
	for _, s := range []string{"10m", "uniform,1u,2u", "exp,0,5ms", "constant,3n", "1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDelay(s)
		if err != nil {
			return
		}
		if d.Min < 0 || d.Max < 0 || d.Min > MaxDelay || d.Max > MaxDelay || d.Mode >= Uniform && d.Min > d.Max {
			t.Fatalf("ParseDelay(%q) = %+v out of range", s, d)
		}
		d2, err := ParseDelay(d.String())
		if err != nil || d2 != d {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, d, d.String(), d2, err)
		}
	})
}

// FuzzParseLoss is FuzzParseBandwidth for losses.
func FuzzParseLoss(f *testing.F) {
	for _, s := range []string{"0.1", "plr,0.5", "ber,1e-6", "1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLoss(s)
		if err != nil {
			return
		}
		if !(l.Rate >= 0 && l.Rate <= 1) {
			t.Fatalf("ParseLoss(%q) rate %v", s, l.Rate)
		}
		for _, n := range []int{0, 1, 60, MaxFrameLen} {
			if p := l.Prob(n); !(p >= 0 && p <= 1) {
				t.Fatalf("%q: Prob(%d) = %v", s, n, p)
			}
		}
		l2, err := ParseLoss(l.String())
		if err != nil || l2.Mode != l.Mode || l2.Rate != l.Rate {
			t.Fatalf("%q -> %q -> %+v, %v", s, l.String(), l2, err)
		}
	})
}
