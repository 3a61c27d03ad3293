package diffusion

import (
	"math"
	"math/rand/v2"
	"testing"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

func mustNew(tb testing.TB, mean ModelMean, v ModelVar, loss LossType, clip bool) *Diffusion {
	tb.Helper()
	c := DefaultConfig()
	c.Mean, c.Var, c.Loss, c.Clip = mean, v, loss, clip
	d, err := New(c)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// x0Model turns an x0 predictor into a Model under d's parameterisation:
// Eps outputs the ε implied by x̂0, XStart outputs x̂0, XPrev outputs
// μ̃(x_t, x̂0). logVar (nil: log β̃ clipped) fills the learned channels.
type x0Model struct {
	d      *Diffusion
	xStart func(b, j int, x float64, i int) float64
	logVar func(i int) float64
	calls  []int // index of each call (t[0]), when record is set
	record bool
}

func (m *x0Model) Predict(out, xt []float32, t []int) {
	d := m.d
	n := len(t)
	D := len(xt) / n
	if m.record {
		for _, i := range t[1:] {
			if i != t[0] {
				panic("mixed t in a sampling batch")
			}
		}
		m.calls = append(m.calls, t[0])
	}
	for b, i := range t {
		om, ov := d.splitOut(out, b, D)
		for j := range D {
			x := float64(xt[b*D+j])
			xs := m.xStart(b, j, x, i)
			switch d.Mean {
			case Eps:
				om[j] = float32((d.SqrtRecipAlphasCumprod[i]*x - xs) / d.SqrtRecipM1AlphasCumprod[i])
			case XStart:
				om[j] = float32(xs)
			case XPrev:
				om[j] = float32(d.posteriorMean(i, xs, x))
			case V:
				eps := (d.SqrtRecipAlphasCumprod[i]*x - xs) / d.SqrtRecipM1AlphasCumprod[i]
				om[j] = float32(d.SqrtAlphasCumprod[i]*eps - d.SqrtOneMinusAlphasCumprod[i]*xs)
			}
			if ov != nil {
				lv := d.PosteriorLogVarianceClipped[i]
				if m.logVar != nil {
					lv = m.logVar(i)
				}
				ov[j] = float32(lv)
			}
		}
	}
}

// pixels returns n·D values on the 256-level grid of [−1, 1], including both
// ends.
func pixels(rng *rand.Rand, nd int) []float32 {
	x := make([]float32, nd)
	for k := range x {
		p := rng.IntN(256)
		switch k % 7 {
		case 0:
			p = 0
		case 3:
			p = 255
		}
		x[k] = float32(p)/127.5 - 1
	}
	return x
}

func close(a, b, rel, abs float64) bool {
	return math.Abs(a-b) <= abs+rel*math.Max(math.Abs(a), math.Abs(b))
}

var (
	allMeans  = []ModelMean{Eps, XPrev, XStart, V}
	allVars   = []ModelVar{FixedLarge, FixedSmall, Learned}
	allLosses = []LossType{Simple, VLB, MSEMu, Hybrid}
)
