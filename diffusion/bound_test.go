package diffusion

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// affineModel is a deterministic stand-in for the U-Net whose output for a
// value depends only on that value and its image's t, so it gives the same
// answer whatever the batch it is called with (as the U-Net does).
type affineModel struct{ d *Diffusion }

func (m affineModel) Predict(out, xt []float32, t []int) {
	n := len(t)
	D := len(xt) / n
	per := len(out) / n
	for b := range n {
		for j := range D {
			x := xt[b*D+j]
			out[b*per+j] = 0.3*x + 0.001*float32(t[b])
			if per == 2*D { // learned log-variance: near log β_t
				out[b*per+D+j] = float32(math.Log(m.d.Betas[t[b]])) + 0.05*x
			}
		}
	}
}

func newDiffusion(t *testing.T, T int, mean ModelMean, v ModelVar) *Diffusion {
	t.Helper()
	c := DefaultConfig()
	c.T, c.Mean, c.Var = T, mean, v
	if v == Learned {
		c.Loss = VLB
	}
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// gridImages returns n random images of D values on the 256-level grid.
func gridImages(n, D int, rng *rand.Rand) []float32 {
	x := make([]float32, n*D)
	for k := range x {
		x[k] = float32(rng.IntN(256))/127.5 - 1
	}
	return x
}

// Evaluate must reproduce CalcBPDLoop term for term, whatever the
// batch: the same noise draws reach the same pairs and the model sees the
// same inputs.
func TestMatchesCalcBPDLoop(t *testing.T) {
	const n, D, T = 3, 12, 7
	for _, c := range []struct {
		name  string
		mean  ModelMean
		v     ModelVar
		batch int
	}{
		{"eps fixedlarge, batch 1", Eps, FixedLarge, 1},
		{"eps fixedlarge, batch n", Eps, FixedLarge, n},
		{"xprev learned, batch 5 (straddles t)", XPrev, Learned, 5},
		{"xstart fixedsmall, batch > n·T", XStart, FixedSmall, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDiffusion(t, T, c.mean, c.v)
			x0 := gridImages(n, D, rand.New(rand.NewPCG(1, 2)))
			want := d.CalcBPDLoop(affineModel{d}, x0, n, rand.New(rand.NewPCG(3, 4)), nil)
			calls := 0
			got, err := d.EvaluateBound(context.Background(), affineModel{d}, x0, n, BoundOptions{
				Batch: c.batch, Rng: rand.New(rand.NewPCG(3, 4)),
				Progress: func(done, total int) {
					calls++
					if total != n*T || done > total {
						t.Fatalf("progress %d/%d, want total %d", done, total, n*T)
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if wantCalls := (n*T + c.batch - 1) / c.batch; calls != wantCalls {
				t.Errorf("%d progress calls, want %d", calls, wantCalls)
			}
			for b := range n {
				for i := range T {
					if g, w := got.Terms[b][i], want.Terms[b][i]; math.Abs(g-w) > 1e-12*max(1, math.Abs(w)) {
						t.Errorf("image %d, i %d: term %v, CalcBPDLoop %v", b, i, g, w)
					}
				}
				if math.Abs(got.Total[b]-want.Total[b]) > 1e-9 || got.Prior[b] != want.Prior[b] {
					t.Errorf("image %d: total %v prior %v, CalcBPDLoop %v %v", b, got.Total[b], got.Prior[b], want.Total[b], want.Prior[b])
				}
			}
		})
	}
}

// oracle predicts the exact noise of x_t for the one image it knows: its
// mean is the true posterior mean, so each term is the closed-form KL
// between two Gaussians of equal mean and the decoder is the mass of a
// centred Gaussian on one bin.
type oracle struct {
	d  *Diffusion
	x0 []float32
}

func (o oracle) Predict(out, xt []float32, t []int) {
	D := len(o.x0)
	for b, i := range t {
		for j := range D {
			out[b*D+j] = float32((float64(xt[b*D+j]) - o.d.SqrtAlphasCumprod[i]*float64(o.x0[j])) / o.d.SqrtOneMinusAlphasCumprod[i])
		}
	}
}

func TestOracleBound(t *testing.T) {
	const D, T = 50, 20
	x0 := gridImages(1, D, rand.New(rand.NewPCG(5, 6)))
	x0[0], x0[1] = -1, 1 // both edge bins
	for _, v := range []ModelVar{FixedSmall, FixedLarge} {
		t.Run(v.String(), func(t *testing.T) {
			d := newDiffusion(t, T, Eps, v)
			r, err := d.EvaluateBound(context.Background(), oracle{d, x0}, x0, 1, BoundOptions{Batch: 6, Rng: rand.New(rand.NewPCG(7, 8))})
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < T; i++ {
				// KL(N(μ̃, β̃) ‖ N(μ̃, σ²)) per dimension, in bits.
				lq, lp := math.Log(d.PosteriorVariance[i]), d.FixedLogVariance(i)
				want := 0.5 * (lp - lq + math.Exp(lq-lp) - 1) / math.Ln2
				if got := r.Terms[0][i]; math.Abs(got-want) > 1e-6*max(1, want) {
					t.Errorf("t=%d: term %v, closed form %v", i+1, got, want)
				}
			}
			// Decoder: x̂0 = x0 exactly, so −log of the N(x0, σ_1²) mass of
			// x0's bin: erf(h/(σ√2)) inside, Φ(h/σ) on an edge bin.
			sigma, h := math.Exp(0.5*d.FixedLogVariance(0)), 1/255.0
			nats := 0.0
			for _, x := range x0 {
				p := math.Erf(h / (sigma * math.Sqrt2))
				if x == -1 || x == 1 {
					p = 0.5 * math.Erfc(-h/(sigma*math.Sqrt2))
				}
				nats -= math.Log(p)
			}
			if want := nats / (D * math.Ln2); math.Abs(r.Terms[0][0]-want) > 1e-5*want {
				t.Errorf("decoder %v, closed form %v", r.Terms[0][0], want)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	r := &Bound{N: 4, T: 3, Dims: 8,
		Prior: []float64{0.1, 0.1, 0.1, 0.1},
		Terms: [][]float64{{0.5, 0.3, 0.1}, {1.5, 0.3, 0.1}, {2.5, 0.3, 0.1}, {3.5, 0.3, 0.1}},
	}
	for b := range r.N {
		r.Total = append(r.Total, r.Prior[b]+r.Terms[b][0]+r.Terms[b][1]+r.Terms[b][2])
	}
	// Totals 1, 2, 3, 4: mean 2.5, sample variance 5/3.
	for _, scale := range []float64{1, 2} {
		s := r.Summary(scale)
		want := map[string][2]float64{
			"total":   {s.TotalBPD, 2.5 * scale},
			"stderr":  {s.TotalBPDStderr, math.Sqrt(5.0/3/4) * scale},
			"prior":   {s.PriorBPD, 0.1 * scale},
			"decoder": {s.DecoderBPD, 2 * scale},
			"terms":   {s.TermsBPD, 0.4 * scale},
			"t=1":     {s.PerTBPD[0], 2 * scale},
			"t=3":     {s.PerTBPD[2], 0.1 * scale},
		}
		for k, v := range want {
			if math.Abs(v[0]-v[1]) > 1e-12 {
				t.Errorf("scale %v: %s = %v, want %v", scale, k, v[0], v[1])
			}
		}
		if sum := s.PriorBPD + s.DecoderBPD + s.TermsBPD; math.Abs(sum-s.TotalBPD) > 1e-12 {
			t.Errorf("prior + decoder + terms = %v, total %v", sum, s.TotalBPD)
		}
	}
	one := &Bound{N: 1, T: 1, Total: []float64{3}, Prior: []float64{1}, Terms: [][]float64{{2}}}
	if s := one.Summary(1); s.TotalBPDStderr != 0 || s.TotalBPD != 3 {
		t.Errorf("one image: %+v", s)
	}
}

func TestEvaluateErrors(t *testing.T) {
	d := newDiffusion(t, 5, Eps, FixedLarge)
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, 10)
	for _, c := range []struct {
		name  string
		x     []float32
		n     int
		batch int
		rng   *rand.Rand
	}{
		{"no images", x, 0, 1, rng},
		{"ragged", x, 3, 1, rng},
		{"empty", nil, 1, 1, rng},
		{"zero batch", x, 2, 0, rng},
		{"no rng", x, 2, 1, nil},
	} {
		if _, err := d.EvaluateBound(context.Background(), affineModel{d}, c.x, c.n, BoundOptions{Batch: c.batch, Rng: c.rng}); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.EvaluateBound(ctx, affineModel{d}, x, 2, BoundOptions{Batch: 1, Rng: rng}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
}
