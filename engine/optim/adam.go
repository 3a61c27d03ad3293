// Package optim holds the training-side updates that act on a model's flat
// parameter and gradient buffers: Adam, global gradient-norm clipping, a
// linear learning-rate warm-up and an exponential moving average of the
// weights. Everything works on one []float32 for the whole model (see
// nn.Bind), so an update is a single parallel loop instead of one call per
// tensor, and the optimiser state is itself a pair of flat buffers that a
// checkpoint can save and restore verbatim.
package optim

import (
	"fmt"
	"math"

	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// grain is the smallest range a parallel loop hands to one worker. Element
// updates cost a few nanoseconds, so splitting finer than this only adds
// synchronisation.
const grain = 1 << 14

// forRange splits [0, n) over the worker pool in ranges of at least grain
// elements.
func forRange(n int, fn func(lo, hi int)) {
	chunk := (n + 4*parallel.Workers() - 1) / (4 * parallel.Workers())
	parallel.ForChunk(n, max(chunk, grain), fn)
}

// Adam is torch.optim.Adam (amsgrad=False, maximize=False) over one flat
// buffer. The update follows PyTorch's single-tensor implementation step for
// step — m.lerp_(g, 1−β1), v = β2·v + (1−β2)·g², denominator
// sqrt(v)/sqrt(1−β2^t) + ε, step size lr/(1−β1^t) — so that a model trained
// here and one trained with the reference script see the same updates up to
// float32 rounding.
//
// M, V and StepCount are the whole optimiser state: a checkpoint saves them
// and restores them (with the same LR/betas) to resume bit-for-bit.
type Adam struct {
	LR          float64 // learning rate; may be changed between steps (warm-up)
	Beta1       float64 // default 0.9
	Beta2       float64 // default 0.999
	Eps         float64 // default 1e-8
	WeightDecay float64 // L2 penalty added to the gradient, as torch.optim.Adam (not AdamW); default 0

	M, V      []float32 // first and second moment estimates, one per parameter
	StepCount int       // number of updates taken so far (PyTorch's state["step"])
}

// NewAdam returns an Adam optimiser for n parameters with PyTorch's defaults
// (β1 0.9, β2 0.999, ε 1e-8, no weight decay) and zeroed state.
func NewAdam(n int, lr float64) *Adam {
	return &Adam{
		LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
		M: make([]float32, n), V: make([]float32, n),
	}
}

// Step applies one update to w using gradient g (len(g) == len(w) ==
// len(M)). g is not modified, even with weight decay.
func (a *Adam) Step(w, g []float32) {
	if len(w) != len(a.M) || len(g) != len(a.M) || len(a.V) != len(a.M) {
		panic(fmt.Sprintf("optim: Adam.Step: len(w)=%d len(g)=%d, state has %d/%d", len(w), len(g), len(a.M), len(a.V)))
	}
	a.StepCount++
	t := float64(a.StepCount)
	bc1 := 1 - math.Pow(a.Beta1, t)
	bc2 := 1 - math.Pow(a.Beta2, t)
	// PyTorch computes these scalars in Python (float64) and applies them
	// to float32 tensors; we do the same.
	stepSize := float32(a.LR / bc1)
	bc2Sqrt := float32(math.Sqrt(bc2))
	w1 := float32(1 - a.Beta1)
	b2 := float32(a.Beta2)
	w2 := float32(1 - a.Beta2)
	eps := float32(a.Eps)
	wd := float32(a.WeightDecay)
	m, v := a.M, a.V
	// Per element (vec.AdamStep, vectorised where the CPU allows):
	//	g' = g + wd·w;  m += w1·(g' − m);  v = v·b2 + w2·g'²
	//	w −= stepSize · m / (sqrt(v)/bc2Sqrt + eps)
	forRange(len(w), func(lo, hi int) {
		vec.AdamStep(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], wd, w1, b2, w2, bc2Sqrt, eps, stepSize)
	})
}

// Reset zeroes the moments and the step count (a fresh optimiser).
func (a *Adam) Reset() {
	clear(a.M)
	clear(a.V)
	a.StepCount = 0
}
