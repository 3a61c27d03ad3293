package diffusion

// The bound over a data set: EvaluateBound measures a trained model's negative log-likelihood
// bound on a data set in bits/dim: the full variational bound L (eq. 5) of
// every image, L_T + Σ_{t≥2} L_{t−1} + L_0, with every term computed exactly
// (the Rao-Blackwellised KL between Gaussians) from one draw of x_t per t,
// as the paper and the official calc_bpd_loop do.
//
// The bound needs T network evaluations per image, so its cost is all in the
// U-Net. [Diffusion.EvaluateBound] therefore treats the n·T (image, t) pairs as one long
// list and feeds them to the network in batches of a chosen size: with many
// images a batch is many images at one t (exactly the order of
// [Diffusion.CalcBPDLoop]), with few images it is many t of the same image, so
// every forward pass sees a decent batch either way.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// BoundOptions control [Diffusion.EvaluateBound].
type BoundOptions struct {
	// Batch is the number of (image, t) pairs per network call (≥ 1).
	Batch int
	// Rng draws the noise ε of every x_t. Pairs are visited for i = T−1
	// down to 0 and, within one i, image by image, and each pair draws its D
	// normals in order, so the draws are those of [Diffusion.CalcBPDLoop]
	// with the same generator whatever the batch size.
	Rng *rand.Rand
	// Progress, when set, is called after each network call with the number
	// of pairs done and the total n·T.
	Progress func(done, total int)
	// Visit, when set, is called after each network call, before Progress,
	// with the pairs of that call: for measurements that need the network's
	// output as well as the bound (experiments/rd).
	Visit func(BoundBatch)
}

// BoundBatch is one network call of [Diffusion.EvaluateBound]: pair j is image Img[j] at
// diffusion index T[j]; its x0 and x_t are the D values from j·D of X0 and
// Xt, and Out is the network's output for it; Terms[j] is its term of the
// bound (L_{t−1}, or L_0 at index 0) in bits per model dimension. The
// slices are reused by the next call.
type BoundBatch struct {
	Img, T      []int
	X0, Xt, Out []float32
	Terms       []float64
}

// Bound is the bound of each of N images in bits per model dimension
// (nats / (Dims·ln 2)), the unit of the diffusion package.
type Bound struct {
	N, T int
	Dims int // values per image as the model sees them (C·Res·Res)

	Total []float64 // per image: Prior + Σ_i Terms[b][i], the full bound L
	Prior []float64 // per image: L_T = D_KL(q(x_T | x0) ‖ N(0, I))
	// Terms[b][i] is L_{t−1} of image b at index i = t−1 ≥ 1 and the
	// decoder NLL L_0 = −log p_θ(x0 | x1) at i = 0.
	Terms [][]float64
}

// EvaluateBound computes the bound of the n images x0 (n·D values, each on the
// 256-level grid of [−1, 1], as data.Dataset.ToFloat makes them) under the
// model m and the process d. It returns ctx's error if ctx is cancelled
// between network calls.
func (d *Diffusion) EvaluateBound(ctx context.Context, m Model, x0 []float32, n int, opt BoundOptions) (*Bound, error) {
	switch {
	case n <= 0:
		return nil, fmt.Errorf("bound: need at least one image, got %d", n)
	case len(x0) == 0 || len(x0)%n != 0:
		return nil, fmt.Errorf("bound: %d values are not %d whole images", len(x0), n)
	case opt.Batch <= 0:
		return nil, fmt.Errorf("bound: batch must be positive, got %d", opt.Batch)
	case opt.Rng == nil:
		return nil, errors.New("bound: no random generator")
	}
	D, T := len(x0)/n, d.T
	r := &Bound{N: n, T: T, Dims: D, Total: make([]float64, n), Prior: d.PriorBPD(x0, n), Terms: make([][]float64, n)}
	for b := range r.Terms {
		r.Terms[b] = make([]float64, T)
	}

	total := n * T
	B := min(opt.Batch, total)
	xs := make([]float32, B*D)  // x0 of each pair
	eps := make([]float32, B*D) // its noise
	xt := make([]float32, B*D)
	out := make([]float32, d.OutChannels(1)*B*D)
	t := make([]int, B)
	img := make([]int, B)
	for lo := 0; lo < total; lo += B {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		k := min(B, total-lo)
		for j := range k {
			p := lo + j
			img[j], t[j] = p%n, T-1-p/n
			copy(xs[j*D:(j+1)*D], x0[img[j]*D:(img[j]+1)*D])
		}
		xb, eb, xtb, tb := xs[:k*D], eps[:k*D], xt[:k*D], t[:k]
		FillNormal(eb, opt.Rng)
		d.QSample(xtb, xb, eb, tb)
		ob := out[:d.OutChannels(1)*k*D]
		m.Predict(ob, xtb, tb)
		terms := d.VBTerms(ob, xb, xtb, tb)
		for j, v := range terms {
			r.Terms[img[j]][tb[j]] = v
		}
		if opt.Visit != nil {
			opt.Visit(BoundBatch{Img: img[:k], T: tb, X0: xb, Xt: xtb, Out: ob, Terms: terms})
		}
		if opt.Progress != nil {
			opt.Progress(lo+k, total)
		}
	}
	for b := range n {
		s := r.Prior[b]
		for _, v := range r.Terms[b] {
			s += v
		}
		r.Total[b] = s
	}
	return r, nil
}

