package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The kernels are checked against float64 formulas at lengths that cover
// the AVX-512 bulk, the scalar tail and both alone.
var lengths = []int{0, 1, 7, 15, 16, 17, 33, 100, 1024, 1031}

func randSlice(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * scale)
	}
	return x
}

func sig64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func close(t *testing.T, what string, i int, got float32, want float64, tol float64) {
	t.Helper()
	if d := math.Abs(float64(got) - want); d > tol*(1+math.Abs(want)) || math.IsNaN(float64(got)) {
		t.Fatalf("%s[%d] = %v, want %v", what, i, got, want)
	}
}

func TestExpAccuracy(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.0137 {
		want := math.Exp(float64(x))
		if d := math.Abs(float64(Exp(x))-want) / want; d > 3e-7 {
			t.Fatalf("Exp(%v) rel error %g", x, d)
		}
	}
	// The vector exp through ExpShiftSum, over the same range.
	var xs []float32
	for x := float32(-87); x < 88; x += 0.0137 {
		xs = append(xs, x)
	}
	y := make([]float32, len(xs))
	ExpShiftSum(y, xs, 0)
	for i, x := range xs {
		want := math.Exp(float64(x))
		if d := math.Abs(float64(y[i])-want) / want; d > 3e-7 {
			t.Fatalf("vector exp(%v) = %v rel error %g", x, y[i], d)
		}
	}
	// Out-of-range inputs stay finite.
	ExpShiftSum(y[:4], []float32{float32(math.Inf(-1)), -1000, 1000, float32(math.Inf(1))}, 0)
	for i, v := range y[:4] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("exp of extreme input %d = %v", i, v)
		}
	}
}

func TestElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const tol = 2e-6
	for _, n := range lengths {
		x, y, dy := randSlice(rng, n, 4), randSlice(rng, n, 1), randSlice(rng, n, 1)
		out := make([]float32, n)
		a, b, c := float32(1.7), float32(-0.3), float32(0.25)

		SiLU(out, x)
		for i := range out {
			close(t, "SiLU", i, out[i], float64(x[i])*sig64(float64(x[i])), tol)
		}
		SiLUGrad(out, dy, x)
		for i := range out {
			v, s := float64(x[i]), sig64(float64(x[i]))
			close(t, "SiLUGrad", i, out[i], float64(dy[i])*s*(1+v*(1-s)), tol)
		}
		AffineSiLU(out, x, a, b)
		for i := range out {
			z := float64(a)*float64(x[i]) + float64(b)
			close(t, "AffineSiLU", i, out[i], z*sig64(z), tol)
		}
		AffineSiLUGrad(out, dy, x, a, b)
		for i := range out {
			z := float64(a)*float64(x[i]) + float64(b)
			s := sig64(z)
			close(t, "AffineSiLUGrad", i, out[i], float64(dy[i])*s*(1+z*(1-s)), tol)
		}
		Affine(out, x, a, b)
		for i := range out {
			close(t, "Affine", i, out[i], float64(a)*float64(x[i])+float64(b), tol)
		}
		Lin3(out, x, y, a, b, c)
		for i := range out {
			close(t, "Lin3", i, out[i], float64(a)*float64(x[i])+float64(b)*float64(y[i])+float64(c), tol)
		}
		Add(out, x, y)
		for i := range out {
			close(t, "Add", i, out[i], float64(x[i])+float64(y[i]), tol)
		}
		copy(out, dy)
		MulSub(out, y, c)
		for i := range out {
			close(t, "MulSub", i, out[i], float64(y[i])*(float64(dy[i])-float64(c)), tol)
		}
		Fill(out, c)
		for i := range out {
			close(t, "Fill", i, out[i], float64(c), 0)
		}
		// In place: y = silu(y).
		copy(out, x)
		SiLU(out, out)
		for i := range out {
			close(t, "SiLU in place", i, out[i], float64(x[i])*sig64(float64(x[i])), tol)
		}
	}
}

func TestReductions(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range lengths {
		x, y := randSlice(rng, n, 3), randSlice(rng, n, 1)
		var sum, dot, mx, sqd, sdy, sdyxc, esum float64
		mx = math.Inf(-1)
		mean := float32(0.4)
		for i := range x {
			xi, yi := float64(x[i]), float64(y[i])
			sum += xi
			dot += xi * yi
			mx = math.Max(mx, xi)
			d := xi - float64(mean)
			sqd += d * d
			sdy += yi
			sdyxc += yi * d
			esum += math.Exp(xi - 2)
		}
		tol := 1e-5 * float64(n+1)
		check := func(what string, got, want float64) {
			t.Helper()
			if math.Abs(got-want) > tol*(1+math.Abs(want)) {
				t.Fatalf("n=%d: %s = %v, want %v", n, what, got, want)
			}
		}
		check("Sum", Sum(x), sum)
		check("Dot", Dot(x, y), dot)
		check("SumSqDev", SumSqDev(x, mean), sqd)
		a, b := SumDyXc(y, x, mean)
		check("SumDyXc dy", a, sdy)
		check("SumDyXc dy·xc", b, sdyxc)
		if got := Max(x); n > 0 && float64(got) != mx {
			t.Fatalf("n=%d: Max = %v, want %v", n, got, mx)
		}
		e := make([]float32, n)
		check("ExpShiftSum", ExpShiftSum(e, x, 2), esum)
	}
}

func BenchmarkSiLU(b *testing.B) {
	x, y := randSlice(rand.New(rand.NewPCG(1, 1)), 1<<16, 2), make([]float32, 1<<16)
	b.SetBytes(8 << 16)
	for b.Loop() {
		SiLU(y, x)
	}
}

func BenchmarkAffineSiLUGrad(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x, dy, y := randSlice(rng, 1<<16, 2), randSlice(rng, 1<<16, 2), make([]float32, 1<<16)
	b.SetBytes(12 << 16)
	for b.Loop() {
		AffineSiLUGrad(y, dy, x, 1.1, 0.1)
	}
}

// AdamStep must round exactly like the scalar loop, bulk and tail alike.
func TestAdamStepBitwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 1031
	w, g, m, v := randSlice(rng, n, 1), randSlice(rng, n, 1), randSlice(rng, n, 0.1), randSlice(rng, n, 0.01)
	for i := range v {
		v[i] = float32(math.Abs(float64(v[i])))
	}
	wd, w1, b2, w2, bc2Sqrt, eps, step := float32(0.01), float32(0.1), float32(0.999), float32(0.001), float32(0.3), float32(1e-8), float32(2e-4)
	ws, ms, vs := append([]float32(nil), w...), append([]float32(nil), m...), append([]float32(nil), v...)
	AdamStep(w, g, m, v, wd, w1, b2, w2, bc2Sqrt, eps, step)
	for i := range ws {
		gi := g[i] + wd*ws[i]
		ms[i] += w1 * (gi - ms[i])
		vs[i] = vs[i]*b2 + w2*gi*gi
		den := float32(math.Sqrt(float64(vs[i])))/bc2Sqrt + eps
		ws[i] -= step * (ms[i] / den)
		if w[i] != ws[i] || m[i] != ms[i] || v[i] != vs[i] {
			t.Fatalf("element %d: got w,m,v = %v,%v,%v, want %v,%v,%v", i, w[i], m[i], v[i], ws[i], ms[i], vs[i])
		}
	}
}
