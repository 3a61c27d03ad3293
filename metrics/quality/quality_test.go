package quality

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/imgio"
)

// blobs is a synthetic data set of n 28×28 grey images: each a bright
// Gaussian spot of random position and width on black, a stand-in for
// digits that needs no data on disk.
func blobs(n int, seed uint64) *data.Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	ds := &data.Dataset{Name: "blobs", N: n, C: 1, H: 28, W: 28, Pixels: make([]uint8, n*28*28), Labels: make([]int, n)}
	for i := range n {
		cx, cy := 8+12*rng.Float64(), 8+12*rng.Float64()
		s := 2 + 3*rng.Float64()
		img := ds.Pixels[i*784 : (i+1)*784]
		for y := range 28 {
			for x := range 28 {
				d2 := (float64(x)-cx)*(float64(x)-cx) + (float64(y)-cy)*(float64(y)-cy)
				img[y*28+x] = uint8(255 * math.Exp(-d2/(2*s*s)))
			}
		}
	}
	return ds
}

// asImages converts all of ds to a batch, padded to side (0: as it is).
func asImages(ds *data.Dataset, side int) Images {
	if side == 0 {
		side = ds.H
	}
	idx := make([]int, ds.N)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, ds.N*side*side)
	ds.ToFloat(x, idx, side)
	return Images{X: x, N: ds.N, C: 1, H: side, W: side}
}

// synthetic are options that compare against blobs with the shipped MNIST
// classifier (embedded in the binary).
func synthetic(seed uint64) Options {
	return Options{Data: "mnist", Train: blobs(400, 11), Test: blobs(400, 12), Seed: seed, Source: "test"}
}

func TestEvaluateSynthetic(t *testing.T) {
	const n = 200
	rng := rand.New(rand.NewPCG(3, 3))
	noise := make([]float32, n*28*28)
	for i := range noise {
		noise[i] = float32(2*rng.Float64() - 1)
	}
	for _, c := range []struct {
		name string
		gen  Images
		near bool // scores like the floor; otherwise far worse
	}{
		{"same distribution", asImages(blobs(n, 13), 0), true},
		{"same distribution, padded to 32×32", asImages(blobs(n, 13), 32), true},
		{"noise", Images{X: noise, N: n, C: 1, H: 28, W: 28}, false},
		{"black", Images{X: make([]float32, n*28*28), N: n, C: 1, H: 28, W: 28}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Evaluate(context.Background(), c.gen, synthetic(1))
			if err != nil {
				t.Fatal(err)
			}
			s, f := r.Scores, r.Floor
			t.Logf("scores %+v", s)
			t.Logf("floor  %+v", f)
			if r.N != n || r.Data != "mnist" || r.Source != "test" || len(r.Doubted) != DoubtedN {
				t.Errorf("report n=%d data=%q source=%q doubted=%d", r.N, r.Data, r.Source, len(r.Doubted))
			}
			near := s.FD < 2*f.FD+1 && s.Precision > f.Precision-0.2
			far := s.FD > 5*f.FD && s.KID > f.KID+3*(s.KIDStderr+f.KIDStderr)
			if c.near && !near || !c.near && !far {
				t.Errorf("FD %.3f (floor %.3f), KID %.4g ± %.4g (floor %.4g), precision %.3f (floor %.3f): want near=%v",
					s.FD, f.FD, s.KID, s.KIDStderr, f.KID, s.Precision, f.Precision, c.near)
			}
		})
	}
}

// The same images in a 28×28 and a padded 32×32 tensor score the same:
// the classifier crops the border the padding added.
func TestEvaluatePaddedSame(t *testing.T) {
	a, err := Evaluate(context.Background(), asImages(blobs(50, 4), 0), synthetic(2))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Evaluate(context.Background(), asImages(blobs(50, 4), 32), synthetic(2))
	if err != nil {
		t.Fatal(err)
	}
	if a.Scores != b.Scores || a.Floor != b.Floor {
		t.Errorf("28×28: %+v\n32×32: %+v", a.Scores, b.Scores)
	}
	c, err := Evaluate(context.Background(), asImages(blobs(50, 4), 0), synthetic(3))
	if err != nil {
		t.Fatal(err)
	}
	if c.Floor == a.Floor {
		t.Error("another seed drew the same real subsets")
	}
}

