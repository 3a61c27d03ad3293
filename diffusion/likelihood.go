package diffusion

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// decoderEdge: values beyond ±decoderEdge are the first/last bin, which
// extends to ∓∞ (eq. 13; the official code's ±0.999 thresholds).
const decoderEdge = 0.999

// NormalKL is D_KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats for one
// dimension: ½(−1 + logvar2 − logvar1 + e^{logvar1−logvar2} +
// (mean1−mean2)² e^{−logvar2}). Every KL of the bound (eq. 5) is a sum of these.
func NormalKL(mean1, logvar1, mean2, logvar2 float64) float64 {
	d := mean1 - mean2
	return 0.5 * (-1 + logvar2 - logvar1 + math.Exp(logvar1-logvar2) + d*d*math.Exp(-logvar2))
}

// normalKLGrad is NormalKL with its partial derivatives w.r.t. mean2 and
// logvar2.
func normalKLGrad(mean1, logvar1, mean2, logvar2 float64) (kl, dMean2, dLogvar2 float64) {
	d := mean2 - mean1
	iv := math.Exp(-logvar2)
	r := math.Exp(logvar1 - logvar2)
	kl = 0.5 * (-1 + logvar2 - logvar1 + r + d*d*iv)
	return kl, d * iv, 0.5 * (1 - r - d*d*iv)
}

// StandardNormalCDF is the exact Φ(x) = ½ erfc(−x/√2).
func StandardNormalCDF(x float64) float64 {
	return 0.5 * math.Erfc(-x/math.Sqrt2)
}

// DiscretizedGaussianLogLikelihood is log p(x) of the discretised decoder
// (eq. 13) for one value x ∈ {−1, −1+2/255, …, 1}: the log of the mass of
// N(mean, e^{2·logScale}) on x's bin [x − 1/255, x + 1/255], where the
// first bin (x < −0.999) extends to −∞ and the last (x > 0.999) to +∞. x is
// snapped to the nearest of the 256 levels and the bin edges are computed
// from the level number, so the bins partition the line exactly even for
// float32 inputs. The mass is computed from the tail nearer the bin (no
// cancellation) and its log stays exact far into the tails
// ([logBinMass]). The official code clamps the mass at 1e-12 before the
// log, which understates the bound wherever the mass is smaller; the bound
// here is not clamped (training losses keep the clamp: trainDecoderCap).
func DiscretizedGaussianLogLikelihood(x, mean, logScale float64) float64 {
	a, b := decoderBin(x, mean, logScale)
	return logBinMass(a, b)
}

// decoderBin is x's bin of eq. 13 in standard units of N(mean,
// e^{2·logScale}): its edges a < b, ∓∞ for the first and last bins.
func decoderBin(x, mean, logScale float64) (a, b float64) {
	inv := math.Exp(-logScale)
	level := math.Round((x + 1) * 127.5)
	a = ((level-0.5)/127.5 - 1 - mean) * inv
	b = ((level+0.5)/127.5 - 1 - mean) * inv
	if x < -decoderEdge {
		a = math.Inf(-1)
	}
	if x > decoderEdge {
		b = math.Inf(1)
	}
	return a, b
}

// logBinMass is log(Φ(b) − Φ(a)) for a < b (either may be infinite),
// accurate when the mass underflows float64: a bin in a tail is a difference
// of that tail's log-probabilities.
func logBinMass(a, b float64) float64 {
	switch {
	case a > 0: // upper tail: Q(a) − Q(b)
		la := logUpperTail(a)
		if math.IsInf(b, 1) {
			return la
		}
		return la + math.Log1p(-math.Exp(logUpperTail(b)-la))
	case b < 0: // lower tail, by symmetry
		return logBinMass(-b, -a)
	}
	// the bin holds the mean: erf is accurate near 0 and the mass is not small
	return math.Log(0.5 * (math.Erf(b/math.Sqrt2) - math.Erf(a/math.Sqrt2)))
}

// logUpperTail is log Q(z) = log P(Z > z) for z ≥ 0: from erfc while it
// holds (Q(35) ≈ 1e-268), then the asymptotic series
// Q(z) = φ(z)/z·(1 − 1/z² + 3/z⁴ − 15/z⁶ + …), whose next term is below
// 1e-10 there.
func logUpperTail(z float64) float64 {
	if z < 35 {
		return math.Log(0.5 * math.Erfc(z/math.Sqrt2))
	}
	w := 1 / (z * z)
	return -0.5/w - math.Log(z) - 0.5*math.Log(2*math.Pi) + math.Log1p(w*(-1+w*(3-15*w)))
}

