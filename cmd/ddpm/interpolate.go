package main

import (
	"fmt"
	"github.com/ddpm-go/ddpm"
	"image"
	"image/color"
	_ "image/jpeg" // decode JPEG sources
	_ "image/png"  // decode PNG sources
	"io"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/image/draw"

	"github.com/ddpm-go/ddpm/experiments/interpolate"
	"github.com/ddpm-go/ddpm/internal/progress"
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
	switch {
	case *steps < 1 || *steps > 100:
		return usageErr("--lambdas must be in 1..100, got %d", *steps)
	case (*pngA == "") != (*pngB == ""):
		return usageErr("give both --png-a and --png-b, or neither")
	case *pngA != "" && (flagSet(fs, "a") || flagSet(fs, "b") || flagSet(fs, "data") || flagSet(fs, "split")):
		return usageErr("--png-a/--png-b replace --a, --b, --data and --split")
	case *out == "":
		return usageErr("--out must name a .png, .jpg or .jpeg file")
	}
	if err := checkImageOut("out", *out); err != nil {
		return err
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	m, d := p.Net, p.Process
	cfg := m.Config()
	D := cfg.InCh * cfg.Res * cfg.Res
	var ts []int // default T/4, T/2, 3T/4, T
	for r := 1; r <= 4; r++ {
		if t := max(1, (r*d.T+2)/4); len(ts) == 0 || t != ts[len(ts)-1] {
			ts = append(ts, t)
		}
	}
	if *tList != "" {
		if ts, err = parseInts(*tList, "t"); err != nil {
			return err
		}
	}
	idx, err := timesteps(ts, d.T, "t")
	if err != nil {
		return err
	}
	var xa, xb []float32
	var source string
	if *pngA != "" {
		if xa, err = loadSourceImage(*pngA, cfg.InCh, cfg.Res); err != nil {
			return err
		}
		if xb, err = loadSourceImage(*pngB, cfg.InCh, cfg.Res); err != nil {
			return err
		}
		source = fmt.Sprintf("%s and %s", *pngA, *pngB)
	} else {
		ds, dataSpec, err := loadData(p, *spec, *split)
		if err != nil {
			return err
		}
		x, err := expImages(ds, []int{*a, *b}, cfg.Res, "image")
		if err != nil {
			return err
		}
		xa, xb = x[:D], x[D:]
		source = fmt.Sprintf("images %d and %d of %s (%s)", *a, *b, dataSpec, *split)
	}
	lambdas := interpolate.Lambdas(*steps)
	total := 0
	for _, i := range idx {
		total += i + 1
	}
	start := time.Now()
	bar := progress.New(total, fmt.Sprintf("decoding %s of %s", plural(len(idx), "row"), plural(len(lambdas), "interpolation")), "step", *quiet)
	rows, err := interpolate.Run(d, m, xa, xb, idx, lambdas, rand.New(rand.NewPCG(*seed, 0x696e7470)), func(step, _ int) { bar.Set(step) })
	if err != nil {
		return err
	}
	bar.Finish()
	grid := [][]float32{withEnds(xa, interpolate.Pixel(xa, xb, lambdas), xb)}
	res := make([]interpRow, len(rows))
	for r, row := range rows {
		grid = append(grid, withEnds(xa, row, xb))
		n := len(lambdas)
		res[r] = interpRow{T: idx[r] + 1, RMSEA: rmse255(row[:D], xa), RMSEB: rmse255(row[(n-1)*D:], xb)}
	}
	if err := saveRows(*out, grid, len(lambdas)+2, cfg.InCh, cfg.Res); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(w, map[string]any{"rows": res, "lambdas": lambdas, "T": d.T, "model": *modelPath, "source": source, "seed": *seed})
	}
	fmt.Fprintf(w, "Interpolation in x_t (Figs. 8–9) between %s, T = %d, model %s\n", source, d.T, *modelPath)
	fmt.Fprintf(w, "grid rows: pixel space, then t = %v; columns: source, λ = 0 … 1 in steps of %.3g, source\n", ts, 1/float64(*steps))
	fmt.Fprintf(w, "%6s %34s %34s\n", "t", "reconstruction RMSE a (λ=0) [0,255]", "reconstruction RMSE b (λ=1) [0,255]")
	for _, r := range res {
		fmt.Fprintf(w, "%6d %34.3f %34.3f\n", r.T, r.RMSEA, r.RMSEB)
	}
	fmt.Fprintf(w, "grid: %s (%s)\n", *out, time.Since(start).Round(time.Millisecond))
	return nil
}

// withEnds is a grid row: a, the images of row, b.
func withEnds(a, row, b []float32) []float32 {
	out := append([]float32(nil), a...)
	out = append(out, row...)
	return append(out, b...)
}

// loadSourceImage reads a PNG or JPEG file as one model input: centre-cropped
// to a square, resized to res×res, converted to c channels (grey by
// luminance, or RGB) and quantised to 8 bits, mapped to [−1, 1] like the
// data sets.
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
	b := src.Bounds()
	s := min(b.Dx(), b.Dy())
	if s == 0 {
		return nil, fmt.Errorf("%s: empty image", path)
	}
	crop := image.Rect(b.Min.X+(b.Dx()-s)/2, b.Min.Y+(b.Dy()-s)/2, 0, 0)
	crop.Max = crop.Min.Add(image.Pt(s, s))
	dst := image.NewRGBA(image.Rect(0, 0, res, res))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, crop, draw.Src, nil)
	x := make([]float32, c*res*res)
	for y := range res {
		for xx := range res {
			px := dst.At(xx, y)
			if c == 1 {
				g := color.GrayModel.Convert(px).(color.Gray)
				x[y*res+xx] = float32(g.Y)/127.5 - 1
				continue
			}
			r, g, bl, _ := px.RGBA()
			for ch, v := range []uint32{r, g, bl} {
				x[ch*res*res+y*res+xx] = float32(v>>8)/127.5 - 1
			}
		}
	}
	return x, nil
}
