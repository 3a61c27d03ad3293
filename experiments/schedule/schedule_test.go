package schedule

import (
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

func near(a, b, rel float64) bool { return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) }

// TestLinearClosedForms checks every column against its closed form for
// the paper's schedule and a short one.
func TestLinearClosedForms(t *testing.T) {
	for _, tc := range []struct {
		T          int
		start, end float64
	}{{1000, 1e-4, 0.02}, {50, 1e-3, 0.2}} {
		c := diffusion.DefaultConfig()
		c.T, c.BetaStart, c.BetaEnd = tc.T, tc.start, tc.end
		tb, err := Compute(c)
		if err != nil {
			t.Fatal(err)
		}
		if tb.T != tc.T || len(tb.Beta) != tc.T || len(tb.WeightFixedSmall) != tc.T || tb.Schedule != "linear" {
			t.Fatalf("T = %d: table of %d/%d rows, schedule %q", tc.T, len(tb.Beta), len(tb.WeightFixedSmall), tb.Schedule)
		}
		// ᾱ_t = Π(1 − β_s) in closed form for linear β: the log is a sum.
		logAB := 0.0
		for i := range tc.T {
			t1 := float64(i + 1)
			beta := tc.start + (t1-1)*(tc.end-tc.start)/float64(tc.T-1)
			logABPrev := logAB
			logAB += math.Log1p(-beta)
			ab, abPrev := math.Exp(logAB), math.Exp(logABPrev)
			alpha := 1 - beta
			want := map[string][2]float64{
				"beta":      {tb.Beta[i], beta},
				"alpha_bar": {tb.AlphaBar[i], ab},
				"snr":       {tb.SNR[i], ab / (1 - ab)},
				"β̃":        {tb.PosteriorVariance[i], beta * (1 - abPrev) / (1 - ab)},
			}
			if i >= 1 {
				// σ² = β: w = β/(2α(1−ᾱ)); σ² = β̃: w = β/(2α(1−ᾱ_{t−1})).
				want["w large"] = [2]float64{tb.WeightFixedLarge[i], beta / (2 * alpha * (1 - ab))}
				want["w small"] = [2]float64{tb.WeightFixedSmall[i], beta / (2 * alpha * (1 - abPrev))}
			} else {
				// t = 1 uses σ² = β̃_2 in both: w = β_1²/(2β̃_2 α_1 β_1).
				beta2 := tc.start + (tc.end-tc.start)/float64(tc.T-1)
				bt2 := beta2 * (1 - ab) / (1 - ab*(1-beta2))
				w := beta / (2 * bt2 * alpha)
				want["w large"] = [2]float64{tb.WeightFixedLarge[0], w}
				want["w small"] = [2]float64{tb.WeightFixedSmall[0], w}
			}
			for name, v := range want {
				if !near(v[0], v[1], 1e-9) && math.Abs(v[0]-v[1]) > 1e-300 {
					t.Fatalf("T=%d t=%d %s = %g, closed form %g", tc.T, i+1, name, v[0], v[1])
				}
			}
		}
	}
}

// TestWeightShape is the point of the table: under the paper's schedule the
// bound's weight is one to two orders of magnitude larger at small t than
// at large t (it falls until t ≈ 350 and rises slowly after, as β_t grows), so
// relative to the bound L_simple up-weights large t; the small-variance
// weight exceeds the large one.
func TestWeightShape(t *testing.T) {
	tb, err := Compute(diffusion.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	maxLate := 0.0
	for i := 100; i < tb.T; i++ {
		maxLate = max(maxLate, tb.WeightFixedLarge[i])
	}
	for i := range 5 {
		if !(tb.WeightFixedLarge[i] > 10*maxLate) {
			t.Errorf("fixedlarge weight at t = %d: %g, not ≫ the largest after t = 100, %g", i+1, tb.WeightFixedLarge[i], maxLate)
		}
	}
	for i := 2; i < 300; i++ {
		if !(tb.WeightFixedLarge[i] < tb.WeightFixedLarge[i-1]) {
			t.Fatalf("fixedlarge weight rises at t = %d", i+1)
		}
	}
	for i := 1; i < tb.T; i++ {
		if !(tb.WeightFixedSmall[i] > tb.WeightFixedLarge[i]) {
			t.Fatalf("t = %d: fixedsmall weight %g ≤ fixedlarge %g", i+1, tb.WeightFixedSmall[i], tb.WeightFixedLarge[i])
		}
	}
	r := SimpleRatio(tb.WeightFixedLarge)
	mean := 0.0
	for _, v := range r {
		mean += v / float64(len(r))
	}
	if !near(mean, 1, 1e-12) || !(r[tb.T-1] > 10*r[1]) || !(r[1] < 0.1) {
		t.Errorf("L_simple/L ratio: mean %g, at t = 2 %g, at t = T %g", mean, r[1], r[tb.T-1])
	}
}

func TestCosine(t *testing.T) {
	c := diffusion.DefaultConfig()
	c.Schedule = diffusion.CosineBeta
	c.T = 200
	tb, err := Compute(c)
	if err != nil {
		t.Fatal(err)
	}
	f := func(t float64) float64 {
		v := math.Cos((t/200 + 0.008) / 1.008 * math.Pi / 2)
		return v * v
	}
	// ᾱ_t = f(t)/f(0) wherever β is not clipped at 0.999 (all but the end).
	for i := range 190 {
		if want := f(float64(i+1)) / f(0); !near(tb.AlphaBar[i], want, 1e-9) {
			t.Fatalf("cosine ᾱ at t = %d: %g, want %g", i+1, tb.AlphaBar[i], want)
		}
	}
	if tb.Schedule != "cosine" {
		t.Errorf("schedule %q", tb.Schedule)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []diffusion.Config{
		{T: 1, BetaStart: 1e-4, BetaEnd: 0.02},
		{T: 10, BetaStart: 0, BetaEnd: 0.02},
		{T: 10, BetaStart: 1e-4, BetaEnd: 1},
	} {
		if _, err := Compute(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