// discretizedGaussianLogLikelihoodGrad is DiscretizedGaussianLogLikelihood
// with its partial derivatives w.r.t. mean and logScale: with p the bin's
// mass and a, b its standardised edges, ∂log p/∂mean = (φ(a) − φ(b))/(σp)
// and ∂log p/∂logScale = (aφ(a) − bφ(b))/p, each ratio φ/p taken in logs so
// that it holds where p underflows.
func discretizedGaussianLogLikelihoodGrad(x, mean, logScale float64) (lp, dMean, dLogScale float64) {
	a, b := decoderBin(x, mean, logScale)
	lp = logBinMass(a, b)
	ratio := func(z float64) (r, zr float64) { // φ(z)/p and z·φ(z)/p, 0 at an infinite edge
		if math.IsInf(z, 0) {
			return 0, 0
		}
		r = math.Exp(-0.5*z*z - 0.5*math.Log(2*math.Pi) - lp)
		return r, z * r
	}
	ra, zra := ratio(a)
	rb, zrb := ratio(b)
	return lp, (ra - rb) * math.Exp(-logScale), zra - zrb
}

// PriorBPD is L_T = D_KL(q(x_T | x0) ‖ N(0, I)) (eq. 5) per image of the n
// in x0, in bits/dim. It is not trained and ≈ 1e-5 bits/dim for the default
// schedule.
func (d *Diffusion) PriorBPD(x0 []float32, n int) []float64 {
	D := imageDim(x0, n, "x0")
	last := d.T - 1
	m, lv := d.SqrtAlphasCumprod[last], d.LogOneMinusAlphasCumprod[last]
	out := make([]float64, n)
	forImages(n, func(b int) {
		s := 0.0
		for _, v := range x0[b*D : (b+1)*D] {
			s += NormalKL(m*float64(v), lv, 0, 0)
		}
		out[b] = s / (float64(D) * math.Ln2)
	})
	return out
}

// DecoderBPDAtData is the decoder term L_0 (eq. 13) that each of the n
// images in x0 would score if the network's mean μ_θ(x_1, 1) were x0
// itself, in bits/dim: what the fixed (or fitted) σ_1 alone costs. It is not a lower
// bound (a mean pushed past ±1 puts more mass into an edge bin), but it is
// the yardstick for a measured L_0: the difference is what the network's x̂0
// at t = 1 gets wrong. NaN with a learned variance, which has no fixed σ_1.
// A fitted σ_1 is the one of the bin x0 itself falls in.
func (d *Diffusion) DecoderBPDAtData(x0 []float32, n int) []float64 {
	D := imageDim(x0, n, "x0")
	lv := d.FixedLogVariance(0)
	out := make([]float64, n)
	forImages(n, func(b int) {
		s := 0.0
		for _, v := range x0[b*D : (b+1)*D] {
			x := float64(v)
			s -= DiscretizedGaussianLogLikelihood(x, x, 0.5*d.logVarianceAt(0, lv, x))
		}
		out[b] = s / (float64(D) * math.Ln2)
	})
	return out
}

// trainDecoderCap is −log 1e-12: training losses clamp the decoder's bin
// mass at 1e-12 (value capped, gradient 0) as the official code does, so
// that the VLB and hybrid objectives train as there. The bound itself is
// exact.
var trainDecoderCap = -math.Log(1e-12)

// vbTerm is one dimension of the bound term at index i, in nats, with its
// partial derivatives w.r.t. the model mean μ and log-variance v: for i ≥ 1
// L_{t−1} = D_KL(q(x_{t−1} | x_t, x0) ‖ N(μ, e^v)) (eqs. 5–7), for i = 0 the
// decoder NLL −log p_θ(x0 | x1) (eq. 13) with scale e^{v/2}.
func (d *Diffusion) vbTerm(i int, x0, xt, mu, v float64) (nats, dMu, dV float64) {
	if i == 0 {
		lp, gm, gs := discretizedGaussianLogLikelihoodGrad(x0, mu, 0.5*v)
		return -lp, -gm, -0.5 * gs
	}
	return normalKLGrad(d.posteriorMean(i, x0, xt), d.PosteriorLogVarianceClipped[i], mu, v)
}

// vbImage is the bits/dim bound term of one image at index i from its model
// output (om: mean part, ov: log-variance part or nil), with the mean squared
// errors of x̂0 against x0 and of the implied ε against eps (when eps != nil).
func (d *Diffusion) vbImage(i int, om, ov, x0, xt, eps []float32, clip bool) (bpd, xStartMSE, epsMSE float64) {
	lv := d.FixedLogVariance(i)
	var s, sx, se float64
	for j := range x0 {
		x := float64(xt[j])
		mu, xs := d.meanFromOutput(i, float64(om[j]), x, clip)
		v := d.logVarianceAt(i, lv, xs)
		if ov != nil {
			v = float64(ov[j])
		}
		nats, _, _ := d.vbTerm(i, float64(x0[j]), x, mu, v)
		s += nats
		e := xs - float64(x0[j])
		sx += e * e
		if eps != nil {
			ee := (d.SqrtRecipAlphasCumprod[i]*x-xs)/d.SqrtRecipM1AlphasCumprod[i] - float64(eps[j])
			se += ee * ee
		}
	}
	D := float64(len(x0))
	return s / (D * math.Ln2), sx / D, se / D
}

