package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/likelihood"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/model/unet"
)

// defaultFitN is --fit-n's default: 64 images × 784 values give every step's
// x̂0 error to about 1 % and cost T forward passes of one batch.
const defaultFitN = 64

// fitMinBin is how many values a bin of x̂0 needs at a step to get a
// variance of its own (diffusion.FitBins); rarer bins take the step's pooled
// one. 100 values estimate a mean squared error to about 15 %.
const fitMinBin = 100

// fitSeed seeds the fit's x_t draws ("fit"), apart from eval bpd's.
const fitSeed = 0x666974

// fitVariance measures --var fitted for the network m (diffusion.VarianceFit):
// its x̂0 error at every step and the best decoder scale, on the last n
// images of its training split — images that eval bpd's first-N train and
// test evaluations do not use — and returns d with that variance.
func fitVariance(path string, m *unet.UNet, d *diffusion.Diffusion, n int, quiet bool) (*diffusion.Diffusion, error) {
	cfg := m.Config()
	ds, spec, err := expData(path, "", "train", cfg)
	if err != nil {
		return nil, fmt.Errorf("--var %v fits on the model's training data: %w", diffusion.Fitted, err)
	}
	if n <= 0 || n > ds.N {
		return nil, usageErr("--fit-n must be in 1..%d (the %s train split), got %d", ds.N, spec, n)
	}
	idx := make([]int, n)
	for k := range idx {
		idx[k] = ds.N - n + k
	}
	x0, err := expImages(ds, idx, cfg.Res, "image")
	if err != nil {
		return nil, err
	}
	bar := progress.New(n*d.T, fmt.Sprintf("fitting σ_t² on %d %s train images", n, spec), "eval", quiet)
	start := time.Now()
	fit, err := likelihood.FitVariance(context.Background(), d, m, x0, n, fitMinBin, likelihood.Options{
		Batch: 64, Rng: rand.New(rand.NewPCG(fitSeed, 0)), Progress: func(done, _ int) { bar.Set(done) },
	})
	if err != nil {
		return nil, fmt.Errorf("fitting the variance: %w", err)
	}
	bar.Finish()
	fd, err := d.WithFit(fit)
	if err != nil {
		return nil, err
	}
	if !quiet {
		sigma := func(dd *diffusion.Diffusion, i int) float64 { return math.Exp(0.5 * dd.FixedLogVariance(i)) }
		last := len(fit.DecoderLogScale) - 1
		fmt.Fprintf(os.Stderr, "fitted variance (%d train images, %s): decoder σ_1 %.4g (was %.4g; %.3g where x̂0 ≈ −1, %.3g where ≈ +1)",
			n, time.Since(start).Round(time.Second), sigma(fd, 0), sigma(d, 0),
			math.Exp(fit.DecoderLogScale[0]), math.Exp(fit.DecoderLogScale[last]))
		for _, t := range []int{2, 10, 100} {
			if t <= d.T {
				fmt.Fprintf(os.Stderr, "; σ_%d %.3g (√β̃ %.3g, √β %.3g)", t, sigma(fd, t-1), math.Sqrt(d.PosteriorVariance[t-1]), math.Sqrt(d.Betas[t-1]))
			}
		}
		fmt.Fprintln(os.Stderr)
	}
	return fd, nil
}
