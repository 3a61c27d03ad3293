package quality

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestNearestRows checks the blocked GEMM search against brute force, over
// several reference and query blocks.
func TestNearestRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const nq, nr, d = nnQueryBlock + 37, 2*nnRefBlock + 51, 9
	q := make([]float32, nq*d)
	ref := make([]float32, nr*d)
	for i := range q {
		q[i] = float32(rng.NormFloat64())
	}
	for i := range ref {
		ref[i] = float32(rng.NormFloat64()) + 3 // offset: ‖r‖² ≫ distances, as for pixels
	}
	// Query 5 is reference 1500 exactly.
	copy(q[5*d:6*d], ref[1500*d:1501*d])
	var done []int
	idx, dist := nearestRows(q, nq, d, nr, func(dst []float32, lo, hi int) {
		copy(dst, ref[lo*d:hi*d])
	}, func(n int) { done = append(done, n) })
	if !slices.Equal(done, []int{nnRefBlock, 2 * nnRefBlock, nr}) {
		t.Errorf("progress %v", done)
	}
	for i := range nq {
		bi, bd := -1, math.Inf(1)
		for j := range nr {
			var s float64
			for k := range d {
				e := float64(q[i*d+k]) - float64(ref[j*d+k])
				s += e * e
			}
			if s < bd {
				bi, bd = j, s
			}
		}
		if idx[i] != bi || math.Abs(dist[i]-math.Sqrt(bd)) > 1e-12 {
			t.Fatalf("query %d: nearest %d at %g, want %d at %g", i, idx[i], dist[i], bi, math.Sqrt(bd))
		}
	}
	if idx[5] != 1500 || dist[5] != 0 {
		t.Errorf("a copy of reference 1500: nearest %d at %g", idx[5], dist[5])
	}
}

func TestQuantile(t *testing.T) {
	x := []float64{4, 1, 3, 2, 5}
	for _, c := range []struct{ p, want float64 }{{0, 1}, {0.5, 3}, {1, 5}, {0.01, 1.04}, {0.25, 2}} {
		if got := quantile(x, c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile %g = %g, want %g", c.p, got, c.want)
		}
	}
	if !slices.Equal(x, []float64{4, 1, 3, 2, 5}) {
		t.Error("quantile sorted its argument")
	}
}

// TestMemorizationSynthetic scores copies of training images (near-copies,
// by definition) and fresh images of the same distribution (not), and
// checks the neighbour pairs.
func TestMemorizationSynthetic(t *testing.T) {
	opt := synthetic(4)
	train := opt.Train
	const n = 40
	picked := rand.New(rand.NewPCG(5, 5)).Perm(train.N)[:n]
	copies := Images{X: make([]float32, n*32*32), N: n, C: 1, H: 32, W: 32}
	train.ToFloat(copies.X, picked, 32) // as a padded model's samples
	// Image 3 is a copy slightly disturbed: still the nearest, not at 0.
	copies.X[3*1024+16*32+16] += 0.25
	r, err := Evaluate(context.Background(), copies, opt)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Memorization
	t.Logf("copies: %+v", m)
	if m.TrainN != train.N || m.Images.NearCopies != n || m.Images.NearCopyShare != 1 || m.Images.PixelMin != 0 {
		t.Errorf("copies of training images: %+v", m.Images)
	}
	if m.Floor.NearCopies > 1 || !(m.Threshold > 0) || m.Floor.PixelMedian <= m.Threshold {
		t.Errorf("floor %+v, threshold %g", m.Floor, m.Threshold)
	}
	for i, j := range picked {
		if r.Nearest[i] != j {
			t.Errorf("copy of training image %d: nearest %d", j, r.Nearest[i])
		}
	}
	if math.Abs(r.NearestDist[3]-0.25) > 1e-6 {
		t.Errorf("disturbed copy at %g, want 0.25", r.NearestDist[3])
	}
	// Pairs: nearest first; each image beside its training image.
	pairs, err := r.Neighbours(copies, train, 5)
	if err != nil {
		t.Fatal(err)
	}
	if pairs.N != 10 || pairs.H != 32 || pairs.C != 1 {
		t.Fatalf("pairs: %d images of %d×%d×%d", pairs.N, pairs.C, pairs.H, pairs.W)
	}
	for p := range 5 {
		a, b := pairs.X[2*p*1024:(2*p+1)*1024], pairs.X[(2*p+1)*1024:(2*p+2)*1024]
		if !slices.Equal(a, b) {
			t.Errorf("pair %d: the copy differs from its training image", p)
		}
	}
	if all, _ := r.Neighbours(copies, train, 0); all.N != 2*min(NeighboursN, n) {
		t.Errorf("default pairs: %d images", all.N)
	}

	// Fresh images of the same distribution sit like the floor.
	fresh := asImages(blobs(n, 99), 0)
	r, err = Evaluate(context.Background(), fresh, opt)
	if err != nil {
		t.Fatal(err)
	}
	m = r.Memorization
	t.Logf("fresh: %+v", m)
	if m.Images.NearCopies > 1 || m.Images.PixelMedian < 0.5*m.Floor.PixelMedian || m.Images.PixelMedian > 2*m.Floor.PixelMedian {
		t.Errorf("fresh images: %+v; floor %+v", m.Images, m.Floor)
	}
	if _, err := r.Neighbours(copies.First(10), train, 3); err == nil {
		t.Error("Neighbours accepted images other than the report's")
	}
	opt.SkipMemorization = true
	if r, _ = Evaluate(context.Background(), fresh, opt); r.Memorization != nil {
		t.Error("SkipMemorization ran the check")
	} else if _, err := r.Neighbours(fresh, train, 3); err == nil {
		t.Error("Neighbours without the check")
	}
}
