package main

// Helpers shared by the paper's experiment commands (rd, progressive,
// interpolate, schedule, autoregressive).

import (
	"encoding/json"
	"fmt"
	"image"
	"io"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/imgio"
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

// expFirst converts the first n images of ds, the split split of the data
// set spec, to the model's input.
func expFirst(ds *data.Dataset, n, res int, spec, split string) ([]float32, error) {
	if n > ds.N {
		return nil, usageErr("--n %d exceeds the %s of the %s %s split", n, plural(ds.N, "image"), spec, split)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return expImages(ds, idx, res, "image")
}

// dataMask marks the values of a res×res model input that come from the
// data set's images rather than from padding (all of them when the images
// are res×res): the padding is found by converting a white image.
func dataMask(ds *data.Dataset, res int) []bool {
	white := &data.Dataset{N: 1, C: ds.C, H: ds.H, W: ds.W, Pixels: make([]uint8, ds.ImageSize())}
	for k := range white.Pixels {
		white.Pixels[k] = 255
	}
	x := make([]float32, ds.C*res*res)
	white.ToFloat(x, []int{0}, res)
	mask := make([]bool, len(x))
	for k, v := range x {
		mask[k] = v == 1
	}
	return mask
}

// minTile is the smallest side, in pixels, of an image in an experiment's
// grid: smaller images are enlarged by an integer factor (nearest
// neighbour, so no pixel is invented) to stay readable.
const minTile = 64

// saveRows writes rows of images as one grid (PNG or JPEG by the
// extension of path), a row of the grid per
// row (each row holds cols images of c×res×res values), enlarged so that
// each image is at least minTile pixels wide.
func saveRows(path string, rows [][]float32, cols, c, res int) error {
	var all []float32
	for _, r := range rows {
		all = append(all, r...)
	}
	n := len(rows) * cols
	if len(all) != n*c*res*res {
		return fmt.Errorf("grid %s: %d values are not %s", path, len(all), plural(n, "image"))
	}
	img := imgio.GridImage(all, n, c, res, res, cols)
	zoom := (minTile + res - 1) / res
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

// timesteps turns paper timesteps t (1..T) from a flag into diffusion
// indices t−1.
func timesteps(ts []int, T int, name string) ([]int, error) {
	idx := make([]int, len(ts))
	for k, t := range ts {
		if t < 1 || t > T {
			return nil, usageErr("--%s %d out of range 1..%d (T)", name, t, T)
		}
		idx[k] = t - 1
	}
	return idx, nil
}
