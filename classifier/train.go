package classifier

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/engine/optim"
)

// TrainOptions are the settings of Train.
type TrainOptions struct {
	Epochs int     // passes over the training set
	Batch  int     // images per Adam step
	LR     float64 // peak learning rate, decayed to 0 along a half cosine
	Seed   uint64  // seeds the initialisation and the shuffling
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
	}
	return nil
}

// Progress reports a finished step of Train: step of total, and the
// step's mean cross-entropy.
type Progress func(step, total int, loss float64)

// Train fits a fresh network to the labelled 28×28 images of ds with Adam
// on the softmax cross-entropy. The learning rate follows a half cosine
// from opt.LR down to 0, which settles the weights at the end of a short
// run without a tuned step schedule. Every random draw (initialisation,
// per-epoch shuffles) comes from one PCG generator seeded with opt.Seed,
// and the engine's reductions are ordered, so the same options, data and
// worker count give bit-identical weights. Cancelling ctx stops between
// steps with ctx's error.
func Train(ctx context.Context, ds *data.Dataset, opt TrainOptions, progress Progress) (*Net, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("classifier: train: %w", err)
	}
	if err := checkDataset(ds, true); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x636c6173)) // "clas"
	m := New()
	m.Init(rng)
	adam := optim.NewAdam(len(m.w), opt.LR)

	perm := make([]int, ds.N)
	for i := range perm {
		perm[i] = i
	}
	stepsPerEpoch := (ds.N + opt.Batch - 1) / opt.Batch
	total := opt.Epochs * stepsPerEpoch
	x := make([]float32, opt.Batch*Size*Size)
	labels := make([]int, opt.Batch)
	dLogits := make([]float32, opt.Batch*NumClasses)
	step := 0
	for epoch := 0; epoch < opt.Epochs; epoch++ {
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for lo := 0; lo < ds.N; lo += opt.Batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			idx := perm[lo:min(lo+opt.Batch, ds.N)]
			n := len(idx)
			xb := x[:n*Size*Size]
			ds.ToFloat(xb, idx, 0)
			for i, k := range idx {
				labels[i] = ds.Labels[k]
			}
			_, logits := m.Forward(xb, n)
			loss := SoftmaxCrossEntropy(dLogits[:n*NumClasses], logits, labels[:n], n, NumClasses)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return nil, fmt.Errorf("classifier: train: loss is %g at step %d (lower the learning rate)", loss, step+1)
			}
			clear(m.g)
			m.Backward(dLogits[:n*NumClasses], xb)
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
