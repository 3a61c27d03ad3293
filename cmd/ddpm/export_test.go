package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/pretrained"
	"github.com/ddpm-go/ddpm/weights"
)

// TestSampleShippedDefault is the README's first command, shortened: no
// --model samples the shipped MNIST model.
func TestSampleShippedDefault(t *testing.T) {
	out := filepath.Join(t.TempDir(), "samples.png")
	if code := run([]string{"sample", "--sampler", "ddim", "--steps", "5", "--n", "4", "--cols", "2", "--quiet", "--out", out}); code != 0 {
		t.Fatalf("ddpm sample exited %d", code)
	}
	if w, h := pngSize(t, out); w < 2*28 || h < 2*28 || w > 2*32 || h > 2*32 {
		t.Errorf("grid is %d×%d, want 2×2 images of 28×28 (with borders)", w, h)
	}
}

// TestExport: the exported file holds the run's EMA weights (or raw with
// --raw), loads as a model with the same weights, and keeps the training
// options so the data set is still known; float16 rounds each weight by at
// most 2^-11 relative. A weights file exports again unchanged.
func TestExport(t *testing.T) {
	run1 := trainTinyRun(t)
	want, _, err := checkpoint.LoadModel(run1, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := checkpoint.LoadModel(run1, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		wantW  []float32
		relTol float64
	}{
		{"ema", nil, want.Weights(), 0},
		{"raw", []string{"--raw"}, raw.Weights(), 0},
		{"half", []string{"--half"}, want.Weights(), 1.0 / 2048},
	} {
		out := filepath.Join(dir, tc.name+".safetensors")
		if code := run(append([]string{"export", "--model", run1, "--out", out}, tc.args...)); code != 0 {
			t.Fatalf("%s: ddpm export exited %d", tc.name, code)
		}
		m, _, err := checkpoint.LoadModel(out, false, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, w := range m.Weights() {
			if d := math.Abs(float64(w - tc.wantW[i])); d > tc.relTol*math.Abs(float64(tc.wantW[i]))+1e-7 {
				t.Fatalf("%s: weight %d = %g, want %g", tc.name, i, w, tc.wantW[i])
			}
		}
		p, err := ddpm.Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if spec, err := p.TrainingData(); err != nil || spec != "mnist" {
			t.Errorf("%s: data spec %q, %v; want mnist", tc.name, spec, err)
		}
		if _, meta, err := weights.Load(out); err != nil || meta["step"] != "2" {
			t.Errorf("%s: step %q, %v; want 2", tc.name, meta["step"], err)
		}
	}
	for _, args := range [][]string{
		{"export"},
		{"export", "--model", run1},
		{"export", "--model", filepath.Join(dir, "ema.safetensors"), "--raw", "--out", filepath.Join(dir, "x.safetensors")}, // no raw weights
	} {
		if code := run(args); code == 0 {
			t.Errorf("%v: exit 0, want an error", args)
		}
	}
	// A weights file is written again, with its metadata: float16 to float16 changes no byte.
	half, again := filepath.Join(dir, "half.safetensors"), filepath.Join(dir, "again.safetensors")
	if code := run([]string{"export", "--model", half, "--half", "--out", again}); code != 0 {
		t.Fatalf("ddpm export of a weights file exited %d", code)
	}
	a, errA := os.ReadFile(half)
	b, errB := os.ReadFile(again)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		t.Errorf("re-exported float16 file differs from its source (%v, %v)", errA, errB)
	}
}

// TestTrainInit: --init starts a run from a model's weights (here the
// shipped one; one step at a negligible learning rate keeps them), records
// it, and refuses a model of another network.
func TestTrainInit(t *testing.T) {
	meta, err := pretrained.Metadata("mnist")
	if err != nil {
		t.Fatal(err)
	}
	var opts struct{ Config string }
	if err := json.Unmarshal([]byte(meta["train"]), &opts); err != nil || opts.Config == "" {
		t.Fatalf("shipped model's training options %q: %v", meta["train"], err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	if code := run([]string{"train", "--data", "mnist", "--config", opts.Config, "--init", "mnist", "--steps", "1",
		"--batch", "2", "--lr", "1e-9", "--quiet", "--out", dir}); code != 0 {
		t.Fatalf("ddpm train --init exited %d", code)
	}
	got, _, err := checkpoint.LoadModel(dir, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := ddpm.Load("mnist")
	if err != nil {
		t.Fatal(err)
	}
	want := wp.Net
	for i, w := range got.Weights() {
		if d := math.Abs(float64(w - want.Weights()[i])); d > 1e-6 {
			t.Fatalf("weight %d = %g, the shipped model's is %g", i, w, want.Weights()[i])
		}
	}
	if _, meta, err := weights.Load(checkpoint.Path(dir)); err != nil || !strings.Contains(meta["train"], `"init":"mnist"`) {
		t.Errorf("training options %q (%v) do not record the init", meta["train"], err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if code := run([]string{"train", "--data", "mnist", "--config", "tiny1", "--init", "mnist", "--steps", "1", "--quiet", "--out", other}); code != 2 {
		t.Errorf("--init of another network: exit %d, want 2", code)
	}
	if code := run([]string{"train", "--resume", "--init", "fashion-mnist", "--steps", "2", "--quiet", "--out", dir}); code != 2 {
		t.Errorf("--resume with another --init: exit %d, want 2", code)
	}
}
