package diffusion_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/diffusion/analytic"
)

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

func newD(t testing.TB, mean diffusion.ModelMean, v diffusion.ModelVar, clip bool) *diffusion.Diffusion {
	t.Helper()
	c := diffusion.DefaultConfig()
	c.Mean, c.Var, c.Clip = mean, v, clip
	d, err := diffusion.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	means = []diffusion.ModelMean{diffusion.Eps, diffusion.XPrev, diffusion.XStart, diffusion.V}
	vars  = []diffusion.ModelVar{diffusion.FixedLarge, diffusion.FixedSmall, diffusion.Learned}
)

// threeImages are three well separated images of 4 values in [−1, 1].
var threeImages = []float32{
	-0.8, 0.2, 0.9, -0.1,
	0.5, -0.6, 0.1, 0.7,
	0.0, 0.9, -0.9, 0.3,
}

// recorder is a Model that records the indices it is called with.
type recorder struct {
	m     diffusion.Model
	calls [][]int
}

func (r *recorder) Predict(out, xt []float32, t []int) {
	r.calls = append(r.calls, slices.Clone(t))
	r.m.Predict(out, xt, t)
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for k := range a {
		m = max(m, math.Abs(float64(a[k]-b[k])))
	}
	return m
}

func TestSpacedIndices(t *testing.T) {
	tests := []struct {
		T, K int
		want []int
	}{
		{1000, 10, []int{0, 111, 222, 333, 444, 555, 666, 777, 888, 999}},
		{10, 10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{10, 4, []int{0, 3, 6, 9}},
		{7, 2, []int{0, 6}},
		{7, 1, []int{6}},
	}
	for _, tc := range tests {
		got, err := diffusion.SpacedIndices(tc.T, tc.K)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SpacedIndices(%d, %d) = %v, %v; want %v", tc.T, tc.K, got, err, tc.want)
		}
	}
	for _, K := range []int{2, 3, 17, 100, 999, 1000} {
		got, _ := diffusion.SpacedIndices(1000, K)
		if len(got) != K || got[0] != 0 || got[K-1] != 999 {
			t.Fatalf("K = %d: %d indices from %d to %d", K, len(got), got[0], got[len(got)-1])
		}
		for s := 1; s < K; s++ {
			if got[s] <= got[s-1] {
				t.Fatalf("K = %d: not increasing at %d: %v", K, s, got[s-1:s+1])
			}
		}
	}
	for _, bad := range [][2]int{{10, 0}, {10, 11}, {0, 1}, {10, -1}} {
		if _, err := diffusion.SpacedIndices(bad[0], bad[1]); err == nil {
			t.Errorf("SpacedIndices(%d, %d) gave no error", bad[0], bad[1])
		}
	}
}

