package data

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the JPEG decoder for image.Decode
	_ "image/png"  // register the PNG decoder for image.Decode
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/image/draw"
)

// folderExts are the file name extensions loadFolder picks up; other files
// (README, .DS_Store, thumbnails databases) are skipped silently.
var folderExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true}

// maxFolderPixels bounds the declared size of one source image, checked
// from its header before decoding, so a single huge or corrupt file cannot
// exhaust memory (100 megapixels is far beyond any training picture).
const maxFolderPixels = 100 << 20

// Shape describes images of w×h pixels with c channels the way messages
// to users do: "32×32 grey", "64×48 RGB".
func Shape(w, h, c int) string {
	return fmt.Sprintf("%d×%d %s", w, h, colourName(c == 1))
}

func colourName(grey bool) string {
	if grey {
		return "grey"
	}
	return "RGB"
}

// MismatchError reports a folder image that does not fit the model under
// [Strict]: its size or colour model differs from what was asked for, or
// (Other set) the folder mixes image sizes. The fields let a caller name
// the flag that would convert it.
type MismatchError struct {
	Folder string // the folder as given to Load
	File   string // the image's file name within it
	W, H   int    // its size
	// Grey is the image's colour model as judged for the model: for a grey
	// model an image is grey when it is stored as grey or has R = G = B
	// everywhere; for an RGB model when it is stored as grey.
	Grey bool
	// Size and Channels are what was asked for (WithSize, WithChannels).
	Size, Channels int
	// Other, when set, is a second image of another size (OW×OH) than File:
	// the folder mixes sizes.
	Other  string
	OW, OH int
}

// Mixed reports whether the folder mixes image sizes.
func (e *MismatchError) Mixed() bool { return e.Other != "" }

// SizeDiffers reports whether resizing is needed.
func (e *MismatchError) SizeDiffers() bool {
	return e.Mixed() || e.W != e.Size || e.H != e.Size
}

// ColourDiffers reports whether a colour conversion is needed.
func (e *MismatchError) ColourDiffers() bool {
	return !e.Mixed() && e.Grey != (e.Channels == 1)
}

func (e *MismatchError) Error() string {
	if e.Mixed() {
		return fmt.Sprintf("folder:%s mixes image sizes: %s is %d×%d, %s is %d×%d; want %d×%d",
			e.Folder, e.File, e.W, e.H, e.Other, e.OW, e.OH, e.Size, e.Size)
	}
	return fmt.Sprintf("folder:%s: %s is %d×%d %s; want %s",
		e.Folder, e.File, e.W, e.H, colourName(e.Grey), Shape(e.Size, e.Size, e.Channels))
}

// listFolder returns the names of the PNG/JPEG files in dir, sorted so
// that image indices are stable between runs.
func listFolder(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("folder: %w", pathErr(dir, err))
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
			if folderExts[strings.ToLower(filepath.Ext(e.Name()))] {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("folder %s: no .png, .jpg or .jpeg images found", dir)
	}
	return names, nil
}

// loadFolder reads every PNG/JPEG file in dir (not recursively), sorted by
// name, and turns each into an o.size×o.size picture with o.channels
// channels: under Strict only by the conversions it allows, otherwise
// always (centre crop, Catmull-Rom resize, colour conversion).
func loadFolder(dir string, o options) (*Dataset, error) {
	if o.size < 1 || o.size > maxIDXSide {
		return nil, fmt.Errorf("folder %s: image size %d out of range 1..%d", dir, o.size, maxIDXSide)
	}
	if o.channels != 1 && o.channels != 3 {
		return nil, fmt.Errorf("folder %s: %d channels requested, want 1 (grey) or 3 (RGB)", dir, o.channels)
	}
	names, err := listFolder(dir)
	if err != nil {
		return nil, err
	}
	if o.limit > 0 && o.limit < len(names) {
		names = names[:o.limit]
	}
	if o.strict && !o.resize {
		// Headers first: a folder of the wrong size fails in a moment, not
		// after decoding every picture.
		if err := checkSizes(dir, names, o); err != nil {
			return nil, err
		}
	}
	s, c := o.size, o.channels
	d := &Dataset{Name: "folder", N: len(names), C: c, H: s, W: s, Pixels: make([]uint8, len(names)*c*s*s)}
	var dst *image.RGBA
	for i, name := range names {
		path := filepath.Join(dir, name)
		src, err := decodeImage(path)
		if err != nil {
			return nil, fmt.Errorf("folder: %w", err)
		}
		out := d.Pixels[i*c*s*s : (i+1)*c*s*s]
		if o.strict {
			if err := fitImage(out, src, dir, name, o); err != nil {
				return nil, err
			}
			continue
		}
		if dst == nil {
			dst = image.NewRGBA(image.Rect(0, 0, s, s))
		}
		// Crop the largest centred square so the aspect ratio is kept, as
		// stretching would distort every non-square picture differently.
		// CatmullRom is sharp and, unlike bilinear, averages enough source
		// pixels when shrinking a large photo to avoid aliasing.
		draw.CatmullRom.Scale(dst, dst.Bounds(), src, centreSquare(src.Bounds()), draw.Src, nil)
		planes(out, dst, s, c)
	}
	return d, nil
}

