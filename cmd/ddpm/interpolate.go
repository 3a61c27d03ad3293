package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/ddpm-go/ddpm"
	"image"
	_ "image/jpeg" // decode JPEG sources
	_ "image/png"  // decode PNG sources
	"io"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/experiments/interpolate"
)

func init() {
	register("interpolate", "interpolate two images in latent space x_t (Figs. 8, 9)", runInterpolate)
}

// interpRow is one latent row of the figure.
type interpRow struct {
	T int `json:"t"`
	// RMSEA and RMSEB are the reconstruction errors of the row's ends
	// (λ = 0 and 1) against the sources, on [0, 255].
	RMSEA float64 `json:"rmse_a"`
	RMSEB float64 `json:"rmse_b"`
}

func runInterpolate(args []string) error { return interpolateCommand(args, os.Stdout) }

func interpolateCommand(args []string, w io.Writer) error {
	fs := newFlags("interpolate", "[--model mnist|fashion-mnist|DIR|FILE] [--a 0 --b 1 | --png-a A.png --png-b B.png] [--t 250,500,750,1000] [--out interpolate.png] [flags]")
	mf := addModelFlags(fs, ddpm.DefaultModel)
	modelPath := mf.path
	a := fs.Int("a", 0, "first source: image index in --data/--split")
	b := fs.Int("b", 1, "second source: image index in --data/--split")
	pngA := fs.String("png-a", "", "first source from a PNG/JPEG file instead (centre-cropped, resized to the model)")
	pngB := fs.String("png-b", "", "second source from a PNG/JPEG file instead")
	spec := fs.String("data", "", "data set of --a/--b (default: the one the model was trained on)")
	split := fs.String("split", "test", "split of --a/--b: train or test")
	tList := fs.String("t", "", "timesteps of the latent rows, comma-separated (default T/4, T/2, 3T/4, T)")
	steps := fs.Int("lambdas", 10, "λ runs from 0 to 1 in this many steps (0.1 apart for 10)")
	out := fs.String("out", "interpolate.png", "grid (.png, .jpg or .jpeg): the pixel-space row, then one row per t; sources at both ends")
	seed := fs.Uint64("seed", 0, "random seed (encoding noise and the reverse process's noise)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the table")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := mf.parse(args); err != nil {
		return err
	}
	if err := checkInterpolateFlags(fs, *steps, *pngA, *pngB, *out); err != nil {
		return err
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	o := ddpm.InterpolateOptions{Lambdas: interpolate.Lambdas(*steps), Seed: *seed}
	if *tList != "" {
		if o.Steps, err = parseInts(*tList, "t"); err != nil {
			return err
		}
	}
	var x *ddpm.Tensor
	var source string
	if *pngA != "" {
		x, err = loadSources(p, *pngA, *pngB)
		source = fmt.Sprintf("%s and %s", *pngA, *pngB)
	} else {
		var dataSpec string
		x, dataSpec, err = dataImages(p, *spec, *split, []int{*a, *b}, "image")
		source = fmt.Sprintf("images %d and %d of %s (%s)", *a, *b, dataSpec, *split)
	}
	if err != nil {
		return err
	}
	rep := figReport{w: w, model: *modelPath, seed: *seed, out: *out, json: *asJSON, quiet: *quiet, start: time.Now()}
	return interpolateFig8(rep, p, x.Slice(0, 1), x.Slice(1, 2), o, source)
}

// checkInterpolateFlags refuses a λ count out of range, one PNG source or
// PNG sources with data ones, and a bad --out, before any work.
func checkInterpolateFlags(fs *flag.FlagSet, steps int, pngA, pngB, out string) error {
	switch {
	case steps < 1 || steps > 100:
		return usageErr("--lambdas must be in 1..100, got %d", steps)
	case (pngA == "") != (pngB == ""):
		return usageErr("give both --png-a and --png-b, or neither")
	case pngA != "" && (flagSet(fs, "a") || flagSet(fs, "b") || flagSet(fs, "data") || flagSet(fs, "split")):
		return usageErr("--png-a/--png-b replace --a, --b, --data and --split")
	case out == "":
		return usageErr("--out must name a .png, .jpg or .jpeg file")
	}
	return checkImageOut("out", out)
}

// interpolateFig8 draws Figs. 8–9 between a and b, writes the grid and
// prints its rows.
func interpolateFig8(rep figReport, p *ddpm.Pipeline, a, b *ddpm.Tensor, o ddpm.InterpolateOptions, source string) error {
	var finish func()
	o.Progress, finish = stepBar(fmt.Sprintf("decoding rows of %s", plural(len(o.Lambdas), "interpolation")), "step", rep.quiet)
	r, err := p.Interpolate(context.Background(), a, b, o)
	if err != nil {
		return usageOf(err)
	}
	finish()
	if err := saveFigure(rep.out, r.Figure()); err != nil {
		return err
	}
	res := make([]interpRow, len(r.Rows))
	ts := make([]int, len(r.Rows))
	for k, row := range r.Rows {
		res[k], ts[k] = interpRow{T: row.T, RMSEA: row.RMSEA, RMSEB: row.RMSEB}, row.T
	}
	if rep.json {
		return writeJSON(rep.w, map[string]any{"rows": res, "lambdas": r.Lambdas, "T": p.T(), "model": rep.model, "source": source, "seed": rep.seed})
	}
	w := rep.w
	fmt.Fprintf(w, "Interpolation in x_t (Figs. 8–9) between %s, T = %d, model %s\n", source, p.T(), rep.model)
	fmt.Fprintf(w, "grid rows: pixel space, then t = %v; columns: source, λ = 0 … 1 in steps of %.3g, source\n", ts, r.Lambdas[1]-r.Lambdas[0])
	fmt.Fprintf(w, "%6s %34s %34s\n", "t", "reconstruction RMSE a (λ=0) [0,255]", "reconstruction RMSE b (λ=1) [0,255]")
	for _, r := range res {
		fmt.Fprintf(w, "%6d %34.3f %34.3f\n", r.T, r.RMSEA, r.RMSEB)
	}
	fmt.Fprintf(w, "grid: %s (%s)\n", rep.out, time.Since(rep.start).Round(time.Millisecond))
	return nil
}

// loadSources reads PNG or JPEG files as model inputs, one image each (see
// ddpm.ImageTensor).
func loadSources(p *ddpm.Pipeline, paths ...string) (*ddpm.Tensor, error) {
	var x []float32
	for _, path := range paths {
		v, err := loadSourceImage(path, p.Channels(), p.Resolution())
		if err != nil {
			return nil, err
		}
		x = append(x, v...)
	}
	return tensorOf(p, x), nil
}

// loadSourceImage reads a PNG or JPEG file as one model input of c
// channels of res×res values: centre-cropped, resized and quantised like
// the data sets (ddpm.ImageTensor).
func loadSourceImage(path string, c, res int) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Width*cfg.Height > 100<<20 {
		return nil, fmt.Errorf("%s: %d×%d pixels is too large", path, cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	src, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if b := src.Bounds(); b.Dx() == 0 || b.Dy() == 0 {
		return nil, fmt.Errorf("%s: empty image", path)
	}
	return ddpm.ImageTensor([]image.Image{src}, c, res).Data, nil
}
