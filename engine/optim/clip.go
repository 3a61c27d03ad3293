package optim

import (
	"math"

	"github.com/ddpm-go/ddpm/engine/parallel"
)

// GradNorm returns the global L2 norm of g. The sum of squares is
// accumulated in float64 over fixed ranges and the partial sums are added in
// range order, so the result does not depend on how many workers ran or in
// which order they finished (reproducible training logs).
func GradNorm(g []float32) float64 {
	n := len(g)
	if n == 0 {
		return 0
	}
	nch := (n + grain - 1) / grain
	partial := make([]float64, nch)
	parallel.ForChunk(nch, 1, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			s := 0.0
			for _, x := range g[c*grain : min((c+1)*grain, n)] {
				s += float64(x) * float64(x)
			}
			partial[c] = s
		}
	})
	s := 0.0
	for _, p := range partial {
		s += p
	}
	return math.Sqrt(s)
}

// ClipGradNorm scales g in place so that its global L2 norm is at most
// maxNorm, like torch.nn.utils.clip_grad_norm_: the scale is
// maxNorm/(norm+1e-6) clamped to 1, so a gradient already inside the ball is
// left untouched. It returns the norm before clipping (what PyTorch returns and
// what a training log wants). A non-finite norm is returned as is and g is
// left alone, so the caller can detect the blow-up and skip the step instead of
// writing NaNs into every parameter.
func ClipGradNorm(g []float32, maxNorm float64) (norm float64) {
	norm = GradNorm(g)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c := float32(coef)
	forRange(len(g), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			g[i] *= c
		}
	})
	return norm
}

// WarmupLR is a linear learning-rate warm-up: base·min(1, step/warmup), where
// step is the 1-based number of the update about to be taken. The official
// DDPM code warms up over 5000 steps; counting from 1 (not 0) means the first
// update is not wasted with a zero learning rate. warmup <= 0 disables it.
func WarmupLR(base float64, step, warmup int) float64 {
	if warmup <= 0 || step >= warmup {
		return base
	}
	if step < 0 {
		step = 0
	}
	return base * float64(step) / float64(warmup)
}

// ScheduledLR is the learning rate of the 1-based update step of a run of
// total updates: the linear warm-up of WarmupLR, then base held ("constant",
// the paper's choice), or decayed to zero at the last step along a half
// cosine ("cosine") or a line ("linear", what improved-diffusion's
// lr_anneal_steps does). A decay to zero lets the last weights settle
// instead of hovering at the noise level of a fixed rate, which matters most
// for short runs.
func ScheduledLR(base float64, step, warmup, total int, decay string) float64 {
	lr := WarmupLR(base, step, warmup)
	if decay == "" || decay == "constant" || step <= warmup || total <= warmup {
		return lr
	}
	f := float64(step-warmup) / float64(total-warmup) // (0, 1]
	if f > 1 {
		f = 1
	}
	switch decay {
	case "cosine":
		return base * 0.5 * (1 + math.Cos(math.Pi*f))
	case "linear":
		return base * (1 - f)
	}
	return lr
}

// LRDecays returns the names of the decays ScheduledLR knows, a fresh slice
// each call.
func LRDecays() []string { return []string{"constant", "cosine", "linear"} }

// EMA keeps an exponential moving average of the weights, the copy DDPM
// samples with (decay 0.9999 in the paper): W = decay·W + (1−decay)·w.
// W is exported so a checkpoint can store and restore it. The update is
// computed as W += (1−decay)·(w−W), the same value written so that float32
// does not lose the small increment against a decay as close to 1 as 0.9999.
type EMA struct {
	Decay float64
	W     []float32
}

// NewEMA starts the average at a copy of w.
func NewEMA(w []float32, decay float64) *EMA {
	return &EMA{Decay: decay, W: append([]float32(nil), w...)}
}

// Update folds the current weights w into the average.
func (e *EMA) Update(w []float32) {
	if len(w) != len(e.W) {
		panic("optim: EMA.Update: length mismatch")
	}
	od := float32(1 - e.Decay)
	ew := e.W
	forRange(len(w), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			ew[i] += od * (w[i] - ew[i])
		}
	})
}
