package ablation

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/internal/text"
	"github.com/ddpm-go/ddpm/metrics"
	"github.com/ddpm-go/ddpm/model/unet"
)

// fdSeedStream is the PCG stream of the samples of [ClassifierFD] ("qult").
const fdSeedStream = 0x71756c74

// ClassifierFD is the ablation's sample-quality measure: the Fréchet
// distance between the features (the shipped classifier of the data set,
// package classifier) of n samples of a row's model (Algorithm 2, all T
// steps, batch images at a time, seeded with seed) and those of the first
// refN test images (0: the whole split). With a few hundred samples it is
// biased upwards, by about the same amount for every row, so it ranks rows
// but is not an FID. The reference features are computed once, at the
// first row; quiet hides the sampling's progress bar.
func ClassifierFD(dataset string, n, refN, batch int, seed uint64, quiet bool) (*Quality, error) {
	if n < 2 || batch < 1 {
		return nil, fmt.Errorf("ablation: FD needs at least 2 samples and a positive batch, got %d and %d", n, batch)
	}
	net, _, err := classifier.Embedded(dataset)
	if err != nil {
		return nil, err
	}
	var ref [][]float64
	return &Quality{
		Name: fmt.Sprintf("FD (LeNet features, %s)", text.Plural(n, "sample")),
		Measure: func(ctx context.Context, m *unet.UNet, d *diffusion.Diffusion) (float64, error) {
			if ref == nil {
				ds, err := data.Load(dataset, "test", data.WithLimit(refN))
				if err != nil {
					return 0, err
				}
				out, err := net.ApplyDataset(ds, nil, nil)
				if err != nil {
					return 0, err
				}
				ref = out.Features
			}
			cfg := m.Config()
			rng := rand.New(rand.NewPCG(seed, fdSeedStream))
			bar := progress.New((n+batch-1)/batch*d.T, fmt.Sprintf("sampling %s for FD", text.Plural(n, "image")), "step", quiet)
			x, err := diffusion.Generate(ctx, d, m, diffusion.Ancestral{}, n, cfg.InCh*cfg.Res*cfg.Res, batch, rng,
				diffusion.Hooks{Progress: func(done, _ int) { bar.Set(done) }})
			if err != nil {
				return 0, err
			}
			bar.Finish()
			in, err := net.Prepare(x, n, cfg.InCh, cfg.Res, cfg.Res)
			if err != nil {
				return 0, err
			}
			out, err := net.Apply(in, n, nil)
			if err != nil {
				return 0, err
			}
			return metrics.FD(ref, out.Features)
		},
	}, nil
}

// Unstable counts the rows whose training became unstable.
func Unstable(results []Result) int {
	k := 0
	for _, r := range results {
		if r.Status == StatusUnstable {
			k++
		}
	}
	return k
}
