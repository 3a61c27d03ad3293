package interpolate

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/diffusion/analytic"
)

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 11)) }

func TestLambdasPixel(t *testing.T) {
	l := Lambdas(10)
	if len(l) != 11 || l[0] != 0 || l[10] != 1 || math.Abs(l[3]-0.3) > 1e-15 {
		t.Fatalf("Lambdas(10) = %v", l)
	}
	got := Pixel([]float32{0, 1}, []float32{1, -1}, []float64{0, 0.25, 1})
	want := []float32{0, 1, 0.25, 0.5, 1, -1}
	if !slices.Equal(got, want) {
		t.Errorf("Pixel = %v, want %v", got, want)
	}
}

// TestEndsAreReconstructions: λ = 0 and λ = 1 of a row are the
// reconstructions of a and of b (each decoded alone with the same noise),
// for every variance; and the noise really is shared: with a model that
// ignores its input every λ decodes to the same image.
func TestEndsAreReconstructions(t *testing.T) {
	const D = 8
	g := rng(1)
	imgs := make([]float32, 3*D)
	for k := range imgs {
		imgs[k] = float32(g.IntN(256))/127.5 - 1
	}
	a, b := imgs[:D], imgs[D:2*D]
	idx := []int{99, 499}
	for _, v := range []diffusion.ModelVar{diffusion.FixedLarge, diffusion.FixedSmall, diffusion.Learned} {
		c := diffusion.DefaultConfig()
		c.Var = v
		d, _ := diffusion.New(c)
		m, _ := analytic.NewPoints(d, imgs, 3, nil)
		rows, err := Run(context.Background(), d, m, a, b, idx, Lambdas(10), rng(5), diffusion.Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		recA, _ := Run(context.Background(), d, m, a, b, idx, []float64{0}, rng(5), diffusion.Hooks{})
		recB, _ := Run(context.Background(), d, m, b, a, idx, []float64{0}, rng(5), diffusion.Hooks{})
		for r := range idx {
			if !slices.Equal(rows[r][:D], recA[r]) {
				t.Errorf("%v row %d: λ = 0 is not the reconstruction of a", v, r)
			}
			if !slices.Equal(rows[r][10*D:], recB[r]) {
				t.Errorf("%v row %d: λ = 1 is not the reconstruction of b", v, r)
			}
		}
		// The exact model of the data set reconstructs a from t = 100.
		for j := range D {
			if math.Abs(float64(rows[0][j]-a[j])) > 1e-3 {
				t.Errorf("%v: reconstruction of a from t = 100 is off at %d: %g vs %g", v, j, rows[0][j], a[j])
			}
		}
	}
	c := diffusion.DefaultConfig()
	c.Var = diffusion.FixedSmall
	d, _ := diffusion.New(c)
	rows, err := Run(context.Background(), d, constModel{d}, a, b, []int{300}, Lambdas(4), rng(2), diffusion.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	// x̂0 = 0 everywhere: x_{t−1} = c₂ x_t + σ z, so after the first step the
	// λ-dependence shrinks by Π c₂ and the shared z makes every λ agree.
	for k := 1; k < 5; k++ {
		for j := range D {
			if math.Abs(float64(rows[0][k*D+j]-rows[0][j])) > 1e-4 {
				t.Fatalf("λ index %d differs from λ = 0 at %d: %g vs %g (noise not shared)", k, j, rows[0][k*D+j], rows[0][j])
			}
		}
	}
}

// constModel predicts x̂0 = 0 whatever its input.
type constModel struct{ d *diffusion.Diffusion }

func (m constModel) Predict(out, xt []float32, t []int) {
	D := len(xt) / len(t)
	for b, i := range t {
		analytic.Encode(m.d, out[b*D:(b+1)*D], xt[b*D:(b+1)*D], make([]float32, D), i, nil)
	}
}

func TestRunErrors(t *testing.T) {
	d, _ := diffusion.New(diffusion.DefaultConfig())
	m := constModel{d}
	a := []float32{0, 0}
	run := func(a, b []float32, idx []int, lambdas []float64) func() error {
		return func() error {
			_, err := Run(context.Background(), d, m, a, b, idx, lambdas, rng(1), diffusion.Hooks{})
			return err
		}
	}
	for name, f := range map[string]func() error{
		"lengths":   run(a, []float32{0}, []int{1}, Lambdas(2)),
		"empty":     run(nil, nil, []int{1}, Lambdas(2)),
		"no λ":      run(a, a, []int{1}, nil),
		"index":     run(a, a, []int{1000}, Lambdas(2)),
		"neg index": run(a, a, []int{-1}, Lambdas(2)),
	} {
		if f() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestOneLambdaIsAColumn: the draws do not depend on the number of λ, so a
// row of one λ is that column of the full row (a λ slider), Observe sees
// every step of the row and a cancelled context stops the run.
func TestOneLambdaIsAColumn(t *testing.T) {
	d, _ := diffusion.New(diffusion.DefaultConfig())
	imgs := []float32{0.5, -1, 1, 0, -0.5, 1, 0, 0.25}
	m, _ := analytic.NewPoints(d, imgs, 2, nil)
	a, b := imgs[:4], imgs[4:]
	idx := []int{9, 29}
	seen := 0
	rows, err := Run(context.Background(), d, m, a, b, idx, Lambdas(4), rng(3), diffusion.Hooks{Observe: func(i int, xt, xs []float32) {
		if len(xt) != 5*4 || len(xs) != 5*4 {
			t.Fatalf("step %d: %d and %d values", i, len(xt), len(xs))
		}
		seen++
	}})
	if err != nil || seen != 10+30 {
		t.Fatalf("%v after %d observations", err, seen)
	}
	one, err := Run(context.Background(), d, m, a, b, idx, []float64{0.25}, rng(3), diffusion.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	for r := range idx {
		if !slices.Equal(one[r], rows[r][4:8]) {
			t.Errorf("row %d: λ = 0.25 alone %v, in the row %v", r, one[r], rows[r][4:8])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, d, m, a, b, idx, Lambdas(2), rng(3), diffusion.Hooks{}); err != context.Canceled {
		t.Errorf("cancelled: %v", err)
	}
	if got := Indices(1000); !slices.Equal(got, []int{249, 499, 749, 999}) {
		t.Errorf("Indices(1000) = %v", got)
	}
	if got := Indices(2); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("Indices(2) = %v", got)
	}
}
