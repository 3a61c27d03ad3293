// Package autoregressive checks eq. 16 of the paper numerically: the
// variational bound (eq. 5), a sum over the forward posteriors
// q(x_{t−1} | x_t, x0), can be rewritten with the reverse conditionals of
// the forward process q(x_{t−1} | x_t) as
//
//	L = D_KL(q(x_T) ‖ p(x_T)) + Σ_{t≥1} E_q D_KL(q(x_{t−1} | x_t) ‖ p_θ(x_{t−1} | x_t)) + H(x0),   (16)
//
// the form of an autoregressive model's loss: training the reverse process
// fits each conditional of a fixed "generalised bit ordering" of the data,
// and L − H(x0) is the model's total error. With T = D and a masking forward
// process the same identity is exactly an autoregressive model.
//
// Both sides are evaluated here for one-dimensional data on a few points
// (x0 = a_k with probability w_k, on the 256-level grid), where q(x_t) is a
// Gaussian mixture and every expectation is a one-dimensional integral: the
// outer ones over x_t by Simpson's rule on a fine grid around each mixture
// component, the entropy of the mixture q(x_{t−1} | x_t) by Gauss–Hermite
// quadrature, the rest (KLs between Gaussians, cross-entropies of a mixture
// and a Gaussian, the discretised decoder) in closed form. Eq. 5 and eq. 16
// then agree to the accuracy of the integration for any reverse model,
// exact or not.
package autoregressive

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"gonum.org/v1/gonum/integrate/quad"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/engine/parallel"
)

// Mixture is the data distribution: x0 = Points[k] with probability
// Weights[k] (normalised by Validate).
type Mixture struct {
	Points  []float64
	Weights []float64
}

// FromLevels is the mixture on the pixel levels (0..255, mapped to
// p/127.5 − 1) with the given weights.
func FromLevels(levels []int, weights []float64) (Mixture, error) {
	m := Mixture{Points: make([]float64, len(levels)), Weights: append([]float64(nil), weights...)}
	for k, p := range levels {
		if p < 0 || p > 255 {
			return Mixture{}, fmt.Errorf("autoregressive: pixel level %d outside 0..255", p)
		}
		m.Points[k] = float64(p)/127.5 - 1
	}
	return m, m.Validate()
}

// Validate checks the mixture: at least one point, each in [−1, 1] and on
// the 256-level grid (the decoder's bins), no point twice, positive finite
// weights, one per point. It normalises the weights.
func (m Mixture) Validate() error {
	if len(m.Points) == 0 {
		return errors.New("autoregressive: no data points")
	}
	if len(m.Weights) != len(m.Points) {
		return fmt.Errorf("autoregressive: %d weights for %d points", len(m.Weights), len(m.Points))
	}
	seen := map[float64]bool{}
	sum := 0.0
	for k, a := range m.Points {
		lv := (a + 1) * 127.5
		if !(a >= -1 && a <= 1) || math.Abs(lv-math.Round(lv)) > 1e-9 {
			return fmt.Errorf("autoregressive: point %g is not one of the 256 levels of [−1, 1]", a)
		}
		if seen[math.Round(lv)] {
			return fmt.Errorf("autoregressive: point %g given twice", a)
		}
		seen[math.Round(lv)] = true
		w := m.Weights[k]
		if !(w > 0) || math.IsInf(w, 0) {
			return fmt.Errorf("autoregressive: weight %g is not positive and finite", w)
		}
		sum += w
	}
	for k := range m.Weights {
		m.Weights[k] /= sum
	}
	return nil
}

// Entropy is H(x0) = −Σ w_k log w_k in nats.
func (m Mixture) Entropy() float64 {
	h := 0.0
	for _, w := range m.Weights {
		h -= w * math.Log(w)
	}
	return h
}

