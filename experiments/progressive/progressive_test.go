package progressive

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/diffusion/analytic"
)

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 3)) }

// images are four very different 16-value images.
func images() []float32 {
	x := make([]float32, 4*16)
	g := rng(99)
	for k := range x {
		x[k] = float32(g.IntN(256))/127.5 - 1
	}
	return x
}

func TestColumns(t *testing.T) {
	for _, tc := range []struct {
		T, cols int
		want    []int
	}{
		{1000, 10, []int{900, 800, 700, 600, 500, 400, 300, 200, 100, 0}},
		{1000, 1, []int{0}},
		{10, 10, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{100, 3, []int{67, 33, 0}},
	} {
		got, err := Columns(tc.T, tc.cols)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Columns(%d, %d) = %v, %v; want %v", tc.T, tc.cols, got, err, tc.want)
		}
	}
	for _, cols := range []int{0, 11} {
		if _, err := Columns(10, cols); err == nil {
			t.Errorf("Columns(10, %d): no error", cols)
		}
	}
	if got := SharedIndices(1000); !slices.Equal(got, []int{999, 749, 499, 249}) {
		t.Errorf("SharedIndices(1000) = %v", got)
	}
	if got := SharedIndices(2); !slices.Equal(got, []int{1, 0}) {
		t.Errorf("SharedIndices(2) = %v", got)
	}
}

// TestRun: the recorded x̂0 of the exact model of a data set converges to
// the final sample (one of the images) as the chain proceeds, and the last
// column is the final x̂0, which Algorithm 2 returns.
func TestRun(t *testing.T) {
	c := diffusion.DefaultConfig()
	d, _ := diffusion.New(c)
	imgs := images()
	m, _ := analytic.NewPoints(d, imgs, 4, nil)
	const n, D = 6, 16
	xT := make([]float32, n*D)
	diffusion.FillNormal(xT, rng(1))
	keep := slices.Clone(xT)
	cols, _ := Columns(d.T, 10)
	seen := 0 // every step is observed, recorded or not
	ch, err := Run(context.Background(), d, m, xT, n, cols, rng(2), diffusion.Hooks{Observe: func(i int, xt, xs []float32) {
		if i != d.T-1-seen || len(xt) != n*D || len(xs) != n*D {
			t.Fatalf("observation %d: index %d, %d and %d values", seen, i, len(xt), len(xs))
		}
		seen++
	}})
	if err != nil || seen != d.T {
		t.Fatalf("%v after %d observations", err, seen)
	}
	if !slices.Equal(xT, keep) {
		t.Error("Run modified x_T")
	}
	// Same seed, plain Sample: same final images.
	x := slices.Clone(xT)
	diffusion.Ancestral{}.Sample(context.Background(), d, m, x, n, rng(2), diffusion.Hooks{})
	if !slices.Equal(x, ch.Final) {
		t.Error("recording changed the samples")
	}
	dist := func(a, b []float32) float64 {
		s := 0.0
		for k := range a {
			e := float64(a[k] - b[k])
			s += e * e
		}
		return math.Sqrt(s / float64(len(a)))
	}
	if e := dist(ch.XStart[len(cols)-1], ch.Final); e > 1e-5 {
		t.Errorf("last column differs from the sample by %g", e)
	}
	first := dist(ch.XStart[0], ch.Final)
	if mid := dist(ch.XStart[5], ch.Final); !(first > 0.1 && mid < first) {
		t.Errorf("x̂0 does not approach the sample: error %g at column 1, %g at column 6", first, mid)
	}
	// x_t is recorded before the step: at the last column it is x_1, which
	// is within the noise of t = 1 of the sample.
	if e := dist(ch.Xt[len(cols)-1], ch.Final); !(e > 0 && e < 5*d.SqrtOneMinusAlphasCumprod[0]) {
		t.Errorf("x_1 differs from the sample by %g", e)
	}
	for _, bad := range [][]int{{-1}, {d.T}, {3, 3}} {
		if _, err := Run(context.Background(), d, m, xT, n, bad, rng(1), diffusion.Hooks{}); err == nil {
			t.Errorf("record %v: no error", bad)
		}
	}
	if _, err := Run(context.Background(), d, m, xT[:5], n, cols, rng(1), diffusion.Hooks{}); err == nil {
		t.Error("ragged x_T: no error")
	}
}

// TestSharedVarianceFalls is Figure 7's claim for the exact model of four
// images: samples sharing x_t at t = 250 differ much less than at t = 1000
// (in between, with 16 values per image, the four images are still hard to
// tell apart, and the rows' spread is equal within sampling noise).
func TestSharedVarianceFalls(t *testing.T) {
	c := diffusion.DefaultConfig()
	d, _ := diffusion.New(c)
	imgs := images()
	m, _ := analytic.NewPoints(d, imgs, 4, nil)
	idx := SharedIndices(d.T)
	const per = 24
	eps := make([]float32, 16)
	diffusion.FillNormal(eps, rng(5))
	for _, source := range []string{"data", "chain"} {
		var lat [][]float32
		if source == "data" {
			lat = Encode(d, imgs[16:32], eps, idx)
		} else {
			var err error
			lat, _, err = ChainLatents(context.Background(), d, m, eps, idx, rng(6), diffusion.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
		}
		steps := 0
		rows, err := Shared(context.Background(), d, m, lat, idx, per, rng(7), diffusion.Hooks{Progress: func(step, total int) {
			steps++
			if step != steps || total != 999+749+499+249+4 {
				t.Fatalf("progress %d/%d at call %d", step, total, steps)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float64, len(rows))
		for r := range rows {
			v[r] = PixelVariance(rows[r], per)
		}
		t.Logf("%s: pixel variance per row (t = 1000, 750, 500, 250): %.4f", source, v)
		if !(v[3] < 0.5*v[0]) || !(v[0] > 0.05) {
			t.Errorf("%s: variance at t = 250 %g, at t = 1000 %g", source, v[3], v[0])
		}
	}
	if _, err := Shared(context.Background(), d, m, [][]float32{eps}, []int{1, 2}, 2, rng(1), diffusion.Hooks{}); err == nil {
		t.Error("mismatched latents: no error")
	}
	if _, err := Shared(context.Background(), d, m, [][]float32{eps}, []int{1}, 0, rng(1), diffusion.Hooks{}); err == nil {
		t.Error("zero samples: no error")
	}
}

func TestPixelVariance(t *testing.T) {
	x := []float32{0, 1, 2, 1, 4, 1}
	// Three images of two values: value 0 has {0, 2, 4} (variance 8/3),
	// value 1 is constant.
	if got := PixelVariance(x, 3); math.Abs(got-4.0/3) > 1e-12 {
		t.Errorf("PixelVariance = %g, want 4/3", got)
	}
}
