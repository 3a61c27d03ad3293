package main

// Helpers shared by the paper's experiment commands (rd, progressive,
// interpolate, schedule, autoregressive).

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/progress"
)

// expImages converts the images idx of ds to the model's input (padded to
// res), checking the indices.
func expImages(ds *data.Dataset, idx []int, res int, what string) ([]float32, error) {
	for _, i := range idx {
		if i < 0 || i >= ds.N {
			return nil, usageErr("%s %d out of range: the split has %s (0..%d)", what, i, plural(ds.N, "image"), ds.N-1)
		}
	}
	x := make([]float32, len(idx)*ds.C*res*res)
	ds.ToFloat(x, idx, res)
	return x, nil
}

// expFirst converts the first n images of ds in its sample order (see
// data.Dataset.SampleOrder), the split split of the data set spec, to the
// model's input.
func expFirst(ds *data.Dataset, n, res int, spec, split string) ([]float32, error) {
	if n > ds.N {
		return nil, usageErr("--n %d exceeds the %s of the %s %s split", n, plural(ds.N, "image"), spec, split)
	}
	return expImages(ds, ds.SampleOrder()[:n], res, "image")
}

// dataImages reads the images idx of a split of the data set spec (empty:
// the model's training data) as the model's input, and the spec read; what
// names an index in errors.
func dataImages(p *ddpm.Pipeline, spec, split string, idx []int, what string) (*ddpm.Tensor, string, error) {
	ds, spec, err := loadData(p, spec, split)
	if err != nil {
		return nil, "", err
	}
	x, err := expImages(ds, idx, p.Resolution(), what)
	if err != nil {
		return nil, "", err
	}
	return tensorOf(p, x), spec, nil
}

// tensorOf wraps whole model inputs of p as a tensor.
func tensorOf(p *ddpm.Pipeline, x []float32) *ddpm.Tensor {
	r := p.Resolution()
	return &ddpm.Tensor{Data: x, N: len(x) / (p.Channels() * r * r), C: p.Channels(), H: r, W: r}
}

// figReport is what a figure command's table or JSON says besides the
// figure's rows, and where the figure goes.
type figReport struct {
	w           io.Writer
	model, out  string
	seed        uint64
	json, quiet bool
	start       time.Time
}

// usageOf makes an error of an option the library refused
// (ddpm.ErrInvalidOption) a usage error; other errors pass.
func usageOf(err error) error {
	if errors.Is(err, ddpm.ErrInvalidOption) {
		return usageErr("%v", strings.TrimPrefix(err.Error(), ddpm.ErrInvalidOption.Error()+": "))
	}
	return err
}

// stepBar is a Progress func showing a bar of desc in unit, made at the
// first call, when the total is known (the first unit does not count
// towards the rate), and the func that finishes it.
func stepBar(desc, unit string, quiet bool) (func(done, total int), func()) {
	var bar *progress.Bar
	return func(done, total int) {
			if bar == nil {
				bar = progress.New(total, desc, unit, quiet)
				bar.Begin(done)
				return
			}
			bar.Set(done)
		}, func() {
			if bar != nil {
				bar.Finish()
			}
		}
}

// minTile is the smallest side, in pixels, of an image in an experiment's
// grid: smaller images are enlarged by an integer factor (nearest
// neighbour, so no pixel is invented) to stay readable.
const minTile = 64

// saveFigure writes a figure's rows of images as one grid (PNG or JPEG by
// the extension of path), enlarged so that each image is at least minTile
// pixels wide.
func saveFigure(path string, f *ddpm.Figure) error {
	x := f.Images
	img := imgio.GridImage(x.Data, x.N, x.C, x.H, x.W, f.Cols)
	zoom := (minTile + x.W - 1) / x.W
	if zoom > 1 {
		b := img.Bounds()
		big := image.NewRGBA(image.Rect(0, 0, b.Dx()*zoom, b.Dy()*zoom))
		for y := range b.Dy() * zoom {
			for x := range b.Dx() * zoom {
				big.Set(x, y, img.At(b.Min.X+x/zoom, b.Min.Y+y/zoom))
			}
		}
		img = big
	}
	return imgio.WriteImage(path, img)
}

// writeJSON prints v as one JSON object line.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// parseInts parses a comma-separated list of integers for flag name.
func parseInts(s, name string) ([]int, error) {
	return parseList(s, name, "an integer", strconv.Atoi)
}

// parseFloats parses a comma-separated list of numbers for flag name.
func parseFloats(s, name string) ([]float64, error) {
	return parseList(s, name, "a number", func(f string) (float64, error) { return strconv.ParseFloat(f, 64) })
}

// parseList parses a comma-separated list for flag name, each item with
// parse; what names an item in the error.
func parseList[E any](s, name, what string, parse func(string) (E, error)) ([]E, error) {
	var out []E
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := parse(f)
		if err != nil {
			return nil, usageErr("--%s: %q is not %s", name, f, what)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, usageErr("--%s: empty list", name)
	}
	return out, nil
}
