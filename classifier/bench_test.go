package classifier

import "testing"

// BenchmarkTrainStep times one forward + backward of a 64-image batch.
func BenchmarkTrainStep(b *testing.B) {
	rng := newRNG(1)
	m := New()
	m.Init(rng)
	n := 64
	x := randn(rng, n*Size*Size, 1)
	labels := make([]int, n)
	dz := make([]float32, n*NumClasses)
	for b.Loop() {
		_, z := m.Forward(x, n)
		SoftmaxCrossEntropy(dz, z, labels, n, NumClasses)
		clear(m.Grads())
		m.Backward(dz, x)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "img/s")
}

// BenchmarkApply times inference on 200 images.
func BenchmarkApply(b *testing.B) {
	rng := newRNG(1)
	m := New()
	m.Init(rng)
	n := 200
	x := randn(rng, n*Size*Size, 1)
	for b.Loop() {
		m.Forward(x, n)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "img/s")
}
