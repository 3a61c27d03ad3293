package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/progress"
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
	m, d, err := loadModel(*modelPath, *raw, fs, dc)
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
