package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/internal/progress"
)

func init() {
	register("fit-variance", "measure a model's --var fitted reverse variance once and save it (--fit FILE reads it back)", runFitVariance)
}

func runFitVariance(args []string) error {
	fs := newFlags("fit-variance", fmt.Sprintf("[--model mnist|fashion-mnist|DIR|FILE] [--fit-n %d] --out FILE\n\n"+
		"Measures the network's x̂0 error at every step and its best decoder scale on the last\n"+
		"--fit-n images of its training split (σ_t² = β̃_t + c₁²·E(x̂0 − x0)², see `--var fitted`) and\n"+
		"writes them to FILE, for `--var fitted --fit FILE` on every command that reads a model.", ddpm.DefaultFitImages))
	path := fs.String("model", ddpm.DefaultModel, modelHelp)
	raw := fs.Bool("raw", false, "use the raw weights instead of the EMA weights")
	n := fs.Int("fit-n", ddpm.DefaultFitImages, "fit on the last N images of the model's training split")
	clip := fs.Bool("clip", false, "clip x̂0 to [-1, 1] as the sampler will (default: the checkpoint's)")
	out := fs.String("out", "", "the fit file to write (safetensors)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out is required: the file to write the fit to")
	}
	if err := checkFileOut("out", *out); err != nil {
		return err
	}
	var opts []ddpm.Option
	if *raw {
		opts = append(opts, ddpm.RawWeights())
	}
	if flagSet(fs, "clip") {
		opts = append(opts, ddpm.WithClip(*clip))
	}
	p, err := loadPipeline(*path, *quiet, opts...)
	if err != nil {
		return err
	}
	bar := progress.New(*n*p.T(), fmt.Sprintf("fitting σ_t² on %d training images", *n), "eval", *quiet)
	start := time.Now()
	f, spec, err := p.MeasureFit(context.Background(), *n, func(done, _ int) { bar.Set(done) })
	if err != nil {
		return err
	}
	bar.Finish()
	if err := p.SaveFit(*out, f, spec); err != nil {
		return err
	}
	fitted, err := ddpm.Load(*path, append(opts, ddpm.WithFitFile(*out))...)
	if err != nil {
		return err
	}
	fmt.Println(fitted.DescribeFit())
	fmt.Printf("wrote %s in %s (for --var fitted --fit %s)\n", *out, time.Since(start).Round(time.Second), *out)
	return nil
}
