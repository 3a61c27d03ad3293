package diffusion

import (
	"fmt"
	"math"
)

// SpacedIndices returns K timestep indices spread evenly over [0, T), in
// increasing order, always including 0 (the last reverse step, the decoder)
// and T−1 (where sampling starts from N(0, I)): index s is
// round(s·(T−1)/(K−1)) (halves rounded away from zero), improved-diffusion's
// space_timesteps with one section. K = 1 gives {T−1}. The fast samplers
// ([DDIM], [Respaced], [Langevin]) visit these indices unless another
// [Spacing] is chosen.
func SpacedIndices(T, K int) ([]int, error) { return SpacingEven.Indices(T, K, 0) }

// checkKeep reports whether keep is a strictly increasing list of indices in
// [0, T).
func checkKeep(keep []int, T int) error {
	if len(keep) == 0 {
		return fmt.Errorf("diffusion: no timesteps to visit")
	}
	for s, i := range keep {
		if i < 0 || i >= T {
			return fmt.Errorf("diffusion: timestep index %d outside [0, %d)", i, T)
		}
		if s > 0 && i <= keep[s-1] {
			return fmt.Errorf("diffusion: timestep indices must increase, got %d after %d", i, keep[s-1])
		}
	}
	return nil
}

// SpacedDiffusion is a diffusion over a subsequence of another's timesteps
// (Nichol & Dhariwal 2021, Section 4; improved-diffusion's respace.py):
// sampling it takes K steps instead of T. Its own schedule has T = K steps
// with β'_s = 1 − ᾱ_{Keep[s]}/ᾱ_{Keep[s−1]} (ᾱ before the first kept step
// is 1), so that its ᾱ'_s equals the base's ᾱ at Keep[s]: x_t has the same
// marginal q(x_t | x0) in both, and a network trained on the base process
// can be reused unchanged. Wrap the network with [SpacedDiffusion.Model] so
// that it sees the ORIGINAL timestep index Keep[s]; the [Respaced] sampler
// does both.
type SpacedDiffusion struct {
	*Diffusion            // the K-step process; sample it with Sample, SampleFrom, …
	Base       *Diffusion // the process the network was trained on
	Keep       []int      // Keep[s] is the base index of respaced index s
}

// Respace builds the process over the base indices keep (strictly
// increasing, in [0, T), at least two), with d's parameterisation. Keep
// [SpacedIndices](d.T, K) for K evenly spaced steps; keep = 0..T−1 gives
// back d's schedule (up to rounding).
func (d *Diffusion) Respace(keep []int) (*SpacedDiffusion, error) {
	if err := checkKeep(keep, d.T); err != nil {
		return nil, err
	}
	if len(keep) < 2 {
		return nil, fmt.Errorf("diffusion: respacing needs at least 2 timesteps, got %d", len(keep))
	}
	betas := make([]float64, len(keep))
	last := 1.0
	for s, i := range keep {
		ab := d.AlphasCumprod[i]
		betas[s] = 1 - ab/last
		last = ab
	}
	s, err := NewSchedule(betas)
	if err != nil {
		return nil, fmt.Errorf("respacing: %w", err)
	}
	r := &Diffusion{Schedule: s, Mean: d.Mean, Var: d.Var, Loss: d.Loss, Clip: d.Clip, Fit: d.Fit.respace(keep)}
	return &SpacedDiffusion{Diffusion: r, Base: d, Keep: append([]int(nil), keep...)}, nil
}

// Model wraps a network trained on the base process for use with the
// respaced one. It feeds m the base index Keep[s] for respaced index s and
// translates the outputs that depend on the step size:
//
//   - ε and x̂0 predictions mean the same at a given noise level, and the
//     noise level of respaced index s is the base's at Keep[s]: unchanged.
//   - A μ̃ (xprev) prediction is the mean of a one-base-step move: it is
//     turned into x̂0 with the base coefficients and back into the mean of the
//     respaced step, μ̃'(x_t, x̂0).
//   - A learned log σ² is read as a fraction v of the way from the base
//     step's log β̃ to its log β (improved-diffusion's parameterisation),
//     clamped to [0, 1], and re-applied between the respaced step's log β̃'
//     and log β'. Where the base bounds agree to float32 precision (large t,
//     where β̃ ≈ β) the output says nothing about v and the midpoint is used.
//
// The wrapper allocates its index slice per call and is as safe for
// concurrent use as m.
func (r *SpacedDiffusion) Model(m Model) Model { return &respacedModel{r: r, m: m} }

type respacedModel struct {
	r *SpacedDiffusion
	m Model
}

func (w *respacedModel) Predict(out, xt []float32, t []int) {
	r := w.r
	base := make([]int, len(t))
	for b, s := range t {
		if s < 0 || s >= len(r.Keep) {
			panic(fmt.Sprintf("diffusion: respaced timestep index %d outside [0, %d)", s, len(r.Keep)))
		}
		base[b] = r.Keep[s]
	}
	w.m.Predict(out, xt, base)
	if r.Mean != XPrev && r.Var != Learned {
		return
	}
	n := len(t)
	D := imageDim(xt, n, "xt")
	r.checkOut(out, n, D)
	B := r.Base
	forImages(n, func(b int) {
		s, i := t[b], base[b]
		om, ov := r.splitOut(out, b, D)
		if r.Mean == XPrev {
			for j := range om {
				x := float64(xt[b*D+j])
				x0 := (float64(om[j]) - B.PosteriorMeanCoef2[i]*x) / B.PosteriorMeanCoef1[i]
				om[j] = float32(r.posteriorMean(s, x0, x))
			}
		}
		if ov != nil {
			lo, hi := B.PosteriorLogVarianceClipped[i], math.Log(B.Betas[i])
			nlo, nhi := r.PosteriorLogVarianceClipped[s], math.Log(r.Betas[s])
			for j := range ov {
				v := 0.5 // the base bounds coincide to float32 precision: no information
				if hi-lo > 1e-5 {
					v = max(0, min(1, (float64(ov[j])-lo)/(hi-lo)))
				}
				ov[j] = float32(nlo + v*(nhi-nlo))
			}
		}
	})
}
