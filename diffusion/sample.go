package diffusion

import (
	"context"
	"math"
	"math/rand/v2"
)

// Model is the network ε_θ / x̂0_θ / μ_θ: Predict fills out for the batch xt
// of len(t) images at timestep indices t (each in [0, T), see the package
// doc). out holds D values per image, or 2·D for a Learned variance (mean
// part first, then the log-variance). Analytic models stand in for the U-Net
// in tests.
type Model interface {
	Predict(out, xt []float32, t []int)
}

// Observer sees each reverse step before x is updated: the index i, the
// current x_t (paper t = i+1) and the model's x̂0 (clipped if d.Clip). The
// slices are only valid during the call.
type Observer func(i int, xt, xStart []float32)

// FillNormal fills dst with independent N(0, 1) draws from rng, in order.
func FillNormal(dst []float32, rng *rand.Rand) {
	for k := range dst {
		dst[k] = float32(rng.NormFloat64())
	}
}

// RandomTimesteps fills t with indices drawn uniformly from [0, T), the
// t ~ U{1..T} of Algorithm 1.
func (d *Diffusion) RandomTimesteps(t []int, rng *rand.Rand) {
	for b := range t {
		t[b] = rng.IntN(d.T)
	}
}

// StepBuffers are the scratch slices of one sampling step; the zero value is
// ready and grows to the batch. Reuse one across steps to avoid allocation.
type StepBuffers struct {
	out, mean, logVar, xStart []float32
	t                         []int
}

func grow[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	return s[:n]
}

// SampleStep is one step of Algorithm 2 at index i on the n images in x (in:
// x_t with t = i+1, out: x_{t−1}): x ← μ_θ + exp(½ log σ²)·z, z ~ N(0, I),
// with z = 0 at i = 0 (the mean is returned, no noise). It draws len(x)
// normals from rng in order when i > 0 and none at i = 0. It returns x̂0,
// which lives in buf (nil allocates fresh buffers).
func (d *Diffusion) SampleStep(m Model, x []float32, n, i int, rng *rand.Rand, buf *StepBuffers) (xStart []float32) {
	return d.sampleStep(m, x, n, i, rng, buf, nil)
}

func (d *Diffusion) sampleStep(m Model, x []float32, n, i int, rng *rand.Rand, buf *StepBuffers, observe Observer) []float32 {
	if buf == nil {
		buf = new(StepBuffers)
	}
	imageDim(x, n, "x")
	outLen := len(x)
	if d.Var == Learned {
		outLen *= 2
	}
	buf.out = grow(buf.out, outLen)
	buf.mean = grow(buf.mean, len(x))
	buf.logVar = grow(buf.logVar, len(x))
	buf.xStart = grow(buf.xStart, len(x))
	buf.t = grow(buf.t, n)
	for b := range buf.t {
		buf.t[b] = i
	}
	m.Predict(buf.out, x, buf.t)
	d.PMeanVarianceInto(buf.mean, buf.logVar, buf.xStart, buf.out, x, buf.t)
	if observe != nil {
		observe(i, x, buf.xStart)
	}
	if i == 0 {
		copy(x, buf.mean)
		return buf.xStart
	}
	// With a fixed variance every pixel of an image has the same log σ²:
	// the exponential is taken once per distinct value, not per pixel.
	lv, sd := float32(math.NaN()), 0.0
	for k := range x {
		z := rng.NormFloat64()
		if v := buf.logVar[k]; v != lv {
			lv, sd = v, math.Exp(0.5*float64(v))
		}
		x[k] = float32(float64(buf.mean[k]) + sd*z)
	}
	return buf.xStart
}

// SampleFrom runs Algorithm 2's reverse chain from index from down to 0: x
// holds x_t with t = from+1 for n images (x_T from [FillNormal] when from is
// T−1; a q_sample of data for Figs. 7–9) and is overwritten with x_0. It
// checks ctx before each network evaluation and returns ctx.Err() once it is
// cancelled, x then holding the chain's state at that step. The result is a
// deterministic function of x and the rng state.
func (d *Diffusion) SampleFrom(ctx context.Context, m Model, x []float32, n, from int, rng *rand.Rand, h Hooks) error {
	if err := d.checkIndex(from); err != nil {
		return err
	}
	var buf StepBuffers
	total := from + 1
	for i := from; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return err
		}
		d.sampleStep(m, x, n, i, rng, &buf, h.Observe)
		h.progress(from-i+1, total)
	}
	return nil
}