// TestPointDataAllSamplers: with the exact model of a one-image data set
// every sampler must end at the image, under every parameterisation.
func TestPointDataAllSamplers(t *testing.T) {
	target := []float32{-1, -0.3, 0, 0.55, 1}
	const n = 3
	D := len(target)
	samplers := []struct {
		name string
		run  func(d *diffusion.Diffusion, m diffusion.Model, x []float32, g *rand.Rand) error
	}{
		{"ddim η=0 K=10", func(d *diffusion.Diffusion, m diffusion.Model, x []float32, g *rand.Rand) error {
			keep, _ := diffusion.SpacedIndices(d.T, 10)
			return d.SampleDDIM(context.Background(), m, x, n, keep, 0, g, diffusion.Hooks{})
		}},
		{"ddim η=0.7 K=50", func(d *diffusion.Diffusion, m diffusion.Model, x []float32, g *rand.Rand) error {
			keep, _ := diffusion.SpacedIndices(d.T, 50)
			return d.SampleDDIM(context.Background(), m, x, n, keep, 0.7, g, diffusion.Hooks{})
		}},
		{"respaced K=10", func(d *diffusion.Diffusion, m diffusion.Model, x []float32, g *rand.Rand) error {
			keep, _ := diffusion.SpacedIndices(d.T, 10)
			r, err := d.Respace(keep)
			if err != nil {
				return err
			}
			r.SampleFrom(context.Background(), r.Model(m), x, n, r.T-1, g, diffusion.Hooks{})
			return nil
		}},
		{"langevin 20×3", func(d *diffusion.Diffusion, m diffusion.Model, x []float32, g *rand.Rand) error {
			return d.SampleLangevin(context.Background(), m, x, n, diffusion.Langevin{Levels: 20, Steps: 3, StepScale: 1}, g, diffusion.Hooks{})
		}},
	}
	for _, mean := range means {
		for _, v := range vars {
			for _, clip := range []bool{false, true} {
				d := newD(t, mean, v, clip)
				m, err := analytic.NewPoints(d, target, 1, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range samplers {
					x := make([]float32, n*D)
					g := rng(3)
					diffusion.FillNormal(x, g)
					if err := s.run(d, m, x, g); err != nil {
						t.Fatal(err)
					}
					for k, got := range x {
						if math.Abs(float64(got-target[k%D])) > 1e-4 {
							t.Errorf("%s %v/%v clip=%v: x0[%d] = %g, want %g", s.name, mean, v, clip, k, got, target[k%D])
							break
						}
					}
				}
			}
		}
	}
}

// TestDDIMDeterministic: with η = 0 the sample is a function of x_T alone:
// no draws, same result for any generator.
func TestDDIMDeterministic(t *testing.T) {
	d := newD(t, diffusion.Eps, diffusion.FixedLarge, true)
	m, _ := analytic.NewPoints(d, threeImages, 3, nil)
	keep, _ := diffusion.SpacedIndices(d.T, 25)
	const n = 8
	xT := make([]float32, n*4)
	diffusion.FillNormal(xT, rng(1))
	var outs [][]float32
	for seed := range uint64(3) {
		x := slices.Clone(xT)
		g, ref := rng(seed+10), rng(seed+10)
		if err := d.SampleDDIM(context.Background(), m, x, n, keep, 0, g, diffusion.Hooks{}); err != nil {
			t.Fatal(err)
		}
		if g.Uint64() != ref.Uint64() {
			t.Error("DDIM with η = 0 drew random numbers")
		}
		outs = append(outs, x)
	}
	if !slices.Equal(outs[0], outs[1]) || !slices.Equal(outs[0], outs[2]) {
		t.Error("DDIM with η = 0 is not deterministic")
	}
	// With η > 0 the generator matters.
	a, b := slices.Clone(xT), slices.Clone(xT)
	_ = d.SampleDDIM(context.Background(), m, a, n, keep, 1, rng(1), diffusion.Hooks{})
	_ = d.SampleDDIM(context.Background(), m, b, n, keep, 1, rng(2), diffusion.Hooks{})
	if slices.Equal(a, b) {
		t.Error("DDIM with η = 1 ignored the generator")
	}
	// Bad index lists are errors.
	for _, bad := range [][]int{nil, {5, 3}, {0, 1000}, {-1, 4}} {
		if err := d.SampleDDIM(context.Background(), m, slices.Clone(xT), n, bad, 0, rng(1), diffusion.Hooks{}); err == nil {
			t.Errorf("keep %v: no error", bad)
		}
	}
}

// TestDDIMEta1IsAncestralSmall: DDIM over all T steps with η = 1 is
// Algorithm 2 with σ_t² = β̃_t, draw for draw (Song et al. 2021, Section
// 4.1); the variance setting of the DDIM process itself is ignored.
func TestDDIMEta1IsAncestralSmall(t *testing.T) {
	keep, _ := diffusion.SpacedIndices(diffusion.DefaultT, diffusion.DefaultT)
	const n = 6
	for _, mean := range means {
		for _, v := range vars {
			for _, clip := range []bool{false, true} {
				d := newD(t, mean, v, clip)
				small := newD(t, mean, diffusion.FixedSmall, clip)
				md, _ := analytic.NewPoints(d, threeImages, 3, nil)
				ms, _ := analytic.NewPoints(small, threeImages, 3, nil)
				a := make([]float32, n*4)
				diffusion.FillNormal(a, rng(5))
				b := slices.Clone(a)
				ga, gb := rng(6), rng(6)
				var obs []int
				if err := d.SampleDDIM(context.Background(), md, a, n, keep, 1, ga, diffusion.Hooks{Observe: func(i int, _, _ []float32) { obs = append(obs, i) }}); err != nil {
					t.Fatal(err)
				}
				diffusion.Ancestral{}.Sample(context.Background(), small, ms, b, n, gb, diffusion.Hooks{})
				if diff := maxAbsDiff(a, b); diff > 1e-4 {
					t.Errorf("%v/%v clip=%v: DDIM η=1 differs from ancestral fixedsmall by %g", mean, v, clip, diff)
				}
				if ga.Uint64() != gb.Uint64() {
					t.Errorf("%v/%v: DDIM η=1 used the generator differently from Algorithm 2", mean, v)
				}
				if len(obs) != d.T || obs[0] != d.T-1 || obs[d.T-1] != 0 {
					t.Errorf("observer saw %d steps", len(obs))
				}
			}
		}
	}
}

// TestDDIMGaussianData: for Gaussian data the deterministic DDIM sampler is
// an affine map x_T ↦ a·x_T + c whose coefficients follow from the closed
// form of x̂0 step by step; every sample must be that map's image, and the
// map's slope must approach the data's standard deviation as K grows (the
// ODE's discretisation error).
func TestDDIMGaussianData(t *testing.T) {
	c := diffusion.DefaultConfig()
	c.Clip = false
	d, _ := diffusion.New(c)
	const mu, sd = 0.2, 0.5
	g := &analytic.Gaussian{D: d, Mean: mu, Std: sd}
	prevSlope := 0.0
	for _, K := range []int{10, 20, 100, 1000} {
		keep, _ := diffusion.SpacedIndices(d.T, K)
		// x = a·x_T + c through every step, with x̂0 = mu + k(x − √ᾱ mu).
		a, cc := 1.0, 0.0
		for s := K - 1; s >= 0; s-- {
			ab, abp := d.AlphasCumprod[keep[s]], 1.0
			if s > 0 {
				abp = d.AlphasCumprod[keep[s-1]]
			}
			k := math.Sqrt(ab) * sd * sd / (ab*sd*sd + 1 - ab)
			// x̂0 = k x + (1 − k√ᾱ) mu; ε̂ = (x/√ᾱ − x̂0)/√(1/ᾱ − 1).
			xa, xc := k, (1-k*math.Sqrt(ab))*mu
			r := math.Sqrt(1/ab - 1)
			ea, ec := (1/math.Sqrt(ab)-xa)/r, -xc/r
			fa := math.Sqrt(abp)*xa + math.Sqrt(1-abp)*ea
			fc := math.Sqrt(abp)*xc + math.Sqrt(1-abp)*ec
			a, cc = fa*a, fa*cc+fc
		}
		xT := make([]float32, 400)
		diffusion.FillNormal(xT, rng(uint64(K)))
		x := slices.Clone(xT)
		if err := d.SampleDDIM(context.Background(), g, x, 4, keep, 0, nil, diffusion.Hooks{}); err != nil {
			t.Fatal(err)
		}
		for j := range x {
			if want := a*float64(xT[j]) + cc; math.Abs(float64(x[j])-want) > 1e-4 {
				t.Fatalf("K = %d: sample %d = %g, affine map gives %g", K, j, x[j], want)
			}
		}
		if !(a > prevSlope && a < sd) {
			t.Errorf("K = %d: slope %g, want increasing towards %g (previous %g)", K, a, sd, prevSlope)
		}
		prevSlope = a
	}
	if math.Abs(prevSlope-sd) > 0.01*sd {
		t.Errorf("K = T: slope %g, want ≈ %g", prevSlope, sd)
	}
}

// TestRespaceFullIsPlain: respacing with every timestep kept is the
// original process, so its sampler gives the plain sampler's result for the
// same draws, under every parameterisation.
func TestRespaceFullIsPlain(t *testing.T) {
	keep, _ := diffusion.SpacedIndices(diffusion.DefaultT, diffusion.DefaultT)
	const n = 4
	for _, mean := range means {
		for _, v := range vars {
			d := newD(t, mean, v, true)
			r, err := d.Respace(keep)
			if err != nil {
				t.Fatal(err)
			}
			for i := range d.T {
				if math.Abs(r.Betas[i]-d.Betas[i]) > 1e-12*d.Betas[i]+1e-16 {
					t.Fatalf("β'[%d] = %g, β = %g", i, r.Betas[i], d.Betas[i])
				}
			}
			m := &analytic.Gaussian{D: d, Mean: 0.1, Std: 0.4}
			a := make([]float32, n*4)
			diffusion.FillNormal(a, rng(9))
			b := slices.Clone(a)
			diffusion.Ancestral{}.Sample(context.Background(), d, m, a, n, rng(10), diffusion.Hooks{})
			diffusion.Ancestral{}.Sample(context.Background(), r.Diffusion, r.Model(m), b, n, rng(10), diffusion.Hooks{})
			if diff := maxAbsDiff(a, b); diff > 1e-4 {
				t.Errorf("%v/%v: respaced K=T differs from plain by %g", mean, v, diff)
			}
		}
	}
}

// TestRespaceSchedule: the respaced process has the base's ᾱ at the kept
// steps, the network sees the original indices, and its outputs are
// translated to the respaced step.
func TestRespaceSchedule(t *testing.T) {
	base := newD(t, diffusion.XPrev, diffusion.Learned, false)
	keep := []int{0, 7, 100, 420, 999}
	r, err := base.Respace(keep)
	if err != nil {
		t.Fatal(err)
	}
	if r.T != len(keep) {
		t.Fatalf("respaced T = %d", r.T)
	}
	for s, i := range keep {
		if math.Abs(r.AlphasCumprod[s]-base.AlphasCumprod[i]) > 1e-12 {
			t.Errorf("ᾱ'[%d] = %g, base ᾱ[%d] = %g", s, r.AlphasCumprod[s], i, base.AlphasCumprod[i])
		}
	}
	// The exact model of the same data under the respaced process is what
	// the wrapped base model must output: the means agree exactly (x̂0 is
	// the same function of the noise level).
	mb, _ := analytic.NewPoints(base, threeImages, 3, nil)
	mr, _ := analytic.NewPoints(r.Diffusion, threeImages, 3, nil)
	rec := &recorder{m: mb}
	wrapped := r.Model(rec)
	x := make([]float32, 5*4)
	diffusion.FillNormal(x, rng(2))
	ts := []int{0, 1, 2, 3, 4}
	got, want := make([]float32, 2*len(x)), make([]float32, 2*len(x))
	wrapped.Predict(got, x, ts)
	mr.Predict(want, x, ts)
	if !slices.Equal(rec.calls[0], keep) {
		t.Errorf("network saw indices %v, want %v", rec.calls[0], keep)
	}
	for b := range ts {
		for j := range 4 {
			g, w := got[b*8+j], want[b*8+j]
			// xprev loses precision at large t, where x̂0 is recovered from
			// a float32 μ through a coefficient c₁ ≈ 1e-4.
			if math.Abs(float64(g-w)) > 1e-3 {
				t.Errorf("image %d value %d: μ' %g, want %g", b, j, g, w)
			}
		}
	}
	// Learned log-variance: the base's log β̃ maps to the respaced log β̃',
	// its log β to log β' — except at index 999, where the base's β̃ and β
	// agree to 1e-6 and only the range can be checked.
	for _, frac := range []float64{0, 1} {
		m := logVarModel{d: base, frac: frac}
		out := make([]float32, 2*len(x))
		r.Model(m).Predict(out, x, ts)
		for s := range ts {
			lo, hi := r.PosteriorLogVarianceClipped[s], math.Log(r.Betas[s])
			want := lo
			if frac == 1 {
				want = hi
			}
			g := float64(out[s*8+4])
			if keep[s] == 999 {
				want = min(max(g, lo), hi)
			}
			if math.Abs(g-want) > 1e-3 {
				t.Errorf("frac %g, s = %d: log σ'² = %g, want %g", frac, s, g, want)
			}
		}
	}
	if _, err := base.Respace([]int{3}); err == nil {
		t.Error("respacing to one step gave no error")
	}
	if _, err := base.Respace([]int{3, 3}); err == nil {
		t.Error("repeated index gave no error")
	}
}

// logVarModel outputs zeros and a log-variance frac of the way from log β̃
// to log β.
type logVarModel struct {
	d    *diffusion.Diffusion
	frac float64
}

func (m logVarModel) Predict(out, xt []float32, t []int) {
	D := len(xt) / len(t)
	for b, i := range t {
		lo, hi := m.d.PosteriorLogVarianceClipped[i], math.Log(m.d.Betas[i])
		for j := range D {
			out[2*b*D+j] = 0
			out[2*b*D+D+j] = float32(lo + m.frac*(hi-lo))
		}
	}
}

func TestSampleStepNoise(t *testing.T) {
	for _, v := range vars {
		d := newD(t, diffusion.Eps, v, true)
		m, _ := analytic.NewPoints(d, threeImages, 3, nil)
		const n = 3
		a := make([]float32, n*4)
		diffusion.FillNormal(a, rng(1))
		b := slices.Clone(a)
		for _, i := range []int{500, 3, 0} {
			g := rng(uint64(i))
			d.SampleStep(m, a, n, i, g, nil)
			z := make([]float32, len(b))
			diffusion.FillNormal(z, rng(uint64(i)))
			d.SampleStepNoise(m, b, n, i, z, nil)
			if diff := maxAbsDiff(a, b); diff > 1e-6 {
				t.Errorf("%v i=%d: SampleStepNoise differs from SampleStep by %g", v, i, diff)
			}
		}
	}
}

// TestLangevinDistribution: with the exact score, the default annealed
// Langevin settings reproduce a mixture's mode weights and a Gaussian's
// moments.
func TestLangevinDistribution(t *testing.T) {
	c := diffusion.DefaultConfig()
	c.Clip = false
	d, _ := diffusion.New(c)
	def := diffusion.DefaultLangevin()
	const n = 3000
	pts := []float32{-0.8, 0, 0.6}
	w := []float64{0.2, 0.5, 0.3}
	pm, _ := analytic.NewPoints(d, pts, 3, w)
	x := make([]float32, n)
	g := rng(4)
	diffusion.FillNormal(x, g)
	rec := &recorder{m: pm}
	steps := 0
	if err := d.SampleLangevin(context.Background(), rec, x, n, def, g, diffusion.Hooks{Progress: func(step, total int) {
		steps++
		if total != def.Evaluations(d.T) || step != steps {
			t.Fatalf("progress %d/%d after %d calls", step, total, steps)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != def.Evaluations(d.T) || def.Evaluations(d.T) != 1001 {
		t.Errorf("%d network evaluations, Evaluations says %d", len(rec.calls), def.Evaluations(d.T))
	}
	if rec.calls[0][0] != d.T-1 || rec.calls[len(rec.calls)-1][0] != 0 {
		t.Errorf("levels from %d to %d", rec.calls[0][0], rec.calls[len(rec.calls)-1][0])
	}
	count := make([]float64, 3)
	for _, v := range x {
		for k, p := range pts {
			if math.Abs(float64(v-p)) < 0.02 {
				count[k]++
			}
		}
	}
	for k := range pts {
		// Binomial standard error ≤ 0.009.
		if got := count[k] / n; math.Abs(got-w[k]) > 0.04 {
			t.Errorf("mode %g: frequency %.3f, want %.3f", pts[k], got, w[k])
		}
	}
	gm := &analytic.Gaussian{D: d, Mean: 0.1, Std: 0.5}
	diffusion.FillNormal(x, g)
	if err := d.SampleLangevin(context.Background(), gm, x, n, def, g, diffusion.Hooks{}); err != nil {
		t.Fatal(err)
	}
	var s, s2 float64
	for _, v := range x {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	mean := s / n
	std := math.Sqrt(s2/n - mean*mean)
	if math.Abs(mean-0.1) > 0.04 || math.Abs(std-0.5) > 0.05 {
		t.Errorf("Gaussian data: mean %.4f std %.4f, want 0.1 and 0.5", mean, std)
	}
	for _, bad := range []diffusion.Langevin{{Levels: -1, Steps: 1, StepScale: 1}, {Levels: 1001, Steps: 1, StepScale: 1},
		{Levels: 10, Steps: 0, StepScale: 1}, {Levels: 10, Steps: 1, StepScale: 0}, {Levels: 10, Steps: 1, StepScale: 4}} {
		if err := d.SampleLangevin(context.Background(), gm, x, n, bad, g, diffusion.Hooks{}); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}
