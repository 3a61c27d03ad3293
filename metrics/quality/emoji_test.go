package quality

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/imgio"
)

// emojiOrSkip loads the emoji splits, or skips when the package is not
// installed (CI fetches it; see data.EmojiFetch).
func emojiOrSkip(t *testing.T) (train, test *data.Dataset) {
	t.Helper()
	train, err := data.Load("emoji", "train")
	if err != nil {
		t.Skipf("emoji data not available: %v", err)
	}
	if test, err = data.Load("emoji", "test"); err != nil {
		t.Fatal(err)
	}
	return train, test
}

// TestEmojiSmallN scores real emoji with the shipped emoji classifier at
// the largest N the 379-image test split allows and at a small one:
// held-out emoji score like the floor, training emoji are near-copies.
func TestEmojiSmallN(t *testing.T) {
	train, test := emojiOrSkip(t)
	opt := Options{Data: "emoji"}
	if err := opt.Load(); err != nil {
		t.Fatal(err)
	}
	if opt.MaxN() != test.N || test.N != 379 {
		t.Fatalf("MaxN %d, test split %d; want 379", opt.MaxN(), test.N)
	}
	if err := opt.CheckShape(3, 32, 32); err != nil {
		t.Errorf("CheckShape 3×32×32 for emoji: %v", err)
	}
	if err := opt.CheckShape(1, 32, 32); err == nil {
		t.Error("CheckShape accepted grey images for emoji")
	}
	images := func(ds *data.Dataset, idx []int) Images {
		x := make([]float32, len(idx)*ds.ImageSize())
		ds.ToFloat(x, idx, 0)
		return Images{X: x, N: len(idx), C: 3, H: 32, W: 32}
	}
	// All 379 test emoji: the floor draws the same 379, so the scores are
	// the floor's exactly.
	all := make([]int, test.N)
	for i := range all {
		all[i] = i
	}
	r, err := Evaluate(context.Background(), images(test, all), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("379 test emoji: %+v\nfloor %+v\nmemorization %+v", r.Scores, r.Floor, r.Memorization)
	mi, mf := r.Memorization.Images, r.Memorization.Floor
	if math.Abs(r.FD-r.Floor.FD) > 1e-6*r.Floor.FD || mi.PixelMedian != mf.PixelMedian || mi.FeatureMedian != mf.FeatureMedian || mi.NearCopies != mf.NearCopies {
		t.Errorf("the whole test split scored %+v, floor %+v", r.Scores, r.Floor)
	}
	if r.Net != "cnn32" || r.Memorization.TrainN != train.N {
		t.Errorf("report net %q, memorization over %d train images", r.Net, r.Memorization.TrainN)
	}
	if r.Floor.Precision < 0.6 || r.Floor.Recall < 0.3 {
		t.Errorf("floor precision/recall %.3f/%.3f", r.Floor.Precision, r.Floor.Recall)
	}
	// 150 training emoji against the floor: copies.
	idx := rand.New(rand.NewPCG(3, 3)).Perm(train.N)[:150]
	r, err = Evaluate(context.Background(), images(train, idx), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("150 train emoji: %+v\nmemorization %+v", r.Scores, r.Memorization)
	if m := r.Memorization; m.Images.NearCopies != 150 || m.Floor.NearCopies > 4 {
		t.Errorf("training emoji: %d near-copies of 150 (floor %d)", m.Images.NearCopies, m.Floor.NearCopies)
	}
	if _, err := Evaluate(context.Background(), images(test, append(all, 0)), opt); err == nil {
		t.Error("Evaluate accepted 380 images with a 379-image floor")
	}

	// A folder of emoji PNGs is read in colour for this classifier.
	dir := t.TempDir()
	g := images(test, all[:25])
	if err := imgio.SaveEach(dir, "e", g.X, g.N, 3, 32, 32); err != nil {
		t.Fatal(err)
	}
	got, err := opt.ReadFolder(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 25 || got.C != 3 || got.H != 32 {
		t.Fatalf("read %d images of %d×%d×%d", got.N, got.C, got.H, got.W)
	}
	for k := range got.X {
		if got.X[k] != g.X[k] {
			t.Fatalf("value %d read as %g, saved %g", k, got.X[k], g.X[k])
		}
	}
}

// TestEmojiClassifierShipped checks the shipped emoji classifier on the
// test split: what docs/emoji.md reports.
func TestEmojiClassifierShipped(t *testing.T) {
	_, test := emojiOrSkip(t)
	m, meta, err := classifier.Embedded("emoji")
	if err != nil {
		t.Fatal(err)
	}
	if meta["arch"] != "cnn32" || m.NumClasses() != 9 {
		t.Fatalf("shipped emoji classifier: %s, %d classes", meta["arch"], m.NumClasses())
	}
	acc, err := m.AccuracyOn(test, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("emoji classifier: %.2f%% on the %d test images (metadata: %s)", 100*acc, test.N, meta["test_accuracy"])
	if acc < 0.70 {
		t.Errorf("accuracy %.4f, want ≥ 0.70", acc)
	}
}
