package diffusion

import (
	"errors"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/engine/parallel"
)

// Config selects a schedule and a parameterisation; it is what a CLI flag set
// or a checkpoint records. [DefaultConfig] is the paper's CIFAR-10 setting.
type Config struct {
	Schedule  BetaSchedule // linear (the paper), cosine, scaled-linear or given
	T         int          // number of diffusion steps, ≥ 2
	BetaStart float64      // β_1 of the (scaled-)linear schedule (ignored by the others)
	BetaEnd   float64      // β_T of the (scaled-)linear schedule (ignored by the others)
	// Betas points to β_1..β_T of the given schedule (T of them); nil
	// for the others. (A pointer keeps Config comparable with ==; two
	// given schedules compare equal only when they share their betas.)
	Betas *[]float64 `json:",omitempty"`
	Mean  ModelMean
	Var   ModelVar
	Loss  LossType
	Clip  bool // clip x̂0 to [−1, 1] when sampling and evaluating the bound
}

// DefaultConfig is the paper's setting: linear β 1e-4..0.02, T = 1000,
// ε-prediction, fixedlarge variance, L_simple, x̂0 clipped when sampling.
func DefaultConfig() Config {
	return Config{
		Schedule: LinearBeta, T: DefaultT, BetaStart: DefaultBetaStart, BetaEnd: DefaultBetaEnd,
		Mean: Eps, Var: FixedLarge, Loss: Simple, Clip: true,
	}
}

// Diffusion is a schedule together with the parameterisation of the reverse
// process. Its methods compute one quantity each on flat float32 batches (see
// the package doc for layout and index convention). A Diffusion is read-only
// after construction and safe for concurrent use.
type Diffusion struct {
	*Schedule
	Mean ModelMean
	Var  ModelVar
	Loss LossType
	// Clip clips x̂0 to [−1, 1] in PMeanVariance (sampling, the bound), as the
	// official code's clip_denoised. Training losses never clip.
	Clip bool
	// Fit holds the fitted variance when Var is Fitted (nil otherwise).
	Fit *VarianceFit
}

