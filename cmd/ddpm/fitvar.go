package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/likelihood"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/pretrained"
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

func init() {
	register("fit-variance", "measure a model's --var fitted reverse variance once and save it (--fit FILE reads it back)", runFitVariance)
}

func runFitVariance(args []string) error {
	fs := flag.NewFlagSet("fit-variance", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ddpm fit-variance [--model mnist|fashion-mnist|DIR|FILE] [--fit-n %d] --out FILE\n\n", defaultFitN)
		fmt.Fprintf(fs.Output(), "Measures the network's x̂0 error at every step and its best decoder scale on the last\n"+
			"--fit-n images of its training split (σ_t² = β̃_t + c₁²·E(x̂0 − x0)², see `--var fitted`) and\n"+
			"writes them to FILE, for `--var fitted --fit FILE` on every command that reads a model.\n\nflags:\n")
		fs.PrintDefaults()
	}
	path := fs.String("model", pretrained.Default, modelHelp)
	raw := fs.Bool("raw", false, "use the raw weights instead of the EMA weights")
	n := fs.Int("fit-n", defaultFitN, "fit on the last N images of the model's training split")
	clip := fs.Bool("clip", false, "clip x̂0 to [-1, 1] as the sampler will (default: the checkpoint's)")
	out := fs.String("out", "", "the fit file to write (safetensors)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out is required: the file to write the fit to")
	}
	m, dc, err := openModel(*path, *raw)
	if err != nil {
		return err
	}
	if flagSet(fs, "clip") {
		dc.Clip = *clip
	}
	if dc.Var == diffusion.Learned {
		return usageErr("--var %v replaces a fixed variance; %s learns its own", diffusion.Fitted, *path)
	}
	d, err := diffusion.New(dc)
	if err != nil {
		return usageErr("%v", err)
	}
	f, spec, err := measureFit(*path, m, d, *n, *quiet)
	if err != nil {
		return err
	}
	info := checkpoint.FitInfo{ModelDigest: checkpoint.WeightsDigest(m), Data: spec, MinBin: fitMinBin, Clip: dc.Clip}
	if err := checkpoint.SaveFit(*out, f, info); err != nil {
		return err
	}
	fd, err := d.WithFit(f)
	if err != nil {
		return err
	}
	describeFit(os.Stdout, d, fd, f, fmt.Sprintf("%d %s train images", f.Images, spec))
	fmt.Printf("wrote %s (for --var fitted --fit %s)\n", *out, *out)
	return nil
}

// fittedDiffusion is d with the --var fitted variance of the network m:
// read from --fit FILE when given, the one shipped beside a shipped model
// when --fit-n is left at its default, and measured otherwise.
func fittedDiffusion(path string, m *unet.UNet, d *diffusion.Diffusion, fs *flag.FlagSet) (*diffusion.Diffusion, error) {
	quiet := flagValue(fs, "quiet", false)
	if file := flagValue(fs, "fit", ""); file != "" {
		if flagSet(fs, "fit-n") {
			return nil, usageErr("--fit reads a saved fit and --fit-n makes a new one: pass one of them")
		}
		f, info, err := checkpoint.LoadFit(file)
		if err != nil {
			return nil, err
		}
		if err := fitSuits(info, m, d); err != nil {
			return nil, fmt.Errorf("--fit %s: %w", file, err)
		}
		fd, err := d.WithFit(f)
		if err != nil {
			return nil, fmt.Errorf("--fit %s: %w", file, err)
		}
		if !quiet {
			describeFit(os.Stderr, d, fd, f, file)
		}
		return fd, nil
	}
	if isShipped(path) && !flagSet(fs, "fit-n") {
		f, info, ok, err := pretrained.Fit(path)
		if err == nil && ok {
			err = fitSuits(info, m, d)
		}
		if err == nil && ok {
			if fd, err := d.WithFit(f); err == nil {
				if !quiet {
					describeFit(os.Stderr, d, fd, f, "shipped with "+path)
				}
				return fd, nil
			}
		}
		// A shipped fit that does not suit (--clip changed, or a build
		// whose fit was not remade with its weights): measure one.
		if err != nil && !quiet {
			fmt.Fprintf(os.Stderr, "the fit shipped with %s does not apply (%v); measuring one\n", path, err)
		}
	}
	f, spec, err := measureFit(path, m, d, flagValue(fs, "fit-n", defaultFitN), quiet)
	if err != nil {
		return nil, err
	}
	fd, err := d.WithFit(f)
	if err != nil {
		return nil, err
	}
	if !quiet {
		describeFit(os.Stderr, d, fd, f, fmt.Sprintf("%d %s train images", f.Images, spec))
	}
	return fd, nil
}

