// Package analytic provides diffusion models whose denoiser is exact: the
// posterior mean E[x0 | x_t] of a data distribution simple enough to have it
// in closed form. They stand in for a perfectly trained network wherever a
// result must hold for the true model — tests of samplers and of the
// paper's experiments — and they work under every parameterisation of
// [diffusion.Diffusion], because the prediction x̂0 is converted to the
// network output the process expects (ε, x̂0 or μ̃, and a log-variance for a
// learned Σ).
package analytic

import (
	"errors"
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine/parallel"
)

// Encode writes the network output that predicts xStart (one image of
// len(xt) values at index i) under d's parameterisation into out (len(xt)
// values, or 2·len(xt) for a learned variance): ε = (√(1/ᾱ_t) x_t − x̂0)/
// √(1/ᾱ_t − 1) (eq. 15 inverted), x̂0 itself, or μ̃_t(x_t, x̂0) (eq. 7).
// logVar(j) fills the log-variance channels of a learned Σ.
func Encode(d *diffusion.Diffusion, out, xt, xStart []float32, i int, logVar func(j int) float64) {
	D := len(xt)
	for j := range D {
		x, xs := float64(xt[j]), float64(xStart[j])
		var o float64
		switch d.Mean {
		case diffusion.Eps:
			o = (d.SqrtRecipAlphasCumprod[i]*x - xs) / d.SqrtRecipM1AlphasCumprod[i]
		case diffusion.XStart:
			o = xs
		case diffusion.V: // √ᾱ ε − √(1−ᾱ) x0, ε as for Eps
			eps := (d.SqrtRecipAlphasCumprod[i]*x - xs) / d.SqrtRecipM1AlphasCumprod[i]
			o = d.SqrtAlphasCumprod[i]*eps - d.SqrtOneMinusAlphasCumprod[i]*xs
		case diffusion.XPrev:
			o = d.PosteriorMeanCoef1[i]*xs + d.PosteriorMeanCoef2[i]*x
		}
		out[j] = float32(o)
	}
	if d.Var == diffusion.Learned {
		for j := range D {
			out[D+j] = float32(logVar(j))
		}
	}
}

// reverseLogVar is log Var(x_{t−1} | x_t) of the true reverse process when
// x0 given x_t has variance v0: β̃_t + c₁²·v0 (eq. 7's μ̃ is linear in x0),
// with β̃ replaced by its clipped value at index 0 (where it is 0).
func reverseLogVar(d *diffusion.Diffusion, i int, v0 float64) float64 {
	c := d.PosteriorMeanCoef1[i]
	return math.Log(math.Exp(d.PosteriorLogVarianceClipped[i]) + c*c*max(v0, 0))
}

// predict runs fn(b, xt_b, out_b) for every image of a batch on the worker
// pool, checking the shapes first.
func predict(d *diffusion.Diffusion, out, xt []float32, t []int, fn func(xt, out []float32, i int)) {
	n := len(t)
	if n == 0 || len(xt)%n != 0 {
		panic(fmt.Sprintf("analytic: %d values are not %d images", len(xt), n))
	}
	D := len(xt) / n
	od := d.OutChannels(1) * D
	if len(out) != n*od {
		panic(fmt.Sprintf("analytic: output has %d values, want %d", len(out), n*od))
	}
	for _, i := range t {
		if i < 0 || i >= d.T {
			panic(fmt.Sprintf("analytic: timestep index %d outside [0, %d)", i, d.T))
		}
	}
	parallel.For(n, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			fn(xt[b*D:(b+1)*D], out[b*od:(b+1)*od], t[b])
		}
	})
}

// Points is the data distribution that puts probability w_k on each of K
// images a_k. Its exact denoiser
//
//	E[x0 | x_t] = Σ_k π_k(x_t) a_k,  π_k ∝ w_k exp(−‖x_t − √ᾱ_t a_k‖²/(2(1−ᾱ_t))),
//
// is what a network minimising L_simple on a training set of these images
// converges to (a memorising model): its samples are the training images.
// For a learned variance it outputs the exact per-value variance of the
// reverse step, log(β̃_t + c₁² Var[x0 | x_t]).
type Points struct {
	D   *diffusion.Diffusion
	X   []float32 // the K images, Dim values each
	K   int
	Dim int
	// LogW[k] is log w_k (normalised).
	LogW []float64
}

