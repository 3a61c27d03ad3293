package diffusion

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestDefaultSchedule(t *testing.T) {
	s := DefaultSchedule()
	if s.T != 1000 || s.Betas[0] != 1e-4 || s.Betas[999] != 0.02 {
		t.Fatalf("T=%d β_1=%g β_T=%g", s.T, s.Betas[0], s.Betas[999])
	}
	if got := s.AlphasCumprod[s.T-1]; math.Abs(got-4.04e-5) > 0.01e-5 {
		t.Errorf("ᾱ_T = %.5g, want ≈ 4.04e-5", got)
	}
	// Independent product in a different order.
	prod := 1.0
	for i := s.T - 1; i >= 0; i-- {
		prod *= 1 - (1e-4 + float64(i)*(0.02-1e-4)/999)
	}
	if !close(prod, s.AlphasCumprod[s.T-1], 1e-10, 0) {
		t.Errorf("ᾱ_T = %g, independent product %g", s.AlphasCumprod[s.T-1], prod)
	}
}

// TestIndexConvention pins index i ↔ paper t = i+1 in the schedule arrays.
func TestIndexConvention(t *testing.T) {
	s := DefaultSchedule()
	tests := []struct {
		name      string
		got, want float64
	}{
		{"β at i=0 is β_1", s.Betas[0], 1e-4},
		{"ᾱ at i=0 is ᾱ_1 = α_1", s.AlphasCumprod[0], 1 - 1e-4},
		{"ᾱ_prev at i=0 is ᾱ_0 = 1", s.AlphasCumprodPrev[0], 1},
		{"ᾱ_prev at i=1 is ᾱ_1", s.AlphasCumprodPrev[1], s.AlphasCumprod[0]},
		{"β̃ at i=0 is β̃_1 = 0", s.PosteriorVariance[0], 0},
		{"μ̃ x0 coefficient at t=1 is 1", s.PosteriorMeanCoef1[0], 1},
		{"μ̃ x_t coefficient at t=1 is 0", s.PosteriorMeanCoef2[0], 0},
		{"clipped log β̃ at i=0 is log β̃_2", s.PosteriorLogVarianceClipped[0], math.Log(s.PosteriorVariance[1])},
	}
	for _, tc := range tests {
		if !close(tc.got, tc.want, 1e-12, 0) {
			t.Errorf("%s: got %.17g want %.17g", tc.name, tc.got, tc.want)
		}
	}
	d := mustNew(t, Eps, FixedLarge, Simple, false)
	if got := d.FixedLogVariance(0); got != math.Log(s.PosteriorVariance[1]) {
		t.Errorf("fixedlarge log σ² at i=0 = %g, want log β̃_2", got)
	}
	if got := d.FixedLogVariance(5); got != math.Log(s.Betas[5]) {
		t.Errorf("fixedlarge log σ² at i=5 = %g, want log β_6", got)
	}
	// q(x_t | x0) at index 0 is one step of noise: √α_1 x0 + √β_1 ε.
	x := d.QSample(nil, []float32{1}, []float32{1}, []int{0})
	if want := math.Sqrt(1-1e-4) + math.Sqrt(1e-4); !close(float64(x[0]), want, 1e-6, 0) {
		t.Errorf("QSample at i=0: %g, want %g", x[0], want)
	}
}

func TestScheduleConstants(t *testing.T) {
	for _, name := range []string{"linear", "cosine"} {
		var s *Schedule
		var err error
		if name == "linear" {
			s, err = LinearSchedule(50, 1e-3, 0.2)
		} else {
			s, err = CosineSchedule(50)
		}
		if err != nil {
			t.Fatal(err)
		}
		abPrev := 1.0
		for i := range s.T {
			b := s.Betas[i]
			ab := abPrev * (1 - b)
			// β̃ from its definition with an independently accumulated ᾱ.
			check := func(what string, got, want float64) {
				t.Helper()
				if !close(got, want, 1e-12, 1e-300) {
					t.Errorf("%s i=%d %s = %.17g, want %.17g", name, i, what, got, want)
				}
			}
			check("ᾱ", s.AlphasCumprod[i], ab)
			check("β̃", s.PosteriorVariance[i], (1-abPrev)/(1-ab)*b)
			check("√ᾱ", s.SqrtAlphasCumprod[i], math.Sqrt(ab))
			check("√(1−ᾱ)", s.SqrtOneMinusAlphasCumprod[i], math.Sqrt(1-ab))
			check("√(1/ᾱ)", s.SqrtRecipAlphasCumprod[i], 1/math.Sqrt(ab))
			check("√(1/ᾱ−1)", s.SqrtRecipM1AlphasCumprod[i], math.Sqrt((1-ab)/ab))
			check("coef1", s.PosteriorMeanCoef1[i], math.Sqrt(abPrev)*b/(1-ab))
			check("coef2", s.PosteriorMeanCoef2[i], math.Sqrt(1-b)*(1-abPrev)/(1-ab))
			check("SNR", s.SNR[i], ab/(1-ab))
			if i > 0 {
				check("log β̃", s.PosteriorLogVarianceClipped[i], math.Log((1-abPrev)/(1-ab)*b))
				if s.PosteriorVariance[i] >= b {
					t.Errorf("%s i=%d: β̃ %g ≥ β %g", name, i, s.PosteriorVariance[i], b)
				}
			}
			abPrev = ab
		}
	}
}

