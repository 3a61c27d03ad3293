package diffusion

import (
	"context"
	"math"
	"slices"
	"testing"
)

// TestSamplePointDataset: with the exact model for the one-point data set
// {x0*} (ε*(x_t, t) = (x_t − √ᾱ_t x0*)/√(1−ᾱ_t), or its x0/μ̃ equivalents)
// Algorithm 2 ends at x0*.
func TestSamplePointDataset(t *testing.T) {
	const n, D = 3, 5
	target := []float64{-1, -0.3, 0, 0.55, 1}
	for _, mean := range allMeans {
		for _, v := range []ModelVar{FixedLarge, FixedSmall, Learned} {
			for _, clip := range []bool{false, true} {
				d := mustNew(t, mean, v, Simple, clip)
				m := &x0Model{d: d, xStart: func(b, j int, x float64, i int) float64 { return target[j] }}
				x := make([]float32, n*D)
				rng := newRNG(6)
				FillNormal(x, rng)
				Ancestral{}.Sample(context.Background(), d, m, x, n, rng, Hooks{})
				for k, got := range x {
					if math.Abs(float64(got)-target[k%D]) > 1e-4 {
						t.Errorf("%v/%v clip=%v: x0[%d] = %g, want %g", mean, v, clip, k, got, target[k%D])
					}
				}
			}
		}
	}
}

// TestSampleGaussianData: for x0 ~ N(0, 1) the exact reverse step is
// N(√α_t x_t, β_t), which fixedlarge with the exact model reproduces; the
// samples are N(0, α_1).
func TestSampleGaussianData(t *testing.T) {
	d := mustNew(t, Eps, FixedLarge, Simple, false)
	m := &x0Model{d: d, xStart: func(_, _ int, x float64, i int) float64 { return d.SqrtAlphasCumprod[i] * x }}
	const n, D = 100, 100
	x := make([]float32, n*D)
	rng := newRNG(7)
	FillNormal(x, rng)
	Ancestral{}.Sample(context.Background(), d, m, x, n, rng, Hooks{})
	var s, s2 float64
	for _, v := range x {
		s += float64(v)
		s2 += float64(v) * float64(v)
	}
	mean, variance := s/(n*D), s2/(n*D)
	if math.Abs(mean) > 5/math.Sqrt(n*D) || math.Abs(variance-d.Alphas[0]) > 5*math.Sqrt(2.0/(n*D)) {
		t.Errorf("samples mean %g variance %g, want 0 and %g", mean, variance, d.Alphas[0])
	}
}

// TestSampleLoop pins the index convention of Algorithm 2 (the model sees
// i = T−1..0), the callbacks, the rng use and determinism.
func TestSampleLoop(t *testing.T) {
	d := mustNew(t, Eps, FixedLarge, Simple, true)
	const n, D = 2, 3
	run := func(seed uint64) ([]float32, *x0Model, []int, []int) {
		m := &x0Model{d: d, record: true, xStart: func(_, _ int, x float64, i int) float64 { return 0.5 * x }}
		rng := newRNG(seed)
		x := make([]float32, n*D)
		FillNormal(x, rng)
		var steps, observed []int
		d.SampleFrom(context.Background(), m, x, n, d.T-1, rng, Hooks{Progress: func(step, total int) {
			if total != d.T {
				t.Fatalf("total %d", total)
			}
			steps = append(steps, step)
		}, Observe: func(i int, xt, xs []float32) {
			if len(xt) != n*D || len(xs) != n*D {
				t.Fatalf("observer lengths %d %d", len(xt), len(xs))
			}
			for k := range xs {
				if xs[k] < -1 || xs[k] > 1 {
					t.Fatalf("unclipped x̂0 %g", xs[k])
				}
			}
			observed = append(observed, i)
		}})
		return x, m, steps, observed
	}
	x1, m, steps, observed := run(8)
	for k := range d.T {
		if m.calls[k] != d.T-1-k || observed[k] != d.T-1-k || steps[k] != k+1 {
			t.Fatalf("step %d: model saw %d, observer %d, progress %d", k, m.calls[k], observed[k], steps[k])
		}
	}
	if len(m.calls) != d.T || len(steps) != d.T {
		t.Fatalf("%d model calls, %d progress calls", len(m.calls), len(steps))
	}
	x2, _, _, _ := run(8)
	if !slices.Equal(x1, x2) {
		t.Error("sampling not deterministic for a fixed seed")
	}
	x3, _, _, _ := run(9)
	if slices.Equal(x1, x3) {
		t.Error("different seeds gave the same samples")
	}
	// Sample equals SampleFrom(T−1).
	rng := newRNG(8)
	x := make([]float32, n*D)
	FillNormal(x, rng)
	Ancestral{}.Sample(context.Background(), d, &x0Model{d: d, xStart: func(_, _ int, x float64, i int) float64 { return 0.5 * x }}, x, n, rng, Hooks{})
	if !slices.Equal(x, x1) {
		t.Error("Sample differs from SampleFrom(T−1)")
	}

	// The last step (i = 0) returns the mean and draws no noise; a step at
	// i > 0 draws exactly len(x) normals.
	for _, i := range []int{0, 3} {
		a, b := newRNG(10), newRNG(10)
		x := []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}
		var buf StepBuffers
		xs := d.SampleStep(m, x, n, i, a, &buf)
		if i == 0 {
			mu, _, _ := d.PMeanVariance(buf.out, []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, []int{0, 0})
			if !slices.Equal(x, mu) || !slices.Equal(xs, buf.xStart) {
				t.Errorf("i=0 step %v, mean %v", x, mu)
			}
		} else {
			for range x {
				b.NormFloat64()
			}
		}
		if a.Uint64() != b.Uint64() {
			t.Errorf("i=%d: step used the rng differently than documented", i)
		}
	}

	// SampleFrom a middle index runs from+1 steps.
	m2 := &x0Model{d: d, record: true, xStart: func(_, _ int, x float64, i int) float64 { return 0 }}
	x = make([]float32, n*D)
	d.SampleFrom(context.Background(), m2, x, n, 9, newRNG(1), Hooks{})
	if !slices.Equal(m2.calls, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}) {
		t.Errorf("SampleFrom(9) calls %v", m2.calls)
	}
}

func BenchmarkSampleStep(b *testing.B) {
	d := mustNew(b, Eps, FixedLarge, Simple, true)
	const n, D = 16, 3 * 32 * 32
	m := &x0Model{d: d, xStart: func(_, _ int, x float64, i int) float64 { return 0.5 * x }}
	x := make([]float32, n*D)
	rng := newRNG(1)
	var buf StepBuffers
	b.ResetTimer()
	for k := 0; k < b.N; k++ {
		d.SampleStep(m, x, n, 500, rng, &buf)
	}
}
