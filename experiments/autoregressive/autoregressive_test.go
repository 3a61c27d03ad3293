package autoregressive

import (
	"math"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

func newD(t testing.TB, v diffusion.ModelVar, clip bool) *diffusion.Diffusion {
	t.Helper()
	c := diffusion.DefaultConfig()
	c.Var, c.Clip = v, clip
	d, err := diffusion.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mixture(t testing.TB) Mixture {
	t.Helper()
	mix, err := FromLevels([]int{51, 153, 217}, []float64{5, 3, 2})
	if err != nil {
		t.Fatal(err)
	}
	return mix
}

// TestEq5EqualsEq16: the two forms of the bound agree to integration
// accuracy for the exact model and for a deliberately wrong one, under
// both fixed variances; the wrong model's bound is larger; every term of
// eq. 16 is a KL (≥ 0) and, for t ≥ 2, at most eq. 5's term at the same t
// (the difference is the information x0 adds about x_{t−1} given x_t).
func TestEq5EqualsEq16(t *testing.T) {
	mix := mixture(t)
	if h := mix.Entropy(); math.Abs(h-(-0.5*math.Log(0.5)-0.3*math.Log(0.3)-0.2*math.Log(0.2))) > 1e-12 {
		t.Fatalf("H(x0) = %g", h)
	}
	for _, v := range []diffusion.ModelVar{diffusion.FixedLarge, diffusion.FixedSmall} {
		d := newD(t, v, true)
		exact := mix.Exact(d.Schedule)
		wrong := func(x float64, i int) float64 { return 0.8*exact(x, i) + 0.05 }
		var totals []float64
		for name, pred := range map[string]Predictor{"exact": exact, "wrong": wrong} {
			r, err := Bound(d, mix, pred, Options{Grid: 121, Nodes: 12})
			if err != nil {
				t.Fatal(err)
			}
			if diff := math.Abs(r.Eq5Total - r.Eq16Total); diff > 1e-6 {
				t.Errorf("%v %s: eq. 5 = %.9f nats, eq. 16 = %.9f (difference %.2g)", v, name, r.Eq5Total, r.Eq16Total, diff)
			}
			if !(r.Eq16Prior <= r.Eq5Prior) || r.Eq16Prior < 0 {
				t.Errorf("%v %s: prior KL of the marginal %g, expected KL of the conditionals %g", v, name, r.Eq16Prior, r.Eq5Prior)
			}
			for i := range d.T {
				if r.Eq16Terms[i] < -1e-9 {
					t.Fatalf("%v %s: negative KL %g at t = %d", v, name, r.Eq16Terms[i], i+1)
				}
				if i > 0 && r.Eq16Terms[i] > r.Eq5Terms[i]+1e-9 {
					t.Fatalf("%v %s t = %d: eq. 16 term %g > eq. 5 term %g", v, name, i+1, r.Eq16Terms[i], r.Eq5Terms[i])
				}
			}
			if name == "exact" {
				totals = append([]float64{r.Eq5Total}, totals...)
			} else {
				totals = append(totals, r.Eq5Total)
			}
		}
		if !(totals[1] > totals[0]) {
			t.Errorf("%v: the wrong model's bound %g is not above the exact model's %g", v, totals[1], totals[0])
		}
	}
}

// TestSinglePoint: with one data point x0 is known, q(x_{t−1} | x_t) is
// q(x_{t−1} | x_t, x0), H(x0) = 0, and the two forms agree term by term.
func TestSinglePoint(t *testing.T) {
	mix, err := FromLevels([]int{100}, []float64{1})
	if err != nil {
		t.Fatal(err)
	}
	d := newD(t, diffusion.FixedLarge, false)
	wrong := func(x float64, i int) float64 { return 0.3 * x }
	calls := 0
	r, err := Bound(d, mix, wrong, Options{Grid: 81, Nodes: 8, Progress: func(done, total int) {
		calls++
		if done != calls || total != d.T {
			t.Errorf("progress %d/%d at call %d", done, total, calls)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != d.T {
		t.Errorf("%d progress calls", calls)
	}
	if r.Entropy != 0 || math.Abs(r.Eq5Prior-r.Eq16Prior) > 1e-9*r.Eq5Prior {
		t.Errorf("entropy %g, priors %g and %g", r.Entropy, r.Eq5Prior, r.Eq16Prior)
	}
	for i := range d.T {
		if math.Abs(r.Eq5Terms[i]-r.Eq16Terms[i]) > 1e-9*(1+r.Eq5Terms[i]) {
			t.Fatalf("t = %d: eq. 5 term %g, eq. 16 term %g", i+1, r.Eq5Terms[i], r.Eq16Terms[i])
		}
	}
}

// TestResolution: a finer grid changes the totals only far below the
// accuracy the identity is checked to.
func TestResolution(t *testing.T) {
	mix := mixture(t)
	c := diffusion.DefaultConfig()
	c.T, c.BetaEnd = 200, 0.1
	d, _ := diffusion.New(c)
	coarse, _ := Bound(d, mix, mix.Exact(d.Schedule), Options{Grid: 121, Nodes: 12})
	fine, _ := Bound(d, mix, mix.Exact(d.Schedule), Options{Grid: 321, Nodes: 24})
	if math.Abs(fine.Eq5Total-fine.Eq16Total) > 1e-9 {
		t.Errorf("fine grid: eq. 5 %.12f, eq. 16 %.12f", fine.Eq5Total, fine.Eq16Total)
	}
	if math.Abs(coarse.Eq16Total-fine.Eq16Total) > 1e-5 {
		t.Errorf("eq. 16 moves by %g between grids", coarse.Eq16Total-fine.Eq16Total)
	}
}

func TestErrors(t *testing.T) {
	d := newD(t, diffusion.FixedLarge, true)
	mix := mixture(t)
	pred := mix.Exact(d.Schedule)
	if _, err := Bound(newD(t, diffusion.Learned, true), mix, pred, Options{}); err == nil {
		t.Error("learned variance: no error")
	}
	for _, o := range []Options{{Grid: 100}, {Grid: 3}, {Nodes: 1}} {
		if _, err := Bound(d, mix, pred, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	for name, m := range map[string]Mixture{
		"empty":       {},
		"off grid":    {Points: []float64{0.1234}, Weights: []float64{1}},
		"outside":     {Points: []float64{1 + 2/255.0}, Weights: []float64{1}},
		"twice":       {Points: []float64{0, 0}, Weights: []float64{1, 1}},
		"weights":     {Points: []float64{-1, 1}, Weights: []float64{1}},
		"zero weight": {Points: []float64{-1, 1}, Weights: []float64{1, 0}},
	} {
		if err := m.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := FromLevels([]int{256}, []float64{1}); err == nil {
		t.Error("level 256: no error")
	}
}
