package metrics

import (
	"math"
	"math/rand/v2"
	"testing"
)

func repeatRows(n int, row func(i int) []float64) [][]float64 {
	x := make([][]float64, n)
	for i := range x {
		x[i] = row(i)
	}
	return x
}

func oneHot(k, c int) []float64 {
	p := make([]float64, k)
	p[c] = 1
	return p
}

func TestInceptionScore(t *testing.T) {
	k := 10
	uniform := make([]float64, k)
	for i := range uniform {
		uniform[i] = 1 / float64(k)
	}
	kl := 0.9*math.Log(0.9/0.5) + 0.1*math.Log(0.1/0.5)
	for _, c := range []struct {
		name      string
		probs     [][]float64
		splits    int
		mean, std float64
	}{
		// No information in p(y|x): KL = 0, IS = 1.
		{"uniform", repeatRows(100, func(int) []float64 { return uniform }), 10, 1, 0},
		// Confident and balanced: KL = log k, IS = k.
		{"one-hot balanced", repeatRows(100, func(i int) []float64 { return oneHot(k, i%k) }), 10, 10, 0},
		// Confident but always the same class: p(y) = p(y|x), IS = 1.
		{"mode collapse", repeatRows(100, func(int) []float64 { return oneHot(k, 3) }), 10, 1, 0},
		// Two classes predicted at 0.9, equally often: IS = exp(0.9 ln 1.8 + 0.1 ln 0.2).
		{"soft", repeatRows(40, func(i int) []float64 {
			if i%2 == 0 {
				return []float64{0.9, 0.1}
			}
			return []float64{0.1, 0.9}
		}), 4, math.Exp(kl), 0},
		// Split 1 scores 2 (two confident classes), split 2 scores 1: mean 1.5, std 0.5.
		{"splits differ", repeatRows(20, func(i int) []float64 {
			if i < 10 {
				return oneHot(2, i%2)
			}
			return []float64{0.5, 0.5}
		}), 2, 1.5, 0.5},
		// 23 rows in 2 splits: the 11 rows of each split are used, the last dropped.
		{"remainder dropped", repeatRows(23, func(i int) []float64 {
			if i == 22 {
				return oneHot(2, 0)
			}
			return []float64{0.5, 0.5}
		}), 2, 1, 0},
	} {
		mean, std, err := InceptionScore(c.probs, c.splits)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if math.Abs(mean-c.mean) > 1e-12 || math.Abs(std-c.std) > 1e-12 {
			t.Errorf("%s: IS = %.15g ± %.3g, want %.15g ± %.3g", c.name, mean, std, c.mean, c.std)
		}
	}
}

func TestInceptionScoreBadInput(t *testing.T) {
	good := repeatRows(20, func(i int) []float64 { return oneHot(2, i%2) })
	for name, c := range map[string]struct {
		probs  [][]float64
		splits int
	}{
		"logits":        {repeatRows(20, func(int) []float64 { return []float64{2, -1} }), 10},
		"negative":      {repeatRows(20, func(int) []float64 { return []float64{1.5, -0.5} }), 10},
		"too few rows":  {good[:5], 10},
		"zero splits":   {good, 0},
		"ragged":        {append(repeatRows(19, func(i int) []float64 { return oneHot(2, 0) }), []float64{1}), 10},
		"not a number":  {append(repeatRows(19, func(i int) []float64 { return oneHot(2, 0) }), []float64{math.NaN(), 1}), 10},
		"no probs rows": {nil, 10},
	} {
		if _, _, err := InceptionScore(c.probs, c.splits); err == nil {
			t.Errorf("%s: InceptionScore accepted it", name)
		}
	}
}

func TestClassBreakdown(t *testing.T) {
	k := 10
	soft := func(i int) []float64 { // 0.8 on class i%k, the rest spread evenly
		p := make([]float64, k)
		for j := range p {
			p[j] = 0.2 / float64(k-1)
		}
		p[i%k] = 0.8
		return p
	}
	hSoft := -(0.8*math.Log(0.8) + 0.2*math.Log(0.2/float64(k-1)))
	// Half unsure: the even classes' rows are soft (10 rows of 0.8 each,
	// 0.2/9 from the other 40 soft rows), the odd ones' one-hot (10 rows
	// of 1, 0.2/9 from all 50 soft rows).
	pe, po := (10*0.8+40*0.2/9)/100, (10+50*0.2/9)/100
	hHalf := -5 * (pe*math.Log(pe) + po*math.Log(po))
	for _, c := range []struct {
		name  string
		probs [][]float64
		want  ClassStats
	}{
		{"one-hot balanced", repeatRows(100, func(i int) []float64 { return oneHot(k, i%k) }), ClassStats{math.Log(float64(k)), 0, 0}},
		{"mode collapse", repeatRows(100, func(int) []float64 { return oneHot(k, 3) }), ClassStats{0, 0, 0}},
		{"unsure, balanced", repeatRows(100, soft), ClassStats{math.Log(float64(k)), hSoft, 1}},
		{"half unsure", repeatRows(100, func(i int) []float64 {
			if i%2 == 0 {
				return soft(i)
			}
			return oneHot(k, i%k)
		}), ClassStats{hHalf, hSoft / 2, 0.5}},
	} {
		s, err := ClassBreakdown(c.probs)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if math.Abs(s.ClassEntropy-c.want.ClassEntropy) > 1e-12 || math.Abs(s.PredEntropy-c.want.PredEntropy) > 1e-12 || s.Unsure != c.want.Unsure {
			t.Errorf("%s: %+v, want %+v", c.name, s, c.want)
		}
	}
	if _, err := ClassBreakdown(repeatRows(5, func(int) []float64 { return []float64{2, -1} })); err == nil {
		t.Error("logits accepted")
	}
}

// The two entropies are the one-split Inception Score's logarithm, for any
// rows: checked on random probability rows against InceptionScore.
func TestClassBreakdownIsLogIS(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	probs := repeatRows(500, func(int) []float64 {
		p := make([]float64, 10)
		var s float64
		for j := range p {
			p[j] = math.Pow(rng.Float64(), 4) // skewed rows
			s += p[j]
		}
		for j := range p {
			p[j] /= s
		}
		return p
	})
	is, _, err := InceptionScore(probs, 1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ClassBreakdown(probs)
	if err != nil {
		t.Fatal(err)
	}
	if got := math.Exp(s.ClassEntropy - s.PredEntropy); math.Abs(got-is) > 1e-9*is {
		t.Errorf("exp(H(y) − E H(y|x)) = %.12g, one-split IS = %.12g", got, is)
	}
}
