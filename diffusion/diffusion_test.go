package diffusion

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestEnums(t *testing.T) {
	for _, m := range allMeans {
		got, err := ParseModelMean(strings.ToUpper(m.String()))
		if err != nil || got != m {
			t.Errorf("ParseModelMean(%q) = %v, %v", m, got, err)
		}
	}
	for _, v := range allVars {
		if got, err := ParseModelVar(v.String()); err != nil || got != v {
			t.Errorf("ParseModelVar(%q) = %v, %v", v, got, err)
		}
	}
	for _, l := range allLosses {
		if got, err := ParseLossType(l.String()); err != nil || got != l {
			t.Errorf("ParseLossType(%q) = %v, %v", l, got, err)
		}
	}
	names := map[string]string{
		Eps.String(): "eps", XPrev.String(): "xprev", XStart.String(): "xstart",
		FixedLarge.String(): "fixedlarge", FixedSmall.String(): "fixedsmall", Learned.String(): "learned", Fitted.String(): "fitted",
		Simple.String(): "simple", VLB.String(): "vlb", MSEMu.String(): "mse-mu", Hybrid.String(): "hybrid",
		CosineBeta.String(): "cosine", LinearBeta.String(): "linear",
	}
	for got, want := range names {
		if got != want {
			t.Errorf("name %q, want %q", got, want)
		}
	}
	if _, err := ParseModelMean("epsilon"); err == nil || !strings.Contains(err.Error(), "eps, xprev, xstart") {
		t.Errorf("bad mean error: %v", err)
	}
	if _, err := ParseLossType("kl"); err == nil {
		t.Error("ParseLossType(kl) accepted")
	}
	// JSON round trip through MarshalText/UnmarshalText.
	c := DefaultConfig()
	c.Mean, c.Var, c.Loss, c.Schedule = XStart, Learned, Hybrid, CosineBeta
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"Var":"learned"`) || !strings.Contains(string(b), `"Loss":"hybrid"`) {
		t.Errorf("json %s", b)
	}
	var c2 Config
	if err := json.Unmarshal(b, &c2); err != nil || c2 != c {
		t.Errorf("round trip %+v, %v", c2, err)
	}
	if _, err := ModelMean(7).MarshalText(); err == nil {
		t.Error("marshalled an invalid ModelMean")
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // "" = ok
	}{
		{"default", func(*Config) {}, ""},
		{"cosine learned hybrid", func(c *Config) { c.Schedule, c.Var, c.Loss = CosineBeta, Learned, Hybrid }, ""},
		{"hybrid fixed", func(c *Config) { c.Loss = Hybrid }, "needs a learned variance"},
		{"T=1", func(c *Config) { c.T = 1 }, "T ≥ 2"},
		{"beta end 1", func(c *Config) { c.BetaEnd = 1 }, "0 < β < 1"},
		{"bad mean", func(c *Config) { c.Mean = 9 }, "invalid model mean"},
		{"bad schedule", func(c *Config) { c.Schedule = 9 }, "unknown beta schedule"},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		tc.edit(&c)
		_, err := New(c)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestQSampleMoments(t *testing.T) {
	d := mustNew(t, Eps, FixedLarge, Simple, false)
	rng := newRNG(1)
	const draws = 200000
	for _, i := range []int{0, 10, 300, 999} {
		x0 := float32(0.7)
		x0s := make([]float32, draws)
		for k := range x0s {
			x0s[k] = x0
		}
		eps := make([]float32, draws)
		FillNormal(eps, rng)
		xt := d.QSample(nil, x0s, eps, []int{i}) // one "image" of draws values
		var s, s2 float64
		for _, v := range xt {
			s += float64(v)
		}
		mean := s / draws
		for _, v := range xt {
			s2 += (float64(v) - mean) * (float64(v) - mean)
		}
		variance := s2 / (draws - 1)
		wm, wv := d.SqrtAlphasCumprod[i]*float64(x0), 1-d.AlphasCumprod[i]
		if math.Abs(mean-wm) > 5*math.Sqrt(wv/draws)+1e-6 {
			t.Errorf("i=%d mean %g want %g", i, mean, wm)
		}
		if math.Abs(variance-wv) > 5*wv*math.Sqrt(2.0/draws) {
			t.Errorf("i=%d variance %g want %g", i, variance, wv)
		}
		qm, qv, qlv := d.QMeanVariance(x0s[:1], []int{i})
		if !close(float64(qm[0]), wm, 1e-6, 0) || qv[0] != wv || !close(qlv[0], math.Log(wv), 1e-12, 0) {
			t.Errorf("QMeanVariance i=%d: %v %v %v", i, qm, qv, qlv)
		}
	}
}

// TestPosteriorIdentity: μ̃, β̃ (eqs. 6–7) equal Gaussian conditioning of
// q(x_{t−1} | x0)·q(x_t | x_{t−1}) done in closed form.
func TestPosteriorIdentity(t *testing.T) {
	d := mustNew(t, Eps, FixedLarge, Simple, false)
	rng := newRNG(2)
	const D = 6
	idx := []int{0, 1, 2, 50, 500, 998, 999}
	x0 := make([]float32, len(idx)*D)
	FillNormal(x0, rng)
	eps := make([]float32, len(x0))
	FillNormal(eps, rng)
	xt := d.QSample(nil, x0, eps, idx)
	mean, variance, logVar := d.QPosteriorMeanVariance(x0, xt, idx)
	for b, i := range idx {
		beta := d.Betas[i]
		// Prior of x_{t−1} given x0: N(√ᾱ_{t−1} x0, 1−ᾱ_{t−1}); likelihood of x_t: N(√α_t x_{t−1}, β_t).
		priorVar := 1 - d.AlphasCumprodPrev[i]
		var postVar float64
		if priorVar > 0 {
			postVar = 1 / (1/priorVar + (1-beta)/beta)
		}
		if !close(variance[b], postVar, 1e-9, 1e-300) {
			t.Errorf("i=%d β̃ %g, conditioning %g", i, variance[b], postVar)
		}
		if i > 0 && !close(logVar[b], math.Log(postVar), 1e-9, 0) {
			t.Errorf("i=%d log β̃ %g want %g", i, logVar[b], math.Log(postVar))
		}
		for j := range D {
			k := b*D + j
			x0k, xtk := float64(x0[k]), float64(xt[k])
			want := x0k // t = 1: the posterior is the point x0
			if priorVar > 0 {
				want = postVar * (math.Sqrt(d.AlphasCumprodPrev[i])*x0k/priorVar + math.Sqrt(1-beta)*xtk/beta)
			}
			if !close(float64(mean[k]), want, 1e-5, 1e-6) {
				t.Errorf("i=%d μ̃ %g, conditioning %g", i, mean[k], want)
			}
		}
	}
}

func TestPredictRoundTrips(t *testing.T) {
	d := mustNew(t, Eps, FixedLarge, Simple, false)
	rng := newRNG(3)
	idx := []int{0, 1, 100, 500, 999}
	const D = 10
	x0 := pixels(rng, len(idx)*D)
	eps := make([]float32, len(x0))
	FillNormal(eps, rng)
	xt := d.QSample(nil, x0, eps, idx)
	xs := d.PredictXStartFromEps(nil, xt, eps, idx)
	e2 := d.PredictEpsFromXStart(nil, xt, x0, idx)
	mu, _, _ := d.QPosteriorMeanVariance(x0, xt, idx)
	xp := d.PredictXStartFromXPrev(nil, xt, mu, idx)
	for b, i := range idx {
		// float32 x_t carries ≈ 6e-8·|x_t| of rounding, amplified by √(1/ᾱ).
		tol := 4e-7 * d.SqrtRecipAlphasCumprod[i] * 4
		for j := range D {
			k := b*D + j
			if math.Abs(float64(xs[k]-x0[k])) > tol {
				t.Errorf("i=%d x̂0 from true ε %g, x0 %g", i, xs[k], x0[k])
			}
			if i > 0 && math.Abs(float64(e2[k]-eps[k])) > tol/d.SqrtRecipM1AlphasCumprod[i] {
				t.Errorf("i=%d ε from true x0 %g, ε %g", i, e2[k], eps[k])
			}
			if math.Abs(float64(xp[k]-x0[k])) > 1e-3 {
				t.Errorf("i=%d x0 from μ̃ %g, x0 %g", i, xp[k], x0[k])
			}
		}
	}
	// Score: −ε/√(1−ᾱ); for data x0 ~ N(0, 1), q(x_t) = N(0, 1) and ε* = √(1−ᾱ)x_t,
	// so the score is −x_t.
	s := d.Score(nil, []float32{float32(math.Sqrt(1-d.AlphasCumprod[7]) * 0.5)}, []int{7})
	if !close(float64(s[0]), -0.5, 1e-6, 0) {
		t.Errorf("score %g want −0.5", s[0])
	}
}

// TestPMeanVariance: given the exact x0, every parameterisation yields μ̃ and
// x̂0 = x0, with the documented log-variances; clipping acts on x̂0 only.
func TestPMeanVariance(t *testing.T) {
	rng := newRNG(4)
	idx := []int{0, 1, 20, 700, 999}
	const D = 4
	for _, mean := range allMeans {
		for _, v := range allVars {
			d := mustNew(t, mean, v, VLB, false)
			x0 := pixels(rng, len(idx)*D)
			eps := make([]float32, len(x0))
			FillNormal(eps, rng)
			xt := d.QSample(nil, x0, eps, idx)
			m := &x0Model{d: d, xStart: func(b, j int, x float64, i int) float64 { return float64(x0[b*D+j]) },
				logVar: func(i int) float64 { return -3 - float64(i)/1000 }}
			out := make([]float32, d.OutChannels(1)*len(x0))
			m.Predict(out, xt, idx)
			mu, lv, xs := d.PMeanVariance(out, xt, idx)
			want, _, _ := d.QPosteriorMeanVariance(x0, xt, idx)
			eps2 := d.ModelEps(nil, out, xt, idx)
			for b, i := range idx {
				wlv := map[ModelVar]float64{
					FixedLarge: math.Log(d.Betas[i]), FixedSmall: d.PosteriorLogVarianceClipped[i], Learned: -3 - float64(i)/1000,
				}[v]
				if i == 0 && v == FixedLarge {
					wlv = math.Log(d.PosteriorVariance[1])
				}
				for j := range D {
					k := b*D + j
					if !close(float64(mu[k]), float64(want[k]), 1e-4, 1e-5) {
						t.Errorf("%v/%v i=%d μ %g want %g", mean, v, i, mu[k], want[k])
					}
					if !close(float64(xs[k]), float64(x0[k]), 0, 2e-3) {
						t.Errorf("%v/%v i=%d x̂0 %g want %g", mean, v, i, xs[k], x0[k])
					}
					if !close(float64(lv[k]), wlv, 1e-6, 0) {
						t.Errorf("%v/%v i=%d log σ² %g want %g", mean, v, i, lv[k], wlv)
					}
					if i > 0 && !close(float64(eps2[k]), float64(eps[k]), 0, 2e-2) {
						t.Errorf("%v/%v i=%d ModelEps %g want %g", mean, v, i, eps2[k], eps[k])
					}
				}
			}
		}
	}
	// Clipping: an x̂0 of 3 is clipped to 1 for eps/xstart (mean follows),
	// while xprev keeps its output as the mean.
	for _, mean := range allMeans {
		for _, clip := range []bool{false, true} {
			d := mustNew(t, mean, FixedLarge, Simple, clip)
			xt := []float32{0.2}
			idx := []int{100}
			m := &x0Model{d: d, xStart: func(_, _ int, _ float64, _ int) float64 { return 3 }}
			out := make([]float32, 1)
			m.Predict(out, xt, idx)
			mu, _, xs := d.PMeanVariance(out, xt, idx)
			wantX := 3.0
			if clip {
				wantX = 1
			}
			wantMu := d.posteriorMean(100, wantX, 0.2)
			if mean == XPrev {
				wantMu = d.posteriorMean(100, 3, 0.2)
			}
			if !close(float64(xs[0]), wantX, 1e-4, 0) || !close(float64(mu[0]), wantMu, 1e-5, 0) {
				t.Errorf("%v clip=%v: x̂0 %g μ %g, want %g %g", mean, clip, xs[0], mu[0], wantX, wantMu)
			}
		}
	}
}

// TestEpsLossWeight checks eq. 12: for ε-prediction with fixed σ², the bound
// term minus its value at the true ε is weight·‖ε − ε_θ‖².
func TestEpsLossWeight(t *testing.T) {
	rng := newRNG(5)
	for _, v := range []ModelVar{FixedLarge, FixedSmall} {
		d := mustNew(t, Eps, v, VLB, false)
		for _, i := range []int{1, 5, 100, 999} {
			const D = 8
			x0 := pixels(rng, D)
			eps := make([]float32, D)
			FillNormal(eps, rng)
			idx := []int{i}
			xt := d.QSample(nil, x0, eps, idx)
			out := make([]float32, D)
			var sq float64
			for k := range out {
				out[k] = eps[k] + float32(0.3*rng.NormFloat64())
				sq += float64((out[k] - eps[k]) * (out[k] - eps[k]))
			}
			got := (d.VBTerms(out, x0, xt, idx)[0] - d.VBTerms(eps, x0, xt, idx)[0]) * math.Ln2
			want := d.EpsLossWeight(i) * sq / D
			if !close(got, want, 1e-3, 1e-9) {
				t.Errorf("%v i=%d: bound difference %g nats/dim, eq. 12 %g", v, i, got, want)
			}
		}
	}
}
