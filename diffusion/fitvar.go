package diffusion

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// NumFitBins is the number of bins of predicted-x̂0 values in which the
// Fitted variance is measured (see [FitBinEdges]).
const NumFitBins = 12

// fitBins are the edges of the bins of predicted-x̂0 values in which the
// Fitted variance is measured: a value whose x̂0 is at most fitBins[0] is in
// bin 0, one above the last edge in bin len(fitBins). They are finest near
// ±1, where the background and the saturated strokes of MNIST-like images
// sit and where a network is surest of itself.
var fitBins = [NumFitBins - 1]float64{-0.9995, -0.995, -0.98, -0.9, -0.6, 0, 0.6, 0.9, 0.98, 0.995, 0.9995}

// FitBinEdges returns the edges of the NumFitBins bins of predicted-x̂0
// values in which the Fitted variance is measured, a fresh slice each call:
// a value whose x̂0 is at most edge 0 is in bin 0, one above the last edge
// in bin NumFitBins−1. Fit files record them, so that a fit made with other
// bins is refused.
func FitBinEdges() []float64 { return slices.Clone(fitBins[:]) }

// fitBin is the bin of an x̂0 value.
func fitBin(xs float64) int { return sort.SearchFloat64s(fitBins[:], xs) }

// VarianceFit is what the Fitted reverse variance is made of: how wrong a
// trained network's x̂0 is at each step, measured on held-out images, per
// bin of the x̂0 value itself, and the decoder scales that suit it.
//
// Why: with the mean μ_θ fixed, E[L_{t−1}] = E[D_KL(N(μ̃_t, β̃_t) ‖
// N(μ_θ, σ²))] per value is ½(log σ²/β̃_t + (β̃_t + m)/σ² − 1) with
// m = E(μ̃_t − μ_θ)², smallest at σ² = β̃_t + m. For the ε and x0
// parameterisations μ_θ = μ̃_t(x_t, x̂0) (eq. 7), so μ̃_t − μ_θ = c₁(x0 − x̂0)
// and m = c₁²·E(x̂0 − x0)². The paper's two fixed choices are this optimum
// in its two extreme cases (Section 3.2): β̃_t when x0 is known exactly, β_t
// when x0 ~ N(0, I) and x̂0 is its exact posterior mean.
// Bao et al. (2022, Analytic-DPM) derive the same optimum per step and
// estimate the error from E‖ε_θ‖², assuming the network is optimal; here the
// error is measured, and measured separately for values whose x̂0 falls in
// different bins ([FitBinEdges]) — a function of x_t, so σ² stays a valid choice of
// p_θ(x_{t−1} | x_t) — because a network is far surer of a background pixel
// than of a stroke's edge. It is a per-value variance like Table 2's learned
// diagonal Σ, fitted after training instead of learned. The decoder L_0 is
// not a Gaussian KL, so its σ_1 (per bin) is found by a search.
type VarianceFit struct {
	// XStartMSE[i][k] is the mean of ((μ_θ − μ̃_t)/c₁)² over the values at
	// index i whose x̂0 lies in bin k: the squared error of the x̂0 that the
	// model mean implies (for ε and x0 prediction x̂0 itself, clipped when
	// the process clips). A bin with too few values holds PooledMSE[i].
	XStartMSE [][]float64
	// PooledMSE[i] is the same mean over all values at index i: the
	// variance of a value whose x̂0 is not known ([Diffusion.FixedLogVariance]).
	PooledMSE []float64
	// DecoderLogScale[k] is the log σ_1 of the discretised decoder (eq. 13)
	// with the smallest mean L_0 over the fit values whose x̂0 at t = 1 lies
	// in bin k (PooledDecoderLogScale for a bin with too few values).
	DecoderLogScale       []float64
	PooledDecoderLogScale float64
	// Images is the number of images it was measured on.
	Images int
}

// WithFit returns a copy of d whose reverse variance is the one fitted in f
// (Var = Fitted). d's network must output a mean only (not Learned).
func (d *Diffusion) WithFit(f *VarianceFit) (*Diffusion, error) {
	if d.Var == Learned {
		return nil, fmt.Errorf("diffusion: a %v variance replaces a fixed one; this network learns its own", Fitted)
	}
	c := *d
	c.Var, c.Fit = Fitted, f
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// check reports a fit that does not cover T steps and every bin or holds a
// value that is not a finite error.
func (f *VarianceFit) check(T int) error {
	if len(f.XStartMSE) != T || len(f.PooledMSE) != T {
		return fmt.Errorf("diffusion: variance fitted for %d steps, the process has %d", len(f.XStartMSE), T)
	}
	bad := func(v float64) bool { return !(v >= 0) || math.IsInf(v, 0) }
	for i, row := range f.XStartMSE {
		if len(row) != NumFitBins {
			return fmt.Errorf("diffusion: variance fitted in %d bins at index %d, want %d", len(row), i, NumFitBins)
		}
		for _, v := range append(row, f.PooledMSE[i]) {
			if bad(v) {
				return fmt.Errorf("diffusion: fitted x̂0 error %g at index %d is not a finite value ≥ 0", v, i)
			}
		}
	}
	if len(f.DecoderLogScale) != NumFitBins {
		return fmt.Errorf("diffusion: decoder scale fitted in %d bins, want %d", len(f.DecoderLogScale), NumFitBins)
	}
	for _, v := range append(f.DecoderLogScale, f.PooledDecoderLogScale) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("diffusion: fitted decoder log-scale %g is not finite", v)
		}
	}
	return nil
}