// posterior fills pi with π_k(x) = P(x0 = a_k | x_t = x) at index i.
func (m Mixture) posterior(s *diffusion.Schedule, x float64, i int, pi []float64) {
	sa, v := s.SqrtAlphasCumprod[i], 1-s.AlphasCumprod[i]
	best := math.Inf(-1)
	for k, a := range m.Points {
		e := x - sa*a
		pi[k] = math.Log(m.Weights[k]) - e*e/(2*v)
		best = max(best, pi[k])
	}
	sum := 0.0
	for k := range pi {
		pi[k] = math.Exp(pi[k] - best)
		sum += pi[k]
	}
	for k := range pi {
		pi[k] /= sum
	}
}

// Predictor is a reverse model's x̂0 at x_t = x, index i.
type Predictor func(x float64, i int) float64

// Exact is the predictor E[x0 | x_t] of the mixture: the minimiser of
// L_simple, a perfectly trained network.
func (m Mixture) Exact(s *diffusion.Schedule) Predictor {
	return func(x float64, i int) float64 {
		var buf [16]float64
		pi := buf[:0]
		if len(m.Points) > len(buf) {
			pi = make([]float64, len(m.Points))
		}
		pi = pi[:len(m.Points)]
		m.posterior(s, x, i, pi)
		xs := 0.0
		for k, a := range m.Points {
			xs += pi[k] * a
		}
		return xs
	}
}

// Options set the integration's resolution.
type Options struct {
	// Grid is the number of Simpson points per mixture component for the
	// integrals over x_t (odd; default 241), spanning ±9 standard
	// deviations of the component.
	Grid int
	// Nodes is the number of Gauss–Hermite nodes per component for the
	// mixture entropies (default 16).
	Nodes int
	// Progress, when set, is called after each of the T timesteps with the
	// number done (never concurrently, though from worker goroutines).
	Progress func(done, total int)
}

// Result holds both sides of the identity, in nats (the data are 1-D, so
// nats per dimension; divide by ln 2 for bits).
type Result struct {
	T int
	// Eq5Terms[i] is E_q L_{t−1} = E D_KL(q(x_{t−1} | x_t, x0) ‖
	// p_θ(x_{t−1} | x_t)) for t = i+1 ≥ 2 and the decoder
	// E[−log p_θ(x0 | x1)] at i = 0; Eq5Prior is L_T.
	Eq5Terms []float64
	Eq5Prior float64
	Eq5Total float64
	// Eq16Terms[i] is E_{q(x_t)} D_KL(q(x_{t−1} | x_t) ‖ p_θ(x_{t−1} | x_t))
	// for t = i+1 (at i = 0 between the discrete q(x0 | x1) and the
	// discretised decoder); Eq16Prior is D_KL(q(x_T) ‖ N(0, 1)) and Entropy
	// H(x0).
	Eq16Terms []float64
	Eq16Prior float64
	Entropy   float64
	Eq16Total float64
}

