// Package rd is the paper's progressive lossy compression experiment
// (Section 4.3, Algorithms 3–4, Table 4, Figure 5): the rate–distortion
// curve of sending an image through the reverse process.
//
// The sender transmits x_T, then x_{T−1}, …, x_1 — each x_{t−1} drawn from
// q(x_{t−1} | x_t, x0) and coded with p_θ(x_{t−1} | x_t), at an expected
// cost of L_{t−1} = D_KL(q(x_{t−1} | x_t, x0) ‖ p_θ(x_{t−1} | x_t)) — and
// finally x0 with the decoder, at a cost of L_0. After reverse step
// k = T − t + 1 the receiver holds x_t, has been sent
//
//	rate(k) = L_T + L_{T−1} + … + L_t   (the KL terms so far),
//
// and can estimate x̂0 = (x_t − √(1−ᾱ_t) ε_θ(x_t))/√ᾱ_t (eq. 15); the
// distortion is the RMSE between x0 and x̂0 on the [0, 255] scale. After
// the last step (k = T, x_1 received) rate + L_0 is the whole bound L of
// eq. 5, so the curve is a decomposition of `ddpm eval bpd`.
//
// The terms are computed as the bound computes them (improved-diffusion's
// calc_bpd_loop): one x_t per t drawn from q(x_t | x0), every KL exact. By
// the Markov property x_t of the chain has exactly that marginal, so the
// expected rate and distortion are those of Algorithms 3–4.
package rd

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Options control [Run].
type Options struct {
	// Batch is the number of (image, t) pairs per network call (≥ 1).
	Batch int
	// Rng draws the noise ε of every x_t. Pairs are visited for i = T−1
	// down to 0 and, within one i, image by image, each drawing its D
	// normals in order: the draws of diffusion.CalcBPDLoop (and of
	// experiments/likelihood, i.e. `ddpm eval bpd`) with the same
	// generator, whatever the batch.
	Rng *rand.Rand
	// Scale multiplies every rate: 1 (or 0) keeps bits per model
	// dimension; D/dataDims gives bits per data dimension when the images
	// were padded to the model's size, as `ddpm eval bpd` reports them.
	Scale float64
	// Mask, when not nil, selects the D values that count in the
	// distortion (the data pixels of a padded image).
	Mask []bool
	// Progress, when set, is called after each network call with the
	// number of pairs done and the total n·T.
	Progress func(done, total int)
	// Observe, when set, sees each pair as it is computed: image img at
	// diffusion index i, its x_t and the receiver's estimate x̂0 (D values
	// each, valid during the call) — what a live view of the compression
	// shows. Pairs come for i = T−1 down to 0.
	Observe func(img, i int, xt, xStart []float32)
	// Term, when set, sees each pair's term of the rate as it is computed:
	// L_{t−1} of image img at index i = t−1 (L_0 at i = 0), times Scale,
	// for a live rate curve.
	Term func(img, i int, bits float64)
}

// Curve is the rate–distortion curve of N images, averaged over them.
// Index k−1 of Rate and RMSE is reverse step k = 1..T, after which the
// receiver holds x_t with t = T − k + 1 (diffusion index i = T − k).
type Curve struct {
	N, T int
	// Rate[k−1] is L_T + Σ_{s=t}^{T−1} L_s in bits/dim (mean over images).
	Rate []float64
	// RMSE[k−1] is √(mean over images and counted values of (x̂0 − x0)²)
	// on the [0, 255] scale, x̂0 predicted from x_t (clipped to [−1, 1]
	// when the process clips).
	RMSE []float64
	// Prior is L_T, Decoder L_0 and Total the whole bound Rate[T−1] +
	// Decoder (means over images, bits/dim).
	Prior, Decoder, Total float64
	// TotalPerImage is each image's bound.
	TotalPerImage []float64
}