// VBTerms is the bound term of each image at its index t[b], in bits/dim
// (mean over dimensions / ln 2): L_{t−1} = D_KL(q(x_{t−1} | x_t, x0) ‖
// p_θ(x_{t−1} | x_t)) for t > 1 (eqs. 5–7) and the decoder NLL
// L_0 = −log p_θ(x0 | x1) at index 0 (eq. 13), given the model output at x_t.
// x̂0 is clipped when d.Clip.
func (d *Diffusion) VBTerms(modelOut, x0, xt []float32, t []int) []float64 {
	sameLen(x0, xt, "VBTerms x0/xt")
	n := len(t)
	D := imageDim(x0, n, "x0")
	d.checkOut(modelOut, n, D)
	d.checkT(t)
	out := make([]float64, n)
	forImages(n, func(b int) {
		om, ov := d.splitOut(modelOut, b, D)
		r := b * D
		out[b], _, _ = d.vbImage(t[b], om, ov, x0[r:r+D], xt[r:r+D], nil, d.Clip)
	})
	return out
}

// BPD is the variational bound (eq. 5) of each image, in bits/dim, from
// [Diffusion.CalcBPDLoop]. Per-image slices have length n; per-step rows have
// length T and are indexed by i = t−1.
type BPD struct {
	Total   []float64 // Prior + Σ_i Terms[b][i]: the full bound L
	Prior   []float64 // L_T
	Decoder []float64 // L_0 = Terms[b][0]
	// Terms[b][i] is L_{t−1} for t = i+1 ≥ 2 and the decoder L_0 at i = 0.
	Terms [][]float64
	// XStartMSE[b][i] is the mean over dimensions of (x̂0 − x0)² at index i.
	XStartMSE [][]float64
	// EpsMSE[b][i] is the mean over dimensions of (ε̂ − ε)² at index i.
	EpsMSE [][]float64
}

// CalcBPDLoop evaluates the whole bound of the n images x0 (each value on the
// 256-level grid of [−1, 1]), like improved-diffusion's calc_bpd_loop: for
// i = T−1 down to 0 it draws ε (len(x0) normals from rng, in order), forms
// x_t by eq. 4, runs the model once on the batch and computes every image's
// term exactly (the Rao-Blackwellised KL). progress (may be nil) is called
// after each of the T steps.
func (d *Diffusion) CalcBPDLoop(m Model, x0 []float32, n int, rng *rand.Rand, progress func(step, total int)) *BPD {
	D := imageDim(x0, n, "x0")
	r := &BPD{
		Total: make([]float64, n), Prior: d.PriorBPD(x0, n), Decoder: make([]float64, n),
		Terms: make([][]float64, n), XStartMSE: make([][]float64, n), EpsMSE: make([][]float64, n),
	}
	for b := range n {
		r.Terms[b] = make([]float64, d.T)
		r.XStartMSE[b] = make([]float64, d.T)
		r.EpsMSE[b] = make([]float64, d.T)
	}
	eps := make([]float32, len(x0))
	xt := make([]float32, len(x0))
	out := make([]float32, d.OutChannels(1)*len(x0))
	t := make([]int, n)
	for step, i := 1, d.T-1; i >= 0; step, i = step+1, i-1 {
		for b := range t {
			t[b] = i
		}
		FillNormal(eps, rng)
		d.QSample(xt, x0, eps, t)
		m.Predict(out, xt, t)
		forImages(n, func(b int) {
			om, ov := d.splitOut(out, b, D)
			s := b * D
			r.Terms[b][i], r.XStartMSE[b][i], r.EpsMSE[b][i] =
				d.vbImage(i, om, ov, x0[s:s+D], xt[s:s+D], eps[s:s+D], d.Clip)
		})
		if progress != nil {
			progress(step, d.T)
		}
	}
	for b := range n {
		r.Decoder[b] = r.Terms[b][0]
		tot := r.Prior[b]
		for _, v := range r.Terms[b] {
			tot += v
		}
		r.Total[b] = tot
	}
	return r
}

// String summarises the batch means, e.g. for a log line.
func (r *BPD) String() string {
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	return fmt.Sprintf("total %.4f bits/dim (prior %.2e, decoder %.4f)", mean(r.Total), mean(r.Prior), mean(r.Decoder))
}
