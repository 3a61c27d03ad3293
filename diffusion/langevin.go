package diffusion

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// Langevin are the settings of annealed Langevin dynamics
// ([Diffusion.SampleLangevin]), the sampler of NCSN (Song & Ermon 2019) run
// on the noise levels of a diffusion model through its score
// s_θ = −ε_θ/√(1−ᾱ_t) ([Diffusion.Score]; Section 3.2 of the paper).
type Langevin struct {
	// Levels is how many noise levels are visited, spread evenly over the
	// model's T by [SpacedIndices]; 0 visits all T.
	Levels int
	// Steps is the number of Langevin updates at each level (≥ 1).
	Steps int
	// StepScale is r in the step size α_i = r·σ_i² of level i (σ_i² the
	// level's noise variance, see SampleLangevin): NCSN's α_i = ε·σ_i²/σ_L²
	// with ε = r·σ_L². The chain's stationary variance at a level is
	// σ²/(1 − r/4) for point data, so r must stay below 4 and small r
	// samples more exactly but mixes more slowly. 0 < r < 4.
	StepScale float64
}

// DefaultLangevin is 100 levels, 10 steps each and r = 1: 1001 network
// evaluations, as many as Algorithm 2 with T = 1000. With the exact score
// (see the tests) it puts the modes of a mixture in the right proportions
// and draws N(0.1, 0.5²) data with a standard deviation about 5% too large.
// Smaller r is more exact per level but mixes too slowly to follow the
// levels (r = 0.1 gives 18% too large); larger r mixes faster but its
// stationary variance, σ²/(1 − r/4) for point data, drifts. Unadjusted
// Langevin leaves some excess noise at the finest levels, where the steps
// are small next to the data's spread; Algorithm 2, whose step moves to the
// reverse process's mean with exactly the variance the level needs, does
// better for the same cost.
func DefaultLangevin() Langevin { return Langevin{Levels: 100, Steps: 10, StepScale: 1} }

// Validate reports settings the sampler cannot run with.
func (l Langevin) Validate(T int) error {
	switch {
	case l.Levels < 0 || l.Levels > T:
		return fmt.Errorf("diffusion: Langevin levels %d out of range 0..%d (T)", l.Levels, T)
	case l.Steps < 1:
		return fmt.Errorf("diffusion: Langevin steps per level must be ≥ 1, got %d", l.Steps)
	case !(l.StepScale > 0 && l.StepScale < 4):
		return fmt.Errorf("diffusion: Langevin step scale r = %g, need 0 < r < 4", l.StepScale)
	}
	return nil
}

// Evaluations is the number of network evaluations per image of
// SampleLangevin with these settings on a T-step model.
func (l Langevin) Evaluations(T int) int {
	k := l.Levels
	if k == 0 {
		k = T
	}
	return k*l.Steps + 1
}

// SampleLangevin draws n images by annealed Langevin dynamics with the
// model's score. It works in the variance-exploding coordinates
// y = x_t/√ᾱ_t = x0 + σ_t ε, in which every level has the same signal and a
// noise variance σ_t² = (1−ᾱ_t)/ᾱ_t, and the score of q(y) is
// √ᾱ_t·s_θ(x_t, t) = −ε_θ(x_t, t)/σ_t. From the largest level down, each
// level i takes c.Steps updates
//
//	y ← y + (α_i/2)·∇_y log q(y) + √α_i z = y − (r/2)σ_i ε_θ(√ᾱ_i y, i) + √r σ_i z,
//
// with α_i = r·σ_i² and z ~ N(0, I). The result is the model's x̂0 at the
// last (smallest) level — NCSN v2's final denoising step, and what
// Algorithm 2's last step returns — clipped when d.Clip. The updates
// themselves use the unclipped ε_θ, the score.
//
// x holds x_T (fill it with [FillNormal]) for n images and is overwritten
// with the samples. Each update draws len(x) normals from rng, in order.
// h.Progress is called after each of the c.Evaluations(T)
// network evaluations; h.Observe sees x_t and x̂0 at the first
// update of each level.
func (d *Diffusion) SampleLangevin(ctx context.Context, m Model, x []float32, n int, c Langevin, rng *rand.Rand, h Hooks) error {
	if err := c.Validate(d.T); err != nil {
		return err
	}
	imageDim(x, n, "x")
	levels := c.Levels
	if levels == 0 {
		levels = d.T
	}
	keep, err := SpacedIndices(d.T, levels)
	if err != nil {
		return err
	}
	total, done := c.Evaluations(d.T), 0
	tick := func() {
		done++
		h.progress(done, total)
	}
	var buf StepBuffers
	eps := make([]float32, len(x))
	xt := make([]float32, len(x))
	// x becomes y, the VE variable, for the whole run.
	top := keep[len(keep)-1]
	for k := range x {
		x[k] = float32(float64(x[k]) * d.SqrtRecipAlphasCumprod[top])
	}
	toXt := func(i int) {
		sa := d.SqrtAlphasCumprod[i]
		for k, y := range x {
			xt[k] = float32(sa * float64(y))
		}
	}
	r := c.StepScale
	sr := math.Sqrt(r)
	for s := len(keep) - 1; s >= 0; s-- {
		i := keep[s]
		sigma := d.SqrtRecipM1AlphasCumprod[i] // √((1−ᾱ)/ᾱ)
		for step := range c.Steps {
			if err := ctx.Err(); err != nil {
				return err
			}
			toXt(i)
			d.predict(m, xt, n, i, &buf)
			d.ModelEps(eps, buf.out, xt, buf.t)
			if h.Observe != nil && step == 0 {
				buf.xStart = grow(buf.xStart, len(x))
				d.PMeanVarianceInto(nil, nil, buf.xStart, buf.out, xt, buf.t)
				h.Observe(i, xt, buf.xStart)
			}
			for k := range x {
				x[k] = float32(float64(x[k]) - 0.5*r*sigma*float64(eps[k]) + sr*sigma*rng.NormFloat64())
			}
			tick()
		}
	}
	// Final denoising: x̂0 at the smallest level.
	i := keep[0]
	toXt(i)
	d.predict(m, xt, n, i, &buf)
	d.PMeanVarianceInto(nil, nil, x, buf.out, xt, buf.t)
	tick()
	return nil
}
