package classifier

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/engine/optim"
)

// TrainOptions are the settings of Train.
type TrainOptions struct {
	Epochs int     // passes over the training set
	Batch  int     // images per Adam step
	LR     float64 // peak learning rate, decayed to 0 along a half cosine
	Seed   uint64  // seeds the initialisation and the shuffling

	// Augmentation and regularisation, all off by default (the LeNets were
	// trained without them). They draw from the same generator, so a run
	// stays deterministic.
	Flip    bool    // mirror each training image left-right with probability ½
	Shift   int     // translate each training image by up to ±Shift pixels in x and y (edges repeated)
	Dropout float64 // drop this share of the features before fc2 in training
}

// DefaultTrainOptions are the settings the shipped classifiers were
// trained with (the epochs differ per data set, see weights/README.md).
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{Epochs: 3, Batch: 64, LR: 1e-3, Seed: 1}
}

// Validate reports the first out-of-range option.
func (o TrainOptions) Validate() error {
	switch {
	case o.Epochs < 1:
		return fmt.Errorf("epochs must be positive, got %d", o.Epochs)
	case o.Batch < 1:
		return fmt.Errorf("batch must be positive, got %d", o.Batch)
	case !(o.LR > 0) || math.IsInf(o.LR, 0):
		return fmt.Errorf("learning rate must be positive, got %g", o.LR)
	case o.Shift < 0 || o.Shift > 8:
		return fmt.Errorf("shift must be 0..8 pixels, got %d", o.Shift)
	case !(o.Dropout >= 0 && o.Dropout < 1):
		return fmt.Errorf("dropout must be in [0, 1), got %g", o.Dropout)
	}
	return nil
}

// Progress reports a finished step of Train: step of total, and the
// step's mean cross-entropy.
type Progress func(step, total int, loss float64)

// Train fits a fresh network to the labelled images of ds with Adam
// on the softmax cross-entropy. The learning rate follows a half cosine
// from opt.LR down to 0, which settles the weights at the end of a short
// run without a tuned step schedule. Every random draw (initialisation,
// per-epoch shuffles) comes from one PCG generator seeded with opt.Seed,
// and the engine's reductions are ordered, so the same options, data and
// worker count give bit-identical weights. Cancelling ctx stops between
// steps with ctx's error.
//
// The architecture follows the images (ArchFor: the LeNet for 1×28×28,
// cnn32 for 3×32×32); the LeNet has 10 classes, cnn32 as many as the
// largest label + 1.
func Train(ctx context.Context, ds *data.Dataset, opt TrainOptions, progress Progress) (*Net, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("classifier: train: %w", err)
	}
	arch, err := ArchFor(ds.C, ds.H)
	if err != nil || ds.W != ds.H {
		return nil, fmt.Errorf("classifier: data set %s has %d×%d×%d images, want 1×28×28 or 3×32×32", ds.Name, ds.C, ds.H, ds.W)
	}
	classes := arch.Classes
	if classes == 0 {
		if err := checkLabels(ds, math.MaxInt); err != nil {
			return nil, err
		}
		classes = max(slices.Max(ds.Labels)+1, 2)
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x636c6173)) // "clas"
	m, err := NewArch(arch.Name, classes)
	if err != nil {
		return nil, err
	}
	if err := m.checkDataset(ds, true); err != nil {
		return nil, err
	}
	m.Init(rng)
	m.drop.P = float32(opt.Dropout)
	D := m.inputLen()
	k := m.classes
	adam := optim.NewAdam(len(m.w), opt.LR)

	perm := make([]int, ds.N)
	for i := range perm {
		perm[i] = i
	}
	stepsPerEpoch := (ds.N + opt.Batch - 1) / opt.Batch
	total := opt.Epochs * stepsPerEpoch
	x := make([]float32, opt.Batch*D)
	labels := make([]int, opt.Batch)
	dLogits := make([]float32, opt.Batch*k)
	var aug []float32
	step := 0
	for epoch := 0; epoch < opt.Epochs; epoch++ {
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for lo := 0; lo < ds.N; lo += opt.Batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			idx := perm[lo:min(lo+opt.Batch, ds.N)]
			n := len(idx)
			xb := x[:n*D]
			ds.ToFloat(xb, idx, 0)
			for i, j := range idx {
				labels[i] = ds.Labels[j]
			}
			if opt.Flip || opt.Shift > 0 {
				aug = grow(aug, D)
				for i := range n {
					augment(xb[i*D:(i+1)*D], aug, ds.C, ds.H, opt, rng)
				}
			}
			var logits []float32
			if opt.Dropout > 0 {
				_, logits = m.forward(xb, n, rng)
			} else {
				_, logits = m.Forward(xb, n)
			}
			loss := SoftmaxCrossEntropy(dLogits[:n*k], logits, labels[:n], n, k)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("classifier: train: loss is %g at step %d (lower the learning rate)", loss, step+1)
			}
			clear(m.g)
			m.Backward(dLogits[:n*k], xb)
			adam.LR = opt.LR * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(total)))
			adam.Step(m.w, m.g)
			step++
			if progress != nil {
				progress(step, total, loss)
			}
		}
	}
	return m, nil
}

// augment mirrors (with probability ½ when opt.Flip) and shifts (by up to
// ±opt.Shift pixels in x and y, repeating the edge pixels into the gap) one
// c×s×s image in place; tmp is scratch of the image's size. The draws come
// from rng in a fixed order: flip, then dx, then dy.
func augment(img, tmp []float32, c, s int, opt TrainOptions, rng *rand.Rand) {
	flip := opt.Flip && rng.IntN(2) == 1
	dx, dy := 0, 0
	if opt.Shift > 0 {
		dx, dy = rng.IntN(2*opt.Shift+1)-opt.Shift, rng.IntN(2*opt.Shift+1)-opt.Shift
	}
	if !flip && dx == 0 && dy == 0 {
		return
	}
	copy(tmp, img)
	for ch := range c {
		src, dst := tmp[ch*s*s:(ch+1)*s*s], img[ch*s*s:(ch+1)*s*s]
		for y := range s {
			sy := min(max(y-dy, 0), s-1)
			for x := range s {
				sx := min(max(x-dx, 0), s-1)
				if flip {
					sx = s - 1 - sx
				}
				dst[y*s+x] = src[sy*s+sx]
			}
		}
	}
}