// New builds the schedule named by c and validates the combination.
func New(c Config) (*Diffusion, error) {
	var (
		s   *Schedule
		err error
	)
	switch c.Schedule {
	case LinearBeta:
		s, err = LinearSchedule(c.T, c.BetaStart, c.BetaEnd)
	case CosineBeta:
		s, err = CosineSchedule(c.T)
	case ScaledLinearBeta:
		var b []float64
		if b, err = ScaledLinearBetas(c.T, c.BetaStart, c.BetaEnd); err == nil {
			s, err = NewSchedule(b)
		}
	case GivenBeta:
		switch {
		case c.Betas == nil:
			err = errors.New("diffusion: the given schedule has no betas")
		case len(*c.Betas) != c.T:
			err = fmt.Errorf("diffusion: the given schedule has %d betas for T = %d", len(*c.Betas), c.T)
		default:
			s, err = NewSchedule(*c.Betas)
		}
	default:
		err = fmt.Errorf("diffusion: unknown beta schedule %v", c.Schedule)
	}
	if err == nil && c.Schedule != GivenBeta && c.Betas != nil {
		err = fmt.Errorf("diffusion: betas are given for the %v schedule, which makes its own", c.Schedule)
	}
	if err != nil {
		return nil, err
	}
	d := &Diffusion{Schedule: s, Mean: c.Mean, Var: c.Var, Loss: c.Loss, Clip: c.Clip}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// Validate reports an invalid combination: a missing schedule, an undefined
// enum value, or the hybrid loss without a learned variance (its vlb term
// would have nothing to train; use simple).
func (d *Diffusion) Validate() error {
	switch {
	case d.Schedule == nil || d.T < 2:
		return errors.New("diffusion: no schedule (need T ≥ 2)")
	case !d.Mean.Valid():
		return fmt.Errorf("diffusion: invalid model mean %v", d.Mean)
	case !d.Var.Valid():
		return fmt.Errorf("diffusion: invalid model variance %v", d.Var)
	case !d.Loss.Valid():
		return fmt.Errorf("diffusion: invalid loss type %v", d.Loss)
	case d.Loss == Hybrid && d.Var != Learned:
		return fmt.Errorf("diffusion: loss %v needs a learned variance (got %v); use %v", Hybrid, d.Var, Simple)
	case d.Var == Fitted && d.Fit == nil:
		return fmt.Errorf("diffusion: the %v variance is fitted to a trained network (Diffusion.WithFit), not set in a config", Fitted)
	case d.Var == Fitted:
		return d.Fit.check(d.T)
	}
	return nil
}

// OutChannels is the number of channels the network must output for images
// of c channels: c, or 2·c for a learned variance (mean part first).
func (d *Diffusion) OutChannels(c int) int {
	if d.Var == Learned {
		return 2 * c
	}
	return c
}

// FixedLogVariance is log σ_t² of the fixed reverse variance at index i:
// log β_t for FixedLarge (log β̃ at index 1 in place of index 0), the
// clipped log β̃_t for FixedSmall and the fitted variance for Fitted. It is
// NaN for Learned.
func (d *Diffusion) FixedLogVariance(i int) float64 {
	switch d.Var {
	case Fitted:
		return d.fittedLogVariance(i)
	case FixedLarge:
		if i == 0 {
			return math.Log(d.PosteriorVariance[1])
		}
		return math.Log(d.Betas[i])
	case FixedSmall:
		return d.PosteriorLogVarianceClipped[i]
	}
	return math.NaN()
}

// EpsLossWeight is the weight of ‖ε − ε_θ‖² in L_{t−1} for the ε
// parameterisation with the fixed variance σ_t² (eq. 12):
// β_t² / (2 σ_t² α_t (1−ᾱ_t)), per dimension, in nats. NaN for Learned.
func (d *Diffusion) EpsLossWeight(i int) float64 {
	b := d.Betas[i]
	return b * b / (2 * math.Exp(d.FixedLogVariance(i)) * d.Alphas[i] * (1 - d.AlphasCumprod[i]))
}

// ---- shape helpers ----

// imageDim returns D = len(x)/n, panicking on a ragged batch.
func imageDim(x []float32, n int, what string) int {
	if n <= 0 || len(x)%n != 0 || len(x) == 0 {
		panic(fmt.Sprintf("diffusion: %s has %d values, not a whole number of %d images", what, len(x), n))
	}
	return len(x) / n
}

func sameLen(a, b []float32, what string) {
	if len(a) != len(b) {
		panic(fmt.Sprintf("diffusion: %s: lengths %d and %d differ", what, len(a), len(b)))
	}
}

// dstOr returns dst, or a new slice of length n when dst is nil.
func dstOr(dst []float32, n int) []float32 {
	if dst == nil {
		return make([]float32, n)
	}
	if len(dst) != n {
		panic(fmt.Sprintf("diffusion: destination has %d values, want %d", len(dst), n))
	}
	return dst
}

// checkIndex reports a timestep index outside [0, T).
func (d *Diffusion) checkIndex(i int) error {
	if i < 0 || i >= d.T {
		return fmt.Errorf("diffusion: timestep index %d outside [0, %d)", i, d.T)
	}
	return nil
}

func (d *Diffusion) checkT(t []int) {
	for _, i := range t {
		if i < 0 || i >= d.T {
			panic(fmt.Sprintf("diffusion: timestep index %d outside [0, %d)", i, d.T))
		}
	}
}

// forImages runs fn(b) for every image b < n on the worker pool.
func forImages(n int, fn func(b int)) {
	parallel.For(n, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			fn(b)
		}
	})
}

// elementwise runs f(b, k) for every value k of every image b, where D values
// make an image; t is one index per image.
func (d *Diffusion) elementwise(t []int, D int, f func(i, k int)) {
	d.checkT(t)
	forImages(len(t), func(b int) {
		i := t[b]
		for k := b * D; k < (b+1)*D; k++ {
			f(i, k)
		}
	})
}

