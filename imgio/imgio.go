// Package imgio writes model outputs — float32 images in [−1, 1], NCHW —
// as PNG or JPEG files: single pictures and grids of samples. The format
// follows the file's extension (see [Extensions]); [CheckOutput] and
// [CheckOutputDir] tell a command, before it starts minutes of work,
// whether its output could be written at all.
package imgio

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
		return fmt.Errorf("%d-channel images cannot be saved as pictures, want 1 (grey) or 3 (RGB)", c)
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

// SaveGrid writes the n images of x as one grid (see [GridImage]) to path,
// as PNG or JPEG by its extension (see [WriteImage]). The parent directory
// must exist. The file is replaced atomically, so a viewer polling the
// picture during training never sees a half-written file.
func SaveGrid(path string, x []float32, n, c, h, w, cols int) error {
	if err := check(x, n, c, h, w); err != nil {
		return fmt.Errorf("save grid %s: %w", path, err)
	}
	if err := WriteImage(path, GridImage(x, n, c, h, w, cols)); err != nil {
		return fmt.Errorf("save grid %w", err)
	}
	return nil
}

// EachName is the file name [SaveEach] gives image i (0-based) of n:
// prefix, i+1 zero-padded to the width of n, ".png" — sample-0001.png …
// sample-1000.png for prefix "sample-" and n = 1000 — so that names sort
// in index order, which evaluation tools that read folders by name rely on.
func EachName(prefix string, i, n int) string {
	return fmt.Sprintf("%s%0*d.png", prefix, len(strconv.Itoa(max(n, 1))), i+1)
}

// SaveEach writes each of the n images of x to its own PNG in dir, named by
// [EachName]. dir is created when missing, but not its parent: a mistyped
// path is an error, not a new directory tree (see [CheckOutputDir]).
func SaveEach(dir, prefix string, x []float32, n, c, h, w int) error {
	return SaveRange(dir, prefix, 0, n, x, n, c, h, w)
}

