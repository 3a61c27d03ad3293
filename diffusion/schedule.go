package diffusion

import (
	"fmt"
	"math"
)

// Default linear schedule of the paper (Section 4): T = 1000 steps with β
// rising linearly from 1e-4 to 0.02.
const (
	DefaultT         = 1000
	DefaultBetaStart = 1e-4
	DefaultBetaEnd   = 0.02
)

// Schedule holds the noise schedule β and every constant derived from it, in
// float64. All slices have length T and are indexed by i = t−1 (see the
// package doc). Treat them as read-only.
type Schedule struct {
	T int

	Betas             []float64 // β_t
	Alphas            []float64 // α_t = 1 − β_t
	AlphasCumprod     []float64 // ᾱ_t = ∏_{s≤t} α_s
	AlphasCumprodPrev []float64 // ᾱ_{t−1}, with ᾱ_0 = 1 at index 0

	SqrtAlphasCumprod           []float64 // √ᾱ_t
	SqrtOneMinusAlphasCumprod   []float64 // √(1−ᾱ_t)
	LogOneMinusAlphasCumprod    []float64 // log(1−ᾱ_t)
	SqrtRecipAlphasCumprod      []float64 // √(1/ᾱ_t)
	SqrtRecipM1AlphasCumprod    []float64 // √(1/ᾱ_t − 1)
	PosteriorVariance           []float64 // β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t (eq. 7); 0 at index 0
	PosteriorLogVarianceClipped []float64 // log β̃_t with index 0 replaced by log β̃ at index 1 (official code)
	PosteriorMeanCoef1          []float64 // √ᾱ_{t−1} β_t/(1−ᾱ_t), the x0 coefficient of μ̃_t (eq. 7)
	PosteriorMeanCoef2          []float64 // √α_t (1−ᾱ_{t−1})/(1−ᾱ_t), the x_t coefficient of μ̃_t (eq. 7)
	SNR                         []float64 // signal-to-noise ratio ᾱ_t/(1−ᾱ_t)
}

// LinearBetas returns T values of β spaced linearly from start (β_1) to end
// (β_T) inclusive, as numpy.linspace does in the official code.
func LinearBetas(T int, start, end float64) ([]float64, error) {
	if T < 2 {
		return nil, fmt.Errorf("diffusion: T = %d, need T ≥ 2", T)
	}
	for _, b := range []struct {
		name string
		v    float64
	}{{"start", start}, {"end", end}} {
		if !(b.v > 0 && b.v < 1) {
			return nil, fmt.Errorf("diffusion: beta %s = %g, need 0 < β < 1", b.name, b.v)
		}
	}
	betas := make([]float64, T)
	step := (end - start) / float64(T-1)
	for i := range betas {
		betas[i] = start + float64(i)*step
	}
	betas[T-1] = end
	return betas, nil
}

// ScaledLinearBetas returns T values of β whose square roots are spaced
// linearly from √start to √end: diffusers' "scaled_linear" schedule.
func ScaledLinearBetas(T int, start, end float64) ([]float64, error) {
	b, err := LinearBetas(T, math.Sqrt(start), math.Sqrt(end))
	if err != nil {
		return nil, err
	}
	for i, v := range b {
		b[i] = v * v
	}
	return b, nil
}

// CosineBetas returns the cosine schedule of Nichol & Dhariwal (2021, eq. 17):
// ᾱ(t) = f(t)/f(0) with f(t) = cos²(((t/T)+s)/(1+s)·π/2), s = 0.008, and
// β_t = min(1 − ᾱ(t)/ᾱ(t−1), 0.999).
func CosineBetas(T int) ([]float64, error) {
	if T < 2 {
		return nil, fmt.Errorf("diffusion: T = %d, need T ≥ 2", T)
	}
	const s, maxBeta = 0.008, 0.999
	f := func(t float64) float64 {
		c := math.Cos((t/float64(T) + s) / (1 + s) * math.Pi / 2)
		return c * c
	}
	betas := make([]float64, T)
	for i := range betas {
		betas[i] = min(1-f(float64(i+1))/f(float64(i)), maxBeta)
	}
	return betas, nil
}

