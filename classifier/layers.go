package classifier

import (
	"fmt"
	"math"
)

// ReLUForward writes out = max(x, 0); out may alias in (the network runs
// it in place, since the backward only needs the output).
func ReLUForward(out, in []float32) {
	in = in[:len(out)]
	for i, v := range in {
		out[i] = max(v, 0)
	}
}

// ReLUBackward writes dIn = dOut where the layer's output was positive and
// 0 elsewhere. out is what ReLUForward wrote (out > 0 exactly where the
// input was > 0); dIn may alias dOut. At 0 the derivative is taken as 0,
// as PyTorch does.
func ReLUBackward(dIn, dOut, out []float32) {
	dOut, out = dOut[:len(dIn)], out[:len(dIn)]
	for i, y := range out {
		if y > 0 {
			dIn[i] = dOut[i]
		} else {
			dIn[i] = 0
		}
	}
}

// Softmax writes p = softmax(z) row by row for n rows of k logits, computed
// stably (the row maximum is subtracted first) in float64.
func Softmax(p, z []float32, n, k int) {
	for r := 0; r < n; r++ {
		zr, pr := z[r*k:(r+1)*k], p[r*k:(r+1)*k]
		mx := zr[0]
		for _, v := range zr {
			mx = max(mx, v)
		}
		var s float64
		for j, v := range zr {
			e := math.Exp(float64(v - mx))
			pr[j] = float32(e)
			s += e
		}
		for j := range pr {
			pr[j] = float32(float64(pr[j]) / s)
		}
	}
}

// SoftmaxCrossEntropy returns the mean over n rows of −log softmax(z)[y]
// (PyTorch's F.cross_entropy with reduction="mean") and writes its gradient
// with respect to the logits, (softmax(z) − onehot(y))/n, into dZ (which
// may be nil). Labels outside [0, k) are a programming error and panic.
func SoftmaxCrossEntropy(dZ, z []float32, labels []int, n, k int) float64 {
	var loss float64
	for r := 0; r < n; r++ {
		y := labels[r]
		if y < 0 || y >= k {
			panic(fmt.Sprintf("classifier: label %d of row %d outside [0, %d)", y, r, k))
		}
		zr := z[r*k : (r+1)*k]
		mx := zr[0]
		for _, v := range zr {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range zr {
			s += math.Exp(float64(v - mx))
		}
		logZ := float64(mx) + math.Log(s)
		loss += logZ - float64(zr[y])
		if dZ == nil {
			continue
		}
		dr := dZ[r*k : (r+1)*k]
		for j, v := range zr {
			g := math.Exp(float64(v) - logZ)
			if j == y {
				g--
			}
			dr[j] = float32(g / float64(n))
		}
	}
	return loss / float64(n)
}
