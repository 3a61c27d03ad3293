package diffusion

import (
	"math"
	"testing"
)

func TestNormalKL(t *testing.T) {
	tests := []struct{ m1, lv1, m2, lv2 float64 }{
		{0, 0, 0, 0}, {0.3, -1, 0.3, -1}, {1, 0, 0, 0}, {0, -2, 0.5, 1}, {-0.7, 1.5, 0.2, -0.5}, {2, -6, 2.01, -5},
	}
	for _, tc := range tests {
		got := NormalKL(tc.m1, tc.lv1, tc.m2, tc.lv2)
		if tc.m1 == tc.m2 && tc.lv1 == tc.lv2 && got != 0 {
			t.Errorf("KL of equal Gaussians %v = %g", tc, got)
		}
		// Simpson's rule of ∫ p log(p/q) over ±12 standard deviations of p.
		s1 := math.Exp(0.5 * tc.lv1)
		lo, hi := tc.m1-12*s1, tc.m1+12*s1
		const steps = 20000
		h := (hi - lo) / steps
		logpdf := func(x, m, lv float64) float64 { return -0.5*(math.Log(2*math.Pi)+lv) - (x-m)*(x-m)/(2*math.Exp(lv)) }
		var sum float64
		for k := 0; k <= steps; k++ {
			x := lo + float64(k)*h
			lp := logpdf(x, tc.m1, tc.lv1)
			f := math.Exp(lp) * (lp - logpdf(x, tc.m2, tc.lv2))
			w := 2.0
			if k == 0 || k == steps {
				w = 1
			} else if k%2 == 1 {
				w = 4
			}
			sum += w * f
		}
		num := sum * h / 3
		if !close(got, num, 1e-6, 1e-9) {
			t.Errorf("KL%v = %g, numerical %g", tc, got, num)
		}
		_, gm, gv := normalKLGrad(tc.m1, tc.lv1, tc.m2, tc.lv2)
		const e = 1e-6
		fm := (NormalKL(tc.m1, tc.lv1, tc.m2+e, tc.lv2) - NormalKL(tc.m1, tc.lv1, tc.m2-e, tc.lv2)) / (2 * e)
		fv := (NormalKL(tc.m1, tc.lv1, tc.m2, tc.lv2+e) - NormalKL(tc.m1, tc.lv1, tc.m2, tc.lv2-e)) / (2 * e)
		if !close(gm, fm, 1e-5, 1e-7) || !close(gv, fv, 1e-5, 1e-7) {
			t.Errorf("KL%v gradient (%g, %g), finite differences (%g, %g)", tc, gm, gv, fm, fv)
		}
	}
	if got := StandardNormalCDF(0); got != 0.5 {
		t.Errorf("Φ(0) = %g", got)
	}
	if got := StandardNormalCDF(1.959963984540054); !close(got, 0.975, 1e-12, 0) {
		t.Errorf("Φ(1.96) = %g", got)
	}
}

// TestDecoderBinsSumToOne: the 256 bins of eq. 13 partition the line for any
// mean and scale, including extremes.
func TestDecoderBinsSumToOne(t *testing.T) {
	means := []float64{-3, -1, -0.5, 0, 1.0 / 255, 0.3, 1, 3}
	logScales := []float64{-20, -8, math.Log(1e-2), -1, 0, 2, math.Log(1e3), 10}
	for _, m := range means {
		for _, ls := range logScales {
			var sum float64
			for p := range 256 {
				x := float64(float32(float64(p)/127.5 - 1)) // as stored in float32 batches
				sum += math.Exp(DiscretizedGaussianLogLikelihood(x, m, ls))
			}
			// Each clamped bin can add up to 1e-12.
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("mean %g log scale %g: bins sum to %.15g", m, ls, sum)
			}
		}
	}
}

