package metrics

import (
	"math"
	"testing"
)

// naiveMMD2 is the unbiased MMD² with the cubic kernel by direct double
// loops, independent of the matrix code.
func naiveMMD2(x, y [][]float64) float64 {
	d := float64(len(x[0]))
	k := func(a, b []float64) float64 {
		var s float64
		for i := range a {
			s += a[i] * b[i]
		}
		return math.Pow(s/d+1, 3)
	}
	m := float64(len(x))
	var xx, yy, xy float64
	for i := range x {
		for j := range x {
			if i != j {
				xx += k(x[i], x[j])
				yy += k(y[i], y[j])
			}
			xy += k(x[i], y[j])
		}
	}
	return xx/(m*(m-1)) + yy/(m*(m-1)) - 2*xy/(m*m)
}

func TestMMD2MatchesNaive(t *testing.T) {
	rng := newRNG(10)
	x, y := gaussRows(rng, 30, 5, 0, 1), gaussRows(rng, 30, 5, 0.3, 1.2)
	idx := make([]int, 30)
	for i := range idx {
		idx[i] = i
	}
	got, want := mmd2Unbiased(rows(x, idx), rows(y, idx)), naiveMMD2(x, y)
	if math.Abs(got-want) > 1e-12*math.Abs(want) {
		t.Errorf("mmd2Unbiased = %.15g, direct loops %.15g", got, want)
	}
}

// TestKIDSubsets checks the subset rule by computing KID's mean from the
// same permutation by hand: 200 rows, subset size 1000 → 10 subsets of 20.
func TestKIDSubsets(t *testing.T) {
	x, y := gaussRows(newRNG(11), 200, 3, 0, 1), gaussRows(newRNG(12), 250, 3, 1, 1)
	kid, se, err := KID(x, y, 0, newRNG(13))
	if err != nil {
		t.Fatal(err)
	}
	rng := newRNG(13)
	px, py := rng.Perm(len(x)), rng.Perm(len(y))
	var est []float64
	for s := range 10 {
		var a, b [][]float64
		for i := s * 20; i < (s+1)*20; i++ {
			a, b = append(a, x[px[i]]), append(b, y[py[i]])
		}
		est = append(est, naiveMMD2(a, b))
	}
	var mean, ss float64
	for _, v := range est {
		mean += v / 10
	}
	for _, v := range est {
		ss += (v - mean) * (v - mean)
	}
	if wantSE := math.Sqrt(ss/9) / math.Sqrt(10); math.Abs(kid-mean) > 1e-10*math.Abs(mean) || math.Abs(se-wantSE) > 1e-8*wantSE {
		t.Errorf("KID = %.10g ± %.6g, by hand %.10g ± %.6g", kid, se, mean, wantSE)
	}
}

// TestKIDCalibrated checks, over 200 pairs of independent samples of one
// distribution, that KID is unbiased (its average is 0 within sampling
// error), that the standard error it reports matches the actual spread of
// KID between repetitions, and that |KID| is within the t-quantile
// (9 degrees of freedom, 97.5 %: 2.262) standard errors of 0 about 95 % of
// the time (a little less: MMD² estimates are skewed, and ten of them are
// not yet Gaussian). It also must be clearly positive for different
// distributions.
func TestKIDCalibrated(t *testing.T) {
	rng := newRNG(14)
	const trials = 200
	var sum, sumSq, seSq float64
	within := 0
	for range trials {
		x, y := gaussRows(rng, 500, 8, 0, 1), gaussRows(rng, 500, 8, 0, 1)
		kid, se, err := KID(x, y, 0, rng)
		if err != nil {
			t.Fatal(err)
		}
		sum += kid
		sumSq += kid * kid
		seSq += se * se
		if math.Abs(kid) <= 2.262*se {
			within++
		}
	}
	mean := sum / trials
	sd := math.Sqrt((sumSq - trials*mean*mean) / (trials - 1))
	rmsSE := math.Sqrt(seSq / trials)
	t.Logf("equal distributions: mean KID %.3g, spread %.3g, reported stderr %.3g, %d/%d within 2.262 stderr", mean, sd, rmsSE, within, trials)
	if math.Abs(mean) > 3*sd/math.Sqrt(trials) {
		t.Errorf("KID is biased: mean %.3g over %d trials, spread %.3g", mean, trials, sd)
	}
	if r := sd / rmsSE; r < 0.8 || r > 1.25 {
		t.Errorf("KID's spread %.3g differs from its reported standard error %.3g", sd, rmsSE)
	}
	if within < trials*85/100 {
		t.Errorf("KID within 2.262 stderr of 0 in %d of %d trials, want ≈ 95%%", within, trials)
	}

	x, y := gaussRows(rng, 500, 8, 0, 1), gaussRows(rng, 500, 8, 0.3, 1)
	kid, se, err := KID(x, y, 0, rng)
	if err != nil {
		t.Fatal(err)
	}
	if kid < 5*se {
		t.Errorf("KID of shifted Gaussians = %.4g ± %.4g, want clearly positive", kid, se)
	}
}

func TestKIDBadInput(t *testing.T) {
	rng := newRNG(15)
	if _, _, err := KID(gaussRows(rng, 19, 2, 0, 1), gaussRows(rng, 100, 2, 0, 1), 0, rng); err == nil {
		t.Error("KID accepted 19 rows (fewer than 10 subsets of 2)")
	}
	if _, _, err := KID(gaussRows(rng, 100, 2, 0, 1), gaussRows(rng, 100, 3, 0, 1), 0, rng); err == nil {
		t.Error("KID accepted features of different dimensions")
	}
	if _, _, err := KID(gaussRows(rng, 100, 2, 0, 1), gaussRows(rng, 100, 2, 0, 1), 1, rng); err == nil {
		t.Error("KID accepted subsets of one row")
	}
}
