package nn

import "math/rand/v2"

// Dropout is PyTorch's nn.Dropout(p) (inverted dropout): in training each
// element is zeroed with probability p and the survivors are scaled by
// 1/(1−p), so evaluation needs no rescaling. Forward stores the per-element
// factor (0 or 1/(1−p)) so that Backward applies the same mask.
// The mask is drawn serially from the caller's rng, which keeps a seeded run
// reproducible regardless of the worker count.
type Dropout struct {
	P float32

	mask     []float32 // 0 or 1/(1−P) per element, from the latest Forward
	identity bool      // the latest Forward was the identity
}

// NewDropout makes a dropout layer with drop probability p.
func NewDropout(p float32) *Dropout { return &Dropout{P: p} }

// Forward writes out = in·mask; out may alias in. With p == 0 or !train it
// is the identity and draws nothing from rng (which may then be nil).
func (l *Dropout) Forward(out, in []float32, rng *rand.Rand, train bool) {
	l.identity = l.P == 0 || !train
	if l.identity {
		copy(out, in)
		return
	}
	scale := 1 / (1 - l.P)
	l.mask = grow(l.mask, len(in))
	for i, v := range in {
		m := float32(0)
		if rng.Float32() >= l.P {
			m = scale
		}
		l.mask[i] = m
		out[i] = v * m
	}
}

// Backward writes dIn = dOut·mask with the latest Forward's mask; dIn may
// alias dOut.
func (l *Dropout) Backward(dIn, dOut []float32) {
	if l.identity {
		copy(dIn, dOut)
		return
	}
	m := l.mask[:len(dIn)]
	for i, d := range dOut[:len(dIn)] {
		dIn[i] = d * m[i]
	}
}