func TestDecoderGradient(t *testing.T) {
	tests := []struct{ x, mean, logScale float64 }{
		{-1, -0.99, -4}, {1, 0.995, -4}, {0.2, 0.21, -5}, {0.2, 0.15, -3}, {-0.4, -0.45, -5.5}, {-1, -1.02, -5}, {0, 0, 2},
		// far in the tails, where the official code clamps the mass at 1e-12
		{-0.4, -0.2, -6}, {0.6, 0.8, -7}, {1, -0.5, -4}, {-1, 0.5, -6},
	}
	for _, tc := range tests {
		_, gm, gs := discretizedGaussianLogLikelihoodGrad(tc.x, tc.mean, tc.logScale)
		f := DiscretizedGaussianLogLikelihood
		const e = 1e-6
		fm := (f(tc.x, tc.mean+e, tc.logScale) - f(tc.x, tc.mean-e, tc.logScale)) / (2 * e)
		fs := (f(tc.x, tc.mean, tc.logScale+e) - f(tc.x, tc.mean, tc.logScale-e)) / (2 * e)
		if !close(gm, fm, 1e-5, 1e-6) || !close(gs, fs, 1e-5, 1e-6) {
			t.Errorf("%v: gradient (%g, %g), finite differences (%g, %g)", tc, gm, gs, fm, fs)
		}
	}
}

func TestPriorBPD(t *testing.T) {
	d := mustNew(t, Eps, FixedLarge, Simple, true)
	x0 := []float32{-1, 0, 0.5, 1, 1, 1}
	got := d.PriorBPD(x0, 2)
	ab := d.AlphasCumprod[d.T-1]
	for b := range 2 {
		var want float64
		for _, v := range x0[3*b : 3*b+3] {
			// KL(N(√ᾱ x, 1−ᾱ) ‖ N(0, 1)) = ½(ᾱ x² + (1−ᾱ) − 1 − log(1−ᾱ)).
			want += 0.5 * (ab*float64(v)*float64(v) + (1 - ab) - 1 - math.Log(1-ab))
		}
		want /= 3 * math.Ln2
		if !close(got[b], want, 1e-9, 1e-15) {
			t.Errorf("image %d prior %g bits/dim, closed form %g", b, got[b], want)
		}
		if got[b] > 1e-4 {
			t.Errorf("prior %g bits/dim, expected ≈ 1e-5", got[b])
		}
	}
}

// TestBPDOracle: a model that knows x0 and outputs the exact posterior mean
// (XPrev) has every L_{t−1} equal to the KL between the two variances alone,
// and a decoder term in closed form.
func TestBPDOracle(t *testing.T) {
	const n, D = 2, 6
	rng := newRNG(11)
	x0 := pixels(rng, n*D)
	for _, v := range allVars {
		d := mustNew(t, XPrev, v, VLB, true)
		learned := func(i int) float64 { return d.PosteriorLogVarianceClipped[i] + 0.3*math.Sin(float64(i)) }
		m := &x0Model{d: d, xStart: func(b, j int, _ float64, _ int) float64 { return float64(x0[b*D+j]) }, logVar: learned}
		r := d.CalcBPDLoop(m, x0, n, newRNG(12), nil)
		for b := range n {
			for i := 1; i < d.T; i++ {
				lv := d.FixedLogVariance(i)
				if v == Learned {
					lv = float64(float32(learned(i)))
				}
				lb := d.PosteriorLogVarianceClipped[i]
				want := 0.5 * (-1 + lv - lb + math.Exp(lb-lv)) / math.Ln2
				if !close(r.Terms[b][i], want, 1e-5, 1e-8) {
					t.Fatalf("%v image %d i=%d: term %g, variance-only KL %g", v, b, i, r.Terms[b][i], want)
				}
			}
			// Decoder with μ = x0 and σ² = exp(log σ² at index 0).
			lv0 := d.FixedLogVariance(0)
			if v == Learned {
				lv0 = float64(float32(learned(0)))
			}
			z := (1.0 / 255) / math.Exp(0.5*lv0)
			var nll float64
			for _, x := range x0[b*D : (b+1)*D] {
				if x == -1 || x == 1 {
					nll -= math.Log(StandardNormalCDF(z))
				} else {
					nll -= math.Log(2*StandardNormalCDF(z) - 1)
				}
			}
			nll /= D * math.Ln2
			if !close(r.Decoder[b], nll, 1e-4, 0) {
				t.Errorf("%v image %d: decoder %g, closed form %g", v, b, r.Decoder[b], nll)
			}
			// The oracle's decoder is the one DecoderBPDAtData reports.
			if at := d.DecoderBPDAtData(x0, n)[b]; v != Learned && !close(at, nll, 1e-9, 0) {
				t.Errorf("%v image %d: DecoderBPDAtData %g, closed form %g", v, b, at, nll)
			}
			for i := range 200 { // beyond, float32 μ over a tiny x0 coefficient is too coarse
				if r.XStartMSE[b][i] > 1e-8 {
					t.Fatalf("%v i=%d: oracle x̂0 MSE %g", v, i, r.XStartMSE[b][i])
				}
			}
		}
	}
}

