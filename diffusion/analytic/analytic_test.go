package analytic

import (
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

func newD(t *testing.T, mean diffusion.ModelMean, v diffusion.ModelVar) *diffusion.Diffusion {
	t.Helper()
	c := diffusion.DefaultConfig()
	c.Mean, c.Var, c.Clip = mean, v, false
	d, err := diffusion.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestEncodeRoundTrip: the diffusion package reads back the x̂0 that Encode
// wrote, under every parameterisation, and the learned channels verbatim.
func TestEncodeRoundTrip(t *testing.T) {
	xt := []float32{-1.3, 0.2, 0.9}
	xs := []float32{-0.5, 0.1, 0.75}
	for _, mean := range []diffusion.ModelMean{diffusion.Eps, diffusion.XPrev, diffusion.XStart} {
		for _, v := range []diffusion.ModelVar{diffusion.FixedLarge, diffusion.Learned} {
			d := newD(t, mean, v)
			for _, i := range []int{1, 10, 300, 900} {
				out := make([]float32, d.OutChannels(1)*len(xt))
				Encode(d, out, xt, xs, i, func(j int) float64 { return -float64(j) })
				_, lv, got := d.PMeanVariance(out, xt, []int{i})
				for j := range xs {
					tol := 1e-5 + 1e-7/d.PosteriorMeanCoef1[i] // xprev: x̂0 = (μ − c₂x)/c₁ from float32 μ
					if math.Abs(float64(got[j]-xs[j])) > tol {
						t.Errorf("%v/%v i=%d: x̂0[%d] = %g, want %g", mean, v, i, j, got[j], xs[j])
					}
					if v == diffusion.Learned && lv[j] != float32(-j) {
						t.Errorf("learned log-variance %g, want %d", lv[j], -j)
					}
				}
			}
		}
	}
}

// TestGaussianPosterior checks E[x0 | x_t] and Var[x0 | x_t] of Gaussian
// data against Simpson integration of p(x0) q(x_t | x0).
func TestGaussianPosterior(t *testing.T) {
	d := newD(t, diffusion.Eps, diffusion.FixedLarge)
	g := &Gaussian{D: d, Mean: 0.3, Std: 0.4}
	for _, i := range []int{0, 50, 400, 999} {
		for _, x := range []float64{-1.5, 0.1, 0.8} {
			ab := d.AlphasCumprod[i]
			const steps = 20000
			lo, hi := g.Mean-10*g.Std, g.Mean+10*g.Std
			h := (hi - lo) / steps
			var z, m1, m2 float64
			for k := 0; k <= steps; k++ {
				x0 := lo + float64(k)*h
				e := x - math.Sqrt(ab)*x0
				p := math.Exp(-0.5*(x0-g.Mean)*(x0-g.Mean)/(g.Std*g.Std) - e*e/(2*(1-ab)))
				w := 2.0
				if k == 0 || k == steps {
					w = 1
				} else if k%2 == 1 {
					w = 4
				}
				z += w * p
				m1 += w * p * x0
				m2 += w * p * x0 * x0
			}
			wantM := m1 / z
			wantV := m2/z - wantM*wantM
			gotM, gotV := g.XStartVar(x, i)
			if math.Abs(gotM-wantM) > 1e-6 || math.Abs(gotV-wantV) > 1e-6 {
				t.Errorf("i=%d x=%g: posterior (%g, %g), numerical (%g, %g)", i, x, gotM, gotV, wantM, wantV)
			}
		}
	}
}

// TestPointsPosterior: the posterior over images is Bayes' rule with the
// Gaussian likelihood q(x_t | a_k), the mean and variance its moments.
func TestPointsPosterior(t *testing.T) {
	d := newD(t, diffusion.Eps, diffusion.FixedLarge)
	imgs := []float32{-0.5, 0.5, 0.2, 0.1, 0.9, -0.9}
	w := []float64{1, 2, 3}
	p, err := NewPoints(d, imgs, 3, w)
	if err != nil {
		t.Fatal(err)
	}
	xt := []float32{0.1, -0.2}
	for _, i := range []int{0, 100, 500, 999} {
		ab := d.AlphasCumprod[i]
		var want [3]float64
		sum := 0.0
		for k := range 3 {
			l := w[k] / 6
			for j := range 2 {
				e := float64(xt[j]) - math.Sqrt(ab)*float64(imgs[2*k+j])
				l *= math.Exp(-e * e / (2 * (1 - ab)))
			}
			want[k] = l
			sum += l
		}
		got := p.Posterior(xt, i)
		for k := range 3 {
			if sum > 0 && math.Abs(got[k]-want[k]/sum) > 1e-9 {
				t.Errorf("i=%d: π = %v, want %v/%g", i, got, want, sum)
			}
		}
		xs := make([]float32, 2)
		v := make([]float64, 2)
		p.XStart(xs, v, xt, i)
		for j := range 2 {
			var m, m2 float64
			for k := range 3 {
				a := float64(imgs[2*k+j])
				m += got[k] * a
				m2 += got[k] * a * a
			}
			if math.Abs(float64(xs[j])-m) > 1e-6 || math.Abs(v[j]-(m2-m*m)) > 1e-9 {
				t.Errorf("i=%d value %d: moments (%g, %g), want (%g, %g)", i, j, xs[j], v[j], m, m2-m*m)
			}
		}
	}
	// At t = T the posterior is (almost) the prior; at t = 1 it picks the
	// nearest image.
	if got := p.Posterior([]float32{0.2, 0.1}, 0); got[1] < 0.999 {
		t.Errorf("posterior at t = 1 next to image 1: %v", got)
	}
	if got := p.Posterior(xt, d.T-1); math.Abs(got[2]-0.5) > 0.01 {
		t.Errorf("posterior at t = T: %v, want ≈ prior (1/6, 1/3, 1/2)", got)
	}
	for _, bad := range []struct {
		x []float32
		k int
		w []float64
	}{{imgs, 4, nil}, {imgs, 0, nil}, {imgs, 3, []float64{1, 2}}, {imgs, 3, []float64{1, 0, 1}}, {nil, 1, nil}} {
		if _, err := NewPoints(d, bad.x, bad.k, bad.w); err == nil {
			t.Errorf("NewPoints(%d values, k=%d, w=%v): no error", len(bad.x), bad.k, bad.w)
		}
	}
}