// checkSizes reads the headers of the folder's images and refuses a folder
// that mixes sizes or whose images are not o.size×o.size.
func checkSizes(dir string, names []string, o options) error {
	var fw, fh int
	for i, name := range names {
		cfg, err := decodeHeader(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("folder: %w", err)
		}
		if i == 0 {
			fw, fh = cfg.Width, cfg.Height
			continue
		}
		if cfg.Width != fw || cfg.Height != fh {
			return &MismatchError{Folder: dir, File: names[0], W: fw, H: fh, Other: name, OW: cfg.Width, OH: cfg.Height,
				Size: o.size, Channels: o.channels}
		}
	}
	if fw == o.size && fh == o.size {
		return nil
	}
	// Name the first image's colour too, so one message says everything
	// that differs.
	src, err := decodeImage(filepath.Join(dir, names[0]))
	if err != nil {
		return fmt.Errorf("folder: %w", err)
	}
	rgba := toRGBA(src, src.Bounds())
	return &MismatchError{Folder: dir, File: names[0], W: fw, H: fh, Grey: judgedGrey(src, rgba, o.channels),
		Size: o.size, Channels: o.channels}
}

// fitImage turns src into the planar o.size×o.size image out with
// o.channels channels, converting only as o allows.
func fitImage(out []uint8, src image.Image, dir, name string, o options) error {
	s, c := o.size, o.channels
	b := src.Bounds()
	crop := b
	if o.resize {
		crop = centreSquare(b)
	}
	rgba := toRGBA(src, crop)
	grey := judgedGrey(src, rgba, c)
	mismatch := !o.resize && (b.Dx() != s || b.Dy() != s)
	mismatch = mismatch || (!o.convert && grey != (c == 1))
	if mismatch {
		return &MismatchError{Folder: dir, File: name, W: b.Dx(), H: b.Dy(), Grey: grey, Size: s, Channels: c}
	}
	side := crop.Dx()
	if side == s {
		planes(out, rgba, s, c)
		return nil
	}
	areaResize(out, rgba, side, s, c)
	return nil
}

// centreSquare is the largest square centred in b.
func centreSquare(b image.Rectangle) image.Rectangle {
	side := min(b.Dx(), b.Dy())
	x0 := b.Min.X + (b.Dx()-side)/2
	y0 := b.Min.Y + (b.Dy()-side)/2
	return image.Rect(x0, y0, x0+side, y0+side)
}

// toRGBA copies the region r of src into a new RGBA image at the origin.
// RGBA is alpha-premultiplied, so transparent pixels come out composited
// over black, the colour the model's padding uses: alpha has no channel in
// the data set.
func toRGBA(src image.Image, r image.Rectangle) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	draw.Draw(dst, dst.Bounds(), src, r.Min, draw.Src)
	return dst
}

// storedGrey reports whether an image is stored with a grey colour model
// (8- or 16-bit grey, or a palette of greys).
func storedGrey(img image.Image) bool {
	switch m := img.ColorModel().(type) {
	case color.Palette:
		for _, c := range m {
			r, g, b, _ := c.RGBA()
			if r != g || g != b {
				return false
			}
		}
		return true
	default:
		return m == color.GrayModel || m == color.Gray16Model
	}
}

// judgedGrey is an image's colour model as a c-channel model sees it. For a
// grey model an image is grey when it is stored as grey or its pixels (rgba,
// already converted) all have R = G = B: converting it loses nothing. For an
// RGB model only the storage counts, so that a colour photograph that
// happens to be grey is not refused.
func judgedGrey(src image.Image, rgba *image.RGBA, c int) bool {
	if storedGrey(src) {
		return true
	}
	if c != 1 {
		return false
	}
	p := rgba.Pix
	for i := 0; i+2 < len(p); i += 4 {
		if p[i] != p[i+1] || p[i+1] != p[i+2] {
			return false
		}
	}
	return true
}

