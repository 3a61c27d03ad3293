package ddpm

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/progressive"
	"github.com/ddpm-go/ddpm/imgio"
)

// Progressive generation (Section 4.3 of the paper): the model's estimate
// x̂0 along the reverse chain (Fig. 6) and samples that share a latent x_t
// (Fig. 7). The mathematics is package experiments/progressive's.

// progSeedStream is the PCG stream of progressive generation ("prog"), so
// that seeds give the figures of every earlier `ddpm progressive`.
const progSeedStream = 0x70726f67

// ProgressiveOptions control [Pipeline.Progressive]. The zero value runs 4
// chains and records 10 columns (T if fewer), seed 0.
type ProgressiveOptions struct {
	// Chains is the number of sampling chains, the figure's rows (0: 4).
	Chains int
	// Columns is the number of evenly spaced reverse steps at which x̂0 is
	// recorded (0: 10, or T if fewer; at most T); the last is the final step.
	Columns int
	// Seed seeds x_T and the chains' noise.
	Seed uint64
	// Progress is called after each of the T network evaluations.
	Progress func(done, total int)
	// Observe sees every step's x_t and x̂0 of the chains (image-major):
	// a live view of the generation.
	Observe diffusion.Observer
}

// ProgressiveColumn is one column of Fig. 6: the chains at one reverse step.
type ProgressiveColumn struct {
	// T is the paper's timestep t; the reverse step is T − t + 1.
	T int
	// XStart is each chain's x̂0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t (eq. 15), Xt its x_t.
	XStart, Xt *Tensor
	// RMSE is x̂0's distance to the final samples on [0, 255], over all
	// chains: how much of the image is already decided.
	RMSE float64
}

// ProgressiveResult is Fig. 6.
type ProgressiveResult struct {
	// Columns are in the order the chains reach them; the last one's x̂0
	// is the samples.
	Columns []ProgressiveColumn
	// Samples are the chains' final images x0.
	Samples *Tensor
}

// Progressive runs Algorithm 2 on o.Chains chains and records x̂0 and x_t
// at evenly spaced reverse steps: Fig. 6, where large-scale features appear
// first and details last. It stops between network evaluations once ctx is
// done, returning ctx.Err().
func (p *Pipeline) Progressive(ctx context.Context, o ProgressiveOptions) (*ProgressiveResult, error) {
	n := cmp.Or(o.Chains, 4)
	if n < 1 {
		return nil, fmt.Errorf("%w: %d chains, want at least 1", ErrInvalidOption, n)
	}
	cols := cmp.Or(o.Columns, min(10, p.T()))
	if cols < 1 || cols > p.T() {
		return nil, fmt.Errorf("%w: %d columns out of range 1..%d (T)", ErrInvalidOption, cols, p.T())
	}
	record, err := progressive.Columns(p.T(), cols)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, progSeedStream))
	xT := make([]float32, n*p.dims())
	diffusion.FillNormal(xT, rng)
	ch, err := progressive.Run(ctx, p.Process, p.net(), xT, n, record, rng, diffusion.Hooks{Progress: o.Progress, Observe: o.Observe})
	if err != nil {
		return nil, err
	}
	r := &ProgressiveResult{Samples: p.tensor(ch.Final)}
	for c, i := range record {
		r.Columns = append(r.Columns, ProgressiveColumn{T: i + 1, XStart: p.tensor(ch.XStart[c]), Xt: p.tensor(ch.Xt[c]), RMSE: imgio.RMSE255(ch.XStart[c], ch.Final)})
	}
	return r, nil
}

// Figure lays Fig. 6 out: for each chain a row of its x̂0 across the
// columns, below a row of its x_t when withXt.
func (r *ProgressiveResult) Figure(withXt bool) *Figure {
	var rows [][]float32
	for b := range r.Samples.N {
		var xt, xs []float32
		for _, c := range r.Columns {
			xt = append(xt, c.Xt.at(b)...)
			xs = append(xs, c.XStart.at(b)...)
		}
		if withXt {
			rows = append(rows, xt)
		}
		rows = append(rows, xs)
	}
	return figure(r.Samples, len(r.Columns), rows...)
}

// SharedOptions control [Pipeline.SharedLatents]. The zero value shares the
// x_t of one sampling chain at t = T, 3T/4, T/2 and T/4 among 8 samples a
// row, seed 0.
type SharedOptions struct {
	// Steps are the paper's timesteps t of the rows, 1..T (nil: T, 3T/4,
	// T/2, T/4, Fig. 7's 1000, 750, 500 and 250).
	Steps []int
	// PerRow is the number of samples per row (0: 8).
	PerRow int
	// Image, when set, is the one image (e.g. a drawing) whose x_t the rows
	// share, encoded by q with one noise draw for every t; nil: the x_t of
	// one sampling chain, whose sample is the reference.
	Image *Tensor
	// Seed seeds the encoding or the chain, and the samples' noise.
	Seed uint64
	// Progress is called after each network evaluation: the chain's T (no
	// Image), then Σ t over the rows.
	Progress func(done, total int)
	// Observe sees every reverse step of the reference chain and of each
	// row's samples: a live view of the regeneration.
	Observe diffusion.Observer
}