// ---- forward process ----

// QSample draws x_t ~ q(x_t | x0) given the noise: x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε
// (eq. 4). dst may be nil (allocated) or alias x0 or eps.
func (d *Diffusion) QSample(dst, x0, eps []float32, t []int) []float32 {
	sameLen(x0, eps, "QSample x0/eps")
	D := imageDim(x0, len(t), "x0")
	dst = dstOr(dst, len(x0))
	d.elementwise(t, D, func(i, k int) {
		dst[k] = float32(d.SqrtAlphasCumprod[i]*float64(x0[k]) + d.SqrtOneMinusAlphasCumprod[i]*float64(eps[k]))
	})
	return dst
}

// QMeanVariance is q(x_t | x0) = N(√ᾱ_t x0, (1−ᾱ_t) I) (eq. 4): the mean per
// value, the variance and log-variance per image.
func (d *Diffusion) QMeanVariance(x0 []float32, t []int) (mean []float32, variance, logVariance []float64) {
	D := imageDim(x0, len(t), "x0")
	mean = make([]float32, len(x0))
	variance, logVariance = make([]float64, len(t)), make([]float64, len(t))
	d.elementwise(t, D, func(i, k int) { mean[k] = float32(d.SqrtAlphasCumprod[i] * float64(x0[k])) })
	for b, i := range t {
		variance[b] = 1 - d.AlphasCumprod[i]
		logVariance[b] = d.LogOneMinusAlphasCumprod[i]
	}
	return mean, variance, logVariance
}

// posteriorMean is μ̃_t(x_t, x0) for one value (eq. 7).
func (d *Diffusion) posteriorMean(i int, x0, xt float64) float64 {
	return d.PosteriorMeanCoef1[i]*x0 + d.PosteriorMeanCoef2[i]*xt
}

// QPosteriorMeanVariance is q(x_{t−1} | x_t, x0) = N(μ̃_t, β̃_t I) (eqs. 6–7):
// μ̃_t per value, β̃_t and the clipped log β̃_t per image.
func (d *Diffusion) QPosteriorMeanVariance(x0, xt []float32, t []int) (mean []float32, variance, logVarianceClipped []float64) {
	sameLen(x0, xt, "QPosteriorMeanVariance x0/xt")
	D := imageDim(x0, len(t), "x0")
	mean = make([]float32, len(x0))
	variance, logVarianceClipped = make([]float64, len(t)), make([]float64, len(t))
	d.elementwise(t, D, func(i, k int) { mean[k] = float32(d.posteriorMean(i, float64(x0[k]), float64(xt[k]))) })
	for b, i := range t {
		variance[b] = d.PosteriorVariance[i]
		logVarianceClipped[b] = d.PosteriorLogVarianceClipped[i]
	}
	return mean, variance, logVarianceClipped
}

// ---- conversions between parameterisations ----

// PredictXStartFromEps is x̂0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t (eq. 15), computed as
// √(1/ᾱ_t) x_t − √(1/ᾱ_t − 1) ε.
func (d *Diffusion) PredictXStartFromEps(dst, xt, eps []float32, t []int) []float32 {
	sameLen(xt, eps, "PredictXStartFromEps xt/eps")
	D := imageDim(xt, len(t), "xt")
	dst = dstOr(dst, len(xt))
	d.elementwise(t, D, func(i, k int) {
		dst[k] = float32(d.SqrtRecipAlphasCumprod[i]*float64(xt[k]) - d.SqrtRecipM1AlphasCumprod[i]*float64(eps[k]))
	})
	return dst
}

