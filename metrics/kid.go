package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// KIDSubsetSize is the subset size of the KID paper (Bińkowski et al.
// 2018, "Demystifying MMD GANs"), used when enough samples are available.
const KIDSubsetSize = 1000

// KIDMinSubsets is the fewest subsets KID averages over, so that its
// standard error rests on at least this many independent estimates.
const KIDMinSubsets = 10

// KID is the kernel distance between feature sets x and y: the squared
// maximum mean discrepancy with the cubic polynomial kernel
// k(a, b) = (aᵀb/d + 1)³, estimated without bias and averaged over
// subsets, as in the KID paper. It returns the mean over subsets and its
// standard error.
//
// Both sets are shuffled with rng and cut into S disjoint subsets of m rows
// each, where m = min(subsetSize, n/KIDMinSubsets) and n is the smaller
// set's size (subsetSize ≤ 0 means KIDSubsetSize): 10 000 samples give the
// paper's ten subsets of 1000, 1000 samples ten subsets of 100. The paper's
// code draws its subsets independently, so they overlap and the spread of
// their estimates says little about the uncertainty of the mean; disjoint
// subsets give S independent unbiased estimates, whose mean is unbiased
// and whose standard error, std/√S, is honest. KID can be negative: it is
// an unbiased estimate of a quantity that is zero for equal distributions.
func KID(x, y [][]float64, subsetSize int, rng *rand.Rand) (kid, stderr float64, err error) {
	dx, err := check("KID", x, 2*KIDMinSubsets)
	if err != nil {
		return 0, 0, err
	}
	dy, err := check("KID", y, 2*KIDMinSubsets)
	if err != nil {
		return 0, 0, err
	}
	if dx != dy {
		return 0, 0, fmt.Errorf("KID: features of dimension %d and %d", dx, dy)
	}
	if subsetSize <= 0 {
		subsetSize = KIDSubsetSize
	}
	if subsetSize < 2 {
		return 0, 0, fmt.Errorf("KID: subset size %d, need at least 2", subsetSize)
	}
	n := min(len(x), len(y))
	m := min(subsetSize, n/KIDMinSubsets)
	s := n / m
	px, py := rng.Perm(len(x)), rng.Perm(len(y))
	est := make([]float64, s)
	for k := range s {
		est[k] = mmd2Unbiased(rows(x, px[k*m:(k+1)*m]), rows(y, py[k*m:(k+1)*m]))
	}
	var mean float64
	for _, v := range est {
		mean += v
	}
	mean /= float64(s)
	var ss float64
	for _, v := range est {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss/float64(s-1)) / math.Sqrt(float64(s)), nil
}

// rows returns the matrix of the rows idx of x.
func rows(x [][]float64, idx []int) *mat.Dense {
	d := len(x[0])
	m := mat.NewDense(len(idx), d, nil)
	for i, k := range idx {
		m.SetRow(i, x[k])
	}
	return m
}

// polyKernel returns the matrix k(a_i, b_j) = (a_iᵀb_j/d + 1)³.
func polyKernel(a, b *mat.Dense) *mat.Dense {
	_, d := a.Dims()
	var k mat.Dense
	k.Mul(a, b.T())
	k.Apply(func(_, _ int, v float64) float64 {
		t := v/float64(d) + 1
		return t * t * t
	}, &k)
	return &k
}

// mmd2Unbiased is the unbiased estimator of MMD² for equally many samples
// x and y (m rows each):
//
//	Σ_{i≠j} k(x_i,x_j)/(m(m−1)) + Σ_{i≠j} k(y_i,y_j)/(m(m−1)) − 2 Σ_{i,j} k(x_i,y_j)/m²
//
// which is what the KID paper's polynomial_mmd computes.
func mmd2Unbiased(x, y *mat.Dense) float64 {
	m, _ := x.Dims()
	offDiag := func(k *mat.Dense) float64 {
		s := mat.Sum(k)
		for i := range m {
			s -= k.At(i, i)
		}
		return s
	}
	kxx, kyy, kxy := polyKernel(x, x), polyKernel(y, y), polyKernel(x, y)
	fm := float64(m)
	return offDiag(kxx)/(fm*(fm-1)) + offDiag(kyy)/(fm*(fm-1)) - 2*mat.Sum(kxy)/(fm*fm)
}