// BoundSummary is the mean bound over the images, the figures a report prints.
type BoundSummary struct {
	N              int     `json:"n"`
	TotalBPD       float64 `json:"total_bpd"`        // mean of the per-image bound L
	TotalBPDStderr float64 `json:"total_bpd_stderr"` // standard error of that mean (0 for one image)
	PriorBPD       float64 `json:"prior_bpd"`        // mean L_T
	DecoderBPD     float64 `json:"decoder_bpd"`      // mean L_0
	TermsBPD       float64 `json:"terms_bpd"`        // mean Σ_{t≥2} L_{t−1}: the bound without prior and decoder
	// PerTBPD[i] is the mean over images of the term at t = i+1 (index 0 is
	// the decoder L_0); prior + Σ PerTBPD = total.
	PerTBPD []float64 `json:"per_t_bpd"`
}

// Summary averages r over its images. Every figure is multiplied by
// scale: 1 keeps bits per model dimension; Dims/dataDims turns them into
// bits per data dimension when the images were padded to the model's size.
// Because padding is a fixed function of the image, the bound on the padded
// image, spread over the original dimensions, is still a bound on the
// original image's NLL.
func (r *Bound) Summary(scale float64) BoundSummary {
	s := BoundSummary{N: r.N, PerTBPD: make([]float64, r.T)}
	inv := 1 / float64(r.N)
	for b := range r.N {
		s.TotalBPD += r.Total[b] * inv
		s.PriorBPD += r.Prior[b] * inv
		s.DecoderBPD += r.Terms[b][0] * inv
		for i, v := range r.Terms[b] {
			s.PerTBPD[i] += v * inv
			if i > 0 {
				s.TermsBPD += v * inv
			}
		}
	}
	if r.N > 1 {
		ss := 0.0
		for _, v := range r.Total {
			ss += (v - s.TotalBPD) * (v - s.TotalBPD)
		}
		s.TotalBPDStderr = math.Sqrt(ss / float64(r.N-1) / float64(r.N))
	}
	s.TotalBPD *= scale
	s.TotalBPDStderr *= scale
	s.PriorBPD *= scale
	s.DecoderBPD *= scale
	s.TermsBPD *= scale
	for i := range s.PerTBPD {
		s.PerTBPD[i] *= scale
	}
	return s
}

// MeasureFit measures the Fitted reverse variance ([VarianceFit])
// of the network m on the n held-out images x0, with one x_t draw per image
// and step as [Diffusion.EvaluateBound] makes them (opt as there; a Visit of its own is
// still called). A bin of x̂0 values needs minBin values at a step to be
// fitted on its own. d must describe a network that outputs a mean only.
func (d *Diffusion) MeasureFit(ctx context.Context, m Model, x0 []float32, n, minBin int, opt BoundOptions) (*VarianceFit, error) {
	f, err := d.NewVarianceFitter(minBin)
	if err != nil {
		return nil, err
	}
	visit := opt.Visit
	opt.Visit = func(b BoundBatch) {
		f.Add(b.Out, b.X0, b.Xt, b.T, b.Img)
		if visit != nil {
			visit(b)
		}
	}
	if _, err := d.EvaluateBound(ctx, m, x0, n, opt); err != nil {
		return nil, err
	}
	return f.Fit()
}