// Bound evaluates eq. 5 and eq. 16 for the data mix and the reverse model
// p_θ(x_{t−1} | x_t) = N(μ̃_t(x_t, x̂0), σ_t²) with x̂0 = pred(x_t, t)
// (clipped to [−1, 1] when d clips) and σ_t² d's fixed variance; at t = 1
// the discretised decoder of eq. 13 with that mean and variance. A learned
// variance has no network here to come from and is an error.
func Bound(d *diffusion.Diffusion, mix Mixture, pred Predictor, opt Options) (*Result, error) {
	if err := mix.Validate(); err != nil {
		return nil, err
	}
	if d.Var == diffusion.Learned {
		return nil, errors.New("autoregressive: needs a fixed variance (fixedlarge or fixedsmall), not learned")
	}
	if opt.Grid == 0 {
		opt.Grid = 241
	}
	if opt.Nodes == 0 {
		opt.Nodes = 16
	}
	if opt.Grid < 5 || opt.Grid%2 == 0 {
		return nil, fmt.Errorf("autoregressive: grid of %d points, need an odd number ≥ 5", opt.Grid)
	}
	if opt.Nodes < 2 {
		return nil, fmt.Errorf("autoregressive: %d Gauss–Hermite nodes, need ≥ 2", opt.Nodes)
	}
	z, zw := simpsonNormal(opt.Grid, 9)
	u, uw := hermiteNormal(opt.Nodes)
	T := d.T
	r := &Result{T: T, Eq5Terms: make([]float64, T), Eq16Terms: make([]float64, T), Entropy: mix.Entropy()}
	K := len(mix.Points)

	// model returns μ_θ and log σ² at x_t = x, index i.
	model := func(x float64, i int) (mu, lv float64) {
		xs := pred(x, i)
		if d.Clip {
			xs = max(-1, min(1, xs))
		}
		return d.PosteriorMeanCoef1[i]*xs + d.PosteriorMeanCoef2[i]*x, d.FixedLogVariance(i)
	}
	// overComponent integrates f(x) over x ~ N(√ᾱ_i a_k, 1−ᾱ_i).
	overComponent := func(k, i int, f func(x float64) float64) float64 {
		m, s := d.SqrtAlphasCumprod[i]*mix.Points[k], d.SqrtOneMinusAlphasCumprod[i]
		sum := 0.0
		for j, zj := range z {
			sum += zw[j] * f(m+s*zj)
		}
		return sum
	}

	var mu sync.Mutex
	done := 0
	parallel.For(T, func(lo, hi int) {
		pi := make([]float64, K)
		mt := make([]float64, K)
		for i := lo; i < hi; i++ {
			var e5, e16 float64
			for k, a := range mix.Points {
				wk := mix.Weights[k]
				// Eq. 5: x0 = a_k, x_t ~ q(x_t | x0).
				e5 += wk * overComponent(k, i, func(x float64) float64 {
					mu, lv := model(x, i)
					if i == 0 {
						return -diffusion.DiscretizedGaussianLogLikelihood(a, mu, 0.5*lv)
					}
					mq := d.PosteriorMeanCoef1[i]*a + d.PosteriorMeanCoef2[i]*x
					return diffusion.NormalKL(mq, d.PosteriorLogVarianceClipped[i], mu, lv)
				})
				// Eq. 16: x_t ~ q(x_t), the mixture, one component at a time.
				e16 += wk * overComponent(k, i, func(x float64) float64 {
					mix.posterior(d.Schedule, x, i, pi)
					mu, lv := model(x, i)
					if i == 0 {
						kl := 0.0
						for j, p := range pi {
							if p > 0 {
								kl += p * (math.Log(p) - diffusion.DiscretizedGaussianLogLikelihood(mix.Points[j], mu, 0.5*lv))
							}
						}
						return kl
					}
					v := d.PosteriorVariance[i]
					// Cross-entropy of the mixture q(x_{t−1}|x_t) = Σ π_j N(μ̃_j, v)
					// with N(μ, σ²), in closed form.
					second := v
					for j, p := range pi {
						mt[j] = d.PosteriorMeanCoef1[i]*mix.Points[j] + d.PosteriorMeanCoef2[i]*x
						second += p * (mt[j] - mu) * (mt[j] - mu)
					}
					ce := 0.5*(math.Log(2*math.Pi)+lv) + second/(2*math.Exp(lv))
					return ce - mixtureEntropy(pi, mt, v, u, uw)
				})
			}
			r.Eq5Terms[i], r.Eq16Terms[i] = e5, e16
			if opt.Progress != nil {
				mu.Lock()
				done++
				opt.Progress(done, T)
				mu.Unlock()
			}
		}
	})

	last := T - 1
	for k, a := range mix.Points {
		wk := mix.Weights[k]
		r.Eq5Prior += wk * diffusion.NormalKL(d.SqrtAlphasCumprod[last]*a, d.LogOneMinusAlphasCumprod[last], 0, 0)
		r.Eq16Prior += wk * overComponent(k, last, func(x float64) float64 {
			return logMixtureDensity(mix, d, last, x) + 0.5*(math.Log(2*math.Pi)+x*x)
		})
	}
	r.Eq5Total, r.Eq16Total = r.Eq5Prior, r.Eq16Prior+r.Entropy
	for i := range T {
		r.Eq5Total += r.Eq5Terms[i]
		r.Eq16Total += r.Eq16Terms[i]
	}
	return r, nil
}

