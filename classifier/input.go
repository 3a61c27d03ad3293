package classifier

import (
	"fmt"

	"github.com/ddpm-go/ddpm/data"
)

// Prepare returns the n images x [n, c, s, s] (values in [−1, 1]) as the
// LeNet's 28×28 input (Net.Prepare does it for any network). 28×28 images are returned as they are. Larger
// square images are centre-cropped to 28×28: a diffusion model trained on
// MNIST at 32×32 saw each 28×28 digit centred on a −1 (black) canvas
// (data.Dataset.ToFloat with padTo), so its samples are digits inside a
// 2-pixel border of padding, and the crop removes exactly that border, at
// the same offset (s−28)/2 that ToFloat padded with. Nothing is resampled,
// so real and generated images reach the classifier the same way. Other
// shapes (colour, smaller or non-square images) are an error.
func Prepare(x []float32, n, c, h, w int) ([]float32, error) {
	if c != Channels {
		return nil, fmt.Errorf("classifier: images have %d channels, the classifier takes %d (grey)", c, Channels)
	}
	if h != w || h < Size {
		return nil, fmt.Errorf("classifier: images are %d×%d, the classifier takes %d×%d (or larger square images padded around %d×%d ones)", h, w, Size, Size, Size, Size)
	}
	if len(x) != n*c*h*w {
		return nil, fmt.Errorf("classifier: got %d values for %d images of %d×%d×%d", len(x), n, c, h, w)
	}
	if h == Size {
		return x, nil
	}
	off := (h - Size) / 2
	out := make([]float32, n*Size*Size)
	for i := 0; i < n; i++ {
		src := x[i*h*w : (i+1)*h*w]
		dst := out[i*Size*Size : (i+1)*Size*Size]
		for y := 0; y < Size; y++ {
			copy(dst[y*Size:(y+1)*Size], src[(y+off)*w+off:][:Size])
		}
	}
	return out, nil
}

// Prepare returns the n images x [n, c, h, w] (values in [−1, 1]) as the
// network's input: for the LeNet as the package-level Prepare does it
// (28×28, or larger square grey images centre-cropped); for another
// architecture the images must have its exact shape (3×32×32 for cnn32).
// Called with n = 0 and x nil it only checks the shape.
func (m *Net) Prepare(x []float32, n, c, h, w int) ([]float32, error) {
	a := m.arch
	if a.Name == LeNet {
		return Prepare(x, n, c, h, w)
	}
	if c != a.Channels || h != a.Size || w != a.Size {
		return nil, fmt.Errorf("classifier: images are %d×%d×%d, the %s classifier takes %d×%d×%d", c, h, w, a.Name, a.Channels, a.Size, a.Size)
	}
	if len(x) != n*c*h*w {
		return nil, fmt.Errorf("classifier: got %d values for %d images of %d×%d×%d", len(x), n, c, h, w)
	}
	return x, nil
}

// checkDataset reports whether ds can be fed to the classifier: the
// architecture's input shape and (when labelled is set) labels 0..k−1.
func (m *Net) checkDataset(ds *data.Dataset, labelled bool) error {
	a := m.arch
	if ds.C != a.Channels || ds.H != a.Size || ds.W != a.Size {
		return fmt.Errorf("classifier: data set %s has %d×%d×%d images, want %d×%d×%d", ds.Name, ds.C, ds.H, ds.W, a.Channels, a.Size, a.Size)
	}
	if !labelled {
		return nil
	}
	return checkLabels(ds, m.classes)
}

// checkLabels reports whether ds has one label in 0..k−1 per image.
func checkLabels(ds *data.Dataset, k int) error {
	if len(ds.Labels) != ds.N {
		return fmt.Errorf("classifier: data set %s has %d labels for %d images", ds.Name, len(ds.Labels), ds.N)
	}
	for i, l := range ds.Labels {
		if l < 0 || l >= k {
			return fmt.Errorf("classifier: data set %s: label %d of image %d is not a class 0..%d", ds.Name, l, i, k-1)
		}
	}
	return nil
}
