package diffusion_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/diffusion/analytic"
)

// samplerCases are one of each Sampler, small enough for a 50-step process.
var samplerCases = []diffusion.Sampler{
	diffusion.Ancestral{},
	diffusion.DDIM{Steps: 10},
	diffusion.DDIM{Steps: 7, Eta: 1},
	diffusion.Respaced{Steps: 12},
	diffusion.Langevin{Levels: 5, Steps: 2, StepScale: 1},
}

// TestSamplerHooks: every sampler calls Progress once per network
// evaluation, counting 1..Evaluations(T), and reports cancellation.
func TestSamplerHooks(t *testing.T) {
	d := newD(t, diffusion.Eps, diffusion.FixedLarge, true)
	for _, s := range samplerCases {
		t.Run(s.String(), func(t *testing.T) {
			pm, _ := analytic.NewPoints(d, threeImages, 3, nil)
			rec := &recorder{m: pm}
			x := make([]float32, 2*4)
			diffusion.FillNormal(x, rng(1))
			done := 0
			err := s.Sample(context.Background(), d, rec, x, 2, rng(2), diffusion.Hooks{Progress: func(step, total int) {
				done++
				if step != done || total != s.Evaluations(d.T) {
					t.Fatalf("progress %d/%d after %d calls", step, total, done)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if done != s.Evaluations(d.T) || len(rec.calls) != done {
				t.Errorf("%d progress calls, %d network evaluations, want %d", done, len(rec.calls), s.Evaluations(d.T))
			}

			// Cancelled after the third evaluation: no fourth.
			ctx, cancel := context.WithCancel(context.Background())
			rec.calls = nil
			err = s.Sample(ctx, d, rec, x, 2, rng(2), diffusion.Hooks{Progress: func(step, _ int) {
				if step == 3 {
					cancel()
				}
			}})
			if !errors.Is(err, context.Canceled) || len(rec.calls) != 3 {
				t.Errorf("cancelled: err %v after %d evaluations, want context.Canceled after 3", err, len(rec.calls))
			}
		})
	}
}

// TestRespacedSamplerFeedsBaseTimesteps: the Respaced sampler is the
// respaced process sampled through its model wrapper, so the network only
// ever sees the base process's indices.
func TestRespacedSamplerFeedsBaseTimesteps(t *testing.T) {
	d := newD(t, diffusion.XPrev, diffusion.FixedSmall, false)
	pm, _ := analytic.NewPoints(d, threeImages, 3, nil)
	keep, _ := diffusion.SpacedIndices(d.T, 12)
	r, err := d.Respace(keep)
	if err != nil {
		t.Fatal(err)
	}
	a := make([]float32, 3*4)
	diffusion.FillNormal(a, rng(3))
	b := slices.Clone(a)
	rec := &recorder{m: pm}
	var observed []int
	if err := (diffusion.Respaced{Steps: 12}).Sample(context.Background(), d, rec, a, 3, rng(4), diffusion.Hooks{
		Observe: func(i int, _, _ []float32) { observed = append(observed, i) },
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.SampleFrom(context.Background(), r.Model(pm), b, 3, r.T-1, rng(4), diffusion.Hooks{}); err != nil {
		t.Fatal(err)
	}
	if diff := maxAbsDiff(a, b); diff != 0 {
		t.Errorf("Respaced sampler differs from the wrapped respaced process by %g", diff)
	}
	for s, call := range rec.calls {
		want := keep[len(keep)-1-s]
		if call[0] != want || observed[s] != want {
			t.Fatalf("step %d: network saw index %d, observer %d, want base index %d", s, call[0], observed[s], want)
		}
	}
}

// TestGenerate: batches are drawn as a hand-written loop would draw them,
// and progress runs over all batches.
func TestGenerate(t *testing.T) {
	d := newD(t, diffusion.Eps, diffusion.FixedLarge, true)
	pm, _ := analytic.NewPoints(d, threeImages, 3, nil)
	const n, D, batch = 5, 4, 2
	s := diffusion.DDIM{Steps: 5, Eta: 0.5}
	last := 0
	got, err := diffusion.Generate(context.Background(), d, pm, s, n, D, batch, rng(7), diffusion.Hooks{Progress: func(done, total int) {
		if done != last+1 || total != 3*5 {
			t.Fatalf("progress %d/%d after %d", done, total, last)
		}
		last = done
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n*D)
	g := rng(7)
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		x := want[lo*D : hi*D]
		diffusion.FillNormal(x, g)
		if err := s.Sample(context.Background(), d, pm, x, hi-lo, g, diffusion.Hooks{}); err != nil {
			t.Fatal(err)
		}
	}
	if diff := maxAbsDiff(got, want); diff != 0 || last != 15 {
		t.Errorf("Generate differs from the loop by %g (progress reached %d)", diff, last)
	}
	for _, bad := range []diffusion.Sampler{diffusion.DDIM{Steps: 0}, diffusion.DDIM{Steps: 5, Eta: -1}, diffusion.Respaced{Steps: 1}, diffusion.Langevin{}} {
		if _, err := diffusion.Generate(context.Background(), d, pm, bad, n, D, batch, rng(1), diffusion.Hooks{}); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

func ExampleSampler() {
	d, _ := diffusion.New(diffusion.DefaultConfig())
	for _, s := range []diffusion.Sampler{diffusion.Ancestral{}, diffusion.DDIM{Steps: 50}, diffusion.Respaced{Steps: 100}, diffusion.DefaultLangevin()} {
		fmt.Printf("%s: %d network evaluations per image\n", s, s.Evaluations(d.T))
	}
	// Output:
	// ancestral: 1000 network evaluations per image
	// ddim, 50 steps, η = 0: 50 network evaluations per image
	// respaced, 100 steps: 100 network evaluations per image
	// langevin, 100 levels × 10 steps, r = 1: 1001 network evaluations per image
}
