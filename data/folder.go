package data

import (
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // register the JPEG decoder for image.Decode
	_ "image/png"  // register the PNG decoder for image.Decode
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

// loadFolder reads every PNG/JPEG file in dir (not recursively), sorted by
// name so that image indices are stable between runs, and turns each into
// an o.size×o.size picture with o.channels channels.
func loadFolder(dir string, o options) (*Dataset, error) {
	if o.size < 1 || o.size > maxIDXSide {
		return nil, fmt.Errorf("folder %s: image size %d out of range 1..%d", dir, o.size, maxIDXSide)
	}
	if o.channels != 1 && o.channels != 3 {
		return nil, fmt.Errorf("folder %s: %d channels requested, want 1 (grey) or 3 (RGB)", dir, o.channels)
	}
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
	if o.limit > 0 && o.limit < len(names) {
		names = names[:o.limit]
	}
	s, c := o.size, o.channels
	d := &Dataset{Name: "folder", N: len(names), C: c, H: s, W: s, Pixels: make([]uint8, len(names)*c*s*s)}
	dst := image.NewRGBA(image.Rect(0, 0, s, s))
	for i, name := range names {
		path := filepath.Join(dir, name)
		src, err := decodeImage(path)
		if err != nil {
			return nil, fmt.Errorf("folder: %w", err)
		}
		// Crop the largest centred square so the aspect ratio is kept, as
		// stretching would distort every non-square picture differently.
		b := src.Bounds()
		side := min(b.Dx(), b.Dy())
		x0 := b.Min.X + (b.Dx()-side)/2
		y0 := b.Min.Y + (b.Dy()-side)/2
		crop := image.Rect(x0, y0, x0+side, y0+side)
		// CatmullRom is sharp and, unlike bilinear, averages enough source
		// pixels when shrinking a large photo to avoid aliasing.
		draw.CatmullRom.Scale(dst, dst.Bounds(), src, crop, draw.Src, nil)
		out := d.Pixels[i*c*s*s : (i+1)*c*s*s]
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				o := dst.PixOffset(x, y)
				r, g, bl := dst.Pix[o], dst.Pix[o+1], dst.Pix[o+2]
				p := y*s + x
				if c == 1 {
					out[p] = color.GrayModel.Convert(color.RGBA{r, g, bl, 255}).(color.Gray).Y
				} else {
					out[p], out[s*s+p], out[2*s*s+p] = r, g, bl
				}
			}
		}
	}
	return d, nil
}

// decodeImage decodes one PNG or JPEG file, naming it in any error.
// Transparent pixels are composited over black, the colour the model's
// padding uses, since alpha has no channel in the data set.
func decodeImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErr(path, err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot decode image: %w", path, err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || int64(cfg.Width)*int64(cfg.Height) > maxFolderPixels {
		return nil, fmt.Errorf("%s: image is %d×%d pixels, outside the supported 1..%d megapixels", path, cfg.Width, cfg.Height, maxFolderPixels>>20)
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
