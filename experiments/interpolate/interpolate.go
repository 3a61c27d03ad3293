// Package interpolate is the paper's interpolation in latent space
// (Section 4.3, Figures 8–9): two source images x0 and x0' are encoded with
// the forward process to x_t and x'_t using the same noise draw, their
// linear interpolation x̄_t = (1 − λ)x_t + λx'_t is decoded with the reverse
// process, and the reverse process's noise is the same for every λ, so that
// the row changes only through λ. Small t keeps the sources' details
// (reconstructions at λ = 0 and 1, smooth blends between); large t gives
// coarser, more varied mixes; at t = T the sources are forgotten.
package interpolate

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Lambdas returns λ = 0, 1/steps, …, 1 (steps+1 values); the paper uses
// steps = 10, λ in steps of 0.1.
func Lambdas(steps int) []float64 {
	l := make([]float64, steps+1)
	for k := range l {
		l[k] = float64(k) / float64(steps)
	}
	return l
}

// Indices are the diffusion indices of Figure 8's rows, t = T/4, T/2, 3T/4
// and T (250, 500, 750 and 1000 for T = 1000), rounded, without repeats.
func Indices(T int) []int {
	var idx []int
	for r := 1; r <= 4; r++ {
		if i := max(1, (r*T+2)/4) - 1; len(idx) == 0 || i != idx[len(idx)-1] {
			idx = append(idx, i)
		}
	}
	return idx
}

// Pixel is the reference row: the pixel-space mixes (1 − λ)a + λb of the
// two images, one image per λ.
func Pixel(a, b []float32, lambdas []float64) []float32 {
	D := len(a)
	out := make([]float32, len(lambdas)*D)
	for r, l := range lambdas {
		for j := range D {
			out[r*D+j] = float32((1-l)*float64(a[j]) + l*float64(b[j]))
		}
	}
	return out
}

// Run interpolates between the images a and b (D values each) at each
// diffusion index in idx (each in [0, T)): row r holds one decoded image per
// λ in lambdas. For each row it draws ε (D normals) for the encoding, then
// one z (D normals) per reverse step i > 0, shared by every λ: the draws do
// not depend on the number of λ, so one λ gives that column of a longer
// row. h.Progress counts the Σ_r (idx[r]+1) reverse steps; h.Observe sees
// each step's x_t and x̂0 of the row's images, one per λ. It stops between
// steps once ctx is done, returning ctx.Err().
func Run(ctx context.Context, d *diffusion.Diffusion, m diffusion.Model, a, b []float32, idx []int, lambdas []float64, rng *rand.Rand, h diffusion.Hooks) ([][]float32, error) {
	D := len(a)
	switch {
	case D == 0 || len(b) != D:
		return nil, fmt.Errorf("interpolate: images of %d and %d values", len(a), len(b))
	case len(lambdas) == 0:
		return nil, fmt.Errorf("interpolate: no λ")
	}
	total := 0
	for _, i := range idx {
		if i < 0 || i >= d.T {
			return nil, fmt.Errorf("interpolate: index %d outside [0, %d)", i, d.T)
		}
		total += i + 1
	}
	n := len(lambdas)
	rows := make([][]float32, len(idx))
	eps := make([]float32, D)
	z := make([]float32, n*D)
	done := 0
	var buf diffusion.StepBuffers
	var xt []float32 // x_t before the step, for h.Observe
	for r, i := range idx {
		diffusion.FillNormal(eps, rng)
		ti := []int{i}
		xa := d.QSample(nil, a, eps, ti)
		xb := d.QSample(nil, b, eps, ti)
		x := Pixel(xa, xb, lambdas)
		for s := i; s >= 0; s-- {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if s > 0 {
				diffusion.FillNormal(z[:D], rng)
				for k := 1; k < n; k++ {
					copy(z[k*D:(k+1)*D], z[:D])
				}
			}
			if h.Observe != nil {
				xt = append(xt[:0], x...)
			}
			xs := d.SampleStepNoise(m, x, n, s, z, &buf)
			done++
			if h.Observe != nil {
				h.Observe(s, xt, xs)
			}
			if h.Progress != nil {
				h.Progress(done, total)
			}
		}
		rows[r] = x
	}
	return rows, nil
}