// fitSuits reports why a saved fit cannot stand for the network m under d:
// it was measured on other weights or with the other clipping.
func fitSuits(info checkpoint.FitInfo, m *unet.UNet, d *diffusion.Diffusion) error {
	if w := checkpoint.WeightsDigest(m); info.ModelDigest != w {
		return fmt.Errorf("fitted to another network (weights %.12s…, this one's are %.12s…): make one with ddpm fit-variance", info.ModelDigest, w)
	}
	if info.Clip != d.Clip {
		return fmt.Errorf("fitted with clipping %v, the process clips: %v (pass --clip=%v, or refit)", info.Clip, d.Clip, info.Clip)
	}
	return nil
}

// measureFit measures the --var fitted variance of the network m under d
// (diffusion.VarianceFit): its x̂0 error at every step and the best decoder
// scale, on the last n images of its training split — images that eval
// bpd's first-N train and test evaluations do not use. spec names the
// data set.
func measureFit(path string, m *unet.UNet, d *diffusion.Diffusion, n int, quiet bool) (f *diffusion.VarianceFit, spec string, err error) {
	cfg := m.Config()
	ds, spec, err := expData(path, "", "train", cfg)
	if err != nil {
		return nil, "", fmt.Errorf("--var %v fits on the model's training data: %w", diffusion.Fitted, err)
	}
	if n <= 0 || n > ds.N {
		return nil, "", usageErr("--fit-n must be in 1..%d (the %s train split), got %d", ds.N, spec, n)
	}
	idx := make([]int, n)
	for k := range idx {
		idx[k] = ds.N - n + k
	}
	x0, err := expImages(ds, idx, cfg.Res, "image")
	if err != nil {
		return nil, "", err
	}
	bar := progress.New(n*d.T, fmt.Sprintf("fitting σ_t² on %d %s train images", n, spec), "eval", quiet)
	start := time.Now()
	f, err = likelihood.FitVariance(context.Background(), d, m, x0, n, fitMinBin, likelihood.Options{
		Batch: 64, Rng: rand.New(rand.NewPCG(fitSeed, 0)), Progress: func(done, _ int) { bar.Set(done) },
	})
	if err != nil {
		return nil, "", fmt.Errorf("fitting the variance: %w", err)
	}
	bar.Finish()
	if !quiet {
		fmt.Fprintf(os.Stderr, "measured in %s\n", time.Since(start).Round(time.Second))
	}
	return f, spec, nil
}

// describeFit prints one line on what the fit fd (from source) changed
// against d's fixed variance: the decoder's σ_1 and a few steps' σ_t.
func describeFit(w io.Writer, d, fd *diffusion.Diffusion, fit *diffusion.VarianceFit, source string) {
	sigma := func(dd *diffusion.Diffusion, i int) float64 { return math.Exp(0.5 * dd.FixedLogVariance(i)) }
	last := len(fit.DecoderLogScale) - 1
	fmt.Fprintf(w, "fitted variance (%s): decoder σ_1 %.4g (was %.4g; %.3g where x̂0 ≈ −1, %.3g where ≈ +1)",
		source, sigma(fd, 0), sigma(d, 0), math.Exp(fit.DecoderLogScale[0]), math.Exp(fit.DecoderLogScale[last]))
	for _, t := range []int{2, 10, 100} {
		if t <= d.T {
			fmt.Fprintf(w, "; σ_%d %.3g (√β̃ %.3g, √β %.3g)", t, sigma(fd, t-1), math.Sqrt(d.PosteriorVariance[t-1]), math.Sqrt(d.Betas[t-1]))
		}
	}
	fmt.Fprintln(w)
}
