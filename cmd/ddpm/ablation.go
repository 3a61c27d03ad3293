package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/ablation"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/metrics"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register("ablation", "train and evaluate the six rows of the paper's Table 2 with one budget", runAblation)
}

func runAblation(args []string) error {
	fs := newFlags("ablation", "--data mnist --steps N --out DIR [--config mnist-small] [--batch 32] [--eval-n 100] [flags]")
	o := train.DefaultOptions()
	o.Config = "mnist-small"
	// A few-thousand-step run: 0.999 would leave 5% of the random
	// initialisation in the evaluated weights after 3000 steps.
	o.EMADecay = 0.995
	dc := diffusion.DefaultConfig()
	fs.StringVar(&o.Data, "data", o.Data, "data set: "+data.Specs)
	fs.StringVar(&o.Config, "config", o.Config, configHelp("U-Net config of every row"))
	fs.IntVar(&o.Steps, "steps", o.Steps, "optimizer steps of every row")
	fs.IntVar(&o.Batch, "batch", o.Batch, "images per step")
	fs.Float64Var(&o.LR, "lr", o.LR, "Adam learning rate (after warm-up)")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "linear learning-rate warm-up steps")
	fs.StringVar(&o.Decay, "lr-decay", o.Decay, "learning rate after warm-up: constant (paper), cosine or linear (to 0 at --steps)")
	fs.Float64Var(&o.GradClip, "grad-clip", o.GradClip, "clip the global gradient norm to this (0: off)")
	fs.Float64Var(&o.EMADecay, "ema", o.EMADecay, "EMA decay of the evaluated weights")
	fs.BoolVar(&o.Flip, "flip", o.Flip, "random horizontal flips (off for digits)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed shared by every row")
	fs.IntVar(&o.CkptEvery, "ckpt-every", o.CkptEvery, "checkpoint every N steps (0: only at the end of a row)")
	fs.IntVar(&dc.T, "T", dc.T, "number of diffusion steps")
	fs.Var(enumFlag{&dc.Schedule}, "schedule", "β schedule: linear or cosine")
	fs.BoolVar(&dc.Clip, "clip", dc.Clip, "clip the predicted x0 to [-1, 1] when evaluating the bound (as the official code)")
	out := fs.String("out", "", "experiment directory: one run directory per row, table.md, results.json (required)")
	evalN := fs.Int("eval-n", 100, "test images whose bits/dim each row reports")
	evalBatch := fs.Int("eval-batch", 64, "network inputs per forward pass while evaluating")
	evalSeed := fs.Uint64("eval-seed", 0, "seed of the x_t draws of the evaluation and of the samples")
	qualityN := fs.Int("quality-n", 100, "samples per row for the sample-quality column, FD on the features of the data set's shipped classifier (0: off)")
	quiet := fs.Bool("quiet", false, "no progress bars")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out DIR is required")
	}
	if err := checkDirOut("out", *out); err != nil {
		return err
	}
	opt := ablation.Options{
		Out: *out, Train: o, Diffusion: dc,
		EvalN: *evalN, EvalBatch: *evalBatch, EvalSeed: *evalSeed,
		Quiet: *quiet, Log: os.Stderr,
	}
	if err := opt.Validate(); err != nil {
		return usageErr("%v", err)
	}
	if _, err := unet.ConfigByName(o.Config); err != nil {
		return usageErr("%v", err)
	}
	if *qualityN < 0 || *qualityN == 1 {
		return usageErr("--quality-n must be 0 (off) or at least 2, got %d", *qualityN)
	}
	if *qualityN > 0 {
		if !slices.Contains(classifier.Datasets(), o.Data) {
			if flagSet(fs, "quality-n") {
				return usageErr("--quality-n: no classifier ships for %s (have: %s), so sample quality cannot be measured; pass --quality-n 0", o.Data, joinNames(classifier.Datasets()))
			}
			fmt.Fprintf(os.Stderr, "no classifier ships for %s: the sample-quality column stays empty\n", o.Data)
		} else {
			opt.Quality = lenetFD(o.Data, *qualityN, 0, *evalBatch, *evalSeed, *quiet)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "Table 2 ablation: %s × %s (config %s, batch %d, T = %d) on %s, bits/dim on %s → %s\n",
		plural(len(ablation.Table2()), "row"), plural(o.Steps, "step"), o.Config, o.Batch, dc.T, o.Data, plural(*evalN, "test image"), *out)
	start := time.Now()
	results, err := ablation.Run(ctx, opt)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "\ninterrupted: %s done; the row in progress is checkpointed, run the same command to continue\n", plural(len(results), "row"))
		return nil
	}
	if err != nil {
		return err
	}
	unstable := 0
	for _, r := range results {
		if r.Status == ablation.StatusUnstable {
			unstable++
		}
	}
	fmt.Fprintf(os.Stderr, "done in %s: %s, %d unstable; table %s\n", time.Since(start).Round(time.Second),
		plural(len(results), "row"), unstable, filepath.Join(*out, ablation.TableFile))
	b, err := os.ReadFile(filepath.Join(*out, ablation.TableFile))
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}

// lenetFD is the ablation's sample-quality measure: the Fréchet distance
// between the features (the shipped classifier of the data set, package
// classifier) of n samples of the model (Algorithm 2, all T steps) and those
// of the first refN test images (0: the whole split). With a few hundred
// samples it is biased upwards, by about the same amount for every row, so
// it ranks rows but is not an FID; the reference features are computed
// once, at the first row.
func lenetFD(dataset string, n, refN, batch int, seed uint64, quiet bool) *ablation.Quality {
	var ref [][]float64
	return &ablation.Quality{
		Name: fmt.Sprintf("FD (LeNet features, %s)", plural(n, "sample")),
		Measure: func(ctx context.Context, m *unet.UNet, d *diffusion.Diffusion) (float64, error) {
			net, _, err := classifier.Embedded(dataset)
			if err != nil {
				return 0, err
			}
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
			D := cfg.InCh * cfg.Res * cfg.Res
			rng := rand.New(rand.NewPCG(seed, 0x71756c74))
			chunks := (n + batch - 1) / batch
			bar := progress.New(chunks*d.T, fmt.Sprintf("sampling %s for FD", plural(n, "image")), "step", quiet)
			x, err := diffusion.Generate(ctx, d, m, diffusion.Ancestral{}, n, D, batch, rng, diffusion.Hooks{Progress: func(done, _ int) { bar.Set(done) }})
			if err != nil {
				return 0, err
			}
			bar.Finish()
			in, err := classifier.Prepare(x, n, cfg.InCh, cfg.Res, cfg.Res)
			if err != nil {
				return 0, err
			}
			out, err := net.Apply(in, n, nil)
			if err != nil {
				return 0, err
			}
			return metrics.FD(ref, out.Features)
		},
	}
}
