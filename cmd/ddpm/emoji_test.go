package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/model/unet"
)

// TestEmojiQualityAndClassifier scores a folder of real emoji with
// `eval quality --data emoji` (the RGB classifier, the 379-image floor,
// the memorization check and its picture) and prints the emoji
// classifier's confusion matrix. It needs the emoji package (CI fetches
// it).
func TestEmojiQualityAndClassifier(t *testing.T) {
	test, err := data.Load("emoji", "test")
	if err != nil {
		t.Skipf("emoji data not available: %v", err)
	}
	const n = 60
	idx := make([]int, n)
	for i := range idx {
		idx[i] = 5 * i
	}
	x := make([]float32, n*3*32*32)
	test.ToFloat(x, idx, 0)
	dir := t.TempDir()
	if err := imgio.SaveEach(dir, "e", x, n, 3, 32, 32); err != nil {
		t.Fatal(err)
	}
	pairs := filepath.Join(t.TempDir(), "pairs.png")
	// --n left at its default (1000) is capped to the test split.
	code, out := runCaptured(t, "eval", "quality", "--quiet", "--json", "--ref", dir, "--data", "emoji", "--neighbours", pairs)
	if code != 0 {
		t.Fatalf("eval quality --data emoji: exit status %d", code)
	}
	var r qualityReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.N != n || r.Net != "cnn32" || r.Memorization == nil || r.Memorization.TrainN != 3407 {
		t.Errorf("report: n %d, net %q, memorization %+v", r.N, r.Net, r.Memorization)
	}
	if w, h := pngSize(t, pairs); w != 8*32+7*imgio.Pad || h != 4*32+3*imgio.Pad {
		t.Errorf("neighbours picture %d×%d, want 4 rows of 4 pairs", w, h)
	}
	if code, _ := runCaptured(t, "eval", "quality", "--quiet", "--ref", dir, "--data", "emoji", "--n", "400"); code != 2 {
		t.Errorf("--n 400 beyond the 379 test emoji: exit status %d, want 2", code)
	}
	if code, _ := runCaptured(t, "eval", "quality", "--quiet", "--ref", dir, "--data", "emoji", "--memorization=false", "--neighbours", pairs); code != 2 {
		t.Errorf("--neighbours without the memorization check: exit status %d, want 2", code)
	}

	code, out = runCaptured(t, "classifier", "eval", "--quiet", "--data", "emoji", "--confusion")
	if code != 0 || !strings.Contains(out, "test accuracy on emoji, 379 test images") || !strings.Contains(out, "8 Flags") {
		t.Errorf("classifier eval --confusion: status %d\n%s", code, out)
	}
	t.Logf("\n%s", out)
}

// TestEmojiQualityModel samples from a small untrained RGB model whose
// checkpoint records emoji as its data: the emoji classifier takes its
// 3×32×32 samples (the grey LeNet's shape check would refuse them), and
// the untrained model is far from the floor and copies nothing.
func TestEmojiQualityModel(t *testing.T) {
	if _, err := data.Load("emoji", "test"); err != nil {
		t.Skipf("emoji data not available: %v", err)
	}
	cfg, err := unet.ConfigByName("tiny32")
	if err != nil {
		t.Fatal(err)
	}
	m := testUNet(t, cfg, 4)
	dc := diffusion.DefaultConfig()
	dc.T = 5
	np := m.NumParams()
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	c := &checkpoint.Checkpoint{UNet: cfg, Diffusion: dc, Train: json.RawMessage(`{"data":"emoji"}`),
		Model: m.Weights(), EMA: m.Weights(), AdamM: make([]float32, np), AdamV: make([]float32, np)}
	if err := checkpoint.Save(path, c, m.Params()); err != nil {
		t.Fatal(err)
	}
	r := qualityJSON(t, "--model", path, "--n", "40", "--batch", "40", "--seed", "2")
	t.Logf("untrained RGB model: %+v\nfloor %+v\nmemorization %+v", r.Scores, r.Floor, r.Memorization)
	if r.Data != "emoji" || r.N != 40 || r.Net != "cnn32" {
		t.Errorf("report: data %q, n %d, net %q", r.Data, r.N, r.Net)
	}
	if r.FD < 2*r.Floor.FD || r.Memorization == nil || r.Memorization.Images.NearCopies != 0 {
		t.Errorf("untrained model: FD %.3f (floor %.3f), memorization %+v", r.FD, r.Floor.FD, r.Memorization)
	}
}
