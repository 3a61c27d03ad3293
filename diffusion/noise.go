package diffusion

import (
	"fmt"
	"math"
)

// SampleStepNoise is [Diffusion.SampleStep] with the noise supplied by the
// caller: x ← μ_θ + exp(½ log σ²)·z for the n images in x at index i, z
// holding len(x) values (ignored at i = 0, where the mean is returned). It
// draws nothing. Giving every image of a batch the same z keeps the reverse
// process's noise fixed across the batch, as the interpolations of
// Figs. 8–9 need (one noise sequence for every λ). It returns x̂0, which
// lives in buf (nil allocates).
func (d *Diffusion) SampleStepNoise(m Model, x []float32, n, i int, z []float32, buf *StepBuffers) (xStart []float32) {
	if i > 0 && len(z) != len(x) {
		panic(fmt.Sprintf("diffusion: SampleStepNoise: %d noise values for %d", len(z), len(x)))
	}
	if buf == nil {
		buf = new(StepBuffers)
	}
	d.predict(m, x, n, i, buf)
	buf.mean = grow(buf.mean, len(x))
	buf.logVar = grow(buf.logVar, len(x))
	buf.xStart = grow(buf.xStart, len(x))
	d.PMeanVarianceInto(buf.mean, buf.logVar, buf.xStart, buf.out, x, buf.t)
	if i == 0 {
		copy(x, buf.mean)
		return buf.xStart
	}
	for k := range x {
		x[k] = float32(float64(buf.mean[k]) + math.Exp(0.5*float64(buf.logVar[k]))*float64(z[k]))
	}
	return buf.xStart
}
