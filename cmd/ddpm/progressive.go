package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/ddpm-go/ddpm"
	"io"
	"os"
	"time"
)

func init() {
	register("progressive", "progressive generation: x̂0 along the reverse chain (Fig. 6), or samples sharing x_t (--shared, Fig. 7)", runProgressive)
}

// progressiveColumn is one column of Fig. 6.
type progressiveColumn struct {
	ReverseStep int `json:"reverse_step"` // k = T − t + 1
	T           int `json:"t"`
	// RMSE is the distance of x̂0 to the final sample on [0, 255], the mean
	// over chains: how much of the image is already decided.
	RMSE float64 `json:"rmse_to_sample"`
}

// sharedRow is one row of Fig. 7.
type sharedRow struct {
	T int `json:"t"`
	// PixelStd is the standard deviation across the row's samples, on
	// [0, 255], averaged over pixels: how much they differ.
	PixelStd float64 `json:"pixel_std"`
	// RMSE is the samples' distance to the reference on [0, 255].
	RMSE float64 `json:"rmse_to_reference"`
}

func runProgressive(args []string) error { return progressiveCommand(args, os.Stdout) }

func progressiveCommand(args []string, w io.Writer) error {
	fs := newFlags("progressive", "[--model mnist|fashion-mnist|DIR|FILE] [--n 4] [--cols 10] [--xt] | --shared [--image I] [--per 8] [--t 1000,750,500,250] [flags]")
	mf := addModelFlags(fs, ddpm.DefaultModel)
	modelPath := mf.path
	n := fs.Int("n", 4, "Fig. 6: sampling chains (rows)")
	cols := fs.Int("cols", 10, "Fig. 6: columns, x̂0 at evenly spaced reverse steps (the last is the sample)")
	showXt := fs.Bool("xt", false, "Fig. 6: also show x_t above each row of x̂0")
	shared := fs.Bool("shared", false, "Fig. 7 instead: samples x0 ~ p(x0 | x_t) sharing one x_t, one row per t")
	image := fs.Int("image", -1, "Fig. 7: take x_t by q from this image of --data/--split (default: from one sampling chain)")
	spec := fs.String("data", "", "Fig. 7 with --image: data set (default: the one the model was trained on)")
	split := fs.String("split", "test", "Fig. 7 with --image: split, train or test")
	per := fs.Int("per", 8, "Fig. 7: samples per row")
	tList := fs.String("t", "", "Fig. 7: timesteps of the rows, comma-separated (default T, 3T/4, T/2, T/4)")
	out := fs.String("out", "progressive.png", "grid to write (.png, .jpg or .jpeg)")
	seed := fs.Uint64("seed", 0, "random seed")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the table")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := mf.parse(args); err != nil {
		return err
	}
	if err := checkProgressiveFlags(fs, *out, *shared, *n, *cols, *per); err != nil {
		return err
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	rep := figReport{w: w, model: *modelPath, seed: *seed, out: *out, json: *asJSON, quiet: *quiet, start: time.Now()}
	if !*shared {
		return progressiveFig6(rep, p, ddpm.ProgressiveOptions{Chains: *n, Columns: *cols, Seed: *seed}, *showXt)
	}
	o := ddpm.SharedOptions{PerRow: *per, Seed: *seed}
	if *tList != "" {
		if o.Steps, err = parseInts(*tList, "t"); err != nil {
			return err
		}
	}
	source := "one sampling chain"
	if flagSet(fs, "image") {
		var dataSpec string
		if o.Image, dataSpec, err = dataImages(p, *spec, *split, []int{*image}, "--image"); err != nil {
			return err
		}
		source = fmt.Sprintf("image %d of %s (%s), encoded by q with one noise draw", *image, dataSpec, *split)
	}
	return progressiveFig7(rep, p, o, source)
}