// NewPoints is the distribution over the k images in x with the given
// weights (nil: uniform; otherwise k positive values, normalised here).
func NewPoints(d *diffusion.Diffusion, x []float32, k int, weights []float64) (*Points, error) {
	if k <= 0 || len(x) == 0 || len(x)%k != 0 {
		return nil, fmt.Errorf("analytic: %d values are not %d images", len(x), k)
	}
	p := &Points{D: d, X: x, K: k, Dim: len(x) / k, LogW: make([]float64, k)}
	if weights == nil {
		for j := range p.LogW {
			p.LogW[j] = -math.Log(float64(k))
		}
		return p, nil
	}
	if len(weights) != k {
		return nil, fmt.Errorf("analytic: %d weights for %d images", len(weights), k)
	}
	sum := 0.0
	for _, w := range weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, errors.New("analytic: weights must be positive and finite")
		}
		sum += w
	}
	for j, w := range weights {
		p.LogW[j] = math.Log(w / sum)
	}
	return p, nil
}

// Posterior returns π_k(x_t), the probability of each image given the one
// image xt (Dim values) at index i.
func (p *Points) Posterior(xt []float32, i int) []float64 {
	d := p.D
	sa, v := d.SqrtAlphasCumprod[i], 1-d.AlphasCumprod[i]
	lp := make([]float64, p.K)
	best := math.Inf(-1)
	for k := range lp {
		a := p.X[k*p.Dim : (k+1)*p.Dim]
		s := 0.0
		for j, x := range xt {
			e := float64(x) - sa*float64(a[j])
			s += e * e
		}
		lp[k] = p.LogW[k] - s/(2*v)
		best = max(best, lp[k])
	}
	sum := 0.0
	for k := range lp {
		lp[k] = math.Exp(lp[k] - best)
		sum += lp[k]
	}
	for k := range lp {
		lp[k] /= sum
	}
	return lp
}

// XStart writes E[x0 | x_t] of the one image xt into dst and, when v is not
// nil, the posterior variance Var[x0 | x_t] of each value into v.
func (p *Points) XStart(dst []float32, v []float64, xt []float32, i int) {
	pi := p.Posterior(xt, i)
	for j := range dst {
		var m, m2 float64
		for k, w := range pi {
			a := float64(p.X[k*p.Dim+j])
			m += w * a
			m2 += w * a * a
		}
		dst[j] = float32(m)
		if v != nil {
			v[j] = m2 - m*m
		}
	}
}

// Predict implements [diffusion.Model].
func (p *Points) Predict(out, xt []float32, t []int) {
	predict(p.D, out, xt, t, func(x, o []float32, i int) {
		if len(x) != p.Dim {
			panic(fmt.Sprintf("analytic: images of %d values, the points have %d", len(x), p.Dim))
		}
		xs := make([]float32, len(x))
		v := make([]float64, len(x))
		p.XStart(xs, v, x, i)
		Encode(p.D, o, x, xs, i, func(j int) float64 { return reverseLogVar(p.D, i, v[j]) })
	})
}

// Gaussian is the data distribution with every value independently
// N(Mean, Std²). Everything about it is Gaussian: q(x_t) = N(√ᾱ_t Mean,
// ᾱ_t Std² + 1 − ᾱ_t), E[x0 | x_t] = Mean + √ᾱ_t Std²·(x_t − √ᾱ_t Mean)/
// (ᾱ_t Std² + 1 − ᾱ_t), and with a learned variance the model is the exact
// reverse process (its log-variance channels hold log Var[x_{t−1} | x_t]).
type Gaussian struct {
	D         *diffusion.Diffusion
	Mean, Std float64
}

// XStartVar returns E[x0 | x_t] for one value x at index i and Var[x0 | x_t].
func (g *Gaussian) XStartVar(x float64, i int) (mean, variance float64) {
	ab := g.D.AlphasCumprod[i]
	s2 := g.Std * g.Std
	den := ab*s2 + 1 - ab
	return g.Mean + math.Sqrt(ab)*s2*(x-math.Sqrt(ab)*g.Mean)/den, s2 * (1 - ab) / den
}

// Predict implements [diffusion.Model].
func (g *Gaussian) Predict(out, xt []float32, t []int) {
	predict(g.D, out, xt, t, func(x, o []float32, i int) {
		xs := make([]float32, len(x))
		_, v := g.XStartVar(0, i)
		for j, xv := range x {
			m, _ := g.XStartVar(float64(xv), i)
			xs[j] = float32(m)
		}
		lv := reverseLogVar(g.D, i, v)
		Encode(g.D, o, x, xs, i, func(int) float64 { return lv })
	})
}
