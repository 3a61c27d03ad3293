package main

import (
	"context"
	"fmt"
	"github.com/ddpm-go/ddpm"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/progressive"
	"github.com/ddpm-go/ddpm/internal/progress"
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
	if *out == "" {
		return usageErr("--out must name a .png, .jpg or .jpeg file")
	}
	if err := checkImageOut("out", *out); err != nil {
		return err
	}
	for _, f := range []string{"n", "cols", "xt"} {
		if *shared && flagSet(fs, f) {
			return usageErr("--%s is a flag of Fig. 6, not of --shared", f)
		}
	}
	for _, f := range []string{"image", "data", "split", "per", "t"} {
		if !*shared && flagSet(fs, f) {
			return usageErr("--%s needs --shared (Fig. 7)", f)
		}
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	m, d := p.Net, p.Process
	cfg := m.Config()
	D := cfg.InCh * cfg.Res * cfg.Res
	rng := rand.New(rand.NewPCG(*seed, 0x70726f67))
	start := time.Now()

	if !*shared {
		if *n <= 0 {
			return usageErr("--n must be positive, got %d", *n)
		}
		record, err := progressive.Columns(d.T, *cols)
		if err != nil {
			return usageErr("--cols %d out of range 1..%d (T)", *cols, d.T) // the only error of Columns
		}
		xT := make([]float32, *n*D)
		diffusion.FillNormal(xT, rng)
		bar := progress.New(d.T, fmt.Sprintf("%d sampling chains", *n), "step", *quiet)
		ch, err := progressive.Run(context.Background(), d, m, xT, *n, record, rng, func(int, int) { bar.Add(1) })
		if err != nil {
			return err
		}
		bar.Finish()
		// Rows: per chain, optionally x_t, then x̂0.
		var rows [][]float32
		for b := range *n {
			if *showXt {
				rows = append(rows, gather(ch.Xt, b, D))
			}
			rows = append(rows, gather(ch.XStart, b, D))
		}
		if err := saveRows(*out, rows, len(record), cfg.InCh, cfg.Res); err != nil {
			return err
		}
		res := make([]progressiveColumn, len(record))
		for c, i := range record {
			res[c] = progressiveColumn{ReverseStep: d.T - i, T: i + 1, RMSE: rmse255(ch.XStart[c], ch.Final)}
		}
		if *asJSON {
			return writeJSON(w, map[string]any{"columns": res, "n": *n, "T": d.T, "model": *modelPath, "seed": *seed, "xt_rows": *showXt})
		}
		fmt.Fprintf(w, "Progressive generation (Fig. 6): %s, T = %d, model %s\n", plural(*n, "chain"), d.T, *modelPath)
		fmt.Fprintf(w, "columns: x̂0 = (x_t − √(1−ᾱ_t) ε_θ)/√ᾱ_t at each reverse step%s; rows: chains\n",
			map[bool]string{true: " (x_t in the row above)", false: ""}[*showXt])
		fmt.Fprintf(w, "%14s %6s %24s\n", "reverse step", "t", "RMSE to sample [0,255]")
		for _, r := range res {
			fmt.Fprintf(w, "%14d %6d %24.3f\n", r.ReverseStep, r.T, r.RMSE)
		}
		fmt.Fprintf(w, "grid: %s (%s)\n", *out, time.Since(start).Round(time.Millisecond))
		return nil
	}

	if *per <= 0 {
		return usageErr("--per must be positive, got %d", *per)
	}
	idx := progressive.SharedIndices(d.T)
	if *tList != "" {
		ts, err := parseInts(*tList, "t")
		if err != nil {
			return err
		}
		if idx, err = timesteps(ts, d.T, "t"); err != nil {
			return err
		}
	}
	var latents [][]float32
	var ref []float32
	source := "one sampling chain"
	if flagSet(fs, "image") {
		ds, dataSpec, err := loadData(p, *spec, *split)
		if err != nil {
			return err
		}
		ref, err = expImages(ds, []int{*image}, cfg.Res, "--image")
		if err != nil {
			return err
		}
		eps := make([]float32, D)
		diffusion.FillNormal(eps, rng)
		latents = progressive.Encode(d, ref, eps, idx)
		source = fmt.Sprintf("image %d of %s (%s), encoded by q with one noise draw", *image, dataSpec, *split)
	}
	total := 0
	for _, i := range idx {
		total += i + 1
	}
	if latents == nil {
		total += d.T
	}
	bar := progress.New(total, fmt.Sprintf("%d × %d samples sharing x_t", len(idx), *per), "step", *quiet)
	done := 0
	if latents == nil {
		xT := make([]float32, D)
		diffusion.FillNormal(xT, rng)
		latents, ref, err = progressive.ChainLatents(context.Background(), d, m, xT, idx, rng, func(int, int) { bar.Add(1) })
		if err != nil {
			return err
		}
		done = d.T
	}
	rows, err := progressive.Shared(context.Background(), d, m, latents, idx, *per, rng, func(step, _ int) { bar.Set(done + step) })
	if err != nil {
		return err
	}
	bar.Finish()
	refs := make([]float32, 0, *per*len(ref)) // the reference once per sample of a row
	for range *per {
		refs = append(refs, ref...)
	}
	grid := make([][]float32, len(rows))
	res := make([]sharedRow, len(rows))
	for r := range rows {
		grid[r] = append(append([]float32(nil), ref...), rows[r]...)
		res[r] = sharedRow{T: idx[r] + 1, PixelStd: 127.5 * math.Sqrt(progressive.PixelVariance(rows[r], *per)), RMSE: rmse255(rows[r], refs)}
	}
	if err := saveRows(*out, grid, *per+1, cfg.InCh, cfg.Res); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(w, map[string]any{"rows": res, "per": *per, "T": d.T, "model": *modelPath, "seed": *seed, "source": source})
	}
	fmt.Fprintf(w, "Samples sharing a latent (Fig. 7): x_t from %s, %s x0 ~ p(x0 | x_t) per row, T = %d, model %s\n",
		source, plural(*per, "sample"), d.T, *modelPath)
	fmt.Fprintf(w, "first column: the reference (%s)\n", map[bool]string{true: "the data image", false: "the chain's own sample"}[flagSet(fs, "image")])
	fmt.Fprintf(w, "%6s %26s %28s\n", "t", "pixel std across row", "RMSE to reference [0,255]")
	for _, r := range res {
		fmt.Fprintf(w, "%6d %26.3f %28.3f\n", r.T, r.PixelStd, r.RMSE)
	}
	fmt.Fprintf(w, "grid: %s (%s)\n", *out, time.Since(start).Round(time.Millisecond))
	return nil
}

// gather returns image b (D values) of every slice in cols, one after the
// other: a grid row.
func gather(cols [][]float32, b, D int) []float32 {
	row := make([]float32, 0, len(cols)*D)
	for _, c := range cols {
		row = append(row, c[b*D:(b+1)*D]...)
	}
	return row
}

// rmse255 is the root mean squared difference of a and b on [0, 255].
func rmse255(a, b []float32) float64 {
	s := 0.0
	for k := range a {
		e := float64(a[k] - b[k])
		s += e * e
	}
	return 127.5 * math.Sqrt(s/float64(len(a)))
}