func TestEvaluateProgressAndDoubted(t *testing.T) {
	const n = 40
	gen := asImages(blobs(n, 5), 0)
	// Make image 7 ambiguous: half of one blob, half another, dimmed.
	for k := range 784 {
		gen.X[7*784+k] = -0.5
	}
	var feats, measures, memo []Progress
	opt := synthetic(0)
	opt.Progress = func(p Progress) {
		switch p.Stage {
		case StageFeatures:
			feats = append(feats, p)
		case StageMetrics:
			measures = append(measures, p)
		case StageMemorization:
			if len(measures) != 9 {
				t.Errorf("memorization began before the metrics ended")
			}
			memo = append(memo, p)
		default:
			t.Errorf("unknown stage %q", p.Stage)
		}
	}
	r, err := Evaluate(context.Background(), gen, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Doubted) != n {
		t.Errorf("%d doubted indices for %d images", len(r.Doubted), n)
	}
	if last := feats[len(feats)-1]; last.Done != 3*n || last.Total != 3*n {
		t.Errorf("features ended at %+v", last)
	}
	for k := 1; k < len(feats); k++ {
		if feats[k].Done < feats[k-1].Done {
			t.Errorf("features went back: %+v then %+v", feats[k-1], feats[k])
		}
	}
	if len(measures) != 9 || measures[0].Measure != "inception score" || measures[8].Done != 8 || measures[8].Measure != "" {
		t.Errorf("metric stages: %+v", measures)
	}
	if len(memo) < 2 || memo[0].Done != 0 || memo[len(memo)-1].Done != 3*400 || memo[len(memo)-1].Total != 3*400 {
		t.Errorf("memorization stages: %+v", memo)
	}
	for k := 1; k < len(memo); k++ {
		if memo[k].Done < memo[k-1].Done {
			t.Errorf("memorization went back: %+v then %+v", memo[k-1], memo[k])
		}
	}
	sub := gen.Subset(r.Doubted[:2])
	if sub.N != 2 || len(sub.X) != 2*784 || sub.X[0] != gen.X[r.Doubted[0]*784] {
		t.Errorf("Subset: %d images, %d values", sub.N, len(sub.X))
	}
	if f := gen.First(100); f.N != n || len(f.X) != len(gen.X) {
		t.Errorf("First(100) of %d: %d", n, f.N)
	}
}

