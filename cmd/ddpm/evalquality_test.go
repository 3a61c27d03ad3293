package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/model/unet"
)

// qualityJSON runs `ddpm eval quality … --json --quiet` and decodes it.
func qualityJSON(t *testing.T, args ...string) qualityReport {
	t.Helper()
	code, out := runCaptured(t, append([]string{"eval", "quality", "--json", "--quiet"}, args...)...)
	if code != 0 {
		t.Fatalf("eval quality %v: exit status %d", args, code)
	}
	var r qualityReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("eval quality --json printed %q: %v", out, err)
	}
	for _, k := range []string{`"is_mean"`, `"is_std"`, `"fd"`, `"kid"`, `"kid_stderr"`, `"precision"`, `"recall"`, `"class_entropy"`, `"pred_entropy"`, `"unsure"`, `"floor"`} {
		if !strings.Contains(out, k) {
			t.Errorf("JSON output lacks %s", k)
		}
	}
	return r
}

// writePNGs saves images x (n×1×s×s in [−1, 1]) as one PNG each in dir.
func writePNGs(t *testing.T, dir string, x []float32, n, s int) {
	t.Helper()
	if err := imgio.SaveEach(dir, "img", x, n, 1, s, s); err != nil {
		t.Fatal(err)
	}
}

// TestEvalQualityRealDigits scores random real MNIST test digits, saved
// as the 32×32 PNGs a padded model would produce, and checks that every
// metric is near the real-data floor: they are real data too. (Random, not
// the first n: the first half of the MNIST test set comes from other
// writers than the second, and the floor draws from all of it.)
func TestEvalQualityRealDigits(t *testing.T) {
	const n = 1000
	ds, err := data.Load("mnist", "test")
	if err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	idx := rand.New(rand.NewPCG(7, 7)).Perm(ds.N)[:n]
	x := make([]float32, n*32*32)
	ds.ToFloat(x, idx, 32)
	dir := t.TempDir()
	writePNGs(t, dir, x, n, 32)
	grid := filepath.Join(t.TempDir(), "grid.png")
	doubted := filepath.Join(t.TempDir(), "doubted.png")

	r := qualityJSON(t, "--ref", dir, "--data", "mnist", "--n", fmt.Sprint(n), "--samples", grid, "--doubted", doubted)
	t.Logf("real digits: %+v", r.Scores)
	t.Logf("floor:       %+v", r.Floor)
	if r.N != n || r.Data != "mnist" {
		t.Errorf("report says n=%d data=%q", r.N, r.Data)
	}
	s, f := r.Scores, r.Floor
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
	img := decodePNG(t, grid)
	if b := img.Bounds(); b.Dx() < 32*16 || b.Dy() < 32*16 || b.Dx() > 34*16 {
		t.Errorf("--samples grid is %v, want the first 256 images (16×16 tiles of 32×32)", b)
	}
	if b := decodePNG(t, doubted).Bounds(); b.Dx() < 32*8 || b.Dy() < 32*8 || b.Dx() > 34*8 || b.Dy() > 34*8 {
		t.Errorf("--doubted grid is %v, want 64 images (8×8 tiles of 32×32)", b)
	}

	// The text report names the metrics honestly and shows the floor.
	code, out := runCaptured(t, "eval", "quality", "--quiet", "--ref", dir, "--data", "mnist", "--n", "100")
	if code != 0 {
		t.Fatalf("text report: exit status %d", code)
	}
	for _, want := range []string{"FD (LeNet features)", "KID", "IS", "precision", "recall", "real floor"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FID") && !strings.Contains(out, "not comparable with published FID") {
		t.Errorf("text report calls the distance FID:\n%s", out)
	}
}

// TestEvalQualityModel samples from a small untrained model whose
// checkpoint records MNIST as its data, end to end: the data set comes
// from the metadata and the 32×32 samples are cropped for the classifier.
func TestEvalQualityModel(t *testing.T) {
	if _, err := data.Load("mnist", "test", data.WithLimit(1)); err != nil {
		t.Skipf("MNIST not available: %v", err)
	}
	cfg, err := unet.ConfigByName("tiny1")
	if err != nil {
		t.Fatal(err)
	}
	m := testUNet(t, cfg, 2)
	dc := diffusion.DefaultConfig()
	dc.T = 5
	np := m.NumParams()
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	c := &checkpoint.Checkpoint{UNet: cfg, Diffusion: dc, Train: json.RawMessage(`{"data":"mnist"}`),
		Model: m.Weights(), EMA: m.Weights(), AdamM: make([]float32, np), AdamV: make([]float32, np)}
	if err := checkpoint.Save(path, c, m.Params()); err != nil {
		t.Fatal(err)
	}
	r := qualityJSON(t, "--model", path, "--n", "100", "--batch", "50", "--seed", "3")
	if r.Data != "mnist" || r.N != 100 {
		t.Errorf("report says data %q n %d, want mnist 100", r.Data, r.N)
	}
	// An untrained network's samples are not digits.
	if r.FD < 2*r.Floor.FD || r.KID < r.Floor.KID+3*(r.KIDStderr+r.Floor.KIDStderr) {
		t.Errorf("untrained model: FD %.3f, KID %.4g ± %.4g; floor %.3f, %.4g ± %.4g: want far above", r.FD, r.KID, r.KIDStderr, r.Floor.FD, r.Floor.KID, r.Floor.KIDStderr)
	}
	again := qualityJSON(t, "--model", path, "--n", "100", "--batch", "50", "--seed", "3")
	if again.Scores != r.Scores || again.Floor != r.Floor {
		t.Errorf("same seed, different scores: %+v then %+v", r.Scores, again.Scores)
	}
	// A --var the user chose is part of where the images came from.
	if strings.Contains(r.Source, "variance") {
		t.Errorf("source %q names a variance nobody chose", r.Source)
	}
	small := qualityJSON(t, "--model", path, "--n", "100", "--batch", "50", "--seed", "3", "--var", "fixedsmall")
	if !strings.HasSuffix(small.Source, ", fixedsmall variance") {
		t.Errorf("source %q does not name --var fixedsmall", small.Source)
	}
}

func TestEvalQualityErrors(t *testing.T) {
	dir := t.TempDir()
	weightsOnly := filepath.Join(dir, "w.safetensors")
	cfg, _ := unet.ConfigByName("tiny1")
	m, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.SaveWeights(weightsOnly, m, diffusion.DefaultConfig(), true, nil); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--n", "20000"}, 2, "exceeds"}, // no --model: the shipped mnist model, checked before sampling
		{[]string{"--model", weightsOnly, "--ref", dir}, 2, "exactly one of"},
		{[]string{"--ref", dir}, 2, "--ref needs --data"},
		{[]string{"--ref", dir, "--data", "mnist", "--n", "5"}, 2, "at least 20"},
		{[]string{"--model", weightsOnly}, 2, "does not record the data set it was trained on"},
		{[]string{"--model", filepath.Join(dir, "missing")}, 1, "missing"},
		{[]string{"--ref", empty, "--data", "mnist"}, 1, "no .png"},
		{[]string{"--ref", dir, "--data", "cifar10:" + dir}, 1, "none ships"},
		{[]string{"--ref", dir, "--data", "mnist", "--n", "20000"}, 2, "exceeds"},
	} {
		stderr := captureStderr(t, func() {
			code, _ := runCaptured(t, append([]string{"eval", "quality", "--quiet"}, c.args...)...)
			if code != c.code {
				t.Errorf("%v: exit status %d, want %d", c.args, code, c.code)
			}
		})
		if !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: stderr %q, want one line containing %q", c.args, stderr, c.want)
		}
	}
}
