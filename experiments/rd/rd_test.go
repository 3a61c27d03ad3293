package rd

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/diffusion/analytic"
)

func TestFromTerms(t *testing.T) {
	// Two images, T = 3: rate after step 1 is L_T, then + L_2 (index 2),
	// then + L_1 (index 1); the decoder is index 0.
	c := FromTerms([]float64{0.1, 0.3}, [][]float64{{1, 2, 3}, {5, 0, 1}})
	want := []float64{0.2, 0.2 + 2, 0.2 + 2 + 1}
	for k := range want {
		if math.Abs(c.Rate[k]-want[k]) > 1e-12 {
			t.Errorf("rate after step %d = %g, want %g", k+1, c.Rate[k], want[k])
		}
	}
	if c.Decoder != 3 || math.Abs(c.Total-6.2) > 1e-12 || math.Abs(c.Prior-0.2) > 1e-12 {
		t.Errorf("decoder %g total %g prior %g, want 3, 6.2, 0.2", c.Decoder, c.Total, c.Prior)
	}
	if !slices.Equal(c.TotalPerImage, []float64{6.1, 6.3}) {
		t.Errorf("per-image totals %v", c.TotalPerImage)
	}
}

func TestTableSteps(t *testing.T) {
	for _, tc := range []struct {
		T    int
		want []int
	}{
		{1000, []int{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}},
		{20, []int{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}},
		{5, []int{1, 2, 3, 4, 5}},
		{2, []int{1, 2}},
	} {
		if got := TableSteps(tc.T); !slices.Equal(got, tc.want) {
			t.Errorf("TableSteps(%d) = %v, want %v", tc.T, got, tc.want)
		}
	}
}

// gaussianImages draws n images of D values from N(0, sd²) quantised to the
// 256 levels of [−1, 1].
func gaussianImages(n, D int, sd float64, seed uint64) []float32 {
	g := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*D)
	for k := range x {
		p := math.Round((sd*g.NormFloat64() + 1) * 127.5)
		x[k] = float32(max(0, min(255, p))/127.5 - 1)
	}
	return x
}

// TestOracleCurve: for Gaussian data and its exact denoiser the distortion
// must fall along the reverse chain as the posterior-mean error
// E(x̂0 − x0)² = s²(1−ᾱ_t)/(ᾱ_t s² + 1 − ᾱ_t) does, and the rate can only
// grow; the last rate plus the decoder is the bound of CalcBPDLoop for
// the same draws.
func TestOracleCurve(t *testing.T) {
	c := diffusion.DefaultConfig()
	c.Clip = false
	d, _ := diffusion.New(c)
	const n, D, sd = 40, 64, 0.3
	x0 := gaussianImages(n, D, sd, 1)
	m := &analytic.Gaussian{D: d, Std: sd}
	curve, err := Run(context.Background(), d, m, x0, n, Options{Batch: 500, Rng: rand.New(rand.NewPCG(7, 7))})
	if err != nil {
		t.Fatal(err)
	}
	for k := 2; k <= d.T; k++ {
		if curve.Rate[k-1] < curve.Rate[k-2] {
			t.Fatalf("rate falls at reverse step %d: %g < %g", k, curve.Rate[k-1], curve.Rate[k-2])
		}
	}
	steps := TableSteps(d.T)
	for j, k := range steps {
		i := d.T - k
		ab := d.AlphasCumprod[i]
		want := 127.5 * math.Sqrt(sd*sd*(1-ab)/(ab*sd*sd+1-ab))
		got := curve.RMSE[k-1]
		// 2560 values: the MSE estimate's relative error is ≈ 3%.
		if math.Abs(got-want) > 0.1*want {
			t.Errorf("reverse step %d: RMSE %.3f, closed form %.3f", k, got, want)
		}
		if j > 0 && !(got < curve.RMSE[steps[j-1]-1]) {
			t.Errorf("distortion does not fall from step %d to %d: %g → %g", steps[j-1], k, curve.RMSE[steps[j-1]-1], got)
		}
	}
	// Table 4's shape: almost no rate is spent in the first 100 steps.
	if curve.Rate[99] > 1e-3*curve.Rate[d.T-1] {
		t.Errorf("rate after 100 steps %g of %g", curve.Rate[99], curve.Rate[d.T-1])
	}

	bpd := d.CalcBPDLoop(m, x0, n, rand.New(rand.NewPCG(7, 7)), nil)
	mean := 0.0
	for b, v := range bpd.Total {
		mean += v / n
		if math.Abs(curve.TotalPerImage[b]-v) > 1e-9*v {
			t.Errorf("image %d: rate + decoder %g, CalcBPDLoop %g", b, curve.TotalPerImage[b], v)
		}
	}
	if math.Abs(curve.Rate[d.T-1]+curve.Decoder-mean) > 1e-9*mean || math.Abs(curve.Total-mean) > 1e-9*mean {
		t.Errorf("final rate %g + decoder %g = %g, bound %g", curve.Rate[d.T-1], curve.Decoder, curve.Total, mean)
	}
}