// PredictEpsFromXStart inverts eq. 15: ε = (√(1/ᾱ_t) x_t − x0)/√(1/ᾱ_t − 1).
func (d *Diffusion) PredictEpsFromXStart(dst, xt, x0 []float32, t []int) []float32 {
	sameLen(xt, x0, "PredictEpsFromXStart xt/x0")
	D := imageDim(xt, len(t), "xt")
	dst = dstOr(dst, len(xt))
	d.elementwise(t, D, func(i, k int) {
		dst[k] = float32((d.SqrtRecipAlphasCumprod[i]*float64(xt[k]) - float64(x0[k])) / d.SqrtRecipM1AlphasCumprod[i])
	})
	return dst
}

// PredictXStartFromXPrev inverts eq. 7 for x0: x0 = (μ − c₂ x_t)/c₁ with c₁,
// c₂ the posterior mean coefficients.
func (d *Diffusion) PredictXStartFromXPrev(dst, xt, xprev []float32, t []int) []float32 {
	sameLen(xt, xprev, "PredictXStartFromXPrev xt/xprev")
	D := imageDim(xt, len(t), "xt")
	dst = dstOr(dst, len(xt))
	d.elementwise(t, D, func(i, k int) {
		dst[k] = float32((float64(xprev[k]) - d.PosteriorMeanCoef2[i]*float64(xt[k])) / d.PosteriorMeanCoef1[i])
	})
	return dst
}

// Score is the score estimate s = −ε/√(1−ᾱ_t) ≈ ∇ log q(x_t) (Section 3.2).
// For a non-ε model, get ε from [Diffusion.ModelEps] first.
func (d *Diffusion) Score(dst, eps []float32, t []int) []float32 {
	D := imageDim(eps, len(t), "eps")
	dst = dstOr(dst, len(eps))
	d.elementwise(t, D, func(i, k int) { dst[k] = float32(-float64(eps[k]) / d.SqrtOneMinusAlphasCumprod[i]) })
	return dst
}

// ---- reverse process ----

// meanFromOutput maps one mean-part output value o at x_t = x to the model
// mean μ_θ and the prediction x̂0 (clipped to [−1, 1] when clip):
// Eps: x̂0 by eq. 15, μ = μ̃(x_t, x̂0) (eq. 7; equal to eq. 11 unclipped);
// XStart: x̂0 = o, μ = μ̃(x_t, x̂0); XPrev: μ = o, x̂0 by inverting eq. 7;
// V: x̂0 = √ᾱ_t x_t − √(1−ᾱ_t) o, μ = μ̃(x_t, x̂0).
func (d *Diffusion) meanFromOutput(i int, o, x float64, clip bool) (mu, x0 float64) {
	switch d.Mean {
	case XPrev:
		x0 = (o - d.PosteriorMeanCoef2[i]*x) / d.PosteriorMeanCoef1[i]
		if clip {
			x0 = max(-1, min(1, x0))
		}
		return o, x0
	case XStart:
		x0 = o
	case V:
		x0 = d.SqrtAlphasCumprod[i]*x - d.SqrtOneMinusAlphasCumprod[i]*o
	default: // Eps
		x0 = d.SqrtRecipAlphasCumprod[i]*x - d.SqrtRecipM1AlphasCumprod[i]*o
	}
	if clip {
		x0 = max(-1, min(1, x0))
	}
	return d.posteriorMean(i, x0, x), x0
}

// dMeanDOut is ∂μ_θ/∂o of the unclipped map in meanFromOutput: for Eps
// −c₁√(1/ᾱ_t − 1) = −β_t/(√α_t √(1−ᾱ_t)) (eq. 11), for XStart c₁, for XPrev
// 1, for V −c₁√(1−ᾱ_t).
func (d *Diffusion) dMeanDOut(i int) float64 {
	switch d.Mean {
	case XPrev:
		return 1
	case XStart:
		return d.PosteriorMeanCoef1[i]
	case V:
		return -d.PosteriorMeanCoef1[i] * d.SqrtOneMinusAlphasCumprod[i]
	}
	return -d.PosteriorMeanCoef1[i] * d.SqrtRecipM1AlphasCumprod[i]
}

