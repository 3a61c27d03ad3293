package serve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
)

// TestNetworkBatchInvariant is the premise of batching: the network's
// output for an image does not depend on the batch it is in — its size, its
// other images, their timesteps, the image's place — bit for bit, for the
// shipped models and the tests' tiny ones (n = 1 and 2 are the sizes where
// the engine's conv layers could take a per-image path of their own).
func TestNetworkBatchInvariant(t *testing.T) {
	fashion, err := ddpm.Load("fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    *ddpm.Pipeline
	}{
		{"tiny", tinyPipeline(t, 50, false)},
		{"tiny learned", tinyPipeline(t, 50, true)},
		{"mnist", loadMNIST(t)},
		{"fashion-mnist", fashion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.p.Net.Config()
			dim, outDim := c.InCh*c.Res*c.Res, c.OutCh*c.Res*c.Res
			rng := rand.New(rand.NewPCG(1, 2))
			probe := make([]float32, dim)
			diffusion.FillNormal(probe, rng)
			ti := tc.p.T() / 3
			var ref []float32
			for _, n := range []int{1, 2, 3, 5, 17} {
				for _, at := range []int{0, n - 1, n / 2} {
					x := make([]float32, n*dim)
					diffusion.FillNormal(x, rng)
					copy(x[at*dim:], probe)
					ts := make([]int, n)
					for b := range ts {
						ts[b] = rng.IntN(tc.p.T())
					}
					ts[at] = ti
					out := make([]float32, n*outDim)
					tc.p.Net.Predict(out, x, ts)
					got := out[at*outDim : (at+1)*outDim]
					if ref == nil {
						ref = slices.Clone(got)
						continue
					}
					for k, v := range got {
						if v != ref[k] {
							t.Fatalf("image %d of a batch of %d: output %d is %v, alone %v", at, n, k, v, ref[k])
						}
					}
				}
			}
		})
	}
}

// samplerCase is a request and the library sampler it must match.
type samplerCase struct {
	body    map[string]any
	sampler diffusion.Sampler
}

func tinyCases() []samplerCase {
	return []samplerCase{
		{map[string]any{"sampler": "ancestral"}, ddpm.Ancestral()},
		{map[string]any{"sampler": "ddim", "steps": 7}, ddpm.DDIM(7)},
		{map[string]any{"sampler": "ddim", "steps": 5, "eta": 0.7}, diffusion.DDIM{Steps: 5, Eta: 0.7}},
		{map[string]any{"sampler": "respaced", "steps": 6}, ddpm.Respaced(6)},
	}
}

// TestSoloMatchesSampleTensor: a request served alone gives the images of
// SampleTensor with the same seed, bit for bit, for every sampler, with a
// fixed and a learned variance, and over several chunks.
func TestSoloMatchesSampleTensor(t *testing.T) {
	for _, learned := range []bool{false, true} {
		p := tinyPipeline(t, 20, learned)
		ref := tinyPipeline(t, 20, learned)
		ts := newTestServer(t, Options{Pipelines: map[string]*ddpm.Pipeline{"tiny": p}, MaxBatch: 4})
		for k, c := range tinyCases() {
			for _, n := range []int{1, 3, 9} { // 9 images: chunks of 4, 4, 1
				seed := uint64(100*k + n)
				body := map[string]any{"n": n, "seed": seed}
				for kk, v := range c.body {
					body[kk] = v
				}
				what := fmt.Sprintf("learned=%v %v n=%d", learned, c.body, n)
				r := ts.sampleJSON(t, body)
				want, err := ref.SampleTensor(context.Background(), n, ddpm.SampleOptions{Sampler: c.sampler, Seed: seed, Batch: 4})
				if err != nil {
					t.Fatal(err)
				}
				checkImages(t, what, r, want)
			}
		}
	}
}

// TestBatchedMatchesSolo: requests of every sampler denoised together in
// one batch, at different timesteps, each give SampleTensor's images.
func TestBatchedMatchesSolo(t *testing.T) {
	p := tinyPipeline(t, 20, false)
	ref := tinyPipeline(t, 20, false)
	w := newStepWatch()
	ts := newTestServer(t, Options{Pipelines: map[string]*ddpm.Pipeline{"tiny": p}, onStep: w.hook})
	defer w.free()
	cases := tinyCases()
	var wg sync.WaitGroup
	results := make([]*SampleResponse, 2*len(cases))
	errs := make([]error, len(results))
	submit := func(k int) {
		c := cases[k%len(cases)]
		body := map[string]any{"n": 1 + k%3, "seed": uint64(k)}
		for kk, v := range c.body {
			body[kk] = v
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[k], errs[k] = ts.trySample(body)
		}()
	}
	// The first request runs alone, held at its steps, while the rest of
	// the first half queue; they join it at a step, and the second half
	// joins them mid-way. A step the test receives lets the scheduler
	// take the next, which then waits in the hook.
	submit(0)
	w.next(t)
	for k := 1; k < len(cases); k++ {
		submit(k)
	}
	waitFor(t, "the first requests to queue", func() bool { return ts.queued() == len(cases)-1 })
	w.next(t)
	// The scheduler admits them before its next step: only then may the
	// second half queue, or some of it would be admitted with them.
	waitFor(t, "the first requests to join the batch", func() bool { return ts.queued() == 0 })
	for k := len(cases); k < len(results); k++ {
		submit(k)
	}
	waitFor(t, "the second requests to queue", func() bool { return ts.queued() == len(cases) })
	biggest := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for {
		select {
		case n := <-w.ch:
			biggest = max(biggest, n)
		case <-done:
			break loop
		}
	}
	for k, r := range results {
		if errs[k] != nil {
			t.Fatalf("request %d: %v", k, errs[k])
		}
		c := cases[k%len(cases)]
		want, err := ref.SampleTensor(context.Background(), r.N, ddpm.SampleOptions{Sampler: c.sampler, Seed: uint64(k)})
		if err != nil {
			t.Fatal(err)
		}
		checkImages(t, fmt.Sprintf("request %d %v", k, c.body), r, want)
	}
	all := 0
	for k := range results {
		all += 1 + k%3
	}
	if want := all; biggest != want {
		t.Errorf("largest batch %d images, want all %d at once", biggest, want)
	}
}