// checkProgressiveFlags refuses the flags of the other figure, counts that
// are not positive and a bad --out, before any work.
func checkProgressiveFlags(fs *flag.FlagSet, out string, shared bool, n, cols, per int) error {
	if out == "" {
		return usageErr("--out must name a .png, .jpg or .jpeg file")
	}
	if err := checkImageOut("out", out); err != nil {
		return err
	}
	for _, f := range []string{"n", "cols", "xt"} {
		if shared && flagSet(fs, f) {
			return usageErr("--%s is a flag of Fig. 6, not of --shared", f)
		}
	}
	for _, f := range []string{"image", "data", "split", "per", "t"} {
		if !shared && flagSet(fs, f) {
			return usageErr("--%s needs --shared (Fig. 7)", f)
		}
	}
	for _, c := range []struct {
		flag  string
		value int
	}{{"n", n}, {"cols", cols}, {"per", per}} {
		if c.value <= 0 {
			return usageErr("--%s must be positive, got %d", c.flag, c.value)
		}
	}
	return nil
}

// progressiveFig6 draws Fig. 6, writes its grid and prints its columns.
func progressiveFig6(rep figReport, p *ddpm.Pipeline, o ddpm.ProgressiveOptions, showXt bool) error {
	var finish func()
	o.Progress, finish = stepBar(fmt.Sprintf("%d sampling chains", o.Chains), "step", rep.quiet)
	r, err := p.Progressive(context.Background(), o)
	if err != nil {
		return usageOf(err)
	}
	finish()
	if err := saveFigure(rep.out, r.Figure(showXt)); err != nil {
		return err
	}
	res := make([]progressiveColumn, len(r.Columns))
	for c, col := range r.Columns {
		res[c] = progressiveColumn{ReverseStep: p.T() - col.T + 1, T: col.T, RMSE: col.RMSE}
	}
	if rep.json {
		return writeJSON(rep.w, map[string]any{"columns": res, "n": o.Chains, "T": p.T(), "model": rep.model, "seed": rep.seed, "xt_rows": showXt})
	}
	w := rep.w
	fmt.Fprintf(w, "Progressive generation (Fig. 6): %s, T = %d, model %s\n", plural(o.Chains, "chain"), p.T(), rep.model)
	fmt.Fprintf(w, "columns: x̂0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t at each reverse step%s; rows: chains\n",
		map[bool]string{true: " (x_t in the row above)", false: ""}[showXt])
	fmt.Fprintf(w, "%14s %6s %24s\n", "reverse step", "t", "RMSE to sample [0,255]")
	for _, r := range res {
		fmt.Fprintf(w, "%14d %6d %24.3f\n", r.ReverseStep, r.T, r.RMSE)
	}
	fmt.Fprintf(w, "grid: %s (%s)\n", rep.out, time.Since(rep.start).Round(time.Millisecond))
	return nil
}

// progressiveFig7 draws Fig. 7 from the latents of source, writes its grid
// and prints its rows.
func progressiveFig7(rep figReport, p *ddpm.Pipeline, o ddpm.SharedOptions, source string) error {
	var finish func()
	o.Progress, finish = stepBar(fmt.Sprintf("samples sharing x_t, %d a row", o.PerRow), "step", rep.quiet)
	r, err := p.SharedLatents(context.Background(), o)
	if err != nil {
		return usageOf(err)
	}
	finish()
	if err := saveFigure(rep.out, r.Figure()); err != nil {
		return err
	}
	res := make([]sharedRow, len(r.Rows))
	for k, row := range r.Rows {
		res[k] = sharedRow{T: row.T, PixelStd: row.PixelStd, RMSE: row.RMSE}
	}
	if rep.json {
		return writeJSON(rep.w, map[string]any{"rows": res, "per": o.PerRow, "T": p.T(), "model": rep.model, "seed": rep.seed, "source": source})
	}
	w := rep.w
	fmt.Fprintf(w, "Samples sharing a latent (Fig. 7): x_t from %s, %s x0 ~ p(x0 | x_t) per row, T = %d, model %s\n",
		source, plural(o.PerRow, "sample"), p.T(), rep.model)
	fmt.Fprintf(w, "first column: the reference (%s)\n", map[bool]string{true: "the data image", false: "the chain's own sample"}[o.Image != nil])
	fmt.Fprintf(w, "%6s %26s %28s\n", "t", "pixel std across row", "RMSE to reference [0,255]")
	for _, r := range res {
		fmt.Fprintf(w, "%6d %26.3f %28.3f\n", r.T, r.PixelStd, r.RMSE)
	}
	fmt.Fprintf(w, "grid: %s (%s)\n", rep.out, time.Since(rep.start).Round(time.Millisecond))
	return nil
}