// SaveRange is [SaveEach] for images first … first+n−1 of total: the n
// images of x get the names they have among total (a draw saved a batch at
// a time).
func SaveRange(dir, prefix string, first, total int, x []float32, n, c, h, w int) error {
	if err := check(x, n, c, h, w); err != nil {
		return fmt.Errorf("save images to %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("save images to %s: %w", dir, plainErr(err))
	}
	size := c * h * w
	for i := 0; i < n; i++ {
		name := filepath.Join(dir, EachName(prefix, first+i, total))
		if err := WriteImage(name, GridImage(x[i*size:(i+1)*size], 1, c, h, w, 1)); err != nil {
			return fmt.Errorf("save images %w", err)
		}
	}
	return nil
}

// JPEGQuality is the quality .jpg and .jpeg files are encoded with.
const JPEGQuality = 95

// extensions are the file extensions WriteImage knows, lower case.
var extensions = []string{".png", ".jpg", ".jpeg"}

// Extensions returns the file extensions [WriteImage] and [SaveGrid]
// write, lower case with the dot: .png (lossless) and .jpg/.jpeg (JPEG,
// quality [JPEGQuality]). Upper-case spellings are accepted too.
func Extensions() []string { return append([]string(nil), extensions...) }

// ErrFormat is wrapped by the errors of [CheckOutput] and [WriteImage]
// for a path whose extension names no format they write, so that a
// command can report a bad flag value differently from a missing
// directory.
var ErrFormat = errors.New("unsupported image format")

// formatErr explains that path's extension is not one of exts.
func formatErr(path string, exts []string) error {
	want := "name a " + orList(exts) + " file"
	ext := filepath.Ext(path)
	if ext == "" {
		return fmt.Errorf("%s: %w: no file extension; %s", path, ErrFormat, want)
	}
	return fmt.Errorf("%s: %w %q; %s", path, ErrFormat, ext, want)
}

// orList joins items as "a", "a or b", "a, b or c".
func orList(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// hasExt reports whether path ends in one of exts, ignoring case.
func hasExt(path string, exts []string) bool {
	ext := strings.ToLower(filepath.Ext(path))
	for _, e := range exts {
		if ext == strings.ToLower(e) {
			return true
		}
	}
	return false
}

// CheckOutput reports, as one line that starts with path, why an image
// could not be written to path, so that a command can refuse its --out
// flag before it samples for minutes. The extension must be one of exts,
// ignoring case — by default (no exts) one of [Extensions]; a writer that
// only makes PNGs passes ".png". The rest is [CheckFile]. Nothing is
// created: a missing directory is an error.
func CheckOutput(path string, exts ...string) error {
	if len(exts) == 0 {
		exts = extensions
	}
	if path == "" {
		return fmt.Errorf("%w: no file named; %s", ErrFormat, "name a "+orList(exts)+" file")
	}
	if !hasExt(path, exts) {
		return formatErr(path, exts)
	}
	return CheckFile(path)
}

// CheckFile reports, as one line that starts with path, why a file of any
// kind could not be written to path: its directory must exist and accept a
// new file (one is created and removed to find out), and path must not be
// a directory. Nothing is left behind and no directory is created.
func CheckFile(path string) error {
	if path == "" {
		return errors.New("no file named")
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	if err := checkWritableDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// CheckOutputDir reports, as one line that starts with dir, why files
// could not be written into the directory dir ([SaveEach]): dir must be a
// writable directory, or be missing from a writable directory that exists
// (SaveEach then creates it, one level only). Nothing is created.
func CheckOutputDir(dir string) error {
	if dir == "" {
		return errors.New("no directory named")
	}
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s is a file, not a directory", dir)
	case err == nil:
		err = checkWritableDir(dir)
	case errors.Is(err, fs.ErrNotExist):
		err = checkWritableDir(filepath.Dir(filepath.Clean(dir)))
	default: // the parent says what is wrong, if it can
		if e := checkWritableDir(filepath.Dir(filepath.Clean(dir))); e != nil {
			err = e
		}
		err = plainErr(err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return nil
}

// checkWritableDir reports whether dir exists, is a directory and accepts a
// new file, by creating and removing one.
func checkWritableDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("directory %s: %w", dir, plainErr(err))
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".ddpm-write-test-*")
	if err != nil {
		return fmt.Errorf("directory %s is not writable: %w", dir, plainErr(err))
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("directory %s: %w", dir, plainErr(err))
	}
	return nil
}

// WriteImage encodes img to path as its extension says — PNG for .png,
// JPEG of quality [JPEGQuality] for .jpg and .jpeg, ignoring case; other
// extensions are an error wrapping [ErrFormat] — atomically (see
// [WritePNG]). The parent directory must exist. Errors start with path.
func WriteImage(path string, img image.Image) error {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".png":
		return WritePNG(path, img)
	case ".jpg", ".jpeg":
		return writeAtomic(path, func(w io.Writer) error {
			return jpeg.Encode(w, img, &jpeg.Options{Quality: JPEGQuality})
		})
	}
	return formatErr(path, extensions)
}

// WritePNG encodes img as PNG to path, whatever its extension, atomically:
// it writes a temporary file in the same directory and renames it over
// path, so path holds either the old or the complete new picture. The
// parent directory must exist: it is not created, so that a mistyped path
// fails instead of growing a directory tree. Errors start with path.
func WritePNG(path string, img image.Image) error {
	return writeAtomic(path, func(w io.Writer) error {
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		return enc.Encode(w, img)
	})
}

// writeAtomic writes path through encode into a temporary file in its
// directory, renamed over path once complete. Errors start with path.
func writeAtomic(path string, encode func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		if e := checkWritableDir(dir); e != nil {
			err = e // names what is wrong with the directory
		}
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
	if err := encode(bw); err != nil {
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

// RMSE255 is the root mean squared difference of two model-scale images
// (values in [−1, 1]) on the pixel scale [0, 255]: the distortion of the
// paper's Table 4.
func RMSE255(a, b []float32) float64 {
	s := 0.0
	for k := range a {
		e := float64(a[k] - b[k])
		s += e * e
	}
	return 127.5 * math.Sqrt(s/float64(len(a)))
}