func TestEvaluateErrors(t *testing.T) {
	ctx := context.Background()
	ok := asImages(blobs(30, 6), 0)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	small := synthetic(0)
	small.Test = blobs(25, 1)
	for _, c := range []struct {
		name string
		ctx  context.Context
		gen  Images
		opt  Options
		want string
	}{
		{"too few", ctx, ok.First(MinN - 1), synthetic(0), "at least 20"},
		{"too many", ctx, ok, small, "exceed the 25 real images"},
		{"short tensor", ctx, Images{X: ok.X[:100], N: 30, C: 1, H: 28, W: 28}, synthetic(0), "not 30 images"},
		{"colour", ctx, Images{X: make([]float32, 30*3*28*28), N: 30, C: 3, H: 28, W: 28}, synthetic(0), "channels"},
		{"small", ctx, Images{X: make([]float32, 30*16*16), N: 30, C: 1, H: 16, W: 16}, synthetic(0), "16×16"},
		{"no data", ctx, ok, Options{}, "no data set"},
		{"unknown data", ctx, ok, Options{Data: "cifar10:/nonexistent"}, "cifar10"},
		{"cancelled", cancelled, ok, synthetic(0), "context canceled"},
	} {
		_, err := Evaluate(c.ctx, c.gen, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if err := CheckShape(1, 32, 32); err != nil {
		t.Errorf("CheckShape 1×32×32: %v", err)
	}
	if err := CheckShape(3, 32, 32); err == nil {
		t.Error("CheckShape accepted colour")
	}
	if !errors.Is(func() error { _, err := Evaluate(cancelled, ok, synthetic(0)); return err }(), context.Canceled) {
		t.Error("cancellation is not context.Canceled")
	}
}

func TestReadFolder(t *testing.T) {
	dir := t.TempDir()
	im := asImages(blobs(30, 7), 32)
	if err := imgio.SaveEach(dir, "s-", im.X, im.N, 1, 32, 32); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFolder(dir, 25)
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 25 || got.H != 32 || got.W != 32 || got.C != 1 {
		t.Fatalf("read %d images of %d×%d×%d, want 25 of 1×32×32", got.N, got.C, got.H, got.W)
	}
	for k := range got.X { // 8-bit PNGs of 8-bit data: exact
		if got.X[k] != im.X[k] {
			t.Fatalf("value %d: %g, want %g", k, got.X[k], im.X[k])
		}
	}
	if all, err := ReadFolder(dir, 0); err != nil || all.N != 30 {
		t.Errorf("limit 0: %d images, %v", all.N, err)
	}
	// 20×20 pictures are resized to the classifier's 28×28.
	other := t.TempDir()
	if err := imgio.SaveEach(other, "x", make([]float32, 20*400), 20, 1, 20, 20); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadFolder(other, 0); err != nil || got.H != 28 {
		t.Errorf("20×20 images: side %d, %v", got.H, err)
	}
	few := t.TempDir()
	imgio.SaveEach(few, "x", im.X[:5*1024], 5, 1, 32, 32)
	for d, want := range map[string]string{
		few:                                 "holds 5 images; the metrics need at least 20",
		t.TempDir():                         "holds no .png, .jpg or .jpeg images",
		filepath.Join(dir, "missing"):       "folder " + filepath.Join(dir, "missing") + ": no such file",
		filepath.Join(dir, "s-01.png", "x"): "not a directory",
	} {
		if _, err := ReadFolder(d, 0); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ReadFolder(%s) = %v, want %q", d, err, want)
		}
	}
}

func TestReportJSONAndTable(t *testing.T) {
	r, err := Evaluate(context.Background(), asImages(blobs(30, 8), 0), synthetic(0))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	json.Unmarshal(b, &keys)
	for _, k := range []string{"data", "source", "n", "seed", "features", "feature_net", "is_mean", "is_std", "fd", "kid", "kid_stderr",
		"precision", "recall", "class_entropy", "pred_entropy", "unsure", "floor", "memorization"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	if len(keys) != 18 {
		t.Errorf("JSON has %d keys, want 18: %s", len(keys), b)
	}
	memo, _ := keys["memorization"].(map[string]any)
	for _, k := range []string{"train_images", "near_copy_threshold", "images", "floor"} {
		if _, ok := memo[k]; !ok {
			t.Errorf("JSON memorization lacks %q: %s", k, b)
		}
	}
	for _, side := range []string{"images", "floor"} {
		m, _ := memo[side].(map[string]any)
		for _, k := range []string{"pixel_min", "pixel_median", "pixel_mean", "feature_min", "feature_median", "feature_mean", "near_copies", "near_copy_share"} {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON memorization.%s lacks %q: %s", side, k, b)
			}
		}
	}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 17 || !strings.HasPrefix(lines[0], "sample quality of 30 images (test) against 30 random mnist train images") ||
		!strings.HasPrefix(lines[4], "FD (LeNet features)") || !strings.HasPrefix(lines[11], "recall (k=3)") ||
		!strings.HasPrefix(lines[13], "memorization: distance to the nearest of all 400 train images") || !strings.HasPrefix(lines[16], "  near-copies") {
		t.Errorf("table:\n%s", buf.String())
	}
	// Without the memorization check the table ends at recall.
	opt := synthetic(0)
	opt.SkipMemorization = true
	r, err = Evaluate(context.Background(), asImages(blobs(30, 8), 0), opt)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	r.WriteTable(&buf)
	if r.Memorization != nil || r.Nearest != nil || strings.Count(strings.TrimSpace(buf.String()), "\n") != 11 {
		t.Errorf("skipped memorization: %+v\n%s", r.Memorization, buf.String())
	}
	if b, _ := json.Marshal(r); strings.Contains(string(b), "memorization") {
		t.Errorf("skipped memorization in the JSON: %s", b)
	}
}
