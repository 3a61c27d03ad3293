// Package progressive is the paper's progressive generation (Section 4.3,
// Figure 6) and its samples that share a latent (Figure 7).
//
// Figure 6 runs Algorithm 2 and shows, at evenly spaced reverse steps, the
// model's current estimate of the final image, x̂0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t
// (eq. 15): large-scale structure appears first and details last.
// Figure 7 fixes one x_t and draws several x0 ~ p_θ(x0 | x_t) from it: when
// t is large the samples share little; as t falls they share more and more
// of their attributes.
package progressive

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Columns returns the diffusion indices of cols evenly spaced reverse steps
// k = round(c·T/cols), c = 1..cols, in the order the chain reaches them
// (descending index i = T − k): the last column is i = 0, the final step.
func Columns(T, cols int) ([]int, error) {
	if cols < 1 || cols > T {
		return nil, fmt.Errorf("progressive: %d columns out of range 1..%d (T)", cols, T)
	}
	idx := make([]int, cols)
	for c := range idx {
		k := int(math.Round(float64(c+1) * float64(T) / float64(cols)))
		idx[c] = T - k
	}
	return idx, nil
}

// Chain is what Run records: for each recorded index (in Record's order)
// the n images of x̂0 and of x_t at that step, and the final samples.
type Chain struct {
	Record []int
	XStart [][]float32
	Xt     [][]float32
	Final  []float32
}

// Run runs Algorithm 2 on the n images of xT (x_T; they are not modified)
// and records x̂0 (clipped when d clips) and x_t at each index in record
// (each in [0, T), distinct). h.Progress counts the T steps; h.Observe
// sees every step, recorded or not (a live view). It stops between steps
// once ctx is done, returning ctx.Err().
func Run(ctx context.Context, d *diffusion.Diffusion, m diffusion.Model, xT []float32, n int, record []int, rng *rand.Rand, h diffusion.Hooks) (*Chain, error) {
	if n <= 0 || len(xT) == 0 || len(xT)%n != 0 {
		return nil, fmt.Errorf("progressive: %d values are not %d images", len(xT), n)
	}
	pos := map[int]int{}
	for c, i := range record {
		if i < 0 || i >= d.T {
			return nil, fmt.Errorf("progressive: index %d outside [0, %d)", i, d.T)
		}
		if _, dup := pos[i]; dup {
			return nil, fmt.Errorf("progressive: index %d recorded twice", i)
		}
		pos[i] = c
	}
	ch := &Chain{Record: slices.Clone(record), XStart: make([][]float32, len(record)), Xt: make([][]float32, len(record))}
	x := slices.Clone(xT)
	err := d.SampleFrom(ctx, m, x, n, d.T-1, rng, diffusion.Hooks{Progress: h.Progress, Observe: func(i int, xt, xs []float32) {
		if c, ok := pos[i]; ok {
			ch.XStart[c] = slices.Clone(xs)
			ch.Xt[c] = slices.Clone(xt)
		}
		if h.Observe != nil {
			h.Observe(i, xt, xs)
		}
	}})
	if err != nil {
		return nil, err
	}
	ch.Final = x
	return ch, nil
}

// SharedIndices are the diffusion indices of Figure 7's rows, t = 1000,
// 750, 500 and 250 for T = 1000: t = T·(4−r)/4.
func SharedIndices(T int) []int {
	var idx []int
	for r := range 4 {
		t := max(1, int(math.Round(float64(T)*float64(4-r)/4)))
		if len(idx) == 0 || t-1 != idx[len(idx)-1] {
			idx = append(idx, t-1)
		}
	}
	return idx
}

// Encode returns x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε of the one image x0 at every
// index of idx, with the same noise ε (len(x0) values) for all of them: the
// latents of a data image.
func Encode(d *diffusion.Diffusion, x0, eps []float32, idx []int) [][]float32 {
	out := make([][]float32, len(idx))
	for r, i := range idx {
		out[r] = d.QSample(nil, x0, eps, []int{i})
	}
	return out
}

// ChainLatents runs one sampling chain from the one image xT and returns
// its x_t at every index of idx (in idx's order) and its final sample: the
// latents of a generated image. h watches the chain as in [Run].
func ChainLatents(ctx context.Context, d *diffusion.Diffusion, m diffusion.Model, xT []float32, idx []int, rng *rand.Rand, h diffusion.Hooks) ([][]float32, []float32, error) {
	ch, err := Run(ctx, d, m, xT, 1, idx, rng, h)
	if err != nil {
		return nil, nil, err
	}
	return ch.Xt, ch.Final, nil
}

// Shared draws per samples x0 ~ p_θ(x0 | x_t) for each latent: latents[r]
// is one image x_t at index idx[r], and row r of the result holds per
// images decoded from it by Algorithm 2 with independent noise.
// h.Progress counts the Σ_r (idx[r]+1) reverse steps; h.Observe sees each
// step of each row's per chains. It stops between steps once ctx is done,
// returning ctx.Err().
func Shared(ctx context.Context, d *diffusion.Diffusion, m diffusion.Model, latents [][]float32, idx []int, per int, rng *rand.Rand, h diffusion.Hooks) ([][]float32, error) {
	if len(latents) != len(idx) {
		return nil, fmt.Errorf("progressive: %d latents for %d indices", len(latents), len(idx))
	}
	if per < 1 {
		return nil, fmt.Errorf("progressive: %d samples per latent", per)
	}
	total := 0
	for _, i := range idx {
		if i < 0 || i >= d.T {
			return nil, fmt.Errorf("progressive: index %d outside [0, %d)", i, d.T)
		}
		total += i + 1
	}
	rows := make([][]float32, len(idx))
	done := 0
	for r, i := range idx {
		D := len(latents[r])
		x := make([]float32, per*D)
		for s := range per {
			copy(x[s*D:], latents[r])
		}
		err := d.SampleFrom(ctx, m, x, per, i, rng, diffusion.Hooks{Observe: h.Observe, Progress: func(step, _ int) {
			if h.Progress != nil {
				h.Progress(done+step, total)
			}
		}})
		if err != nil {
			return nil, err
		}
		done += i + 1
		rows[r] = x
	}
	return rows, nil
}

// PixelVariance is the variance across the n images of x of each value,
// averaged over values: how much samples differ.
func PixelVariance(x []float32, n int) float64 {
	D := len(x) / n
	s := 0.0
	for j := range D {
		var m, m2 float64
		for b := range n {
			v := float64(x[b*D+j])
			m += v
			m2 += v * v
		}
		m /= float64(n)
		s += m2/float64(n) - m*m
	}
	return s / float64(D)
}