// fittedLogVariance is log σ_t² of the Fitted variance at index i for a
// value whose x̂0 is unknown: the pooled fit.
func (d *Diffusion) fittedLogVariance(i int) float64 {
	if i == 0 {
		return 2 * d.Fit.PooledDecoderLogScale
	}
	return d.fittedLog(i, d.Fit.PooledMSE[i])
}

// logVarianceAt is log σ² at index i of a value whose x̂0 is xs, given the
// index's FixedLogVariance lv: lv itself unless the variance is fitted.
func (d *Diffusion) logVarianceAt(i int, lv, xs float64) float64 {
	if d.Fit == nil {
		return lv
	}
	k := fitBin(xs)
	if i == 0 {
		return 2 * d.Fit.DecoderLogScale[k]
	}
	return d.fittedLog(i, d.Fit.XStartMSE[i][k])
}

// fittedLog is log(β̃_t + c₁²·mse) at index i ≥ 1.
func (d *Diffusion) fittedLog(i int, mse float64) float64 {
	c := d.PosteriorMeanCoef1[i]
	return math.Log(d.PosteriorVariance[i] + c*c*mse)
}

// respace maps the fit onto the base indices keep (nil stays nil): the x̂0
// error at a noise level is the same in the respaced process, whose own β̃'
// and c₁' turn it into a variance. Where keep does not start at 0 the
// respaced decoder sits at a noise level the search never saw, and takes the
// Gaussian optimum σ² = E(x̂0 − x0)² (c₁ = 1, β̃ = 0 at index 0).
func (f *VarianceFit) respace(keep []int) *VarianceFit {
	if f == nil {
		return nil
	}
	r := &VarianceFit{
		XStartMSE: make([][]float64, len(keep)), PooledMSE: make([]float64, len(keep)),
		DecoderLogScale: f.DecoderLogScale, PooledDecoderLogScale: f.PooledDecoderLogScale, Images: f.Images,
	}
	for s, i := range keep {
		r.XStartMSE[s], r.PooledMSE[s] = f.XStartMSE[i], f.PooledMSE[i]
	}
	if i := keep[0]; i != 0 {
		logScale := func(mse float64) float64 { return 0.5 * math.Log(max(mse, 1e-12)) }
		r.DecoderLogScale = make([]float64, len(f.DecoderLogScale))
		for k, v := range f.XStartMSE[i] {
			r.DecoderLogScale[k] = logScale(v)
		}
		r.PooledDecoderLogScale = logScale(f.PooledMSE[i])
	}
	return r
}

// VarianceFitter gathers a [VarianceFit] from a network's outputs on (image,
// t) pairs of held-out images; every index needs at least one pair. It is
// not safe for concurrent use.
type VarianceFitter struct {
	d      *Diffusion
	minBin int
	sum    [][]float64 // Σ ((μ_θ − μ̃_t)/c₁)² per index and bin
	count  [][]int     // values summed per index and bin
	images map[int]bool
	// decoder values at index 0 by bin of their x̂0: the data value and the
	// model mean μ_θ(x_1, 1)
	decX0, decMu [][]float32
}

// NewVarianceFitter starts a fit for the network d describes, which must
// output a mean only. A bin needs minBin values at an index (and at the
// decoder) to be fitted on its own; with fewer it takes the pooled fit.
func (d *Diffusion) NewVarianceFitter(minBin int) (*VarianceFitter, error) {
	if d.Var == Learned {
		return nil, fmt.Errorf("diffusion: cannot fit a variance for a network that learns its own")
	}
	K := NumFitBins
	f := &VarianceFitter{d: d, minBin: max(minBin, 1), sum: make([][]float64, d.T), count: make([][]int, d.T), images: map[int]bool{},
		decX0: make([][]float32, K), decMu: make([][]float32, K)}
	for i := range f.sum {
		f.sum[i] = make([]float64, K)
		f.count[i] = make([]int, K)
	}
	return f, nil
}

