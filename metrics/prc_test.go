package metrics

import (
	"math"
	"slices"
	"testing"
)

// naivePR is improved precision/recall by direct loops and full sorts.
func naivePR(real, fake [][]float64, k int) (float64, float64) {
	dist := func(a, b []float64) float64 {
		var s float64
		for i := range a {
			s += (a[i] - b[i]) * (a[i] - b[i])
		}
		return s
	}
	radii := func(x [][]float64) []float64 {
		r := make([]float64, len(x))
		for i := range x {
			var d []float64
			for j := range x {
				if i != j {
					d = append(d, dist(x[i], x[j]))
				}
			}
			slices.Sort(d)
			r[i] = d[k-1]
		}
		return r
	}
	cover := func(q, ref [][]float64, r []float64) float64 {
		in := 0
		for _, a := range q {
			for j, b := range ref {
				if dist(a, b) <= r[j] {
					in++
					break
				}
			}
		}
		return float64(in) / float64(len(q))
	}
	return cover(fake, real, radii(real)), cover(real, fake, radii(fake))
}

func TestPrecisionRecallToy(t *testing.T) {
	// Real points 0..9 on a line, k = 1: every real ball has radius 1.
	// Fake 0.5 lies in one; 100 and 101 lie far away: precision 1/3. The
	// fake ball around 0.5 reaches its nearest other fake, 100, so it
	// covers every real point: recall 1.
	var real [][]float64
	for i := range 10 {
		real = append(real, []float64{float64(i)})
	}
	fake := [][]float64{{0.5}, {100}, {101}}
	p, r, err := PrecisionRecall(real, fake, 1)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(p-1.0/3) > 1e-15 || r != 1 {
		t.Errorf("precision %v recall %v, want 1/3 and 1", p, r)
	}
}

func TestPrecisionRecallIdentical(t *testing.T) {
	x := gaussRows(newRNG(20), 700, 16, 3, 2) // more rows than one block
	p, r, err := PrecisionRecall(x, x, PRNeighbours)
	if err != nil {
		t.Fatal(err)
	}
	if p != 1 || r != 1 {
		t.Errorf("identical sets: precision %v recall %v, want 1 and 1", p, r)
	}
}

func TestPrecisionRecallMatchesNaive(t *testing.T) {
	rng := newRNG(21)
	real := gaussRows(rng, 600, 5, 0, 1)
	for _, c := range []struct{ shift, scale float64 }{{0, 1}, {0.5, 1}, {0, 0.3}, {0, 3}} {
		fake := gaussRows(rng, 550, 5, c.shift, c.scale)
		p, r, err := PrecisionRecall(real, fake, 3)
		if err != nil {
			t.Fatal(err)
		}
		wp, wr := naivePR(real, fake, 3)
		if p != wp || r != wr {
			t.Errorf("shift %v scale %v: precision %v recall %v, direct loops %v and %v", c.shift, c.scale, p, r, wp, wr)
		}
		// Shrunk samples sit inside the data (precise, not diverse);
		// spread-out ones cover it but are mostly off it.
		switch {
		case c.scale < 1 && !(p > 0.95 && r < 0.6):
			t.Errorf("concentrated fakes: precision %.3f recall %.3f, want high and low", p, r)
		case c.scale > 1 && !(p < 0.6 && r > 0.9):
			t.Errorf("spread-out fakes: precision %.3f recall %.3f, want low and high", p, r)
		}
	}
}

func TestPrecisionRecallBadInput(t *testing.T) {
	x := gaussRows(newRNG(22), 10, 2, 0, 1)
	if _, _, err := PrecisionRecall(x, x[:3], 3); err == nil {
		t.Error("accepted 3 generated rows with k = 3")
	}
	if _, _, err := PrecisionRecall(x, x, 0); err == nil {
		t.Error("accepted k = 0")
	}
	if _, _, err := PrecisionRecall(x, gaussRows(newRNG(1), 10, 3, 0, 1), 3); err == nil {
		t.Error("accepted features of different dimensions")
	}
}
