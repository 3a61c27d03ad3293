package metrics

import (
	"fmt"
	"slices"

	"gonum.org/v1/gonum/mat"
)

// PRNeighbours is the neighbourhood size k of improved precision and
// recall, the value Kynkäänniemi et al. recommend.
const PRNeighbours = 3

// prBlock is how many query rows share one block of distances: 512 rows
// against 10 000 references is a 40 MB block, large enough for the matrix
// multiply to run at speed.
const prBlock = 512

// PrecisionRecall is improved precision and recall (Kynkäänniemi et al.
// 2019, "Improved Precision and Recall Metric for Assessing Generative
// Models"). Each set approximates its manifold by the union of balls
// around its points, each ball reaching the point's k-th nearest neighbour
// in the same set (the point itself not counted). Precision is the
// fraction of generated points inside the real manifold (are the samples
// realistic?), recall the fraction of real points inside the generated
// manifold (is the data's variety covered?). Distances are Euclidean, and
// a point on a ball's boundary counts as inside, as in the authors' code.
func PrecisionRecall(real, fake [][]float64, k int) (precision, recall float64, err error) {
	if k < 1 {
		return 0, 0, fmt.Errorf("precision/recall: k = %d, need k ≥ 1", k)
	}
	dr, err := check("precision/recall: real", real, k+1)
	if err != nil {
		return 0, 0, err
	}
	df, err := check("precision/recall: generated", fake, k+1)
	if err != nil {
		return 0, 0, err
	}
	if dr != df {
		return 0, 0, fmt.Errorf("precision/recall: features of dimension %d and %d", dr, df)
	}
	R, F := dense(real), dense(fake)
	rR, rF := kthRadii(R, k), kthRadii(F, k)
	return coverage(F, R, rR), coverage(R, F, rF), nil
}

// sqNorms returns the squared length of every row.
func sqNorms(x *mat.Dense) []float64 {
	n, _ := x.Dims()
	s := make([]float64, n)
	for i := range n {
		r := x.RawRowView(i)
		s[i] = mat.Dot(mat.NewVecDense(len(r), r), mat.NewVecDense(len(r), r))
	}
	return s
}

// eachBlock calls fn with the squared distances between rows [lo, hi) of q
// and every row of ref: dist.At(i−lo, j) = ‖q_i − ref_j‖², from
// ‖q‖² + ‖r‖² − 2 qᵀr (clamped at 0 against rounding).
func eachBlock(q, ref *mat.Dense, fn func(lo, hi int, dist *mat.Dense)) {
	nq, _ := q.Dims()
	nr, _ := ref.Dims()
	qn, rn := sqNorms(q), sqNorms(ref)
	var dist mat.Dense
	for lo := 0; lo < nq; lo += prBlock {
		hi := min(lo+prBlock, nq)
		dist.Reset()
		dist.Mul(q.Slice(lo, hi, 0, q.RawMatrix().Cols), ref.T())
		for i := range hi - lo {
			row := dist.RawRowView(i)
			for j := range nr {
				row[j] = max(qn[lo+i]+rn[j]-2*row[j], 0)
			}
		}
		fn(lo, hi, &dist)
	}
}

// kthRadii returns, for each row of x, the squared distance to its k-th
// nearest other row.
func kthRadii(x *mat.Dense, k int) []float64 {
	n, _ := x.Dims()
	radii := make([]float64, n)
	best := make([]float64, 0, k)
	eachBlock(x, x, func(lo, hi int, dist *mat.Dense) {
		for i := range hi - lo {
			best = best[:0]
			for j, d := range dist.RawRowView(i) {
				if j == lo+i {
					continue // the point itself
				}
				best = insertSmallest(best, d, k)
			}
			radii[lo+i] = best[k-1]
		}
	})
	return radii
}

// insertSmallest keeps best, sorted ascending, as the k smallest values
// seen so far.
func insertSmallest(best []float64, d float64, k int) []float64 {
	if len(best) == k {
		if d >= best[k-1] {
			return best
		}
		best = best[:k-1]
	}
	i, _ := slices.BinarySearch(best, d)
	return slices.Insert(best, i, d)
}

// coverage is the fraction of rows of q within radius of some row of ref:
// ‖q_i − ref_j‖² ≤ radii[j] for at least one j.
func coverage(q, ref *mat.Dense, radii []float64) float64 {
	nq, _ := q.Dims()
	inside := 0
	eachBlock(q, ref, func(lo, hi int, dist *mat.Dense) {
		for i := range hi - lo {
			for j, d := range dist.RawRowView(i) {
				if d <= radii[j] {
					inside++
					break
				}
			}
		}
	})
	return float64(inside) / float64(nq)
}
