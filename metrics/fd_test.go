package metrics

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1234)) }

// gaussRows draws n rows of dimension d from N(shift, scale²·I).
func gaussRows(rng *rand.Rand, n, d int, shift, scale float64) [][]float64 {
	x := make([][]float64, n)
	for i := range x {
		x[i] = make([]float64, d)
		for j := range x[i] {
			x[i][j] = shift + scale*rng.NormFloat64()
		}
	}
	return x
}

// randomRotation returns a d×d orthogonal matrix (QR of a Gaussian matrix).
func randomRotation(rng *rand.Rand, d int) *mat.Dense {
	a := mat.NewDense(d, d, nil)
	for i := range d {
		for j := range d {
			a.Set(i, j, rng.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(a)
	var q mat.Dense
	qr.QTo(&q)
	return &q
}

// rotated returns Q·diag(v)·Qᵀ.
func rotated(q *mat.Dense, v []float64) *mat.SymDense {
	d := len(v)
	var m mat.Dense
	m.Mul(q, mat.NewDiagDense(d, v))
	m.Mul(&m, q.T())
	s := mat.NewSymDense(d, nil)
	for i := range d {
		for j := i; j < d; j++ {
			s.SetSym(i, j, (m.At(i, j)+m.At(j, i))/2)
		}
	}
	return s
}

func TestFDClosedForm(t *testing.T) {
	rng := newRNG(1)
	d := 6
	mu1, mu2 := make([]float64, d), make([]float64, d)
	v1, v2 := make([]float64, d), make([]float64, d)
	for i := range d {
		mu1[i], mu2[i] = rng.NormFloat64(), rng.NormFloat64()
		v1[i], v2[i] = 0.1+rng.Float64()*3, 0.1+rng.Float64()*3
	}
	v2[0] = 0 // a singular covariance
	// Commuting covariances (same eigenvectors): the distance is
	// ‖μ1−μ2‖² + Σ (√λ1 − √λ2)², whatever the rotation.
	var want float64
	for i := range d {
		want += (mu1[i]-mu2[i])*(mu1[i]-mu2[i]) + (math.Sqrt(v1[i])-math.Sqrt(v2[i]))*(math.Sqrt(v1[i])-math.Sqrt(v2[i]))
	}
	for _, q := range []*mat.Dense{identity(d), randomRotation(rng, d)} {
		got, err := FrechetDistance(&Gaussian{mu1, rotated(q, v1)}, &Gaussian{mu2, rotated(q, v2)})
		if err != nil {
			t.Fatal(err)
		}
		// The zero eigenvalue's rounding noise ε enters as √ε: allow 1e-7.
		if math.Abs(got-want) > 1e-7*want {
			t.Errorf("commuting covariances: FD = %.12g, closed form %.12g", got, want)
		}
	}

	// Non-commuting 2×2 covariances: tr √(A^½BA^½) = √(tr AB + 2√(det A·det B)),
	// because a 2×2 PSD matrix M has tr √M = √(tr M + 2√det M).
	a := mat.NewSymDense(2, []float64{2, 0.7, 0.7, 1})
	b := mat.NewSymDense(2, []float64{0.5, -0.3, -0.3, 3})
	var ab mat.Dense
	ab.Mul(a, b)
	trSqrt := math.Sqrt(mat.Trace(&ab) + 2*math.Sqrt(mat.Det(a)*mat.Det(b)))
	m1, m2 := []float64{1, -2}, []float64{0.5, 0}
	want = 0.25 + 4 + mat.Trace(a) + mat.Trace(b) - 2*trSqrt
	got, err := FrechetDistance(&Gaussian{m1, a}, &Gaussian{m2, b})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-12*want {
		t.Errorf("2×2 non-commuting: FD = %.15g, closed form %.15g", got, want)
	}
	// The distance is symmetric.
	if back, _ := FrechetDistance(&Gaussian{m2, b}, &Gaussian{m1, a}); math.Abs(back-got) > 1e-12*got {
		t.Errorf("FD(b, a) = %.15g, FD(a, b) = %.15g", back, got)
	}
}

func identity(d int) *mat.Dense {
	m := mat.NewDense(d, d, nil)
	for i := range d {
		m.Set(i, i, 1)
	}
	return m
}

func TestFitGaussian(t *testing.T) {
	x := [][]float64{{1, 2}, {3, 6}, {5, 4}}
	g, err := FitGaussian(x)
	if err != nil {
		t.Fatal(err)
	}
	// Mean (3, 4); deviations (−2,−2), (0,2), (2,0): cov = [[8, 4], [4, 8]]/2.
	if g.Mean[0] != 3 || g.Mean[1] != 4 {
		t.Errorf("mean %v, want [3 4]", g.Mean)
	}
	want := [][]float64{{4, 2}, {2, 4}}
	for i := range 2 {
		for j := range 2 {
			if math.Abs(g.Cov.At(i, j)-want[i][j]) > 1e-12 {
				t.Errorf("cov[%d][%d] = %g, want %g", i, j, g.Cov.At(i, j), want[i][j])
			}
		}
	}
}

func TestFDSelfIsZero(t *testing.T) {
	rng := newRNG(2)
	for _, c := range []struct{ n, d int }{{500, 8}, {20, 64}} { // the second has a singular covariance
		x := gaussRows(rng, c.n, c.d, 1, 2)
		fd, err := FD(x, x)
		if err != nil {
			t.Fatal(err)
		}
		if fd > 1e-8*float64(c.d) {
			t.Errorf("n=%d d=%d: FD of a set with itself = %g, want 0", c.n, c.d, fd)
		}
	}
}

// TestFDSampled checks FD on samples against the closed form of the
// Gaussians they come from: N(0, I) against N(δ, s²I) in d dimensions is
// d·δ² + d·(1−s)². Sampling error is small at n = 20 000 for d = 4.
func TestFDSampled(t *testing.T) {
	rng := newRNG(3)
	d, n := 4, 20000
	fd, err := FD(gaussRows(rng, n, d, 0, 1), gaussRows(rng, n, d, 0.5, 2))
	if err != nil {
		t.Fatal(err)
	}
	want := float64(d)*0.25 + float64(d)*1
	if math.Abs(fd-want) > 0.05*want {
		t.Errorf("FD of samples = %.4f, the Gaussians' closed form is %.4f", fd, want)
	}
}

func TestFDBadInput(t *testing.T) {
	good := [][]float64{{1, 2}, {3, 4}}
	for name, x := range map[string][][]float64{
		"one row": {{1, 2}},
		"ragged":  {{1, 2}, {3}},
		"empty":   {{}, {}},
		"NaN":     {{1, math.NaN()}, {3, 4}},
		"Inf":     {{1, 2}, {math.Inf(1), 4}},
	} {
		if _, err := FD(x, good); err == nil {
			t.Errorf("%s: FD accepted %v", name, x)
		}
	}
	if _, err := FD(good, [][]float64{{1, 2, 3}, {4, 5, 6}}); err == nil {
		t.Error("FD accepted features of different dimensions")
	}
}
