package ddpm

import (
	"context"
	"fmt"
	"github.com/ddpm-go/ddpm/diffusion"
	"math/rand/v2"
)

// BPDOptions control [Pipeline.BitsPerDim]. The zero value evaluates with
// 64 (image, t) pairs per network call and seed 0.
type BPDOptions struct {
	// Batch is the number of (image, t) pairs per network call (0: 64).
	Batch int
	// Seed seeds the draws of every x_t.
	Seed uint64
	// Progress is called after each network call with the pairs done out
	// of n·T.
	Progress func(done, total int)
}

// bpdSeedStream is the PCG stream of the bound's draws ("bpd"), as `ddpm
// eval bpd` has always used.
const bpdSeedStream = 0x627064

// BitsPerDim computes the variational bound on the negative
// log-likelihood (the paper's eq. 5, every term exact, with the discretized
// decoder) of each image of x0 (values on the 256-level grid of [−1, 1]),
// in bits per dimension. It costs T network evaluations per image; it stops
// between network calls once ctx is done, returning ctx.Err().
func (p *Pipeline) BitsPerDim(ctx context.Context, x0 *Tensor, o BPDOptions) (*diffusion.Bound, error) {
	if x0.C != p.Channels() || x0.H != p.Resolution() || x0.W != p.Resolution() {
		return nil, fmt.Errorf("%w: images of %d×%d×%d, the model takes %d×%d×%d", ErrInvalidOption, x0.C, x0.H, x0.W, p.Channels(), p.Resolution(), p.Resolution())
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	return p.Process.EvaluateBound(ctx, p.Net, x0.Data, x0.N, diffusion.BoundOptions{
		Batch: o.Batch, Rng: rand.New(rand.NewPCG(o.Seed, bpdSeedStream)), Progress: o.Progress,
	})
}

// DataTensor converts the first n images of a split ("train" or "test") of
// the data set spec (empty: the model's training data) to the model's
// input, for [Pipeline.BitsPerDim].
func (p *Pipeline) DataTensor(spec, split string, n int) (*Tensor, error) {
	ds, spec, err := p.LoadData(spec, split)
	if err != nil {
		return nil, err
	}
	if n <= 0 || n > ds.N {
		return nil, fmt.Errorf("%w: %d images asked of the %d of the %s %s split", ErrInvalidOption, n, ds.N, spec, split)
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	t := &Tensor{Data: make([]float32, n*p.dims()), N: n, C: p.Channels(), H: p.Resolution(), W: p.Resolution()}
	ds.ToFloat(t.Data, idx, p.Resolution())
	return t, nil
}
