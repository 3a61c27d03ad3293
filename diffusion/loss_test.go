package diffusion

import (
	"fmt"
	"math"
	"testing"
)

// lossSetup builds a batch whose model output puts μ_θ within about a
// standard deviation of μ̃ (so no decoder bin is clamped) at indices that
// include the decoder (0), the first KL (1) and late steps.
func lossSetup(d *Diffusion, seed uint64) (out, x0, xt, eps []float32, idx []int) {
	rng := newRNG(seed)
	idx = []int{0, 1, 37, 640, 999}
	const D = 4
	x0 = pixels(rng, len(idx)*D)
	eps = make([]float32, len(x0))
	FillNormal(eps, rng)
	xt = d.QSample(nil, x0, eps, idx)
	out = make([]float32, d.OutChannels(1)*len(x0))
	for b, i := range idx {
		om, ov := d.splitOut(out, b, D)
		base := d.PosteriorLogVarianceClipped[i]
		for j := range D {
			k := b*D + j
			x := float64(xt[k])
			v := base
			if ov != nil {
				v = base + 0.4*rng.NormFloat64()
				ov[j] = float32(v)
			}
			mu := d.posteriorMean(i, float64(x0[k]), x) + 0.6*math.Exp(0.5*v)*rng.NormFloat64()
			xs := (mu - d.PosteriorMeanCoef2[i]*x) / d.PosteriorMeanCoef1[i]
			switch d.Mean {
			case XPrev:
				om[j] = float32(mu)
			case XStart:
				om[j] = float32(xs)
			case Eps:
				om[j] = float32((d.SqrtRecipAlphasCumprod[i]*x - xs) / d.SqrtRecipM1AlphasCumprod[i])
			case V:
				e := (d.SqrtRecipAlphasCumprod[i]*x - xs) / d.SqrtRecipM1AlphasCumprod[i]
				om[j] = float32(d.SqrtAlphasCumprod[i]*e - d.SqrtOneMinusAlphasCumprod[i]*xs)
			}
		}
	}
	return out, x0, xt, eps, idx
}

