// Package imgio writes model outputs — float32 images in [−1, 1], NCHW —
// as PNG files: single pictures and grids of samples.
package imgio

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Pad is the gap, in pixels, between tiles of a grid.
const Pad = 2

// padColour fills the gaps between grid tiles. It is white rather than
// black because MNIST-like samples have black backgrounds and would
// otherwise run into one another.
const padColour = 255

// ToByte maps a model value in [−1, 1] to a pixel, p = round((v+1)·127.5)
// clipped to [0, 255], the inverse of the data package's p/127.5 − 1.
// Samples overshoot the range slightly, and NaN (a diverged model) must
// still produce a picture, so it becomes 0 rather than an arbitrary value.
func ToByte(v float32) uint8 {
	p := (float64(v) + 1) * 127.5
	switch {
	case !(p > 0): // also NaN
		return 0
	case p >= 255:
		return 255
	}
	return uint8(math.Round(p))
}

// check validates the shape arguments shared by all functions, so that
// GridImage can promise not to panic after SaveGrid has accepted them.
func check(x []float32, n, c, h, w int) error {
	if n < 1 || h < 1 || w < 1 {
		return fmt.Errorf("invalid image shape n=%d h=%d w=%d", n, h, w)
	}
	if c != 1 && c != 3 {
		return fmt.Errorf("%d-channel images cannot be saved as PNG, want 1 (grey) or 3 (RGB)", c)
	}
	if len(x) != n*c*h*w {
		return fmt.Errorf("got %d values for %d images of %d×%d×%d (want %d)", len(x), n, c, h, w, n*c*h*w)
	}
	return nil
}

// gridShape returns the number of columns and rows; cols ≤ 0 picks a
// near-square layout.
func gridShape(n, cols int) (int, int) {
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(n))))
	}
	cols = min(cols, n)
	return cols, (n + cols - 1) / cols
}

// GridImage lays out the n images of x (NCHW, c×h×w each, values in
// [−1, 1]) in rows of cols tiles (cols ≤ 0: about √n) separated by [Pad]
// white pixels, for composing figures. One channel gives an *image.Gray,
// three an *image.RGBA. It panics if the shape does not match x or c is
// not 1 or 3; [SaveGrid] reports those as errors instead.
func GridImage(x []float32, n, c, h, w, cols int) image.Image {
	if err := check(x, n, c, h, w); err != nil {
		panic("imgio: GridImage: " + err.Error())
	}
	cols, rows := gridShape(n, cols)
	rect := image.Rect(0, 0, cols*w+(cols-1)*Pad, rows*h+(rows-1)*Pad)
	var (
		gray *image.Gray
		rgba *image.RGBA
		pix  []uint8
	)
	if c == 1 {
		gray = image.NewGray(rect)
		pix = gray.Pix
	} else {
		rgba = image.NewRGBA(rect)
		pix = rgba.Pix
	}
	for i := range pix {
		pix[i] = padColour
	}
	plane := h * w
	for i := 0; i < n; i++ {
		ox, oy := (i%cols)*(w+Pad), (i/cols)*(h+Pad)
		img := x[i*c*plane : (i+1)*c*plane]
		for y := 0; y < h; y++ {
			for xx := 0; xx < w; xx++ {
				p := y*w + xx
				if c == 1 {
					gray.Pix[gray.PixOffset(ox+xx, oy+y)] = ToByte(img[p])
				} else {
					o := rgba.PixOffset(ox+xx, oy+y)
					rgba.Pix[o] = ToByte(img[p])
					rgba.Pix[o+1] = ToByte(img[plane+p])
					rgba.Pix[o+2] = ToByte(img[2*plane+p])
					rgba.Pix[o+3] = 255
				}
			}
		}
	}
	if c == 1 {
		return gray
	}
	return rgba
}

// SaveGrid writes the n images of x as one PNG grid (see [GridImage]) to
// path, creating missing parent directories. The file is replaced
// atomically, so a viewer polling the picture during training never sees a
// half-written file.
func SaveGrid(path string, x []float32, n, c, h, w, cols int) error {
	if err := check(x, n, c, h, w); err != nil {
		return fmt.Errorf("save grid %s: %w", path, err)
	}
	if err := WritePNG(path, GridImage(x, n, c, h, w, cols)); err != nil {
		return fmt.Errorf("save grid %w", err)
	}
	return nil
}

// SaveEach writes each of the n images of x to its own PNG in dir (created
// if missing), named prefix + zero-padded index + ".png" — e.g.
// sample_007.png — with enough digits that names sort in index order, which
// evaluation tools that read folders by name rely on.
func SaveEach(dir, prefix string, x []float32, n, c, h, w int) error {
	if err := check(x, n, c, h, w); err != nil {
		return fmt.Errorf("save images to %s: %w", dir, err)
	}
	digits := len(strconv.Itoa(n - 1))
	size := c * h * w
	for i := 0; i < n; i++ {
		name := filepath.Join(dir, fmt.Sprintf("%s%0*d.png", prefix, digits, i))
		if err := WritePNG(name, GridImage(x[i*size:(i+1)*size], 1, c, h, w, 1)); err != nil {
			return fmt.Errorf("save images %w", err)
		}
	}
	return nil
}

// WritePNG encodes img as PNG to path atomically: it writes a temporary
// file in the same directory and renames it over path, so path holds
// either the old or the complete new picture. Missing parent directories
// are created. Errors start with path.
func WritePNG(path string, img image.Image) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", path, plainErr(err))
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("%s: %w", path, plainErr(err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("%s: %w", path, plainErr(err))
		}
	}()
	bw := bufio.NewWriter(f)
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(bw, img); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; pictures are meant to be shared.
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// plainErr strips the operation and (temporary) path that *fs.PathError
// and *os.LinkError add, since the caller names the user's path itself.
func plainErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