// grey is the luminance of an 8-bit RGB pixel exactly as color.GrayModel
// computes it (ITU-R BT.601 weights on the 16-bit values): 0.299 R +
// 0.587 G + 0.114 B.
func grey(r, g, b uint32) uint8 {
	return uint8((19595*r*0x101 + 38470*g*0x101 + 7471*b*0x101 + 1<<15) >> 24)
}

// planes writes the s×s RGBA image src into out as c planes (grey by
// luminance when c is 1).
func planes(out []uint8, src *image.RGBA, s, c int) {
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			o := src.PixOffset(x, y)
			r, g, b := src.Pix[o], src.Pix[o+1], src.Pix[o+2]
			p := y*s + x
			if c == 1 {
				out[p] = grey(uint32(r), uint32(g), uint32(b))
			} else {
				out[p], out[s*s+p], out[2*s*s+p] = r, g, b
			}
		}
	}
}

// tap is one source pixel's share of an output pixel.
type tap struct {
	i int
	w float32
}

// boxTaps is the area (box) filter from n source pixels to m output pixels
// in one dimension: output j covers source span [j·n/m, (j+1)·n/m), and
// each source pixel weighs by how much of that span it covers. Shrinking,
// every source pixel counts once in total; enlarging, each output pixel
// takes the one or two source pixels under it.
func boxTaps(n, m int) [][]tap {
	taps := make([][]tap, m)
	// In units of 1/m of a source pixel, output j covers [j·n, (j+1)·n)
	// and source pixel i covers [i·m, (i+1)·m): all integers, so the
	// weights are exact.
	for j := range taps {
		lo, hi := j*n, (j+1)*n
		for i := lo / m; i*m < hi; i++ {
			ov := min(hi, (i+1)*m) - max(lo, i*m)
			if ov > 0 {
				taps[j] = append(taps[j], tap{i, float32(ov) / float32(n)})
			}
		}
	}
	return taps
}

// areaResize scales the side×side RGBA image src to s×s with the area
// filter and writes it into out as c planes (grey by luminance, computed
// from the filtered colour, when c is 1).
func areaResize(out []uint8, src *image.RGBA, side, s, c int) {
	taps := boxTaps(side, s)
	// Horizontal pass: side rows of s pixels, three channels each.
	rows := make([]float32, 3*side*s)
	for y := 0; y < side; y++ {
		line := src.Pix[y*src.Stride:]
		for x, ts := range taps {
			var r, g, b float32
			for _, t := range ts {
				p := line[4*t.i:]
				r += t.w * float32(p[0])
				g += t.w * float32(p[1])
				b += t.w * float32(p[2])
			}
			o := 3 * (y*s + x)
			rows[o], rows[o+1], rows[o+2] = r, g, b
		}
	}
	for y, ts := range taps {
		for x := 0; x < s; x++ {
			var r, g, b float32
			for _, t := range ts {
				o := 3 * (t.i*s + x)
				r += t.w * rows[o]
				g += t.w * rows[o+1]
				b += t.w * rows[o+2]
			}
			p := y*s + x
			if c == 1 {
				out[p] = toByte((19595*r + 38470*g + 7471*b) / 65536)
			} else {
				out[p], out[s*s+p], out[2*s*s+p] = toByte(r), toByte(g), toByte(b)
			}
		}
	}
}

// toByte rounds a filtered value to the nearest pixel value in 0..255.
func toByte(v float32) uint8 {
	return uint8(min(255, max(0, math.Round(float64(v)))))
}

// decodeHeader reads an image's size from its header alone, naming the
// file in any error and refusing sizes beyond maxFolderPixels.
func decodeHeader(path string) (image.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Config{}, pathErr(path, err)
	}
	defer f.Close()
	return header(f, path)
}

func header(f *os.File, path string) (image.Config, error) {
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return cfg, fmt.Errorf("%s: cannot decode image: %w", path, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > maxFolderPixels {
		return cfg, fmt.Errorf("%s: image is %d×%d pixels, outside the supported 1..%d megapixels", path, cfg.Width, cfg.Height, maxFolderPixels>>20)
	}
	return cfg, nil
}

// decodeImage decodes one PNG or JPEG file, naming it in any error. Its
// header is checked first (see decodeHeader), so a huge declared size is
// refused before any pixel memory is allocated.
func decodeImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErr(path, err)
	}
	defer f.Close()
	if _, err := header(f, path); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, pathErr(path, err)
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot decode image: %w", path, err)
	}
	return img, nil
}
