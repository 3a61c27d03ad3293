// Package schedule tabulates a noise schedule and the weights it gives the
// terms of the variational bound, to show why L_simple works (Section 3.4).
//
// With the ε parameterisation, L_{t−1} is the ε-error weighted by
// w_t = β_t²/(2σ_t² α_t (1−ᾱ_t)) (eq. 12). Under the paper's schedule w_t is
// largest at small t — the reverse steps that remove the last, imperceptible
// noise — and small at large t. L_simple drops the weight (w ≡ 1), which
// relative to the bound up-weights the large-t terms, the harder denoising
// tasks that decide the content of a sample; that is why it gives better
// samples and a worse bound (Table 2).
package schedule

import (
	"fmt"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Table holds one value per timestep: index i is the paper's t = i+1.
type Table struct {
	Schedule          string    `json:"schedule"`
	T                 int       `json:"T"`
	Beta              []float64 `json:"beta"`               // β_t
	AlphaBar          []float64 `json:"alpha_bar"`          // ᾱ_t
	PosteriorVariance []float64 `json:"posterior_variance"` // β̃_t (0 at t = 1)
	SNR               []float64 `json:"snr"`                // ᾱ_t/(1−ᾱ_t)
	// WeightFixedLarge and WeightFixedSmall are w_t of eq. 12 with σ_t² = β_t
	// and σ_t² = β̃_t, per dimension in nats, with the official code's
	// substitute σ_1² = β̃_2 at t = 1 in both (β̃_1 = 0).
	WeightFixedLarge []float64 `json:"weight_fixedlarge"`
	WeightFixedSmall []float64 `json:"weight_fixedsmall"`
}

// Compute tabulates the schedule of c (its Schedule, T, BetaStart and
// BetaEnd; the parameterisation fields are ignored).
func Compute(c diffusion.Config) (*Table, error) {
	c.Mean, c.Loss = diffusion.Eps, diffusion.Simple
	c.Var = diffusion.FixedLarge
	large, err := diffusion.New(c)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	c.Var = diffusion.FixedSmall
	small, err := diffusion.New(c)
	if err != nil {
		return nil, fmt.Errorf("schedule: %w", err)
	}
	T := large.T
	tb := &Table{
		Schedule: c.Schedule.String(), T: T,
		Beta: large.Betas, AlphaBar: large.AlphasCumprod, PosteriorVariance: large.PosteriorVariance, SNR: large.SNR,
		WeightFixedLarge: make([]float64, T), WeightFixedSmall: make([]float64, T),
	}
	for i := range T {
		tb.WeightFixedLarge[i] = large.EpsLossWeight(i)
		tb.WeightFixedSmall[i] = small.EpsLossWeight(i)
	}
	return tb, nil
}

// SimpleRatio is how much more L_simple weighs the term at index i than the
// bound does, relative to the average over t: (1/w_t)/mean_s(1/w_s) for
// the given weights. Values above 1 are the timesteps L_simple up-weights.
func SimpleRatio(w []float64) []float64 {
	mean := 0.0
	for _, v := range w {
		mean += 1 / v
	}
	mean /= float64(len(w))
	r := make([]float64, len(w))
	for i, v := range w {
		r[i] = 1 / v / mean
	}
	return r
}
