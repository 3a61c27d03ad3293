package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/model/unet"
)

func init() {
	register("sample", "draw images from a model (Algorithm 2) into a PNG grid", runSample)
}

func runSample(args []string) error {
	fs := newFlags("sample", "--model DIR|FILE [--n 64] [--out samples.png] [flags]")
	modelPath := fs.String("model", "", "run directory or checkpoint/weights file (required)")
	n := fs.Int("n", 64, "number of images")
	batch := fs.Int("batch", 64, "images denoised together")
	out := fs.String("out", "samples.png", "PNG grid to write")
	outDir := fs.String("out-dir", "", "also write one PNG per sample into this directory")
	cols := fs.Int("cols", 0, "grid columns (0: square-ish)")
	seed := fs.Uint64("seed", 0, "random seed")
	raw := fs.Bool("raw", false, "use the raw weights instead of the EMA weights")
	quiet := fs.Bool("quiet", false, "no progress bar")
	var dc diffusion.Config
	diffusionFlags(fs, &dc, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelPath == "" {
		return usageErr("--model is required (a run directory or a checkpoint file)")
	}
	if *n <= 0 || *batch <= 0 {
		return usageErr("--n and --batch must be positive")
	}
	if *cols < 0 {
		return usageErr("--cols must be ≥ 0")
	}
	m, d, err := loadForSampling(*modelPath, *raw, fs, dc)
	if err != nil {
		return err
	}
	cfg := m.Config()
	D := cfg.InCh * cfg.Res * cfg.Res
	all := make([]float32, *n*D)
	rng := rand.New(rand.NewPCG(*seed, 0x73616d70))
	chunks := (*n + *batch - 1) / *batch
	bar := progress.New(chunks*d.T, fmt.Sprintf("sampling %d images", *n), "step", *quiet)
	start := time.Now()
	for c := 0; c < chunks; c++ {
		lo, hi := c**batch, min((c+1)**batch, *n)
		x := all[lo*D : hi*D]
		diffusion.FillNormal(x, rng)
		d.Sample(m, x, hi-lo, rng, func(step, total int) { bar.Add(1) })
	}
	bar.Finish()
	if err := imgio.SaveGrid(*out, all, *n, cfg.InCh, cfg.Res, cfg.Res, *cols); err != nil {
		return err
	}
	if *outDir != "" {
		if err := imgio.SaveEach(*outDir, "sample", all, *n, cfg.InCh, cfg.Res, cfg.Res); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d samples, %d steps, %s)\n", *out, *n, d.T, time.Since(start).Round(time.Millisecond))
	return nil
}

// loadForSampling loads the model and its diffusion process; the sampling
// flags the user set (--var, --clip) override the checkpoint's.
func loadForSampling(path string, raw bool, fs interface{ Visit(func(*flag.Flag)) }, over diffusion.Config) (*unet.UNet, *diffusion.Diffusion, error) {
	return loadModel(path, raw, fs, over)
}

// loadModel is shared by every command that reads a trained model.
func loadModel(path string, raw bool, fs interface{ Visit(func(*flag.Flag)) }, over diffusion.Config) (*unet.UNet, *diffusion.Diffusion, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("model %s: %w", path, err)
	}
	m, dc, err := checkpoint.LoadModel(path, raw, nil)
	if err != nil {
		return nil, nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "var":
			dc.Var = over.Var
		case "clip":
			dc.Clip = over.Clip
		}
	})
	d, err := diffusion.New(dc)
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	if want, have := d.OutChannels(m.Config().InCh), m.Config().OutCh; want != have {
		return nil, nil, usageErr("--var %s needs a network with %d output channels, this one has %d (trained with another variance choice)", dc.Var, want, have)
	}
	return m, d, nil
}