// TestRunOptions: the batch does not change the result, the scale scales
// rates, the mask restricts the distortion, and bad options are errors.
func TestRunOptions(t *testing.T) {
	c := diffusion.DefaultConfig()
	c.T = 30
	c.BetaEnd = 0.3
	d, err := diffusion.New(c)
	if err != nil {
		t.Fatal(err)
	}
	const n, D = 3, 4
	x0 := gaussianImages(n, D, 0.5, 2)
	m, _ := analytic.NewPoints(d, gaussianImages(2, D, 0.5, 3), 2, nil)
	run := func(o Options) *Curve {
		t.Helper()
		o.Rng = rand.New(rand.NewPCG(1, 2))
		calls := 0
		o.Progress = func(done, total int) {
			calls++
			if total != n*d.T || done > total {
				t.Fatalf("progress %d/%d", done, total)
			}
		}
		c, err := Run(context.Background(), d, m, x0, n, o)
		if err != nil {
			t.Fatal(err)
		}
		if want := (n*d.T + o.Batch - 1) / o.Batch; calls != want {
			t.Errorf("batch %d: %d progress calls, want %d", o.Batch, calls, want)
		}
		return c
	}
	ref := run(Options{Batch: 1})
	for _, b := range []int{2, 7, n * d.T, 1000} {
		got := run(Options{Batch: b})
		if !slices.Equal(got.Rate, ref.Rate) || !slices.Equal(got.RMSE, ref.RMSE) {
			t.Errorf("batch %d changes the curve", b)
		}
	}
	scaled := run(Options{Batch: 5, Scale: 2})
	for k := range ref.Rate {
		if math.Abs(scaled.Rate[k]-2*ref.Rate[k]) > 1e-12*ref.Rate[k] {
			t.Fatalf("scale 2: rate %g, want %g", scaled.Rate[k], 2*ref.Rate[k])
		}
	}
	// Observe sees every pair once, with the x̂0 the distortion is made of.
	sse := make([]float64, d.T)
	pairs := 0
	run(Options{Batch: 4, Observe: func(img, i int, xt, xs []float32) {
		pairs++
		for j := range D {
			e := float64(xs[j] - x0[img*D+j])
			sse[i] += e * e
		}
	}})
	for k := 1; k <= d.T && pairs == n*d.T; k++ {
		if got := 127.5 * math.Sqrt(sse[d.T-k]/(n*D)); math.Abs(got-ref.RMSE[k-1]) > 1e-9*ref.RMSE[k-1] {
			t.Fatalf("step %d: RMSE of the observed x̂0 %g, curve %g", k, got, ref.RMSE[k-1])
		}
	}
	if pairs != n*d.T {
		t.Errorf("%d pairs observed, want %d", pairs, n*d.T)
	}
	// Masks: an all-true mask is no mask, and the squared RMSEs of the D
	// one-value masks average to the squared RMSE of the whole image.
	all := run(Options{Batch: 5, Mask: []bool{true, true, true, true}})
	if !slices.Equal(all.RMSE, ref.RMSE) {
		t.Error("an all-true mask changes the RMSE")
	}
	sum := make([]float64, d.T)
	for j := range D {
		mask := make([]bool, D)
		mask[j] = true
		one := run(Options{Batch: 5, Mask: mask})
		if j == 0 && slices.Equal(one.RMSE, ref.RMSE) {
			t.Error("the mask is ignored")
		}
		for k, v := range one.RMSE {
			sum[k] += v * v / D
		}
	}
	for k := range sum {
		if want := ref.RMSE[k] * ref.RMSE[k]; math.Abs(sum[k]-want) > 1e-9*want {
			t.Fatalf("step %d: mean of one-value MSEs %g, whole-image MSE %g", k+1, sum[k], want)
		}
	}

	g := rand.New(rand.NewPCG(1, 1))
	for name, o := range map[string]Options{
		"batch 0":    {Batch: 0, Rng: g},
		"no rng":     {Batch: 1},
		"short mask": {Batch: 1, Rng: g, Mask: []bool{true}},
		"empty mask": {Batch: 1, Rng: g, Mask: make([]bool, D)},
	} {
		if _, err := Run(context.Background(), d, m, x0, n, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Run(context.Background(), d, m, x0[:5], n, Options{Batch: 1, Rng: g}); err == nil {
		t.Error("ragged images: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, d, m, x0, n, Options{Batch: 1, Rng: g}); err == nil {
		t.Error("cancelled context: no error")
	}
}
