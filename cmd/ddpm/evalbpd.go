package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/internal/plot"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
)

func init() {
	registerEval("bpd", "negative log-likelihood bound in bits/dim on a data split (the paper's NLL)", runEvalBPD)
}

// bpdReport is what `ddpm eval bpd --json` prints: the summary plus where
// it came from. Bits are per data dimension (see the dims fields).
type bpdReport struct {
	diffusion.BoundSummary
	Model    string  `json:"model"`
	Data     string  `json:"data"`
	Split    string  `json:"split"`
	T        int     `json:"T"`
	Dims     int     `json:"dims"`      // values per image the model sees (after padding)
	DataDims int     `json:"data_dims"` // values per image of the data set: the bits/dim denominator
	Seed     uint64  `json:"seed"`
	Var      string  `json:"var"`                  // the reverse variance the bound was computed with
	FitN     int     `json:"fit_images,omitempty"` // --var fitted: the train images it was fitted on
	Seconds  float64 `json:"seconds"`
	// DecoderAtData is the decoder L_0 the images would score if the
	// network's mean at t = 1 were the image itself (absent with a learned
	// variance): the part of decoder_bpd that σ_1 alone costs.
	DecoderAtData float64 `json:"decoder_bpd_at_data,omitempty"`
}

func runEvalBPD(args []string) error { return evalBPD(args, os.Stdout) }

// evalBPD is runEvalBPD writing its report to w.
func evalBPD(args []string, w io.Writer) error {
	fs := newFlags("eval bpd", "[--model mnist|fashion-mnist|DIR|FILE] [--data mnist] [--split test] [--n 100] [--batch 64] [--json] [--plot FILE]")
	mf := addModelFlags(fs, ddpm.DefaultModel)
	modelPath := mf.path
	spec := fs.String("data", "", "data set: "+data.Specs+" (default: the one the model was trained on)")
	split := fs.String("split", "test", "split to evaluate: train or test (compare them to check for overfitting)")
	n := fs.Int("n", 100, "evaluate the first N images of the split (0: all)")
	batch := fs.Int("batch", 64, "network inputs per forward pass: (image, t) pairs, many images at one t or many t of one image")
	seed := fs.Uint64("seed", 0, "seed of the x_t draws")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the table")
	plotPath := fs.String("plot", "", "also write a PNG of the per-t terms to this file (.png)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := mf.parse(args); err != nil {
		return err
	}
	switch {
	case *n < 0:
		return usageErr("--n must be ≥ 0 (0: the whole split), got %d", *n)
	case *batch <= 0:
		return usageErr("--batch must be positive, got %d", *batch)
	case *split != "train" && *split != "test":
		return usageErr("--split must be train or test, got %q", *split)
	}
	if err := checkImageOut("plot", *plotPath, ".png"); err != nil {
		return err
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	m, d := p.Net, p.Process
	cfg := m.Config()
	ds, dataSpec, err := loadData(p, *spec, *split)
	if err != nil {
		return err
	}
	count := *n
	if count == 0 {
		count = ds.N
	}
	x0, err := expFirst(ds, count, cfg.Res, dataSpec, *split)
	if err != nil {
		return err
	}
	D := cfg.InCh * cfg.Res * cfg.Res
	announceBPD(m, d, count, *batch, D, d.OutChannels(cfg.InCh)*cfg.Res*cfg.Res, *split)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := progress.New(count*d.T, fmt.Sprintf("bits/dim of %d %s images", count, *split), "eval", *quiet)
	start := time.Now()
	res, err := d.EvaluateBound(ctx, m, x0, count, diffusion.BoundOptions{
		Batch: *batch, Rng: rand.New(rand.NewPCG(*seed, 0x627064)),
		Progress: func(done, total int) { bar.Set(done) },
	})
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted: no result (the bound needs every t of every image)")
	}
	if err != nil {
		return err
	}
	bar.Finish()
	dataDims := ds.ImageSize()
	scale := float64(D) / float64(dataDims) // bits per data dimension
	rep := bpdReport{
		BoundSummary: res.Summary(scale),
		Model:        *modelPath, Data: dataSpec, Split: *split, T: d.T, Dims: D, DataDims: dataDims, Seed: *seed,
		Seconds: time.Since(start).Seconds(), Var: d.Var.String(),
	}
	if d.Fit != nil {
		rep.FitN = d.Fit.Images
	}
	if d.Var != diffusion.Learned {
		for _, v := range d.DecoderBPDAtData(x0, count) {
			rep.DecoderAtData += v * scale / float64(count)
		}
	}
	if *plotPath != "" {
		title := fmt.Sprintf("%s %s, %s: total %.4f bits/dim", dataSpec, *split, plural(count, "image"), rep.TotalBPD)
		if err := plot.PerT(*plotPath, title, plot.Curve{Name: *split, PerT: rep.PerTBPD}); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON(w, rep)
	}
	printBPD(w, rep, cfg.Res, ds.H, ds.W)
	if *plotPath != "" {
		fmt.Fprintf(w, "per-t plot: %s\n", *plotPath)
	}
	return nil
}

func printBPD(w io.Writer, r bpdReport, res, h, wd int) {
	fmt.Fprintf(w, "NLL bound on the first %s of %s (%s), T = %d, model %s, variance %s\n", plural(r.N, "image"), r.Data, r.Split, r.T, r.Model, r.Var)
	if r.Dims != r.DataDims {
		fmt.Fprintf(w, "images padded from %d×%d to %d×%d: bits are per data dimension (%d), i.e. the padded image's bound × %d/%d\n",
			h, wd, res, res, r.DataDims, r.Dims, r.DataDims)
	}
	fmt.Fprintf(w, "  %-28s %10.5f ± %.5f bits/dim (± standard error over images)\n", "total L", r.TotalBPD, r.TotalBPDStderr)
	fmt.Fprintf(w, "  %-28s %10.3e\n", "prior L_T", r.PriorBPD)
	fmt.Fprintf(w, "  %-28s %10.5f\n", "terms L_1 + … + L_{T-1}", r.TermsBPD)
	fmt.Fprintf(w, "  %-28s %10.5f\n", "decoder L_0", r.DecoderBPD)
	if r.DecoderAtData > 0 {
		fmt.Fprintf(w, "  %-28s %10.5f (σ_1's cost: L_0 if the network's x̂0 at t = 1 were exact)\n", "  L_0 with μ = x0", r.DecoderAtData)
	}
	evals := float64(r.N * r.T)
	fmt.Fprintf(w, "%s, %.1f network evaluations/s\n", time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond), evals/r.Seconds)
}

// announceBPD says up front how long the bound of count images takes when
// that is long: count·T (image, t) pairs in passes of batch, timed on the
// network (dim values in, outDim out per pair). The whole test split is
// hours; the documented runs use --n 1000.
func announceBPD(m diffusion.Model, d *diffusion.Diffusion, count, batch, dim, outDim int, split string) {
	pairs := count * d.T
	b := min(batch, pairs)
	passes := (pairs + b - 1) / b
	e, ok := estimatePasses(m, passes, b, dim, outDim, d.T/2)
	if !ok {
		return
	}
	const few = 1000
	hint := ""
	if count > 2*few {
		hint = fmt.Sprintf("--n %d takes %s", few, approx(e.scaled((few*d.T+b-1)/b)))
	}
	announce(fmt.Sprintf("bits/dim of %s × %s, %s of %d", plural(count, split+" image"), plural(d.T, "timestep"), plural(passes, "network pass"), b), e, hint)
}
