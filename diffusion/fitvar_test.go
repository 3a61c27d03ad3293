package diffusion_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/diffusion/analytic"
)

// newShort is a T-step linear-schedule process (β 1e-4..0.02 stretched to T,
// at most 0.5).
func newShort(t *testing.T, T int, mean diffusion.ModelMean, v diffusion.ModelVar, clip bool) *diffusion.Diffusion {
	t.Helper()
	c := diffusion.DefaultConfig()
	c.T, c.BetaEnd, c.Mean, c.Var, c.Clip = T, min(0.02*1000/float64(T), 0.5), mean, v, clip
	d, err := diffusion.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fitOn runs the fitter over the draws diffusion.CalcBPDLoop makes with the
// same seed: for i = T−1 down to 0, one ε per value of every image.
func fitOn(t *testing.T, d *diffusion.Diffusion, m diffusion.Model, x0 []float32, n, minBin int, seed uint64) *diffusion.VarianceFit {
	t.Helper()
	f, err := d.NewVarianceFitter(minBin)
	if err != nil {
		t.Fatal(err)
	}
	r := rng(seed)
	eps, xt := make([]float32, len(x0)), make([]float32, len(x0))
	out := make([]float32, len(x0))
	ts := make([]int, n)
	for i := d.T - 1; i >= 0; i-- {
		for b := range ts {
			ts[b] = i
		}
		diffusion.FillNormal(eps, r)
		d.QSample(xt, x0, eps, ts)
		m.Predict(out, xt, ts)
		f.Add(out, x0, xt, ts, nil)
	}
	fit, err := f.Fit()
	if err != nil {
		t.Fatal(err)
	}
	return fit
}

// gridImages is n·D values on the 256-level grid of [−1, 1], a third of them
// at −1 as MNIST's background is.
func gridImages(n, D int, seed uint64) []float32 {
	r := rng(seed)
	x := make([]float32, n*D)
	for k := range x {
		if r.IntN(3) == 0 {
			x[k] = -1
			continue
		}
		x[k] = float32(r.IntN(256))/127.5 - 1
	}
	return x
}

// For data whose exact denoiser is known, the fitted variance is the true
// reverse variance β̃_t + c₁²·Var[x0 | x_t]: the network's x̂0 error is the
// posterior variance of x0.
func TestFittedVarianceIsTrueReverseVariance(t *testing.T) {
	const T, n, D = 100, 64, 64
	d := newShort(t, T, diffusion.Eps, diffusion.FixedSmall, false)
	g := &analytic.Gaussian{D: d, Mean: 0.1, Std: 0.4}
	x0 := make([]float32, n*D)
	diffusion.FillNormal(x0, rng(1))
	for k := range x0 {
		x0[k] = float32(g.Mean + g.Std*float64(x0[k]))
	}
	const minBin = 200
	fit := fitOn(t, d, g, x0, n, minBin, 2)
	fd, err := d.WithFit(fit)
	if err != nil {
		t.Fatal(err)
	}
	var ratio, binRatio float64
	bins := 0
	for i := 1; i < T; i++ {
		_, v := g.XStartVar(0, i)
		c := d.PosteriorMeanCoef1[i]
		want := d.PosteriorVariance[i] + c*c*v
		got := math.Exp(fd.FixedLogVariance(i))
		// n·D = 4096 values: the pooled error is estimated to ≈ 2.2 % (1σ).
		if math.Abs(fit.PooledMSE[i]/v-1) > 0.12 {
			t.Errorf("index %d: fitted x̂0 error %.4g, Var[x0|x_t] = %.4g", i, fit.PooledMSE[i], v)
		}
		if got < d.PosteriorVariance[i] || got > d.Betas[i]*(1+1e-9) {
			t.Errorf("index %d: fitted σ² %.4g outside [β̃, β] = [%.4g, %.4g]", i, got, d.PosteriorVariance[i], d.Betas[i])
		}
		ratio += got / want / (T - 1)
		// Gaussian data: Var[x0 | x_t] is the same whatever x̂0 is, so
		// every bin's error estimates it too (≥ 200 values: ≈ 10 %).
		for k, e := range fit.XStartMSE[i] {
			if e == fit.PooledMSE[i] {
				continue // too few values: pooled
			}
			if math.Abs(e/v-1) > 0.5 {
				t.Errorf("index %d bin %d: x̂0 error %.4g, Var[x0|x_t] = %.4g", i, k, e, v)
			}
			binRatio += e / v
			bins++
		}
	}
	if math.Abs(ratio-1) > 0.01 {
		t.Errorf("fitted σ² / true reverse variance averages %.4f over the steps, want 1", ratio)
	}
	if bins < T || math.Abs(binRatio/float64(bins)-1) > 0.03 {
		t.Errorf("%d bins fitted on their own, their errors / Var[x0|x_t] average %.4f, want ≥ %d bins and 1", bins, binRatio/float64(bins), T)
	}
}

// On the images it was fitted on, with the same draws, the fitted variance
// makes every step's term of the bound no larger than either fixed choice:
// σ_t² = β̃_t + m_t minimises the mean KL exactly, and the decoder's σ_1 is
// searched for. Checked for every parameterisation, with and without
// clipping.
func TestFittedVarianceMinimisesEveryTerm(t *testing.T) {
	const T, n, D = 40, 6, 24
	x0 := gridImages(n, D, 3)
	for _, mean := range means {
		for _, clip := range []bool{false, true} {
			small := newShort(t, T, mean, diffusion.FixedSmall, clip)
			large := newShort(t, T, mean, diffusion.FixedLarge, clip)
			// A denoiser that knows three images, two of them the data's:
			// wrong about the rest in a way a variance must absorb.
			pts, err := analytic.NewPoints(small, append(append([]float32{}, x0[:2*D]...), gridImages(1, D, 4)...), 3, nil)
			if err != nil {
				t.Fatal(err)
			}
			fit := fitOn(t, small, pts, x0, n, 1, 5)
			fitted, err := small.WithFit(fit)
			if err != nil {
				t.Fatal(err)
			}
			pooled, err := small.WithFit(pooledOnly(fit))
			if err != nil {
				t.Fatal(err)
			}
			mean1 := func(d *diffusion.Diffusion) []float64 {
				r := d.CalcBPDLoop(pts, x0, n, rng(5), nil)
				per := make([]float64, T)
				for b := range n {
					for i, v := range r.Terms[b] {
						per[i] += v / n
					}
				}
				return per
			}
			f, p, s, l := mean1(fitted), mean1(pooled), mean1(small), mean1(large)
			for i := range T {
				if f[i] > p[i]+1e-9 || p[i] > s[i]+1e-9 || p[i] > l[i]+1e-9 {
					t.Errorf("%v clip=%v index %d: term per bin %.6g, pooled %.6g, fixedsmall %.6g, fixedlarge %.6g: not in increasing order",
						mean, clip, i, f[i], p[i], s[i], l[i])
				}
			}
		}
	}
}

// pooledOnly is fit with every bin holding the pooled values.
func pooledOnly(fit *diffusion.VarianceFit) *diffusion.VarianceFit {
	p := *fit
	p.XStartMSE = make([][]float64, len(fit.XStartMSE))
	for i := range p.XStartMSE {
		p.XStartMSE[i] = make([]float64, diffusion.NumFitBins)
		for k := range p.XStartMSE[i] {
			p.XStartMSE[i][k] = fit.PooledMSE[i]
		}
	}
	p.DecoderLogScale = make([]float64, diffusion.NumFitBins)
	for k := range p.DecoderLogScale {
		p.DecoderLogScale[k] = fit.PooledDecoderLogScale
	}
	return &p
}

// The decoder's scale search finds the minimum of a fine scan.
func TestFitDecoderLogScale(t *testing.T) {
	const N = 2000
	x0 := gridImages(1, N, 6)
	mu := make([]float32, N)
	noise := make([]float32, N)
	diffusion.FillNormal(noise, rng(7))
	for k := range mu {
		// most values nearly exact, some far off: a heavy-tailed error
		s := 0.002
		if k%5 == 0 {
			s = 0.05
		}
		mu[k] = x0[k] + float32(s)*noise[k]
	}
	nll := func(ls float64) float64 {
		s := 0.0
		for k := range x0 {
			s -= diffusion.DiscretizedGaussianLogLikelihood(float64(x0[k]), float64(mu[k]), ls)
		}
		return s / N
	}
	got := diffusion.FitDecoderLogScale(x0, mu)
	best := math.Inf(1)
	for g := range 4001 {
		best = min(best, nll(math.Log(1e-4)+float64(g)*(-math.Log(1e-4))/4000))
	}
	if nll(got) > best+1e-9 {
		t.Errorf("search found log σ = %.5f with mean NLL %.9f; a scan reaches %.9f", got, nll(got), best)
	}
	if got <= math.Log(1e-4) || got >= 0 {
		t.Errorf("log σ = %g at the end of the search range", got)
	}
}

// flatFit is a fit of T steps with every bin's error mse and decoder
// log-scale ls.
func flatFit(T int, mse, ls float64) *diffusion.VarianceFit {
	f := &diffusion.VarianceFit{XStartMSE: make([][]float64, T), PooledMSE: make([]float64, T), PooledDecoderLogScale: ls}
	for i := range f.XStartMSE {
		f.PooledMSE[i] = mse
		f.XStartMSE[i] = make([]float64, diffusion.NumFitBins)
		for k := range f.XStartMSE[i] {
			f.XStartMSE[i][k] = mse
		}
	}
	f.DecoderLogScale = make([]float64, diffusion.NumFitBins)
	for k := range f.DecoderLogScale {
		f.DecoderLogScale[k] = ls
	}
	return f
}

func TestWithFitErrors(t *testing.T) {
	const T = 10
	d := newShort(t, T, diffusion.Eps, diffusion.FixedLarge, true)
	if _, err := d.WithFit(flatFit(T, 0.1, -5)); err != nil {
		t.Fatalf("a valid fit: %v", err)
	}
	broken := func(f func(*diffusion.VarianceFit)) *diffusion.VarianceFit {
		fit := flatFit(T, 0.1, -5)
		f(fit)
		return fit
	}
	for name, c := range map[string]struct {
		d    *diffusion.Diffusion
		fit  *diffusion.VarianceFit
		want string
	}{
		"learned":      {newShort(t, T, diffusion.Eps, diffusion.Learned, true), flatFit(T, 0.1, -5), "learns its own"},
		"short":        {d, flatFit(T-1, 0.1, -5), "fitted for 9 steps"},
		"nil":          {d, nil, "not set in a config"},
		"nan":          {d, broken(func(f *diffusion.VarianceFit) { f.XStartMSE[3][2] = math.NaN() }), "index 3"},
		"negative":     {d, broken(func(f *diffusion.VarianceFit) { f.PooledMSE[2] = -1 }), "index 2"},
		"bins":         {d, broken(func(f *diffusion.VarianceFit) { f.XStartMSE[4] = f.XStartMSE[4][1:] }), "bins at index 4"},
		"inf decoder":  {d, broken(func(f *diffusion.VarianceFit) { f.DecoderLogScale[0] = math.Inf(-1) }), "log-scale"},
		"decoder bins": {d, broken(func(f *diffusion.VarianceFit) { f.DecoderLogScale = nil }), "decoder scale fitted in 0 bins"},
	} {
		_, err := c.d.WithFit(c.fit)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, c.want)
		}
	}
	cfg := diffusion.DefaultConfig()
	cfg.Var = diffusion.Fitted
	if _, err := diffusion.New(cfg); err == nil {
		t.Error("New accepted a fitted variance without a fit")
	}
}

