package metrics

import "testing"

// BenchmarkCompare10k times every measure on 10 000 pairs of 128-d
// features, the size `ddpm eval quality --n 10000` scores.
func BenchmarkCompare10k(b *testing.B) {
	rng := newRNG(1)
	ref, gen := gaussRows(rng, 10000, 128, 0, 1), gaussRows(rng, 10000, 128, 0.1, 1)
	probs := make([][]float64, len(gen))
	for i := range probs {
		probs[i] = oneHot(10, i%10)
	}
	for b.Loop() {
		if _, err := Compare(ref, gen, probs, rng, nil); err != nil {
			b.Fatal(err)
		}
	}
}