// Run computes the curve of the n images x0 (n·D values on the 256-level
// grid of [−1, 1]) under model m and process d. The rates are the bound's
// terms as experiments/likelihood evaluates them; the distortion is taken
// from the same network calls. It returns ctx's error if ctx is cancelled
// between network calls.
func Run(ctx context.Context, d *diffusion.Diffusion, m diffusion.Model, x0 []float32, n int, opt Options) (*Curve, error) {
	counted := 0 // values per image that count in the distortion
	if opt.Mask != nil {
		if n > 0 && len(opt.Mask)*n != len(x0) {
			return nil, fmt.Errorf("rd: mask of %d values for %d images of %d values", len(opt.Mask), n, len(x0)/n)
		}
		for _, c := range opt.Mask {
			if c {
				counted++
			}
		}
		if counted == 0 {
			return nil, errors.New("rd: the mask selects no value")
		}
	}
	scale := opt.Scale
	if scale == 0 {
		scale = 1
	}

	sse := make([]float64, d.T) // Σ over images and counted values of (x̂0 − x0)² at i
	var xhat []float32
	r, err := d.EvaluateBound(ctx, m, x0, n, diffusion.BoundOptions{
		Batch: opt.Batch, Rng: opt.Rng, Progress: opt.Progress,
		Visit: func(b diffusion.BoundBatch) {
			if cap(xhat) < len(b.X0) {
				xhat = make([]float32, len(b.X0)) // the first call is the largest
			}
			xh := xhat[:len(b.X0)]
			d.PMeanVarianceInto(nil, nil, xh, b.Out, b.Xt, b.T)
			D := len(b.X0) / len(b.T)
			for p, i := range b.T {
				s := 0.0
				for j := range D {
					if opt.Mask == nil || opt.Mask[j] {
						e := float64(xh[p*D+j] - b.X0[p*D+j])
						s += e * e
					}
				}
				sse[i] += s
				if opt.Observe != nil {
					opt.Observe(b.Img[p], i, b.Xt[p*D:(p+1)*D], xh[p*D:(p+1)*D])
				}
				if opt.Term != nil {
					opt.Term(b.Img[p], i, b.Terms[p]*scale)
				}
			}
		},
	})
	if err != nil {
		return nil, err
	}
	if opt.Mask == nil {
		counted = r.Dims
	}
	for b := range n {
		r.Prior[b] *= scale
		for i := range r.Terms[b] {
			r.Terms[b][i] *= scale
		}
	}
	c := FromTerms(r.Prior, r.Terms)
	T := d.T
	for k := 1; k <= T; k++ {
		c.RMSE[k-1] = 127.5 * math.Sqrt(sse[T-k]/float64(n*counted))
	}
	return c, nil
}

// FromTerms builds the curve's rates from per-image bound terms: prior[b]
// is L_T of image b and terms[b][i] its L_{t−1} at index i = t−1 (the
// decoder L_0 at i = 0), all of equal length T, as in
// diffusion.BPD.Terms. RMSE is left zero.
func FromTerms(prior []float64, terms [][]float64) *Curve {
	n, T := len(prior), len(terms[0])
	c := &Curve{N: n, T: T, Rate: make([]float64, T), RMSE: make([]float64, T), TotalPerImage: make([]float64, n)}
	for b := range n {
		r := prior[b]
		c.Prior += prior[b]
		c.Rate[0] += r // k = 1: x_T received, only L_T sent
		for k := 2; k <= T; k++ {
			r += terms[b][T-k+1] // x_{T−k+1} sent with L_{T−k+1}, index T−k+1
			c.Rate[k-1] += r
		}
		c.Decoder += terms[b][0]
		c.TotalPerImage[b] = r + terms[b][0]
	}
	for k := range c.Rate {
		c.Rate[k] /= float64(n)
	}
	c.Prior /= float64(n)
	c.Decoder /= float64(n)
	c.Total = c.Rate[T-1] + c.Decoder
	return c
}

// TableSteps are the reverse steps Table 4 lists: T/10, 2T/10, …, T
// (100, 200, …, 1000 for the paper's T), rounded, without repeats.
func TableSteps(T int) []int {
	var ks []int
	for j := 1; j <= 10; j++ {
		k := max(1, int(math.Round(float64(j)*float64(T)/10)))
		if len(ks) == 0 || k != ks[len(ks)-1] {
			ks = append(ks, k)
		}
	}
	return ks
}
