package ddpm

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/interpolate"
	"github.com/ddpm-go/ddpm/imgio"
)

// interpSeedStream is the PCG stream of interpolation ("intp"), so that
// seeds give the figures of every earlier `ddpm interpolate`.
const interpSeedStream = 0x696e7470

// InterpolateOptions control [Pipeline.Interpolate]. The zero value decodes
// rows at t = T/4, T/2, 3T/4 and T with λ = 0, 0.1, …, 1, seed 0.
type InterpolateOptions struct {
	// Steps are the paper's timesteps t of the rows, 1..T (nil: T/4, T/2,
	// 3T/4, T).
	Steps []int
	// Lambdas are the weights λ of b in a row (nil: 0, 0.1, …, 1, Fig. 8's).
	// The noise does not depend on them: with the same seed and steps one
	// λ gives that column of a longer row (a λ slider).
	Lambdas []float64
	// Seed seeds the encoding noise and the reverse process's noise.
	Seed uint64
	// Progress is called after each network evaluation, Σ t over the rows.
	Progress func(done, total int)
	// Observe sees every reverse step of a row: x_t and x̂0 of its images,
	// one per λ.
	Observe diffusion.Observer
}

// InterpolationRow is one latent row of Fig. 8.
type InterpolationRow struct {
	T      int     // the paper's timestep t of the mixed latents
	Images *Tensor // one decoded image per λ
	// RMSEA and RMSEB are the first and last images' distances to a and
	// b on [0, 255]: the reconstruction errors when λ runs from 0 to 1.
	RMSEA, RMSEB float64
}

// Interpolation is Fig. 8: rows of mixes of two images.
type Interpolation struct {
	A, B    *Tensor
	Lambdas []float64
	// Pixel are the pixel-space mixes (1 − λ)a + λb, the row Fig. 8
	// compares the latent rows with.
	Pixel *Tensor
	Rows  []InterpolationRow
}

// Interpolate encodes the images a and b to x_t with one noise draw, decodes
// (1 − λ)x_t + λx'_t with the reverse process's noise shared by every λ, one
// row per t: Figs. 8–9, where a small t blends the sources smoothly and a
// large t forgets them. It stops between network evaluations once ctx is
// done, returning ctx.Err().
func (p *Pipeline) Interpolate(ctx context.Context, a, b *Tensor, o InterpolateOptions) (*Interpolation, error) {
	if err := cmp.Or(p.checkImages(a, 1, "image a"), p.checkImages(b, 1, "image b")); err != nil {
		return nil, err
	}
	idx, err := p.indices(o.Steps, interpolate.Indices(p.T()))
	if err != nil {
		return nil, err
	}
	lambdas := o.Lambdas
	if lambdas == nil {
		lambdas = interpolate.Lambdas(10)
	}
	if len(lambdas) == 0 {
		return nil, fmt.Errorf("%w: no λ", ErrInvalidOption)
	}
	rng := rand.New(rand.NewPCG(o.Seed, interpSeedStream))
	rows, err := interpolate.Run(ctx, p.Process, p.net(), a.Data, b.Data, idx, lambdas, rng, diffusion.Hooks{Progress: o.Progress, Observe: o.Observe})
	if err != nil {
		return nil, err
	}
	r := &Interpolation{A: a, B: b, Lambdas: slices.Clone(lambdas), Pixel: p.tensor(interpolate.Pixel(a.Data, b.Data, lambdas))}
	for k, row := range rows {
		x := p.tensor(row)
		r.Rows = append(r.Rows, InterpolationRow{T: idx[k] + 1, Images: x, RMSEA: imgio.RMSE255(x.at(0), a.Data), RMSEB: imgio.RMSE255(x.at(x.N-1), b.Data)})
	}
	return r, nil
}

// Figure lays Fig. 8 out: the pixel-space row, then a row per t, each with
// a and b at its ends.
func (r *Interpolation) Figure() *Figure {
	rows := [][]float32{slices.Concat(r.A.Data, r.Pixel.Data, r.B.Data)}
	for _, row := range r.Rows {
		rows = append(rows, slices.Concat(r.A.Data, row.Images.Data, r.B.Data))
	}
	return figure(r.A, len(r.Lambdas)+2, rows...)
}