func TestCosineSchedule(t *testing.T) {
	s, err := CosineSchedule(1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < s.T; i++ {
		if !(s.AlphasCumprod[i] < s.AlphasCumprod[i-1]) {
			t.Fatalf("ᾱ not decreasing at %d", i)
		}
	}
	if s.Betas[s.T-1] != 0.999 {
		t.Errorf("last cosine β = %g, want clipped 0.999", s.Betas[s.T-1])
	}
	if s.Betas[0] > 1e-4 {
		t.Errorf("first cosine β = %g, want small", s.Betas[0])
	}
}

func TestScheduleErrors(t *testing.T) {
	tests := []struct {
		name       string
		T          int
		start, end float64
		want       string
	}{
		{"T=1", 1, 1e-4, 0.02, "T ≥ 2"},
		{"T=0", 0, 1e-4, 0.02, "T ≥ 2"},
		{"zero start", 10, 0, 0.02, "beta start"},
		{"end 1", 10, 1e-4, 1, "beta end"},
		{"negative", 10, -1e-4, 0.02, "beta start"},
		{"NaN", 10, math.NaN(), 0.02, "beta start"},
	}
	for _, tc := range tests {
		_, err := LinearSchedule(tc.T, tc.start, tc.end)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewSchedule([]float64{0.1, 1.5, 0.2}); err == nil || !strings.Contains(err.Error(), "index 1") {
		t.Errorf("NewSchedule with β=1.5: err = %v", err)
	}
	if _, err := CosineSchedule(1); err == nil {
		t.Error("CosineSchedule(1) accepted")
	}
}

// TestScaledLinearAndGivenBetas: diffusers' scaled_linear (√β linear) and
// explicit (trained_betas) schedules, through New, and what New refuses.
func TestScaledLinearAndGivenBetas(t *testing.T) {
	c := DefaultConfig()
	c.Schedule, c.T, c.BetaStart, c.BetaEnd = ScaledLinearBeta, 5, 0.01, 0.09
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{0.01, 0.0225, 0.04, 0.0625, 0.09} { // (0.1 … 0.3)²
		if math.Abs(d.Betas[i]-want) > 1e-15 {
			t.Errorf("scaled-linear β[%d] = %g, want %g", i, d.Betas[i], want)
		}
	}
	c.Schedule, c.Betas = GivenBeta, &[]float64{0.1, 0.2, 0.3, 0.4, 0.5}
	if d, err = New(c); err != nil || d.Betas[3] != 0.4 || math.Abs(d.AlphasCumprod[1]-0.72) > 1e-15 {
		t.Fatalf("given betas: %v, %v", d, err)
	}
	b, _ := json.Marshal(c)
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back.Schedule != GivenBeta || back.Betas == nil || len(*back.Betas) != 5 {
		t.Fatalf("JSON round trip %s: %+v %v", b, back, err)
	}
	if b, _ := json.Marshal(DefaultConfig()); strings.Contains(string(b), "Betas") {
		t.Errorf("a config without betas writes them: %s", b)
	}
	for name, f := range map[string]func(c *Config){
		"too few betas":      func(c *Config) { *c.Betas = (*c.Betas)[:4] },
		"beta of 1":          func(c *Config) { (*c.Betas)[2] = 1 },
		"no betas":           func(c *Config) { c.Betas = nil },
		"betas for linear":   func(c *Config) { c.Schedule = LinearBeta },
		"scaled-linear zero": func(c *Config) { c.Schedule, c.Betas, c.BetaStart = ScaledLinearBeta, nil, 0 },
	} {
		cc := c
		bs := append([]float64(nil), *c.Betas...)
		cc.Betas = &bs
		f(&cc)
		if _, err := New(cc); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
