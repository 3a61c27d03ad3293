package diffusion

import (
	"fmt"
	"math"
)

// TrainingLoss is the training objective d.Loss for a batch of len(t) images
// whose model output at x_t = QSample(x0, eps, t) is modelOut. It returns the
// batch mean and the per-image values, and when dOut != nil (len(modelOut))
// overwrites dOut with ∂loss/∂modelOut, loss being the batch mean, so the
// engine can backpropagate. x̂0 is never clipped here (as in the official
// code). eps may be nil unless Mean is Eps and the loss is an MSE.
//
//   - Simple (eq. 14): mean over pixels of ‖target − out‖², target = ε (Eps),
//     x0 (XStart), μ̃_t(x_t, x0) (XPrev) or √ᾱ_t ε − √(1−ᾱ_t) x0 (V). Minimises the reweighted bound
//     that favours large t; for Eps it is Algorithm 1's loss.
//   - MSEMu: mean over pixels of ‖μ̃_t(x_t, x0) − μ_θ‖² with μ_θ mapped from
//     the output (eq. 11 for Eps): eq. 8 without the 1/(2σ_t²) weight.
//   - VLB: the true bound term in bits/dim (see VBTerms): L_{t−1} for t > 1,
//     the decoder NLL at index 0. T·E_t[loss] + L_T is the bound L (eq. 5);
//     the gradient reaches the mean through the parameterisation (for Eps
//     ∂μ/∂ε = −β_t/(√α_t √(1−ᾱ_t))) and, if learned, the log-variance.
//   - Hybrid: the MSE loss + λ·T·(VLB term) with λ = HybridLambda and a
//     stop-gradient on the mean (improved-diffusion's L_hybrid; λ·T·L_{t−1}
//     estimates λ·L_vlb): the mean learns from the MSE, the variance from the
//     bound. With a Learned variance, Simple and MSEMu also add this term
//     (Simple + Learned is Hybrid), else the variance would get no gradient.
func (d *Diffusion) TrainingLoss(modelOut, x0, xt, eps []float32, t []int, dOut []float32) (loss float64, perImage []float64) {
	sameLen(x0, xt, "TrainingLoss x0/xt")
	n := len(t)
	D := imageDim(x0, n, "x0")
	d.checkOut(modelOut, n, D)
	d.checkT(t)
	mse := d.Loss != VLB
	if mse && d.Loss != MSEMu && (d.Mean == Eps || d.Mean == V) {
		if eps == nil {
			panic("diffusion: TrainingLoss needs eps for the ε-prediction MSE")
		}
		sameLen(x0, eps, "TrainingLoss x0/eps")
	}
	if dOut != nil && len(dOut) != len(modelOut) {
		panic(fmt.Sprintf("diffusion: dOut has %d values, want %d", len(dOut), len(modelOut)))
	}
	vbWeight := 1.0 // weight of the bits/dim bound term
	if mse {
		vbWeight = 0
		if d.Var == Learned {
			vbWeight = HybridLambda * float64(d.T)
		}
	}
	perImage = make([]float64, n)
	invN := 1 / float64(n)
	invD := 1 / float64(D)
	bits := 1 / (float64(D) * math.Ln2) // nats summed over D → bits/dim
	forImages(n, func(b int) {
		i := t[b]
		om, ov := d.splitOut(modelOut, b, D)
		var gm, gv []float32
		if dOut != nil {
			gm, gv = d.splitOut(dOut, b, D)
		}
		lv := d.FixedLogVariance(i)
		dmu := d.dMeanDOut(i)
		var sMSE, sVB float64
		for j := range D {
			k := b*D + j
			o, x, x0k := float64(om[j]), float64(xt[k]), float64(x0[k])
			mu, _ := d.meanFromOutput(i, o, x, false)
			var gMean float64
			if mse {
				var diff float64 // ∂(diff²)/∂o = 2·diff·dd
				dd := 1.0
				switch {
				case d.Loss == MSEMu:
					diff, dd = mu-d.posteriorMean(i, x0k, x), dmu
				case d.Mean == Eps:
					diff = o - float64(eps[k])
				case d.Mean == XStart:
					diff = o - x0k
				case d.Mean == V:
					diff = o - (d.SqrtAlphasCumprod[i]*float64(eps[k]) - d.SqrtOneMinusAlphasCumprod[i]*x0k)
				default: // XPrev
					diff = o - d.posteriorMean(i, x0k, x)
				}
				sMSE += diff * diff
				gMean = 2 * diff * dd * invD * invN
			}
			if vbWeight != 0 {
				v := lv
				if ov != nil {
					v = float64(ov[j])
				}
				nats, gMu, gV := d.vbTerm(i, x0k, x, mu, v)
				if i == 0 && nats > trainDecoderCap {
					// the official code's clamp of the decoder's bin mass
					// at 1e-12: a hopeless value stops pulling the mean
					nats, gMu, gV = trainDecoderCap, 0, 0
				}
				sVB += nats
				if !mse { // no stop-gradient: the bound also trains the mean
					gMean = gMu * dmu * bits * invN
				}
				if gv != nil {
					gv[j] = float32(vbWeight * gV * bits * invN)
				}
			}
			if gm != nil {
				gm[j] = float32(gMean)
			}
		}
		perImage[b] = sMSE*invD + vbWeight*sVB*bits
	})
	for _, v := range perImage {
		loss += v
	}
	return loss * invN, perImage
}
