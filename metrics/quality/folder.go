package quality

import (
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of JPEG folders
	_ "image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
)

// ReadFolder reads up to limit (≤ 0: all) PNG/JPEG images of dir, in name
// order, as grey pictures — the images of any generator, to score with
// [Evaluate]. Their side is the first image's when it is square and 28 to
// 64 pixels (a 32×32 sample of a padded model is then centre-cropped by
// the classifier, not shrunk); other images are resized to 28×28. A folder
// with fewer than [MinN] images is an error; with fewer than limit, all
// of them are returned.
func ReadFolder(dir string, limit int) (Images, error) {
	side, err := firstImageSide(dir)
	if err != nil {
		return Images{}, err
	}
	ds, err := data.Load("folder:"+dir, "", data.WithSize(side), data.WithChannels(1), data.WithLimit(limit))
	if err != nil {
		return Images{}, err
	}
	if ds.N < MinN {
		return Images{}, fmt.Errorf("folder %s holds %d images; the metrics need at least %d", dir, ds.N, MinN)
	}
	idx := make([]int, ds.N)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, ds.N*side*side)
	ds.ToFloat(x, idx, 0)
	return Images{X: x, N: ds.N, C: 1, H: side, W: side}, nil
}

// firstImageSide is the side of the first (by name) image in dir if it is
// square and at least classifier.Size (at most 64), else classifier.Size.
func firstImageSide(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return 0, fmt.Errorf("folder %s: %w", dir, err)
	}
	names := []string{}
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg":
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("folder %s holds no .png, .jpg or .jpeg images", dir)
	}
	slices.Sort(names)
	path := filepath.Join(dir, names[0])
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if cfg.Width == cfg.Height && cfg.Width >= classifier.Size && cfg.Width <= 64 {
		return cfg.Width, nil
	}
	return classifier.Size, nil
}

// ReadFolder reads up to limit (≤ 0: all) PNG/JPEG images of dir, in name
// order, the way o's classifier takes them: as [ReadFolder] does for a
// LeNet (or before [Options.Load]); for another network (the emoji
// classifier's 3×32×32) each image is fitted to its input, with an area
// filter where it must be resized and colour conversion where it must
// be converted.
func (o *Options) ReadFolder(dir string, limit int) (Images, error) {
	if o.Classifier == nil || o.Classifier.Arch().Name == classifier.LeNet {
		return ReadFolder(dir, limit)
	}
	a := o.Classifier.Arch()
	ds, err := data.Load("folder:"+dir, "", data.WithSize(a.Size), data.WithChannels(a.Channels), data.Strict(true, true), data.WithLimit(limit))
	if err != nil {
		return Images{}, err
	}
	if ds.N < MinN {
		return Images{}, fmt.Errorf("folder %s holds %d images; the metrics need at least %d", dir, ds.N, MinN)
	}
	idx := make([]int, ds.N)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, ds.N*ds.ImageSize())
	ds.ToFloat(x, idx, 0)
	return Images{X: x, N: ds.N, C: ds.C, H: ds.H, W: ds.W}, nil
}