// TestBPDTotals: total = prior + Σ_{t>1} L_{t−1} + decoder, and the bound is
// the same whichever parameterisation carries one underlying predictor.
func TestBPDTotals(t *testing.T) {
	const n, D = 3, 5
	rng := newRNG(13)
	x0 := pixels(rng, n*D)
	for _, v := range []ModelVar{FixedLarge, FixedSmall, Learned} {
		var ref *BPD
		for _, mean := range allMeans {
			d := mustNew(t, mean, v, VLB, false)
			// An imperfect smooth denoiser.
			pred := func(b, j int, x float64, i int) float64 {
				return 0.7*d.SqrtAlphasCumprod[i]*x + 0.2*math.Sin(3*x+float64(b+j))
			}
			m := &x0Model{d: d, xStart: pred, logVar: func(i int) float64 { return math.Log(d.Betas[i]) - 0.2 }}
			steps := 0
			r := d.CalcBPDLoop(m, x0, n, newRNG(14), func(step, total int) {
				steps++
				if step != steps || total != d.T {
					t.Fatalf("progress(%d, %d) at call %d", step, total, steps)
				}
			})
			for b := range n {
				sum := r.Prior[b] + r.Decoder[b]
				for i := 1; i < d.T; i++ {
					sum += r.Terms[b][i]
				}
				if !close(r.Total[b], sum, 1e-12, 0) || r.Decoder[b] != r.Terms[b][0] {
					t.Errorf("%v/%v image %d: total %.17g, prior+terms+decoder %.17g", mean, v, b, r.Total[b], sum)
				}
				if !(r.Total[b] > 0) {
					t.Errorf("%v/%v: total %g", mean, v, r.Total[b])
				}
			}
			if ref == nil {
				ref = r
				continue
			}
			for b := range n {
				for i := range d.T {
					if !close(r.Terms[b][i], ref.Terms[b][i], 1e-3, 1e-6) {
						t.Fatalf("%v/%v image %d i=%d: term %g, eps parameterisation %g", mean, v, b, i, r.Terms[b][i], ref.Terms[b][i])
					}
				}
				if !close(r.Total[b], ref.Total[b], 1e-4, 0) {
					t.Errorf("%v/%v image %d: total %g, eps parameterisation %g", mean, v, b, r.Total[b], ref.Total[b])
				}
			}
		}
	}
}

// The decoder's far tails: the asymptotic series takes over from erfc where
// both still hold and agrees with it, and a bin's log-mass keeps falling
// like −z²/2 long after the mass itself underflows.
func TestLogUpperTail(t *testing.T) {
	for _, z := range []float64{25, 28, 30, 33, 34.9} {
		w := 1 / (z * z)
		series := -0.5/w - math.Log(z) - 0.5*math.Log(2*math.Pi) + math.Log1p(w*(-1+w*(3-15*w)))
		if erfc := math.Log(0.5 * math.Erfc(z/math.Sqrt2)); !close(series, erfc, 1e-11, 0) {
			t.Errorf("z = %g: series %.15g, erfc %.15g", z, series, erfc)
		}
	}
	prev := 0.0
	for _, z := range []float64{1, 10, 34, 36, 50, 100, 1e3} {
		got := logUpperTail(z)
		if !(got < prev) {
			t.Errorf("log Q(%g) = %g, not below log Q at the previous z, %g", z, got, prev)
		}
		// Mills' ratio: φ(z)/z·(1 − 1/z²) < Q(z) < φ(z)/z.
		if lead := -0.5*z*z - math.Log(z) - 0.5*math.Log(2*math.Pi); z > 1 && !(got <= lead && got >= lead+math.Log1p(-1/(z*z))-1e-12*math.Abs(lead)) {
			t.Errorf("log Q(%g) = %.15g outside Mills' bounds (%.15g, %.15g)", z, got, lead+math.Log1p(-1/(z*z)), lead)
		}
		prev = got
	}
	// A bin 200σ from the mean: log-mass ≈ −(200²)/2, not log 1e-12.
	if got := DiscretizedGaussianLogLikelihood(0.5, 0.5-200*1e-3-1.0/255, math.Log(1e-3)); got > -19000 || got < -21000 {
		t.Errorf("log-mass of a bin 200σ away: %g, want ≈ −20000", got)
	}
}