// SharedRow is one row of Fig. 7: samples that share one x_t.
type SharedRow struct {
	T int // the paper's timestep t of the shared x_t
	// Latent is the shared x_t (one image), Samples the images x0 ~
	// p_θ(x0 | x_t) drawn from it with independent noise.
	Latent, Samples *Tensor
	// PixelStd is the standard deviation across the samples on [0, 255],
	// averaged over pixels: how much they differ.
	PixelStd float64
	// RMSE is the samples' distance to the reference on [0, 255].
	RMSE float64
}

// SharedResult is Fig. 7.
type SharedResult struct {
	// Reference is the image whose latents the rows share: o.Image, or
	// the sample of the chain they come from.
	Reference *Tensor
	Rows      []SharedRow
}

// SharedLatents fixes one x_t per row and draws samples x0 ~ p_θ(x0 | x_t)
// from it: Fig. 7, where samples from a large t share little and those from
// a small t share most of their attributes. It stops between network
// evaluations once ctx is done, returning ctx.Err().
func (p *Pipeline) SharedLatents(ctx context.Context, o SharedOptions) (*SharedResult, error) {
	idx, err := p.indices(o.Steps, progressive.SharedIndices(p.T()))
	if err != nil {
		return nil, err
	}
	per := cmp.Or(o.PerRow, 8)
	if per < 1 {
		return nil, fmt.Errorf("%w: %d samples per row, want at least 1", ErrInvalidOption, per)
	}
	if o.Image != nil {
		if err := p.checkImages(o.Image, 1, "the image to share"); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, progSeedStream))
	st := &stages{progress: o.Progress, total: steps(idx)}
	if o.Image == nil {
		st.total += p.T()
	}
	ref, latents, err := p.latents(ctx, o.Image, idx, rng, st, o.Observe)
	if err != nil {
		return nil, err
	}
	samples, err := progressive.Shared(ctx, p.Process, p.net(), latents, idx, per, rng, st.next(steps(idx), o.Observe))
	if err != nil {
		return nil, err
	}
	refs := make([]float32, 0, per*len(ref)) // the reference once per sample of a row
	for range per {
		refs = append(refs, ref...)
	}
	r := &SharedResult{Reference: p.tensor(ref)}
	for k, x := range samples {
		r.Rows = append(r.Rows, SharedRow{T: idx[k] + 1, Latent: p.tensor(latents[k]), Samples: p.tensor(x),
			PixelStd: 127.5 * math.Sqrt(progressive.PixelVariance(x, per)), RMSE: imgio.RMSE255(x, refs)})
	}
	return r, nil
}

// Noised draws x_t ~ q(x_t | x0) of one image at the paper's t with the
// noise [Pipeline.SharedLatents] draws for seed, so that its rows with
// Image set share exactly this x_t: a preview that costs no network
// evaluation.
func (p *Pipeline) Noised(image *Tensor, t int, seed uint64) (*Tensor, error) {
	if err := p.checkImages(image, 1, "the image"); err != nil {
		return nil, err
	}
	idx, err := p.indices([]int{t}, nil)
	if err != nil {
		return nil, err
	}
	eps := make([]float32, p.dims())
	diffusion.FillNormal(eps, rand.New(rand.NewPCG(seed, progSeedStream)))
	return p.tensor(progressive.Encode(p.Process, image.Data, eps, idx)[0]), nil
}

// latents returns the reference image and its x_t at each index of idx:
// image's, encoded by q with one noise draw, or those of one sampling chain
// and its sample.
func (p *Pipeline) latents(ctx context.Context, image *Tensor, idx []int, rng *rand.Rand, st *stages, observe diffusion.Observer) ([]float32, [][]float32, error) {
	x := make([]float32, p.dims()) // the noise ε of the encoding, or x_T
	diffusion.FillNormal(x, rng)
	if image != nil {
		return image.Data, progressive.Encode(p.Process, image.Data, x, idx), nil
	}
	latents, ref, err := progressive.ChainLatents(ctx, p.Process, p.net(), x, idx, rng, st.next(p.T(), observe))
	return ref, latents, err
}

// Figure lays Fig. 7 out: a row per t, the reference then the samples.
func (r *SharedResult) Figure() *Figure {
	var rows [][]float32
	for _, row := range r.Rows {
		rows = append(rows, slices.Concat(r.Reference.Data, row.Samples.Data))
	}
	return figure(r.Reference, 1+r.Rows[0].Samples.N, rows...)
}