// TestTrainingLossGradients checks ∂loss/∂output against central finite
// differences for every ModelMean × ModelVar × LossType that New accepts.
// Where the bound term has a stop-gradient on the mean (MSE losses with a
// learned variance), the mean channels are checked against the loss minus
// that term, the variance channels against the whole loss.
func TestTrainingLossGradients(t *testing.T) {
	for _, mean := range allMeans {
		for _, v := range allVars {
			for _, lt := range allLosses {
				name := fmt.Sprintf("%v/%v/%v", mean, v, lt)
				c := DefaultConfig()
				c.Mean, c.Var, c.Loss, c.Clip = mean, v, lt, false
				d, err := New(c)
				if lt == Hybrid && v != Learned {
					if err == nil {
						t.Errorf("%s accepted", name)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				out, x0, xt, eps, idx := lossSetup(d, 20)
				n := len(idx)
				D := len(x0) / n
				grad := make([]float32, len(out))
				loss, per := d.TrainingLoss(out, x0, xt, eps, idx, grad)
				var s float64
				for _, p := range per {
					s += p
				}
				if !close(loss, s/float64(n), 1e-12, 0) {
					t.Errorf("%s: loss %g, mean of per-image %g", name, loss, s/float64(n))
				}
				stopGrad := lt != VLB && v == Learned
				vbWeight := HybridLambda * float64(d.T)
				f := func(o []float32, meanChannel bool) float64 {
					l, _ := d.TrainingLoss(o, x0, xt, eps, idx, nil)
					if stopGrad && meanChannel {
						for _, vb := range d.VBTerms(o, x0, xt, idx) {
							l -= vbWeight * vb / float64(n)
						}
					}
					return l
				}
				maxG := 0.0
				for _, g := range grad {
					maxG = math.Max(maxG, math.Abs(float64(g)))
				}
				const h = 1.0 / 4096 // exact in float32 for these magnitudes
				for k := range out {
					meanChannel := v != Learned || (k/D)%2 == 0
					o := out[k]
					out[k] = o + h
					up := f(out, meanChannel)
					out[k] = o - h
					down := f(out, meanChannel)
					out[k] = o
					fd := (up - down) / float64(float32(o+h)-float32(o-h))
					if !close(float64(grad[k]), fd, 2e-3, 1e-5*maxG+1e-12) {
						t.Errorf("%s: ∂loss/∂out[%d] (image %d, i=%d) = %g, finite differences %g", name, k, k/(len(out)/n), idx[k/(len(out)/n)], grad[k], fd)
					}
				}
			}
		}
	}
}

// TestTrainingLossValues pins what each loss computes.
func TestTrainingLossValues(t *testing.T) {
	for _, mean := range allMeans {
		for _, v := range allVars {
			d := mustNew(t, mean, v, VLB, false)
			out, x0, xt, eps, idx := lossSetup(d, 21)
			n := len(idx)
			D := len(x0) / n
			// VLB is VBTerms exactly.
			_, per := d.TrainingLoss(out, x0, xt, eps, idx, nil)
			vb := d.VBTerms(out, x0, xt, idx)
			for b := range n {
				if !close(per[b], vb[b], 1e-12, 0) {
					t.Errorf("%v/%v vlb image %d: %g, VBTerms %g", mean, v, b, per[b], vb[b])
				}
			}
			// Simple: ‖target − out‖² (+ λ·T·vb for a learned variance).
			d.Loss = Simple
			_, per = d.TrainingLoss(out, x0, xt, eps, idx, nil)
			// MSEMu: ‖μ̃ − μ_θ‖².
			d.Loss = MSEMu
			_, perMu := d.TrainingLoss(out, x0, xt, eps, idx, nil)
			d.Clip = false
			mu, _, _ := d.PMeanVariance(out, xt, idx)
			post, _, _ := d.QPosteriorMeanVariance(x0, xt, idx)
			for b := range n {
				var want, wantMu float64
				om, _ := d.splitOut(out, b, D)
				for j := range D {
					k := b*D + j
					target := map[ModelMean]float32{Eps: eps[k], XStart: x0[k], XPrev: post[k],
						V: float32(d.SqrtAlphasCumprod[idx[b]]*float64(eps[k]) - d.SqrtOneMinusAlphasCumprod[idx[b]]*float64(x0[k]))}[mean]
					want += float64((om[j] - target) * (om[j] - target))
					wantMu += float64((mu[k] - post[k]) * (mu[k] - post[k]))
				}
				want /= float64(D)
				wantMu /= float64(D)
				if v == Learned {
					want += HybridLambda * float64(d.T) * vb[b]
					wantMu += HybridLambda * float64(d.T) * vb[b]
				}
				if !close(per[b], want, 1e-5, 1e-9) || !close(perMu[b], wantMu, 1e-3, 1e-9) {
					t.Errorf("%v/%v image %d: simple %g want %g, mse-mu %g want %g", mean, v, b, per[b], want, perMu[b], wantMu)
				}
			}
		}
	}
	// Simple with a learned variance is Hybrid.
	d := mustNew(t, Eps, Learned, Simple, false)
	out, x0, xt, eps, idx := lossSetup(d, 22)
	g1, g2 := make([]float32, len(out)), make([]float32, len(out))
	l1, _ := d.TrainingLoss(out, x0, xt, eps, idx, g1)
	d.Loss = Hybrid
	l2, _ := d.TrainingLoss(out, x0, xt, eps, idx, g2)
	for k := range g1 {
		if g1[k] != g2[k] {
			t.Fatalf("simple+learned and hybrid gradients differ at %d", k)
		}
	}
	if l1 != l2 {
		t.Errorf("simple+learned loss %g, hybrid %g", l1, l2)
	}
}

// A decoder mean far from its pixel: the bound reports the exact cost, the
// VLB training loss the official code's clamped one (bin mass 1e-12) with no
// gradient from that value.
func TestTrainingLossDecoderClamp(t *testing.T) {
	d := mustNew(t, XStart, FixedLarge, VLB, false)
	x0 := []float32{0.5, -1}
	out := []float32{-0.5, -1} // x̂0 = μ at index 0: the first value 1/σ_1 ≈ 135 σ away
	xt := []float32{0.5, -1}
	idx := []int{0}
	dOut := make([]float32, 2)
	_, per := d.TrainingLoss(out, x0, xt, nil, idx, dOut)
	vb := d.VBTerms(out, x0, xt, idx)
	good := -DiscretizedGaussianLogLikelihood(-1, -1, 0.5*d.FixedLogVariance(0))
	if want := (trainDecoderCap + good) / (2 * math.Ln2); !close(per[0], want, 1e-12, 0) {
		t.Errorf("training loss %g bits/dim, want the clamped %g", per[0], want)
	}
	if vb[0] < 1000 {
		t.Errorf("bound %g bits/dim: a value 135σ off costs ≈ 135²/2 nats, not the clamp's 27.6", vb[0])
	}
	if dOut[0] != 0 || dOut[1] == 0 {
		t.Errorf("gradients %v: want 0 for the clamped value only", dOut)
	}
}
