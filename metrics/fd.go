// Package metrics holds the sample-quality statistics computed on the
// features (and class probabilities) of a feature network: the Fréchet
// distance between fitted Gaussians, the kernel distance KID, the
// Inception Score and improved precision/recall. It is pure statistics over
// rows of float64 features: which network produced them is the caller's
// business (package classifier for this project).
//
// Names matter here. Computed on the features of a small MNIST classifier
// these are not the FID, KID and IS of the literature, which use an
// ImageNet Inception-v3; the numbers are only comparable with each other
// and with the real-data floor computed the same way. Callers should label
// them "FD (LeNet features)" and so on, never "FID".
//
// Matrix square roots and eigen-decompositions use gonum.org/v1/gonum/mat,
// sums of products use its (parallel, blocked) matrix multiply.
package metrics

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// Gaussian is a multivariate normal fitted to a feature set.
type Gaussian struct {
	Mean []float64
	Cov  *mat.SymDense
}

// check reports whether x is a usable feature set: at least minRows rows,
// all of the same non-zero length, all values finite. It returns the
// dimension.
func check(name string, x [][]float64, minRows int) (int, error) {
	if len(x) < minRows {
		return 0, fmt.Errorf("%s: %d rows, need at least %d", name, len(x), minRows)
	}
	d := len(x[0])
	if d == 0 {
		return 0, fmt.Errorf("%s: rows are empty", name)
	}
	for i, r := range x {
		if len(r) != d {
			return 0, fmt.Errorf("%s: row %d has %d values, row 0 has %d", name, i, len(r), d)
		}
		for j, v := range r {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("%s: row %d value %d is %g", name, i, j, v)
			}
		}
	}
	return d, nil
}

// dense copies rows into an n×d matrix.
func dense(x [][]float64) *mat.Dense {
	d := len(x[0])
	m := mat.NewDense(len(x), d, nil)
	for i, r := range x {
		m.SetRow(i, r)
	}
	return m
}

// FitGaussian returns the sample mean and the unbiased (n−1) sample
// covariance of the rows of x, as numpy.mean and numpy.cov(rowvar=False)
// compute them in the FID reference code.
func FitGaussian(x [][]float64) (*Gaussian, error) {
	if _, err := check("fit Gaussian", x, 2); err != nil {
		return nil, err
	}
	X := dense(x)
	_, d := X.Dims()
	g := &Gaussian{Mean: make([]float64, d), Cov: mat.NewSymDense(d, nil)}
	for j := range d {
		g.Mean[j] = stat.Mean(mat.Col(nil, j, X), nil)
	}
	stat.CovarianceMatrix(g.Cov, X, nil)
	return g, nil
}

// FrechetDistance is the squared Fréchet (2-Wasserstein) distance between
// two Gaussians,
//
//	‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a^½ Σ_b Σ_a^½)^½,
//
// the quantity FID reports. The FID code computes tr √(Σ_a Σ_b) with a
// general (complex) matrix square root; Σ_a Σ_b is similar to the symmetric
// positive semi-definite Σ_a^½ Σ_b Σ_a^½, so the trace is the same, and
// here it comes from two symmetric eigen-decompositions, which stay real
// and stable even when a covariance is singular (dead ReLU features, fewer
// samples than dimensions). Eigenvalues that rounding pushes slightly below
// zero are treated as zero, and so is a result a rounding error below zero.
func FrechetDistance(a, b *Gaussian) (float64, error) {
	d := len(a.Mean)
	if d == 0 || len(b.Mean) != d || a.Cov.SymmetricDim() != d || b.Cov.SymmetricDim() != d {
		return 0, fmt.Errorf("Fréchet distance: Gaussians of dimensions %d (cov %d) and %d (cov %d)",
			len(a.Mean), a.Cov.SymmetricDim(), len(b.Mean), b.Cov.SymmetricDim())
	}
	var dm float64
	for i := range a.Mean {
		dm += (a.Mean[i] - b.Mean[i]) * (a.Mean[i] - b.Mean[i])
	}
	sqrtA, err := sqrtPSD(a.Cov)
	if err != nil {
		return 0, err
	}
	var m mat.Dense
	m.Mul(sqrtA, b.Cov)
	m.Mul(&m, sqrtA)
	sym := mat.NewSymDense(d, nil)
	for i := range d {
		for j := i; j < d; j++ {
			sym.SetSym(i, j, (m.At(i, j)+m.At(j, i))/2)
		}
	}
	vals, err := eigenvalues(sym)
	if err != nil {
		return 0, err
	}
	var trSqrt float64
	for _, v := range vals {
		trSqrt += math.Sqrt(max(v, 0))
	}
	fd := dm + mat.Trace(a.Cov) + mat.Trace(b.Cov) - 2*trSqrt
	return max(fd, 0), nil
}

// FD is FrechetDistance between Gaussians fitted to the feature sets x and y.
func FD(x, y [][]float64) (float64, error) {
	a, err := FitGaussian(x)
	if err != nil {
		return 0, err
	}
	b, err := FitGaussian(y)
	if err != nil {
		return 0, err
	}
	return FrechetDistance(a, b)
}

var errEigen = errors.New("Fréchet distance: eigen-decomposition did not converge")

func eigenvalues(s *mat.SymDense) ([]float64, error) {
	var e mat.EigenSym
	if !e.Factorize(s, false) {
		return nil, errEigen
	}
	return e.Values(nil), nil
}

// sqrtPSD returns the symmetric square root V·diag(√λ)·Vᵀ of a symmetric
// positive semi-definite matrix (negative rounding-noise eigenvalues → 0).
func sqrtPSD(s *mat.SymDense) (*mat.Dense, error) {
	var e mat.EigenSym
	if !e.Factorize(s, true) {
		return nil, errEigen
	}
	var v mat.Dense
	e.VectorsTo(&v)
	vals := e.Values(nil)
	n := len(vals)
	vs := mat.NewDense(n, n, nil)
	for j, l := range vals {
		r := math.Sqrt(max(l, 0))
		for i := range n {
			vs.Set(i, j, v.At(i, j)*r)
		}
	}
	var out mat.Dense
	out.Mul(vs, v.T())
	return &out, nil
}
