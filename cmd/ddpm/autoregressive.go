package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/autoregressive"
	"github.com/ddpm-go/ddpm/internal/progress"
)

func init() {
	register("autoregressive", "eq. 16 numerically: the bound as KLs of q(x_{t−1}|x_t) + H(x0) on 1-D data equals eq. 5", runAutoregressive)
}

func runAutoregressive(args []string) error { return autoregressiveCommand(args, os.Stdout) }

// autoregressiveCommand is runAutoregressive writing to w: the flags, then
// autoregressive.Run.
func autoregressiveCommand(args []string, w io.Writer) error {
	fs := newFlags("autoregressive", "[--levels 51,153,217] [--weights 0.5,0.3,0.2] [--predictor exact|mismatched] [--var fixedlarge|fixedsmall] [--T 1000] [--out autoregressive.png] [--json]")
	levels := fs.String("levels", "51,153,217", "the data points, as pixel levels 0..255 (x = p/127.5 − 1)")
	weights := fs.String("weights", "0.5,0.3,0.2", "their probabilities (normalised)")
	var e autoregressive.Experiment
	fs.StringVar(&e.Predictor, "predictor", autoregressive.PredictorExact, "the reverse model's x̂0: exact (E[x0 | x_t] of the data, a perfectly trained network) or mismatched (E[x0 | x_t] of the points shifted by +0.05 with equal weights)")
	fs.IntVar(&e.Grid, "grid", 241, "Simpson points per mixture component for the integrals over x_t (odd)")
	fs.IntVar(&e.Nodes, "nodes", 16, "Gauss–Hermite nodes for the entropies of q(x_{t−1} | x_t)")
	out := fs.String("out", "autoregressive.png", "PNG of the per-t terms and the accumulated bound of both forms (.png)")
	asJSON := fs.Bool("json", false, "print one JSON object with every t instead of the table")
	quiet := fs.Bool("quiet", false, "no progress bar")
	dc := diffusion.DefaultConfig()
	diffusionFlags(fs, &dc)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, f := range []string{"mean", "loss"} {
		if flagSet(fs, f) {
			return usageErr("--%s does not apply: the reverse model here is given by --predictor", f)
		}
	}
	if dc.Var == diffusion.Learned {
		return usageErr("--var learned has no network to learn it here: use fixedlarge or fixedsmall")
	}
	if *out == "" {
		return usageErr("--out must name a PNG file")
	}
	if err := checkImageOut("out", *out, ".png"); err != nil {
		return err
	}
	var err error
	if e.Levels, err = parseInts(*levels, "levels"); err != nil {
		return err
	}
	if e.Weights, err = parseFloats(*weights, "weights"); err != nil {
		return err
	}
	if err := checkDiffusion(dc); err != nil {
		return err
	}
	start := time.Now()
	bar := progress.New(dc.T, "integrating both forms of the bound", "t", *quiet)
	e.Progress = func(done, _ int) { bar.Set(done) }
	r, err := autoregressive.Run(dc, e)
	if err != nil {
		return usageErr("%v", err)
	}
	bar.Finish()
	if err := r.SavePlot(*out); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(w, r)
	}
	r.WriteTable(w)
	fmt.Fprintf(w, "figure: %s (%s)\n", *out, time.Since(start).Round(time.Millisecond))
	return nil
}
