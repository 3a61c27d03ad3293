package diffusion

import (
	"context"
	"math"
	"math/rand/v2"
)

// DDIMStep is one step of the DDIM sampler (Song, Meng & Ermon 2021, eq. 12)
// from index i to the earlier index prev (prev < i; prev = −1 means the end
// of the chain, ᾱ = 1) on the n images in x (in: x_t at t = i+1, out: the
// sample at prev):
//
//	x_prev = √ᾱ_prev x̂0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z,
//	σ = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev),
//
// where x̂0 is the model's prediction (clipped when d.Clip) and ε̂ the noise
// it implies at x_t (recomputed from the clipped x̂0, as improved-diffusion
// does). η = 0 is deterministic; η = 1 with prev = i−1 is exactly Algorithm 2
// with σ_t² = β̃_t (the fixedsmall variance). A learned variance is ignored.
// It draws len(x) normals from rng, in order, when σ > 0, and none
// otherwise. It returns x̂0, which lives in buf (nil allocates).
func (d *Diffusion) DDIMStep(m Model, x []float32, n, i, prev int, eta float64, rng *rand.Rand, buf *StepBuffers) (xStart []float32) {
	return d.ddimStep(m, x, n, i, prev, eta, rng, buf, nil)
}

func (d *Diffusion) ddimStep(m Model, x []float32, n, i, prev int, eta float64, rng *rand.Rand, buf *StepBuffers, observe Observer) []float32 {
	if prev >= i || prev < -1 {
		panic("diffusion: DDIM step must go to an earlier index")
	}
	if buf == nil {
		buf = new(StepBuffers)
	}
	d.predict(m, x, n, i, buf)
	buf.xStart = grow(buf.xStart, len(x))
	d.PMeanVarianceInto(nil, nil, buf.xStart, buf.out, x, buf.t)
	if observe != nil {
		observe(i, x, buf.xStart)
	}
	ab := d.AlphasCumprod[i]
	abPrev := 1.0
	if prev >= 0 {
		abPrev = d.AlphasCumprod[prev]
	}
	sigma := eta * math.Sqrt((1-abPrev)/(1-ab)*(1-ab/abPrev))
	cx0 := math.Sqrt(abPrev)
	ceps := math.Sqrt(max(0, 1-abPrev-sigma*sigma))
	noisy := sigma > 0
	ra, rm := d.SqrtRecipAlphasCumprod[i], d.SqrtRecipM1AlphasCumprod[i]
	for k := range x {
		xs := float64(buf.xStart[k])
		eps := (ra*float64(x[k]) - xs) / rm
		v := cx0*xs + ceps*eps
		if noisy {
			v += sigma * rng.NormFloat64()
		}
		x[k] = float32(v)
	}
	return buf.xStart
}

// predict runs the model on the n images of x at index i, leaving its
// output in buf.out and the indices in buf.t.
func (d *Diffusion) predict(m Model, x []float32, n, i int, buf *StepBuffers) {
	imageDim(x, n, "x")
	outLen := len(x)
	if d.Var == Learned {
		outLen *= 2
	}
	buf.out = grow(buf.out, outLen)
	buf.t = grow(buf.t, n)
	for b := range buf.t {
		buf.t[b] = i
	}
	m.Predict(buf.out, x, buf.t)
}

// SampleDDIM runs the DDIM sampler over the indices keep (strictly
// increasing, e.g. [SpacedIndices](d.T, K)): x holds the sample at
// keep[len(keep)−1] (x_T from [FillNormal] when that is T−1) for n images and
// is overwritten with x_0, after len(keep) network evaluations, one
// [Diffusion.DDIMStep] per kept index down to the end of the chain. eta is η
// (0: deterministic, 1: the DDPM posterior variance). progress (may be nil)
// is called after each step; observe (may be nil) sees x_t and x̂0 before
// each update. It stops between steps once ctx is cancelled, returning ctx.Err().
func (d *Diffusion) SampleDDIM(ctx context.Context, m Model, x []float32, n int, keep []int, eta float64, rng *rand.Rand, h Hooks) error {
	if err := checkKeep(keep, d.T); err != nil {
		return err
	}
	var buf StepBuffers
	K := len(keep)
	for s := K - 1; s >= 0; s-- {
		prev := -1
		if s > 0 {
			prev = keep[s-1]
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		d.ddimStep(m, x, n, keep[s], prev, eta, rng, &buf, h.Observe)
		h.progress(K-s, K)
	}
	return nil
}
