package quality

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/data"
)

// TestMNISTRealDigits scores random real MNIST test digits, padded to the
// 32×32 a padded model produces: every measure must be near the real-data
// floor, since they are real data too. (Random, not the first n: the first
// half of the MNIST test set comes from other writers than the second, and
// the floor draws from all of it.)
func TestMNISTRealDigits(t *testing.T) {
	const n = 1000
	ds, err := data.Load("mnist", "test")
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	idx := rand.New(rand.NewPCG(7, 7)).Perm(ds.N)[:n]
	x := make([]float32, n*32*32)
	ds.ToFloat(x, idx, 32)
	r, err := Evaluate(context.Background(), Images{X: x, N: n, C: 1, H: 32, W: 32}, Options{Data: "mnist"})
	if err != nil {
		t.Fatal(err)
	}
	s, f := r.Scores, r.Floor
	t.Logf("real digits: %+v", s)
	t.Logf("floor:       %+v", f)
	if s.FD > 1.3*f.FD || f.FD > 1.3*s.FD {
		t.Errorf("FD %.3f of real digits is not near the floor's %.3f", s.FD, f.FD)
	}
	if math.Abs(s.KID) > 3*s.KIDStderr || math.Abs(f.KID) > 3*f.KIDStderr {
		t.Errorf("KID %.4g ± %.4g (floor %.4g ± %.4g): want 0 within 3 stderr for real data", s.KID, s.KIDStderr, f.KID, f.KIDStderr)
	}
	if math.Abs(s.ISMean-f.ISMean) > 0.3 {
		t.Errorf("IS %.3f of real digits is not near the floor's %.3f", s.ISMean, f.ISMean)
	}
	if math.Abs(s.Precision-f.Precision) > 0.05 || math.Abs(s.Recall-f.Recall) > 0.05 {
		t.Errorf("precision/recall %.3f/%.3f of real digits are not near the floor's %.3f/%.3f", s.Precision, s.Recall, f.Precision, f.Recall)
	}
	// Unseen digits sit as far from the 60 000 training digits as the
	// floor's (also unseen) do, and are not near-copies.
	m := r.Memorization
	t.Logf("memorization: %+v", m)
	if m == nil || m.TrainN != 60000 {
		t.Fatalf("memorization %+v", m)
	}
	a, b := m.Images, m.Floor
	if math.Abs(a.PixelMedian-b.PixelMedian) > 0.05*b.PixelMedian || math.Abs(a.FeatureMedian-b.FeatureMedian) > 0.1*b.FeatureMedian {
		t.Errorf("nearest-train medians of real digits %.3f px, %.3f feat; floor %.3f, %.3f", a.PixelMedian, a.FeatureMedian, b.PixelMedian, b.FeatureMedian)
	}
	if a.NearCopies > 5 || b.NearCopies > 5 {
		t.Errorf("near-copies among unseen digits: %d, floor %d", a.NearCopies, b.NearCopies)
	}
	// Training digits are their own nearest neighbours: all near-copies.
	tr, err := data.Load("mnist", "train")
	if err != nil {
		t.Fatal(err)
	}
	idx = rand.New(rand.NewPCG(8, 8)).Perm(tr.N)[:200]
	x = make([]float32, 200*28*28)
	tr.ToFloat(x, idx, 0)
	r, err = Evaluate(context.Background(), Images{X: x, N: 200, C: 1, H: 28, W: 28}, Options{Data: "mnist"})
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Memorization; m.Images.NearCopies != 200 || m.Images.PixelMean != 0 {
		t.Errorf("training digits: %d near-copies of 200, mean distance %g", m.Images.NearCopies, m.Images.PixelMean)
	}
}

// TestMNISTNoise scores pictures of noise: they must be far from the floor
// on every measure. It needs a few thousand images: the classifier maps all
// noise to one tight cluster of features, and with only hundreds of real
// digits the k-NN balls of improved precision are wide enough that an
// outlier's ball can swallow that cluster whole: the precision of noise
// was 0.5–0.98 at n = 300–1000, 0.16 at n = 2000, 0.03–0.16 at n = 3000.
func TestMNISTNoise(t *testing.T) {
	if _, err := data.Load("mnist", "test", data.WithLimit(1)); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	const n = 2000
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, n*28*28)
	for i := range x {
		// Quantised to 8 bits, as the PNGs the command once read them from.
		p := math.Round((2*rng.Float64() - 1 + 1) * 127.5)
		x[i] = float32(p/127.5 - 1)
	}
	r, err := Evaluate(context.Background(), Images{X: x, N: n, C: 1, H: 28, W: 28}, Options{Data: "mnist", SkipMemorization: true})
	if err != nil {
		t.Fatal(err)
	}
	s, f := r.Scores, r.Floor
	t.Logf("noise: %+v", s)
	t.Logf("floor: %+v", f)
	if s.FD < 10*f.FD {
		t.Errorf("FD of noise %.3f, floor %.3f: want far above", s.FD, f.FD)
	}
	if s.KID < f.KID+10*(s.KIDStderr+f.KIDStderr) {
		t.Errorf("KID of noise %.4g ± %.4g, floor %.4g: want far above", s.KID, s.KIDStderr, f.KID)
	}
	if s.Precision > 0.3 || s.Recall > 0.05 || f.Precision < 0.6 || f.Recall < 0.6 {
		t.Errorf("precision/recall of noise %.3f/%.3f (floor %.3f/%.3f): want far below a high floor", s.Precision, s.Recall, f.Precision, f.Recall)
	}
	if s.ISMean > f.ISMean-3 {
		t.Errorf("IS of noise %.3f, floor %.3f: want far below", s.ISMean, f.ISMean)
	}
}
