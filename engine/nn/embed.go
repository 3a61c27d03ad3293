package nn

import "math"

// TimestepEmbedding writes the sinusoidal embedding of the integer
// timesteps t into out [len(t), dim]: the first half holds sin(t·f_i), the
// second cos(t·f_i), with f_i = exp(−ln(10000)·i/(half−1)), half = dim/2 —
// the reference's timestep_embedding. It is computed in float64 and rounded
// once; dim must be even and at least 4.
func TimestepEmbedding(out []float32, t []int, dim int) {
	half := dim / 2
	for b, tb := range t {
		row := out[b*dim : (b+1)*dim]
		for i := 0; i < half; i++ {
			f := math.Exp(-math.Log(10000) * float64(i) / float64(half-1))
			s, c := math.Sincos(float64(tb) * f)
			row[i], row[half+i] = float32(s), float32(c)
		}
	}
}
