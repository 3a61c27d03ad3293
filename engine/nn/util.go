package nn

import (
	"math"
	"time"

	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// grow returns buf resized to n elements, reallocating only when its capacity
// is too small, so that a layer's scratch is allocated on the first call with
// a given size and reused afterwards. The contents are not preserved.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}

// grow64 is grow for float64 scratch.
func grow64(buf []float64, n int) []float64 {
	if cap(buf) < n {
		return make([]float64, n)
	}
	return buf[:n]
}

// elemGrain is the smallest elementwise loop worth splitting over the pool:
// below it, waking the workers costs more than the loop.
const elemGrain = 1 << 14

// forElems runs fn over [0, n) in parallel ranges, or serially when n is
// small.
func forElems(n int, fn func(lo, hi int)) {
	if n < elemGrain {
		fn(0, n)
		return
	}
	parallel.For(n, fn)
}

// fillRows sets each of the len(v) rows of y (row length hw) to the
// constant v[row]: how a conv or linear output starts before the GEMM
// accumulates into it, which puts the bias in without a second pass.
func fillRows(y, v []float32, hw int) {
	for r, b := range v {
		vec.Fill(y[r*hw:(r+1)*hw], b)
	}
}

// fillRows2 is fillRows with the constant v[row] + u[row].
func fillRows2(y, v, u []float32, hw int) {
	for r, b := range v {
		vec.Fill(y[r*hw:(r+1)*hw], b+u[r])
	}
}

// addRowSums adds the sum of each row of y (row length hw) to g[row]: the
// bias gradient.
func addRowSums(g, y []float32, hw int) {
	for r := range g {
		g[r] += float32(vec.Sum(y[r*hw : (r+1)*hw]))
	}
}

// addTo does dst[i] += src[i].
func addTo(dst, src []float32) { vec.Add(dst, dst, src) }

// numSlots is the number of slots forSlots(n, ...) can use: the size of a
// layer's per-slot scratch.
func numSlots(n int) int {
	w := parallel.Workers()
	if n < w {
		return 1
	}
	chunk := (n + w - 1) / w
	return (n + chunk - 1) / chunk
}

// forSlots splits the batch [0, n) into contiguous ranges, one per pool
// worker, and runs fn(slot, lo, hi) on them in parallel; slot numbers the
// range, so a layer can give each range its own scratch and gradient
// accumulators. The split depends only on n and the worker count, which
// keeps results bitwise reproducible. With fewer images than workers (or
// when the pool is already busy) everything runs in the caller as slot 0, so
// that the GEMMs inside can use the pool themselves.
func forSlots(n int, fn func(slot, lo, hi int)) {
	w := parallel.Workers()
	if n < w || parallel.Serial() {
		fn(0, 0, n)
		return
	}
	chunk := (n + w - 1) / w
	parallel.ForChunk(n, chunk, func(lo, hi int) {
		fn(lo/chunk, lo, hi)
	})
}

// balancer splits a forward pass's batch over two workers in proportion to
// the speed each half ran at in the layer's previous calls, instead of in
// halves: on a 2-vCPU machine the helper's half can run several per cent
// slower than the caller's, and the caller would wait out the difference
// (BenchmarkSampleStepMNISTFast). A forward's result
// does not depend on where the batch is cut (every image's output is
// computed by the same arithmetic in any GEMM column), so only the forward
// passes use it; the backward keeps the fixed split its per-slot gradient
// sums need for bitwise reproducible training.
type balancer struct {
	share float64 // fraction of the batch in range 0; 0 until the first call
}

// balancerMin and balancerMax bound the share: a stray slow call (a preempted
// vCPU) can move the cut only so far.
const balancerMin, balancerMax = 0.3, 0.7

// balancerMinBatch is the smallest batch the balancer cuts unevenly: in a
// smaller one a single image is over 6 % of the work, too coarse a step to
// balance with, and a range that keeps changing size keeps growing the
// slots' scratch (which is sized by the range while it is shorter than a
// layer's images-per-GEMM).
const balancerMinBatch = 16

// run calls fn(slot, lo, hi) on the two ranges, in parallel, and moves the
// cut toward equal times; with other than two workers, or a batch under
// balancerMinBatch, it is forSlots.
func (b *balancer) run(n int, fn func(slot, lo, hi int)) {
	if parallel.Workers() != 2 || n < balancerMinBatch || parallel.Serial() {
		forSlots(n, fn)
		return
	}
	share := b.share
	if share == 0 {
		share = 0.5
	}
	cut := min(n-1, max(1, int(math.Round(float64(n)*share))))
	var took [2]time.Duration
	parallel.ForChunk(2, 1, func(first, last int) {
		// One range per call, or both when the pool turned out busy.
		for slot := first; slot < last; slot++ {
			lo, hi := 0, cut
			if slot == 1 {
				lo, hi = cut, n
			}
			start := time.Now()
			fn(slot, lo, hi)
			took[slot] = time.Since(start)
		}
	})
	per0, per1 := took[0].Seconds()/float64(cut), took[1].Seconds()/float64(n-cut)
	if per0 > 0 && per1 > 0 {
		// Equal times need share·per0 = (1 − share)·per1.
		b.share = min(balancerMax, max(balancerMin, 0.8*share+0.2*per1/(per0+per1)))
	}
}