// Add records one batch: modelOut is the network's output at xt (n images
// at indices t, drawn from q(x_t | x0)), img[b] names pair b's source image
// (for counting them; may be nil).
func (f *VarianceFitter) Add(modelOut, x0, xt []float32, t, img []int) {
	d := f.d
	sameLen(x0, xt, "VarianceFitter x0/xt")
	n := len(t)
	D := imageDim(x0, n, "x0")
	d.checkOut(modelOut, n, D)
	d.checkT(t)
	for b, i := range t {
		if img != nil {
			f.images[img[b]] = true
		}
		om, _ := d.splitOut(modelOut, b, D)
		for j := range D {
			k := b*D + j
			x := float64(xt[k])
			mu, xs := d.meanFromOutput(i, float64(om[j]), x, d.Clip)
			e := (mu - d.posteriorMean(i, float64(x0[k]), x)) / d.PosteriorMeanCoef1[i]
			bin := fitBin(xs)
			f.sum[i][bin] += e * e
			f.count[i][bin]++
			if i == 0 {
				f.decX0[bin] = append(f.decX0[bin], x0[k])
				f.decMu[bin] = append(f.decMu[bin], float32(mu))
			}
		}
	}
}

// Fit returns the fitted variance, or an error if some index saw no pair.
func (f *VarianceFitter) Fit() (*VarianceFit, error) {
	T, K := len(f.sum), NumFitBins
	r := &VarianceFit{XStartMSE: make([][]float64, T), PooledMSE: make([]float64, T), DecoderLogScale: make([]float64, K), Images: len(f.images)}
	for i := range T {
		var s float64
		var c int
		for k := range K {
			s += f.sum[i][k]
			c += f.count[i][k]
		}
		if c == 0 {
			return nil, fmt.Errorf("diffusion: no fit data at index %d", i)
		}
		r.PooledMSE[i] = s / float64(c)
		r.XStartMSE[i] = make([]float64, K)
		for k := range K {
			r.XStartMSE[i][k] = r.PooledMSE[i]
			if f.count[i][k] >= f.minBin {
				r.XStartMSE[i][k] = f.sum[i][k] / float64(f.count[i][k])
			}
		}
	}
	allX0, allMu := slices.Concat(f.decX0...), slices.Concat(f.decMu...)
	if len(allX0) == 0 {
		return nil, errors.New("diffusion: no fit data for the decoder")
	}
	r.PooledDecoderLogScale = FitDecoderLogScale(allX0, allMu)
	for k := range K {
		r.DecoderLogScale[k] = r.PooledDecoderLogScale
		if len(f.decX0[k]) >= f.minBin {
			r.DecoderLogScale[k] = FitDecoderLogScale(f.decX0[k], f.decMu[k])
		}
	}
	return r, r.check(T)
}

// decoderNLL is the mean −log p of the discretised decoder (eq. 13) with
// scale e^logScale over the pairs (x0[k], mu[k]), in nats.
func decoderNLL(x0, mu []float32, logScale float64) float64 {
	s := 0.0
	for k, x := range x0 {
		s -= DiscretizedGaussianLogLikelihood(float64(x), float64(mu[k]), logScale)
	}
	return s / float64(len(x0))
}

// Search range of FitDecoderLogScale: σ_1 from 1e-4 (an eighth of a bin at
// 256 levels) to 1 (half the data range).
var decoderLogScaleLo, decoderLogScaleHi = math.Log(1e-4), 0.0

// FitDecoderLogScale is the log σ in [log 1e-4, 0] with the smallest mean
// decoder NLL of the data values x0 under means mu: the best of a grid of 61
// log-spaced scales, refined by golden-section search between its neighbours
// (to 1e-6 in log σ). A mean NLL over many values need not be unimodal in σ;
// the grid finds the best basin.
func FitDecoderLogScale(x0, mu []float32) float64 {
	sameLen(x0, mu, "FitDecoderLogScale x0/mu")
	const grid = 61
	step := (decoderLogScaleHi - decoderLogScaleLo) / (grid - 1)
	best, bestF := decoderLogScaleLo, math.Inf(1)
	for g := range grid {
		ls := decoderLogScaleLo + float64(g)*step
		if v := decoderNLL(x0, mu, ls); v < bestF {
			best, bestF = ls, v
		}
	}
	lo, hi := max(best-step, decoderLogScaleLo), min(best+step, decoderLogScaleHi)
	const invPhi = 0.6180339887498949 // 1/φ
	a, b := hi-invPhi*(hi-lo), lo+invPhi*(hi-lo)
	fa, fb := decoderNLL(x0, mu, a), decoderNLL(x0, mu, b)
	for hi-lo > 1e-6 {
		if fa <= fb {
			hi, b, fb = b, a, fa
			a = hi - invPhi*(hi-lo)
			fa = decoderNLL(x0, mu, a)
		} else {
			lo, a, fa = a, b, fb
			b = lo + invPhi*(hi-lo)
			fb = decoderNLL(x0, mu, b)
		}
	}
	if m := 0.5 * (lo + hi); decoderNLL(x0, mu, m) < bestF {
		return m
	}
	return best
}
