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
	Features [][]float64 // [n][m.FeatureDim()], the fc1 activations (after ReLU)
	Probs    [][]float64 // [n][m.NumClasses()], softmax of the logits
}

// Apply runs n images x [n, C, S, S] (the architecture's input, see
// Net.Prepare) through the network in batches.
// progress, when not nil, is called with the number of images done after
// each batch.
func (m *Net) Apply(x []float32, n int, progress func(done int)) (Outputs, error) {
	a := m.arch
	if len(x) != n*m.inputLen() {
		return Outputs{}, fmt.Errorf("classifier: got %d values for %d images of %d×%d×%d", len(x), n, a.Channels, a.Size, a.Size)
	}
	o := m.newOutputs(n)
	d := m.inputLen()
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
	if err := m.checkDataset(ds, false); err != nil {
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
	o := m.newOutputs(len(idx))
	x := make([]float32, applyBatch*m.inputLen())
	for lo := 0; lo < len(idx); lo += applyBatch {
		hi := min(lo+applyBatch, len(idx))
		xb := x[:(hi-lo)*m.inputLen()]
		ds.ToFloat(xb, idx[lo:hi], 0)
		m.collect(o, lo, xb, hi-lo)
		if progress != nil {
			progress(hi)
		}
	}
	return o, nil
}

func (m *Net) newOutputs(n int) Outputs {
	o := Outputs{Features: make([][]float64, n), Probs: make([][]float64, n)}
	fd, k := m.FeatureDim(), m.classes
	feat, prob := make([]float64, n*fd), make([]float64, n*k)
	for i := range n {
		o.Features[i] = feat[i*fd : (i+1)*fd : (i+1)*fd]
		o.Probs[i] = prob[i*k : (i+1)*k : (i+1)*k]
	}
	return o
}

// collect runs one batch and stores its rows from row lo on.
func (m *Net) collect(o Outputs, lo int, x []float32, n int) {
	feat, logits := m.Forward(x, n)
	fd, k := m.FeatureDim(), m.classes
	p := make([]float32, n*k)
	Softmax(p, logits, n, k)
	for i := 0; i < n; i++ {
		for j, v := range feat[i*fd : (i+1)*fd] {
			o.Features[lo+i][j] = float64(v)
		}
		for j, v := range p[i*k : (i+1)*k] {
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
