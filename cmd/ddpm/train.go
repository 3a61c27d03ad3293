package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register("train", "train a model (Algorithm 1) and write checkpoints", runTrain)
}

func runTrain(args []string) error {
	fs := newFlags("train", "--data mnist --config small --steps N --out DIR [flags]")
	o := train.DefaultOptions()
	dc := diffusion.DefaultConfig()
	fs.StringVar(&o.Data, "data", o.Data, "data set: mnist, fashion-mnist, cifar10:DIR, folder:DIR")
	fs.StringVar(&o.Config, "config", o.Config, "U-Net config: "+joinNames(unet.ConfigNames()))
	fs.IntVar(&o.Steps, "steps", o.Steps, "total optimizer steps")
	fs.IntVar(&o.Batch, "batch", o.Batch, "images per step")
	fs.Float64Var(&o.LR, "lr", o.LR, "Adam learning rate (after warm-up)")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "linear learning-rate warm-up steps")
	fs.Float64Var(&o.GradClip, "grad-clip", o.GradClip, "clip the global gradient norm to this (0: off)")
	fs.Float64Var(&o.EMADecay, "ema", o.EMADecay, "EMA decay of the weights used for sampling (paper: 0.9999 over 800k steps)")
	fs.BoolVar(&o.Flip, "flip", o.Flip, "random horizontal flips (off for digits)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (the run is deterministic given it)")
	fs.IntVar(&o.CkptEvery, "ckpt-every", o.CkptEvery, "write a checkpoint every N steps (0: only at the end)")
	fs.BoolVar(&o.SkipNaN, "skip-nan", false, "skip steps with a non-finite loss or gradient instead of stopping")
	dropout := fs.Float64("dropout", -1, "dropout rate (-1: the config's)")
	out := fs.String("out", "", "run directory for checkpoints (required)")
	resume := fs.Bool("resume", false, "continue the run in --out from its checkpoint (--steps may extend it)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	diffusionFlags(fs, &dc, true)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out DIR is required")
	}
	if err := o.Validate(); err != nil {
		return usageErr("%v", err)
	}
	if err := checkDiffusion(dc); err != nil {
		return err
	}
	if !(*dropout == -1 || (*dropout >= 0 && *dropout < 1)) {
		return usageErr("--dropout must be in [0, 1), got %g", *dropout)
	}

	var tr *train.Trainer
	if *resume {
		prev, err := train.DataSpec(*out)
		if err != nil {
			return err
		}
		ds, err := loadTrainData(prev.Data, prev.Config)
		if err != nil {
			return err
		}
		steps := 0
		if flagSet(fs, "steps") {
			steps = o.Steps
		}
		if tr, err = train.Resume(*out, ds, steps); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "resuming %s at step %d of %d\n", *out, tr.Step, tr.Opt.Steps)
	} else {
		if _, err := os.Stat(checkpoint.Path(*out)); err == nil && dirHasCheckpoint(*out) {
			return fmt.Errorf("%s already holds a checkpoint: pass --resume to continue it or choose another --out", *out)
		}
		ucfg, err := unet.ConfigByName(o.Config)
		if err != nil {
			return usageErr("%v", err)
		}
		if *dropout >= 0 {
			ucfg.Dropout = float32(*dropout)
		}
		ds, err := loadTrainData(o.Data, o.Config)
		if err != nil {
			return err
		}
		if tr, err = train.New(o, ucfg, dc, ds); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "training %s (%d params) on %s (%d images), batch %d, %s/%s/%s, T=%d\n",
		tr.Opt.Config, tr.Model.NumParams(), tr.Data.Name, tr.Data.N, tr.Opt.Batch,
		tr.DCfg.Mean, tr.DCfg.Var, tr.DCfg.Loss, tr.DCfg.T)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := progress.New(tr.Opt.Steps, "", "step", *quiet)
	bar.Set(tr.Step)
	start, startStep := time.Now(), tr.Step
	var mean float64
	err := tr.Run(ctx, *out, func(step int, loss, gn float64) {
		if step == startStep+1 {
			mean = loss
		}
		mean = 0.98*mean + 0.02*loss
		ips := float64((step-startStep)*tr.Opt.Batch) / time.Since(start).Seconds()
		bar.Describe(fmt.Sprintf("loss %.4f · %.1f img/s", mean, ips))
		bar.Add(1)
	})
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "\ninterrupted: checkpoint at step %d written to %s\n", tr.Step, checkpoint.Path(*out))
		return nil
	}
	if err != nil {
		return err
	}
	bar.Finish()
	fmt.Fprintf(os.Stderr, "done: %d steps in %s, checkpoint %s\n", tr.Step-startStep,
		time.Since(start).Round(time.Second), checkpoint.Path(*out))
	return nil
}

func dirHasCheckpoint(dir string) bool {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return false
	}
	_, err = os.Stat(checkpoint.Path(dir))
	return err == nil
}

// loadTrainData loads the training split of spec sized for the config.
func loadTrainData(spec, config string) (*data.Dataset, error) {
	ucfg, err := unet.ConfigByName(config)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return data.Load(spec, "train", data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh))
}
