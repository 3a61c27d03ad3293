package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/ddpm-go/ddpm"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/internal/plot"
	"github.com/ddpm-go/ddpm/internal/progress"
)

func init() {
	register("rd", "progressive lossy compression: rate and distortion along the reverse process (Table 4, Fig. 5)", runRD)
}

// rdRow is one reverse step of the curve.
type rdRow struct {
	ReverseStep int     `json:"reverse_step"` // k = T − t + 1: x_t received
	RateBPD     float64 `json:"rate_bpd"`     // L_T + … + L_t, bits per data dimension
	RMSE        float64 `json:"rmse"`         // of x̂0(x_t) on [0, 255]
}

// rdReport is what `ddpm rd --json` prints.
type rdReport struct {
	Rows       []rdRow `json:"rows"` // every reverse step 1..T
	PriorBPD   float64 `json:"prior_bpd"`
	DecoderBPD float64 `json:"decoder_bpd"`
	TotalBPD   float64 `json:"total_bpd"` // final rate + decoder: the bound of `ddpm eval bpd`
	N          int     `json:"n"`
	T          int     `json:"T"`
	Model      string  `json:"model"`
	Data       string  `json:"data"`
	Split      string  `json:"split"`
	Seed       uint64  `json:"seed"`
	Dims       int     `json:"dims"`
	DataDims   int     `json:"data_dims"`
}

func runRD(args []string) error { return rdCommand(args, os.Stdout) }

func rdCommand(args []string, w io.Writer) error {
	fs := newFlags("rd", "[--model mnist|fashion-mnist|DIR|FILE] [--data mnist] [--split test] [--n 100] [--out rd.png] [--json] [flags]")
	mf := addModelFlags(fs, ddpm.DefaultModel)
	modelPath := mf.path
	spec := fs.String("data", "", "data set (default: the one the model was trained on)")
	split := fs.String("split", "test", "split: train or test")
	n := fs.Int("n", 100, "the first N images of the split (emoji's in a fixed shuffled order)")
	batch := fs.Int("batch", 64, "network inputs per forward pass ((image, t) pairs)")
	seed := fs.Uint64("seed", 0, "seed of the x_t draws (the same as 'ddpm eval bpd --seed' for the same draws)")
	out := fs.String("out", "rd.png", "PNG of Fig. 5's three panels (.png)")
	asJSON := fs.Bool("json", false, "print one JSON object (every reverse step) instead of the table")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := mf.parse(args); err != nil {
		return err
	}
	if err := checkRDFlags(*n, *batch, *out); err != nil {
		return err
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	ds, dataSpec, err := loadData(p, *spec, *split)
	if err != nil {
		return err
	}
	x0, err := expFirst(ds, *n, p.Resolution(), dataSpec, *split)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := progress.New(*n*p.T(), fmt.Sprintf("rate/distortion of %d %s images", *n, *split), "eval", *quiet)
	start := time.Now()
	r, err := p.RateDistortion(ctx, tensorOf(p, x0), ddpm.RDOptions{
		Batch: *batch, Seed: *seed, DataH: ds.H, DataW: ds.W, Progress: func(done, total int) { bar.Set(done) },
	})
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted: no result (the curve needs every t of every image)")
	}
	if err != nil {
		return usageOf(err)
	}
	bar.Finish()
	rep := newRDReport(r, *modelPath, dataSpec, *split, *seed)
	if err := plotRD(*out, rep); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(w, rep)
	}
	printRD(w, rep, r.Table(), fmt.Sprintf("%d×%d to %d×%d", ds.H, ds.W, p.Resolution(), p.Resolution()))
	fmt.Fprintf(w, "figure: %s (%s)\n", *out, time.Since(start).Round(time.Millisecond))
	return nil
}

// newRDReport is the report of the curve r of the first images of a split
// of the data set spec.
func newRDReport(r *ddpm.RDResult, model, spec, split string, seed uint64) rdReport {
	rep := rdReport{
		PriorBPD: r.Prior, DecoderBPD: r.Decoder, TotalBPD: r.Total,
		N: r.N, T: r.T, Model: model, Data: spec, Split: split, Seed: seed, Dims: r.Dims, DataDims: r.DataDims,
	}
	for _, row := range r.Rows() {
		rep.Rows = append(rep.Rows, rdRow{ReverseStep: row.ReverseStep, RateBPD: row.Rate, RMSE: row.RMSE})
	}
	return rep
}

// checkRDFlags refuses counts that are not positive and a bad --out,
// before any work.
func checkRDFlags(n, batch int, out string) error {
	switch {
	case n <= 0:
		return usageErr("--n must be positive, got %d", n)
	case batch <= 0:
		return usageErr("--batch must be positive, got %d", batch)
	case out == "":
		return usageErr("--out must name a PNG file")
	}
	return checkImageOut("out", out, ".png")
}

// printRD prints Table 4's rows of rep; padded says how the images were
// padded when they were.
func printRD(w io.Writer, rep rdReport, table []ddpm.RDRow, padded string) {
	fmt.Fprintf(w, "Progressive lossy compression (Table 4) of the first %s of %s (%s), T = %d, model %s\n",
		plural(rep.N, "image"), rep.Data, rep.Split, rep.T, rep.Model)
	fmt.Fprintf(w, "%14s %18s %26s\n", "reverse step", "rate (bits/dim)", "distortion (RMSE [0,255])")
	for _, r := range table {
		fmt.Fprintf(w, "%14d %18.5f %26.5f\n", r.ReverseStep, r.Rate, r.RMSE)
	}
	fmt.Fprintf(w, "prior L_T %.3e, decoder L_0 %.5f bits/dim; final rate + decoder = %.5f bits/dim, the bound of `ddpm eval bpd --split %s --n %d --seed %d`\n",
		rep.PriorBPD, rep.DecoderBPD, rep.TotalBPD, rep.Split, rep.N, rep.Seed)
	if rep.Dims != rep.DataDims {
		fmt.Fprintf(w, "images padded from %s: bits per data dimension (%d), RMSE over the data pixels\n", padded, rep.DataDims)
	}
}

// plotRD draws Fig. 5: rate and distortion against the reverse step, and
// distortion against rate.
func plotRD(path string, r rdReport) error {
	k := make([]float64, len(r.Rows))
	rate := make([]float64, len(r.Rows))
	dist := make([]float64, len(r.Rows))
	for j, row := range r.Rows {
		k[j], rate[j], dist[j] = float64(row.ReverseStep), row.RateBPD, row.RMSE
	}
	title := fmt.Sprintf("%s %s, %s", r.Data, r.Split, plural(r.N, "image"))
	return plot.Save(path, 3,
		plot.Panel{Title: "rate, " + title, XLabel: "reverse process steps (T − t + 1)", YLabel: "rate (bits/dim)", ZeroY: true,
			Series: []plot.Series{{X: k, Y: rate}}},
		plot.Panel{Title: "distortion", XLabel: "reverse process steps (T − t + 1)", YLabel: "distortion (RMSE, [0, 255])", ZeroY: true,
			Series: []plot.Series{{X: k, Y: dist}}},
		plot.Panel{Title: "rate–distortion", XLabel: "rate (bits/dim)", YLabel: "distortion (RMSE, [0, 255])", ZeroY: true,
			Series: []plot.Series{{X: rate, Y: dist}}},
	)
}