// A respaced process keeps the x̂0 errors of the steps it visits, and with
// every step kept its variances are the base's.
func TestFittedVarianceRespaced(t *testing.T) {
	const T = 50
	d := newShort(t, T, diffusion.Eps, diffusion.FixedSmall, true)
	fit := flatFit(T, 0, -4.5)
	for i := range fit.XStartMSE {
		fit.PooledMSE[i] = 0.3 * float64(i) / T
		for k := range fit.XStartMSE[i] {
			fit.XStartMSE[i][k] = 0.01 * float64(i*k) / T
		}
	}
	fd, err := d.WithFit(fit)
	if err != nil {
		t.Fatal(err)
	}
	all := make([]int, T)
	for i := range all {
		all[i] = i
	}
	r, err := fd.Respace(all)
	if err != nil {
		t.Fatal(err)
	}
	probe := func(d *diffusion.Diffusion, i int, xs float32) float32 {
		// the log-variance a sampler uses for a value whose x̂0 is xs: an
		// x0-predicting network's output is x̂0 itself
		xd := *d
		xd.Mean = diffusion.XStart
		lv := make([]float32, 1)
		xd.PMeanVarianceInto(nil, lv, nil, []float32{xs}, []float32{0}, []int{i})
		return lv[0]
	}
	for i := range T {
		if a, b := fd.FixedLogVariance(i), r.FixedLogVariance(i); !close(a, b, 1e-9) {
			t.Errorf("index %d: respaced pooled log σ² %.12g, base %.12g", i, b, a)
		}
		for _, xs := range []float32{-1, -0.97, 0.3, 1} {
			if a, b := probe(fd, i, xs), probe(r.Diffusion, i, xs); !close(float64(a), float64(b), 1e-6) {
				t.Errorf("index %d x̂0 %g: respaced log σ² %.8g, base %.8g", i, xs, b, a)
			}
		}
	}
	// The bins are used: at index 20 the values near −1 (bin 0) and at 0.3
	// (bin 6) get their own variances, and the decoder its own scale.
	c := fd.PosteriorMeanCoef1[20]
	for xs, k := range map[float32]int{-1: 0, 0.3: 6, 1: diffusion.NumFitBins - 1} {
		want := math.Log(fd.PosteriorVariance[20] + c*c*fit.XStartMSE[20][k])
		if got := probe(fd, 20, xs); !close(float64(got), want, 1e-6) {
			t.Errorf("x̂0 %g at index 20: log σ² %.8g, want bin %d's %.8g", xs, got, k, want)
		}
	}
	if got := probe(fd, 0, 0.3); !close(float64(got), -9, 1e-6) {
		t.Errorf("decoder log σ² %g, want 2·(−4.5)", got)
	}
	r, err = fd.Respace([]int{5, 20, 49})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.FixedLogVariance(0), math.Log(fit.PooledMSE[5]); !close(got, want, 1e-12) {
		t.Errorf("respaced decoder log σ² %g, want log of the x̂0 error there %g", got, want)
	}
	c = r.PosteriorMeanCoef1[1]
	if got, want := r.FixedLogVariance(1), math.Log(r.PosteriorVariance[1]+c*c*fit.PooledMSE[20]); !close(got, want, 1e-12) {
		t.Errorf("respaced index 1: log σ² %g, want %g", got, want)
	}
}

func close(a, b, rel float64) bool { return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) }

// TestFitBinEdges: NumFitBins bins need NumFitBins−1 increasing edges, and
// the caller gets its own copy.
func TestFitBinEdges(t *testing.T) {
	e := diffusion.FitBinEdges()
	if len(e) != diffusion.NumFitBins-1 || !slices.IsSorted(e) {
		t.Fatalf("edges %v for %d bins", e, diffusion.NumFitBins)
	}
	e[0] = 5
	if diffusion.FitBinEdges()[0] == 5 {
		t.Fatal("FitBinEdges returns the package's own slice")
	}
}
