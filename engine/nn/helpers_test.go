package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// randn returns n normal samples times scale.
func randn(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

// bindRandom gives params fresh buffers, random weights and zero gradients.
func bindRandom(rng *rand.Rand, params []*Param, scale float64) {
	total := 0
	for _, p := range params {
		total += p.Size()
	}
	Bind(params, randn(rng, total, scale), make([]float32, total))
}

func zeroGrads(params []*Param) {
	for _, p := range params {
		clear(p.G)
	}
}

// dot is Σ g·y in float64: the scalar loss whose gradient w.r.t. y is g.
func dot(g, y []float32) float64 {
	var s float64
	for i := range g {
		s += float64(g[i]) * float64(y[i])
	}
	return s
}

// gradCheck compares analytic (the gradient of loss w.r.t. x) with central
// differences at ncoords random coordinates of x. The error of a coordinate
// is |a − num| / max(|a|, |num|, 5% of max|analytic|): relative for the
// coordinates that matter, absolute (on the gradient's scale) for the tiny
// ones, where float32 rounding noise would dominate a relative error.
func gradCheck(t *testing.T, name string, x, analytic []float32, loss func() float64, rng *rand.Rand, ncoords int, eps, tol float64) {
	t.Helper()
	var scale float64
	for _, v := range analytic {
		scale = max(scale, math.Abs(float64(v)))
	}
	if scale == 0 {
		t.Fatalf("%s: analytic gradient is all zero", name)
	}
	worst, worstI := 0.0, -1
	for c := 0; c < ncoords; c++ {
		i := rng.IntN(len(x))
		orig := x[i]
		x[i] = orig + float32(eps)
		lp := loss()
		x[i] = orig - float32(eps)
		lm := loss()
		x[i] = orig
		// Use the actually representable step so that eps rounding does not bias.
		num := (lp - lm) / (float64(orig+float32(eps)) - float64(orig-float32(eps)))
		a := float64(analytic[i])
		e := math.Abs(a-num) / max(math.Abs(a), math.Abs(num), 0.05*scale)
		if e > worst {
			worst, worstI = e, i
		}
	}
	if worst > tol {
		t.Errorf("%s: max rel error %.3g at %d (tol %.3g)", name, worst, worstI, tol)
	}
}

// maxAbsDiff is max |a−b| over a float32 slice and a float64 reference.
func maxAbsDiff(a []float32, b []float64) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-b[i]))
	}
	return m
}
