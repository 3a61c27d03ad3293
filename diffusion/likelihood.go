package diffusion

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// decoderEdge: values beyond ±decoderEdge are the first/last bin, which
// extends to ∓∞ (eq. 13; the official code's ±0.999 thresholds).
const decoderEdge = 0.999

// probFloor is the clamp on probabilities before taking logs (official code).
const probFloor = 1e-12

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

// standardNormalPDF is φ(x), 0 at ±∞.
func standardNormalPDF(x float64) float64 {
	return math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi)
}

// DiscretizedGaussianLogLikelihood is log p(x) of the discretised decoder
// (eq. 13) for one value x ∈ {−1, −1+2/255, …, 1}: the log of the mass of
// N(mean, e^{2·logScale}) on x's bin [x − 1/255, x + 1/255], where the
// first bin (x < −0.999) extends to −∞ and the last (x > 0.999) to +∞. x is
// snapped to the nearest of the 256 levels and the bin edges are computed
// from the level number, so the bins partition the line exactly even for
// float32 inputs. The mass is computed from the tail nearer the bin (no
// cancellation) and clamped at 1e-12 before the log, as the official code
// does.
func DiscretizedGaussianLogLikelihood(x, mean, logScale float64) float64 {
	lp, _, _ := discretizedGaussianLogLikelihoodGrad(x, mean, logScale)
	return lp
}

// discretizedGaussianLogLikelihoodGrad is DiscretizedGaussianLogLikelihood
// with its partial derivatives w.r.t. mean and logScale (0 where clamped).
func discretizedGaussianLogLikelihoodGrad(x, mean, logScale float64) (lp, dMean, dLogScale float64) {
	inv := math.Exp(-logScale)
	level := math.Round((x + 1) * 127.5)
	a := ((level-0.5)/127.5 - 1 - mean) * inv // lower bin edge, standardised
	b := ((level+0.5)/127.5 - 1 - mean) * inv // upper bin edge, standardised
	var p float64
	switch {
	case x < -decoderEdge:
		a = math.Inf(-1)
		p = StandardNormalCDF(b)
	case x > decoderEdge:
		b = math.Inf(1)
		p = StandardNormalCDF(-a)
	case a > 0: // bin in the upper tail: difference of upper tails
		p = StandardNormalCDF(-a) - StandardNormalCDF(-b)
	case b < 0: // bin in the lower tail
		p = StandardNormalCDF(b) - StandardNormalCDF(a)
	default: // bin straddles the mean: erf is accurate near 0
		p = 0.5 * (math.Erf(b/math.Sqrt2) - math.Erf(a/math.Sqrt2))
	}
	if !(p >= probFloor) {
		return math.Log(probFloor), 0, 0
	}
	pa, pb := standardNormalPDF(a), standardNormalPDF(b)
	var apa, bpb float64 // a·φ(a), b·φ(b); 0 at infinite edges
	if !math.IsInf(a, 0) {
		apa = a * pa
	}
	if !math.IsInf(b, 0) {
		bpb = b * pb
	}
	return math.Log(p), (pa - pb) * inv / p, (apa - bpb) / p
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
// itself, in bits/dim: what the fixed σ_1 alone costs. It is not a lower
// bound (a mean pushed past ±1 puts more mass into an edge bin), but it is
// the yardstick for a measured L_0: the difference is what the network's x̂0
// at t = 1 gets wrong. NaN with a learned variance, which has no fixed σ_1.
func (d *Diffusion) DecoderBPDAtData(x0 []float32, n int) []float64 {
	D := imageDim(x0, n, "x0")
	logScale := 0.5 * d.FixedLogVariance(0)
	out := make([]float64, n)
	forImages(n, func(b int) {
		s := 0.0
		for _, v := range x0[b*D : (b+1)*D] {
			s -= DiscretizedGaussianLogLikelihood(float64(v), float64(v), logScale)
		}
		out[b] = s / (float64(D) * math.Ln2)
	})
	return out
}

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
		v := lv
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