// logMixtureDensity is log q(x_t = x) at index i.
func logMixtureDensity(mix Mixture, d *diffusion.Diffusion, i int, x float64) float64 {
	sa, v := d.SqrtAlphasCumprod[i], 1-d.AlphasCumprod[i]
	best := math.Inf(-1)
	l := make([]float64, len(mix.Points))
	for k, a := range mix.Points {
		e := x - sa*a
		l[k] = math.Log(mix.Weights[k]) - e*e/(2*v)
		best = max(best, l[k])
	}
	s := 0.0
	for _, v := range l {
		s += math.Exp(v - best)
	}
	return best + math.Log(s) - 0.5*math.Log(2*math.Pi*v)
}

// negligible is the posterior weight below which a mixture component is
// left out of the entropy (its share of it is below 1e-16 nats).
const negligible = 1e-18

// mixtureEntropy is H of Σ_j pi[j] N(m[j], v) by Gauss–Hermite quadrature
// around each component: −Σ_k π_k E_{N(m_k, v)} log q(y).
func mixtureEntropy(pi, m []float64, v float64, u, uw []float64) float64 {
	s := math.Sqrt(v)
	umax := u[len(u)-1]
	var near [16]int
	h := 0.0
	for k, pk := range pi {
		if pk < negligible {
			continue
		}
		others := near[:0]
		for j, pj := range pi {
			if j == k || pj < negligible {
				continue
			}
			// Component j's term relative to k's at node u is
			// (π_j/π_k)·exp(−Δ²/2 − Δu), Δ = (m_k − m_j)/s: below e⁻⁴⁰
			// at every node, it cannot change log(sum) in float64.
			dl := math.Abs(m[k]-m[j]) / s
			if math.Log(pj/pk)-(0.5*dl*dl-dl*umax) > -40 {
				others = append(others, j)
			}
		}
		e := math.Log(pk) - 0.5 // E[−u²/2] = −1/2, exact for Gauss–Hermite
		if len(others) > 0 {
			e = 0
			for n, un := range u {
				y := m[k] + s*un
				// log q(y) + ½log(2πv) = log Σ_j π_j exp(−(y−m_j)²/(2v)),
				// taken relative to component k's exponent for stability.
				ek := -0.5 * un * un
				sum := pk
				for _, j := range others {
					dj := y - m[j]
					sum += pi[j] * math.Exp(-dj*dj/(2*v)-ek)
				}
				e += uw[n] * (ek + math.Log(sum))
			}
		}
		h -= pk * e
	}
	return h + 0.5*math.Log(2*math.Pi*v)
}

// simpsonNormal returns nodes z on [−L, L] and weights such that Σ w f(z)
// ≈ E_{N(0,1)} f: Simpson's rule times the normal density, renormalised to
// sum to one (the mass beyond ±L is below 1e-18 for L = 9).
func simpsonNormal(n int, L float64) (z, w []float64) {
	z, w = make([]float64, n), make([]float64, n)
	h := 2 * L / float64(n-1)
	sum := 0.0
	for j := range z {
		z[j] = -L + float64(j)*h
		c := 2.0
		switch {
		case j == 0 || j == n-1:
			c = 1
		case j%2 == 1:
			c = 4
		}
		w[j] = c * h / 3 * math.Exp(-0.5*z[j]*z[j]) / math.Sqrt(2*math.Pi)
		sum += w[j]
	}
	for j := range w {
		w[j] /= sum
	}
	return z, w
}

// hermiteNormal returns n Gauss–Hermite nodes and weights for
// E_{N(0,1)} f = Σ w f(u): gonum's rule for ∫ e^{−x²} f(x) dx with
// u = √2 x and weights divided by √π.
func hermiteNormal(n int) (u, w []float64) {
	u, w = make([]float64, n), make([]float64, n)
	quad.Hermite{}.FixedLocations(u, w, math.Inf(-1), math.Inf(1))
	for j := range u {
		u[j] *= math.Sqrt2
		w[j] /= math.Sqrt(math.Pi)
	}
	return u, w
}
