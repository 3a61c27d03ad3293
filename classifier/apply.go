package classifier

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ddpm-go/ddpm/data"
)

// applyBatch is how many images Apply runs through the network at once:
// enough to keep both GEMM operands busy, small enough that the 28×28
// activations (≈ 100 KB per image) stay a few tens of MB.
const applyBatch = 200

// Outputs is what the quality metrics need from a set of images: for each
// image its feature vector and its class probabilities p(y|x), in float64
// because the metrics accumulate sums and covariances over thousands of
// images.
type Outputs struct {
	Features [][]float64 // [n][FeatureDim], the fc1 activations (after ReLU)
	Probs    [][]float64 // [n][NumClasses], softmax of the logits
}

// Apply runs n images x [n, 1, 28, 28] through the network in batches.
// progress, when not nil, is called with the number of images done after
// each batch.
func (m *Net) Apply(x []float32, n int, progress func(done int)) (Outputs, error) {
	if len(x) != n*Channels*Size*Size {
		return Outputs{}, fmt.Errorf("classifier: got %d values for %d images of %d×%d×%d", len(x), n, Channels, Size, Size)
	}
	o := newOutputs(n)
	d := Channels * Size * Size
	for lo := 0; lo < n; lo += applyBatch {
		hi := min(lo+applyBatch, n)
		m.collect(o, lo, x[lo*d:hi*d], hi-lo)
		if progress != nil {
			progress(hi)
		}
	}
	return o, nil
}

// ApplyDataset is Apply on the images idx of ds (all of them when idx is
// nil), converted batch by batch with ds.ToFloat so that the whole set is
// never held as float32.
func (m *Net) ApplyDataset(ds *data.Dataset, idx []int, progress func(done int)) (Outputs, error) {
	if err := checkDataset(ds, false); err != nil {
		return Outputs{}, err
	}
	if idx == nil {
		idx = make([]int, ds.N)
		for i := range idx {
			idx[i] = i
		}
	}
	for _, i := range idx {
		if i < 0 || i >= ds.N {
			return Outputs{}, fmt.Errorf("classifier: image index %d outside data set %s of %d images", i, ds.Name, ds.N)
		}
	}
	o := newOutputs(len(idx))
	x := make([]float32, applyBatch*Size*Size)
	for lo := 0; lo < len(idx); lo += applyBatch {
		hi := min(lo+applyBatch, len(idx))
		xb := x[:(hi-lo)*Size*Size]
		ds.ToFloat(xb, idx[lo:hi], 0)
		m.collect(o, lo, xb, hi-lo)
		if progress != nil {
			progress(hi)
		}
	}
	return o, nil
}

func newOutputs(n int) Outputs {
	o := Outputs{Features: make([][]float64, n), Probs: make([][]float64, n)}
	feat, prob := make([]float64, n*FeatureDim), make([]float64, n*NumClasses)
	for i := range n {
		o.Features[i] = feat[i*FeatureDim : (i+1)*FeatureDim : (i+1)*FeatureDim]
		o.Probs[i] = prob[i*NumClasses : (i+1)*NumClasses : (i+1)*NumClasses]
	}
	return o
}

// collect runs one batch and stores its rows from row lo on.
func (m *Net) collect(o Outputs, lo int, x []float32, n int) {
	feat, logits := m.Forward(x, n)
	p := make([]float32, n*NumClasses)
	Softmax(p, logits, n, NumClasses)
	for i := 0; i < n; i++ {
		for j, v := range feat[i*FeatureDim : (i+1)*FeatureDim] {
			o.Features[lo+i][j] = float64(v)
		}
		for j, v := range p[i*NumClasses : (i+1)*NumClasses] {
			o.Probs[lo+i][j] = float64(v)
		}
	}
}

// Predictions returns the most probable class of each row of probs.
func Predictions(probs [][]float64) []int {
	pred := make([]int, len(probs))
	for i, p := range probs {
		best := 0
		for j, v := range p {
			if v > p[best] {
				best = j
			}
		}
		pred[i] = best
	}
	return pred
}

// LeastSure returns the indices of the k rows of probs whose most probable
// class is least probable, least sure first (ties in index order): the
// images the classifier doubts, which hold a generator's Inception Score
// down. k is capped at len(probs).
func LeastSure(probs [][]float64, k int) []int {
	top := make([]float64, len(probs))
	idx := make([]int, len(probs))
	for i, p := range probs {
		top[i], idx[i] = slices.Max(p), i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(top[a], top[b]) })
	return idx[:min(max(k, 0), len(idx))]
}

// Accuracy is the fraction of rows of probs whose most probable class is
// the label.
func Accuracy(probs [][]float64, labels []int) (float64, error) {
	if len(probs) != len(labels) || len(probs) == 0 {
		return 0, fmt.Errorf("classifier: accuracy of %d predictions against %d labels", len(probs), len(labels))
	}
	right := 0
	for i, p := range Predictions(probs) {
		if p == labels[i] {
			right++
		}
	}
	return float64(right) / float64(len(labels)), nil
}
