package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register("ablation", "train and evaluate the six rows of the paper's Table 2 with one budget", runAblation)
}

// runAblation is `ddpm ablation`: the flags, then ablation.Run, then the
// table it wrote.
func runAblation(args []string) error {
	fs := newFlags("ablation", "--data mnist --steps N --out DIR [--config mnist-small] [--batch 32] [--eval-n 100] [flags]")
	opt, qualityN := ablationFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	o, dc := opt.Train, opt.Diffusion
	if opt.Out == "" {
		return usageErr("--out DIR is required")
	}
	if err := checkDirOut("out", opt.Out); err != nil {
		return err
	}
	if err := opt.Validate(); err != nil {
		return usageErr("%v", err)
	}
	if _, err := unet.ConfigByName(o.Config); err != nil {
		return usageErr("%v", err)
	}
	if err := ablationQuality(fs, opt, *qualityN); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "Table 2 ablation: %s × %s (config %s, batch %d, T = %d) on %s, bits/dim on %s → %s\n",
		plural(len(ablation.Table2()), "row"), plural(o.Steps, "step"), o.Config, o.Batch, dc.T, o.Data, plural(opt.EvalN, "test image"), opt.Out)
	start := time.Now()
	results, err := ablation.Run(ctx, *opt)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "\ninterrupted: %s done; the row in progress is checkpointed, run the same command to continue\n", plural(len(results), "row"))
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "done in %s: %s, %d unstable; table %s\n", time.Since(start).Round(time.Second),
		plural(len(results), "row"), ablation.Unstable(results), filepath.Join(opt.Out, ablation.TableFile))
	ablation.WriteTable(os.Stdout, *opt, results)
	return nil
}

// ablationFlags registers the flags of `ddpm ablation` on fs, straight into
// the experiment's options, and returns them with --quality-n.
func ablationFlags(fs *flag.FlagSet) (opt *ablation.Options, qualityN *int) {
	opt = &ablation.Options{Train: train.DefaultOptions(), Diffusion: diffusion.DefaultConfig(), Log: os.Stderr}
	o, dc := &opt.Train, &opt.Diffusion
	o.Config = "mnist-small"
	// A few-thousand-step run: 0.999 would leave 5% of the random
	// initialisation in the evaluated weights after 3000 steps.
	o.EMADecay = 0.995
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
	fs.StringVar(&opt.Out, "out", "", "experiment directory: one run directory per row, table.md, results.json (required)")
	fs.IntVar(&opt.EvalN, "eval-n", 100, "test images whose bits/dim each row reports")
	fs.IntVar(&opt.EvalBatch, "eval-batch", 64, "network inputs per forward pass while evaluating")
	fs.Uint64Var(&opt.EvalSeed, "eval-seed", 0, "seed of the x_t draws of the evaluation and of the samples")
	qualityN = fs.Int("quality-n", 100, "samples per row for the sample-quality column, FD on the features of the data set's shipped classifier (0: off)")
	fs.BoolVar(&opt.Quiet, "quiet", false, "no progress bars")
	return opt, qualityN
}

// ablationQuality sets the sample-quality column of opt: FD of n samples
// (ablation.ClassifierFD), none for n = 0. Without a classifier for the
// data set the column stays empty, which is an error only when
// --quality-n was given.
func ablationQuality(fs *flag.FlagSet, opt *ablation.Options, n int) error {
	if n < 0 || n == 1 {
		return usageErr("--quality-n must be 0 (off) or at least 2, got %d", n)
	}
	spec := opt.Train.Data
	switch {
	case n == 0:
		return nil
	case !slices.Contains(classifier.Datasets(), spec) && flagSet(fs, "quality-n"):
		return usageErr("--quality-n: no classifier ships for %s (have: %s), so sample quality cannot be measured; pass --quality-n 0", spec, joinNames(classifier.Datasets()))
	case !slices.Contains(classifier.Datasets(), spec):
		fmt.Fprintf(os.Stderr, "no classifier ships for %s: the sample-quality column stays empty\n", spec)
		return nil
	}
	q, err := ablation.ClassifierFD(spec, n, 0, opt.EvalBatch, opt.EvalSeed, opt.Quiet)
	opt.Quality = q
	return err
}
