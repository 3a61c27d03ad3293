package metrics

import (
	"math"
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