// splitOut returns the mean part and (for Learned, else nil) the
// log-variance part of image b of a model output with D values per channel
// group.
func (d *Diffusion) splitOut(out []float32, b, D int) (mean, logVar []float32) {
	if d.Var == Learned {
		o := out[2*b*D : 2*(b+1)*D]
		return o[:D], o[D:]
	}
	return out[b*D : (b+1)*D], nil
}

func (d *Diffusion) checkOut(out []float32, n, D int) {
	want := n * D
	if d.Var == Learned {
		want *= 2
	}
	if len(out) != want {
		panic(fmt.Sprintf("diffusion: model output has %d values, want %d (%d images of %d values, variance %v)",
			len(out), want, n, want/n, d.Var))
	}
}

// PMeanVariance is p_θ(x_{t−1} | x_t) = N(μ_θ, σ²) (eq. 1) from the network
// output: the model mean, log-variance (per value) and the prediction x̂0
// (clipped to [−1, 1] when d.Clip). For Eps and XStart the mean is
// μ̃_t(x_t, x̂0); for XPrev the output is the mean and x̂0 is derived from it.
func (d *Diffusion) PMeanVariance(modelOut, xt []float32, t []int) (mean, logVar, xStart []float32) {
	mean, logVar, xStart = make([]float32, len(xt)), make([]float32, len(xt)), make([]float32, len(xt))
	d.PMeanVarianceInto(mean, logVar, xStart, modelOut, xt, t)
	return mean, logVar, xStart
}

// PMeanVarianceInto is PMeanVariance writing into caller-owned slices of
// len(xt) values each; any of them may be nil to skip it.
func (d *Diffusion) PMeanVarianceInto(mean, logVar, xStart, modelOut, xt []float32, t []int) {
	d.pMeanVariance(mean, logVar, xStart, modelOut, xt, t, d.Clip)
}

func (d *Diffusion) pMeanVariance(mean, logVar, xStart, modelOut, xt []float32, t []int, clip bool) {
	n := len(t)
	D := imageDim(xt, n, "xt")
	d.checkOut(modelOut, n, D)
	d.checkT(t)
	for _, s := range [][]float32{mean, logVar, xStart} {
		if s != nil && len(s) != len(xt) {
			panic(fmt.Sprintf("diffusion: PMeanVariance destination has %d values, want %d", len(s), len(xt)))
		}
	}
	forImages(n, func(b int) {
		i := t[b]
		om, ov := d.splitOut(modelOut, b, D)
		lv := d.FixedLogVariance(i)
		for j := range D {
			k := b*D + j
			mu, x0 := d.meanFromOutput(i, float64(om[j]), float64(xt[k]), clip)
			if mean != nil {
				mean[k] = float32(mu)
			}
			if xStart != nil {
				xStart[k] = float32(x0)
			}
			if logVar != nil {
				if ov != nil {
					logVar[k] = ov[j]
				} else {
					logVar[k] = float32(d.logVarianceAt(i, lv, x0))
				}
			}
		}
	})
}

// ModelEps is the ε implied by the network output under any
// parameterisation (unclipped): the output itself for Eps, otherwise the
// inverse of eq. 15 applied to x̂0.
func (d *Diffusion) ModelEps(dst, modelOut, xt []float32, t []int) []float32 {
	n := len(t)
	D := imageDim(xt, n, "xt")
	d.checkOut(modelOut, n, D)
	d.checkT(t)
	dst = dstOr(dst, len(xt))
	forImages(n, func(b int) {
		i := t[b]
		om, _ := d.splitOut(modelOut, b, D)
		for j := range D {
			k := b*D + j
			if d.Mean == Eps {
				dst[k] = om[j]
				continue
			}
			_, x0 := d.meanFromOutput(i, float64(om[j]), float64(xt[k]), false)
			dst[k] = float32((d.SqrtRecipAlphasCumprod[i]*float64(xt[k]) - x0) / d.SqrtRecipM1AlphasCumprod[i])
		}
	})
	return dst
}