// NewSchedule derives every schedule constant from betas (β_1..β_T at
// indices 0..T−1). It needs T ≥ 2 and 0 < β < 1 for every β.
func NewSchedule(betas []float64) (*Schedule, error) {
	T := len(betas)
	if T < 2 {
		return nil, fmt.Errorf("diffusion: schedule of %d steps, need T ≥ 2", T)
	}
	for i, b := range betas {
		if !(b > 0 && b < 1) {
			return nil, fmt.Errorf("diffusion: beta at index %d (t = %d) is %g, need 0 < β < 1", i, i+1, b)
		}
	}
	mk := func() []float64 { return make([]float64, T) }
	s := &Schedule{
		T: T, Betas: append([]float64(nil), betas...),
		Alphas: mk(), AlphasCumprod: mk(), AlphasCumprodPrev: mk(),
		SqrtAlphasCumprod: mk(), SqrtOneMinusAlphasCumprod: mk(), LogOneMinusAlphasCumprod: mk(),
		SqrtRecipAlphasCumprod: mk(), SqrtRecipM1AlphasCumprod: mk(),
		PosteriorVariance: mk(), PosteriorLogVarianceClipped: mk(),
		PosteriorMeanCoef1: mk(), PosteriorMeanCoef2: mk(), SNR: mk(),
	}
	prod := 1.0
	for i, b := range s.Betas {
		a := 1 - b
		s.Alphas[i] = a
		s.AlphasCumprodPrev[i] = prod
		prod *= a
		s.AlphasCumprod[i] = prod
	}
	for i := range T {
		ab, abPrev, b := s.AlphasCumprod[i], s.AlphasCumprodPrev[i], s.Betas[i]
		s.SqrtAlphasCumprod[i] = math.Sqrt(ab)
		s.SqrtOneMinusAlphasCumprod[i] = math.Sqrt(1 - ab)
		s.LogOneMinusAlphasCumprod[i] = math.Log(1 - ab)
		s.SqrtRecipAlphasCumprod[i] = math.Sqrt(1 / ab)
		s.SqrtRecipM1AlphasCumprod[i] = math.Sqrt(1/ab - 1)
		s.PosteriorVariance[i] = b * (1 - abPrev) / (1 - ab)
		s.PosteriorMeanCoef1[i] = b * math.Sqrt(abPrev) / (1 - ab)
		s.PosteriorMeanCoef2[i] = (1 - abPrev) * math.Sqrt(s.Alphas[i]) / (1 - ab)
		s.SNR[i] = ab / (1 - ab)
	}
	// β̃_1 = 0: its log is −∞, so the official code uses log β̃_2 there.
	s.PosteriorLogVarianceClipped[0] = math.Log(s.PosteriorVariance[1])
	for i := 1; i < T; i++ {
		s.PosteriorLogVarianceClipped[i] = math.Log(s.PosteriorVariance[i])
	}
	return s, nil
}

// LinearSchedule is NewSchedule(LinearBetas(T, start, end)).
func LinearSchedule(T int, start, end float64) (*Schedule, error) {
	b, err := LinearBetas(T, start, end)
	if err != nil {
		return nil, err
	}
	return NewSchedule(b)
}

// CosineSchedule is NewSchedule(CosineBetas(T)).
func CosineSchedule(T int) (*Schedule, error) {
	b, err := CosineBetas(T)
	if err != nil {
		return nil, err
	}
	return NewSchedule(b)
}

// DefaultSchedule is the paper's schedule: linear β from 1e-4 to 0.02 over
// T = 1000 steps.
func DefaultSchedule() *Schedule {
	s, err := LinearSchedule(DefaultT, DefaultBetaStart, DefaultBetaEnd)
	if err != nil {
		panic(err)
	}
	return s
}
