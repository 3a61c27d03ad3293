package nn

import "math"

// TimestepEmbedding writes the sinusoidal embedding of the integer
// timesteps t into out [len(t), dim]: the first half holds sin(t·f_i), the
// second cos(t·f_i), with f_i = exp(−ln(10000)·i/(half−1)), half = dim/2 —
// the reference's timestep_embedding. It is computed in float64 and rounded
// once; dim must be even and at least 4.
func TimestepEmbedding(out []float32, t []int, dim int) {
	TimestepEmbeddingShift(out, t, dim, 1, false)
}

// TimestepEmbeddingShift is diffusers' get_timestep_embedding: f_i =
// exp(−ln(10000)·i/(half−shift)), and with flip the halves swapped (cos
// first). TimestepEmbedding is shift 1, no flip; diffusers' own default is
// shift 0 with flip. dim must be even and half−shift positive.
func TimestepEmbeddingShift(out []float32, t []int, dim int, shift float64, flip bool) {
	half := dim / 2
	for b, tb := range t {
		row := out[b*dim : (b+1)*dim]
		sinAt, cosAt := 0, half
		if flip {
			sinAt, cosAt = half, 0
		}
		for i := 0; i < half; i++ {
			f := math.Exp(-math.Log(10000) * float64(i) / (float64(half) - shift))
			s, c := math.Sincos(float64(tb) * f)
			row[sinAt+i], row[cosAt+i] = float32(s), float32(c)
		}
	}
}
