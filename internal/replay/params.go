package replay

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Limits of the parameters.
const (
	MaxBPS       = 1e15           // largest bandwidth, bits per second
	MaxSpeedup   = 1000           // largest speedup of real
	MaxDelay     = 24 * time.Hour // largest delay
	MaxFrameLen  = 1 << 18        // largest frame length the schedule handles
	etherFraming = 24             // preamble (8), inter-frame gap (12), CRC (4)
)

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("invalid syntax")

// BandwidthMode is the way transmit times are computed.
type BandwidthMode int

// Bandwidth modes.
const (
	Unlimited BandwidthMode = iota // no -B: transmit time 0
	Constant                       // 8*len/bps
	Ether                          // 8*(len+24)/bps
	Real                           // trace gaps divided by the speedup
)

// Bandwidth is a parsed -B option.
type Bandwidth struct {
	Mode    BandwidthMode
	BPS     float64 // bits per second (Constant, Ether); 0 means unlimited
	Speedup float64 // Real: trace time is divided by this, in (0, 1000]
}

// ParseBandwidth parses "bps", "constant,bps", "ether,bps" or
// "real[,speedup]". bps is a number with an optional suffix k/K, m/M or
// g/G (powers of 1000); 0 means unlimited. An empty string is Unlimited.
func ParseBandwidth(s string) (Bandwidth, error) {
	if s == "" {
		return Bandwidth{}, nil
	}
	f := strings.Split(s, ",")
	bad := func(why string) (Bandwidth, error) {
		return Bandwidth{}, fmt.Errorf("bandwidth %q: %s: %w", s, why, ErrSyntax)
	}
	switch {
	case f[0] == "real":
		b := Bandwidth{Mode: Real, Speedup: 1}
		switch len(f) {
		case 1:
		case 2:
			v, err := parseFloat(f[1])
			if err != nil || v <= 0 || v > MaxSpeedup {
				return bad("speedup must be a number in (0, 1000]")
			}
			b.Speedup = v
		default:
			return bad("want real[,speedup]")
		}
		return b, nil
	case len(f) == 1 || len(f) == 2 && (f[0] == "constant" || f[0] == "ether"):
		b := Bandwidth{Mode: Constant}
		if len(f) == 2 && f[0] == "ether" {
			b.Mode = Ether
		}
		v, err := parseScaled(f[len(f)-1], bwUnits)
		if err != nil {
			return bad(err.Error())
		}
		if v != 0 && (v < 1 || v > MaxBPS) {
			return bad("bits per second must be 0 (unlimited) or in [1, 1e15]")
		}
		b.BPS = v
		if v == 0 {
			b = Bandwidth{}
		}
		return b, nil
	}
	return bad("want bps, constant,bps, ether,bps or real[,speedup]")
}

// String returns the bandwidth in a form ParseBandwidth accepts.
func (b Bandwidth) String() string {
	switch b.Mode {
	case Constant:
		return "constant," + formatFloat(b.BPS)
	case Ether:
		return "ether," + formatFloat(b.BPS)
	case Real:
		return "real," + formatFloat(b.Speedup)
	}
	return ""
}

// TxTime returns the transmit time in nanoseconds of a packet of n bytes
// whose timestamp is gap nanoseconds after the previous packet's.
func (b Bandwidth) TxTime(n int, gap float64) float64 {
	switch b.Mode {
	case Constant:
		return float64(n) * 8e9 / b.BPS
	case Ether:
		return float64(n+etherFraming) * 8e9 / b.BPS
	case Real:
		return max(gap, 0) / b.Speedup
	}
	return 0
}

// DelayMode is the distribution of the added delay.
type DelayMode int

// Delay distributions.
const (
	NoDelay     DelayMode = iota // no -D
	ConstDelay                   // Min
	Uniform                      // uniform in [Min, Max]
	Exponential                  // Min plus an exponential of mean Max-Min
)

// Delay is a parsed -D option.
type Delay struct {
	Mode DelayMode
	Min  time.Duration // the constant delay, or the smallest
	Max  time.Duration // Uniform: the largest; Exponential: the average
}

// ParseDelay parses "dt", "constant,dt", "uniform,dmin,dmax" or
// "exp,dmin,davg". Times are numbers with an optional suffix s, m, u or n
// (seconds, milliseconds, microseconds, nanoseconds; "ms", "us" and "ns"
// are accepted too); a bare number is seconds, as with netmap. An empty
// string is NoDelay.
func ParseDelay(s string) (Delay, error) {
	if s == "" {
		return Delay{}, nil
	}
	f := strings.Split(s, ",")
	bad := func(why string) (Delay, error) {
		return Delay{}, fmt.Errorf("delay %q: %s: %w", s, why, ErrSyntax)
	}
	times := make([]time.Duration, 0, 2)
	parse := func(args []string) error {
		for _, a := range args {
			v, err := parseScaled(a, timeUnits)
			if err != nil {
				return err
			}
			if v > float64(MaxDelay) {
				return fmt.Errorf("%q is longer than %v", a, MaxDelay)
			}
			times = append(times, time.Duration(math.Round(v)))
		}
		return nil
	}
	switch {
	case len(f) == 1 || len(f) == 2 && f[0] == "constant":
		if err := parse(f[len(f)-1:]); err != nil {
			return bad(err.Error())
		}
		return Delay{Mode: ConstDelay, Min: times[0]}, nil
	case len(f) == 3 && (f[0] == "uniform" || f[0] == "exp"):
		if err := parse(f[1:]); err != nil {
			return bad(err.Error())
		}
		if times[0] > times[1] {
			if f[0] == "exp" {
				return bad("dmin must not exceed davg")
			}
			return bad("dmin must not exceed dmax")
		}
		d := Delay{Mode: Uniform, Min: times[0], Max: times[1]}
		if f[0] == "exp" {
			d.Mode = Exponential
		}
		return d, nil
	}
	return bad("want dt, constant,dt, uniform,dmin,dmax or exp,dmin,davg")
}

// String returns the delay in a form ParseDelay accepts.
func (d Delay) String() string {
	ns := func(v time.Duration) string { return strconv.FormatInt(int64(v), 10) + "n" }
	switch d.Mode {
	case ConstDelay:
		return "constant," + ns(d.Min)
	case Uniform:
		return "uniform," + ns(d.Min) + "," + ns(d.Max)
	case Exponential:
		return "exp," + ns(d.Min) + "," + ns(d.Max)
	}
	return ""
}

// Sample draws a delay in nanoseconds.
func (d Delay) Sample(r *rand.Rand) float64 {
	switch d.Mode {
	case ConstDelay:
		return float64(d.Min)
	case Uniform:
		return float64(d.Min) + r.Float64()*float64(d.Max-d.Min)
	case Exponential:
		return float64(d.Min) + r.ExpFloat64()*float64(d.Max-d.Min)
	}
	return 0
}

// LossMode is the kind of loss.
type LossMode int

// Loss kinds.
const (
	NoLoss LossMode = iota // no -L
	PLR                    // each packet is lost with probability Rate
	BER                    // each bit is wrong with probability Rate
)

// Loss is a parsed -L option; build it with ParseLoss.
type Loss struct {
	Mode LossMode
	Rate float64 // packet loss or bit error probability, in [0, 1]
	// perLen[n] is the probability that a packet of n bytes is lost (BER).
	perLen []float64
}

// ParseLoss parses "x", "plr,x" or "ber,x", x a probability in [0, 1]. An
// empty string is NoLoss.
func ParseLoss(s string) (*Loss, error) {
	if s == "" {
		return &Loss{}, nil
	}
	f := strings.Split(s, ",")
	bad := func(why string) (*Loss, error) {
		return nil, fmt.Errorf("loss %q: %s: %w", s, why, ErrSyntax)
	}
	l := &Loss{Mode: PLR}
	switch {
	case len(f) == 1 || len(f) == 2 && f[0] == "plr":
	case len(f) == 2 && f[0] == "ber":
		l.Mode = BER
	default:
		return bad("want x, plr,x or ber,x")
	}
	v, err := parseFloat(f[len(f)-1])
	if err != nil || v < 0 || v > 1 {
		return bad("the rate must be a number in [0, 1]")
	}
	l.Rate = v
	if l.Mode == BER {
		l.perLen = make([]float64, MaxFrameLen+1)
		for n := 1; n < len(l.perLen); n++ {
			// 1-(1-ber)^(8n), computed without cancellation for small ber.
			l.perLen[n] = -math.Expm1(8 * float64(n) * math.Log1p(-v))
		}
	}
	return l, nil
}

// String returns the loss in a form ParseLoss accepts.
func (l *Loss) String() string {
	switch l.Mode {
	case PLR:
		return "plr," + formatFloat(l.Rate)
	case BER:
		return "ber," + formatFloat(l.Rate)
	}
	return ""
}

// Prob returns the probability that a packet of n bytes is lost.
func (l *Loss) Prob(n int) float64 {
	switch l.Mode {
	case PLR:
		return l.Rate
	case BER:
		return l.perLen[min(max(n, 0), MaxFrameLen)]
	}
	return 0
}

// unit is a suffix and its multiplier.
type unit struct {
	suffix string
	mult   float64
}

var (
	bwUnits   = []unit{{"k", 1e3}, {"K", 1e3}, {"m", 1e6}, {"M", 1e6}, {"g", 1e9}, {"G", 1e9}, {"", 1}}
	timeUnits = []unit{{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"n", 1}, {"u", 1e3}, {"m", 1e6}, {"s", 1e9}, {"", 1e9}}
)

// parseScaled parses a non-negative number followed by one of the units
// (tried in order; the empty suffix last).
func parseScaled(s string, units []unit) (float64, error) {
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok || num == "" {
			continue
		}
		v, err := parseFloat(num)
		if err != nil {
			continue
		}
		if v < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		v *= u.mult
		if math.IsInf(v, 0) {
			return 0, fmt.Errorf("%q is too large", s)
		}
		return v, nil
	}
	return 0, fmt.Errorf("%q is not a number with a known unit", s)
}

// parseFloat parses a finite decimal number.
func parseFloat(s string) (float64, error) {
	if s == "" || strings.ContainsAny(s, "_xXpPiInN") {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// formatFloat formats v so that parseFloat returns it exactly.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
