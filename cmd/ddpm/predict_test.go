package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/weights"
)

// tinyDiffusers is the diffusers fixture pipeline (shared/peers/diffusers/
// tiny): a UNet2DModel and DDPMScheduler saved by diffusers, with the
// network's ε on expected.safetensors' x and t.
func tinyDiffusers(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", "peers", "diffusers", "tiny")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("diffusers fixtures absent: %v", err)
	}
	return dir
}

// relErr32 is ‖a−b‖₂/‖b‖₂.
func relErr32(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// TestPredictDiffusers: `ddpm predict` with the diffusers fixture folder as
// --model reads its expected.safetensors as it is (t [2, 2] int64) and
// writes diffusers' ε within 1e-4, and the x̂0 it implies; the same
// folder exported with `ddpm export --format diffusers` predicts the same
// bit for bit.
func TestPredictDiffusers(t *testing.T) {
	model := tinyDiffusers(t)
	in := filepath.Join(model, "expected.safetensors")
	dir := t.TempDir()
	out := filepath.Join(dir, "pred.safetensors")
	if code := run([]string{"predict", "--model", model, "--in", in, "--out", out}); code != 0 {
		t.Fatalf("ddpm predict exited %d", code)
	}
	want, _, err := weights.Load(in)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := weights.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	eps, x0 := got["eps"], got["x0"]
	if !slices.Equal(eps.Shape, []int{2, 2, 3, 16, 16}) || !slices.Equal(x0.Shape, eps.Shape) {
		t.Fatalf("eps %v, x0 %v; want [2 2 3 16 16]", eps.Shape, x0.Shape)
	}
	per := len(eps.F32) / 2
	for k := range 2 {
		e := relErr32(eps.F32[k*per:(k+1)*per], want["eps"].F32[k*per:(k+1)*per])
		t.Logf("case %d: eps relative error %.3g", k, e)
		if !(e < 1e-4) {
			t.Errorf("case %d: eps relative error %.3g", k, e)
		}
	}
	// x̂0 = (x − √(1−ᾱ) ε)/√ᾱ with the linear schedule's ᾱ at t = 537
	// (case 0, image 1).
	ab := 1.0
	for i := 0; i <= 537; i++ {
		ab *= 1 - (1e-4 + float64(i)*(0.02-1e-4)/999)
	}
	img := 3 * 16 * 16
	for j := range img {
		x, e := float64(want["x"].F32[img+j]), float64(eps.F32[img+j])
		if w := (x - math.Sqrt(1-ab)*e) / math.Sqrt(ab); math.Abs(float64(x0.F32[img+j])-w) > 1e-4*math.Max(1, math.Abs(w)) {
			t.Fatalf("x0[%d] = %g, want %g", j, x0.F32[img+j], w)
		}
	}

	// Export and predict again: bit-identical.
	pipe := filepath.Join(dir, "pipe")
	if code := run([]string{"export", "--format", "diffusers", "--model", model, "--out", pipe}); code != 0 {
		t.Fatalf("ddpm export --format diffusers exited %d", code)
	}
	for _, f := range []string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"} {
		if _, err := os.Stat(filepath.Join(pipe, f)); err != nil {
			t.Errorf("export: %v", err)
		}
	}
	out2 := filepath.Join(dir, "pred2.safetensors")
	if code := run([]string{"predict", "--model", pipe, "--in", in, "--out", out2}); code != 0 {
		t.Fatalf("ddpm predict on the export exited %d", code)
	}
	again, _, _ := weights.Load(out2)
	if !slices.Equal(again["eps"].F32, eps.F32) {
		t.Error("the exported pipeline predicts differently")
	}

	// Usage errors: missing flags, an input without t, timesteps for
	// another batch; the shipped MNIST network's per-level depth has no
	// UNet2DModel equivalent.
	bad := filepath.Join(dir, "bad.safetensors")
	weights.Save(bad, map[string]weights.Tensor{"x": want["x"]}, nil)
	badT := filepath.Join(dir, "badt.safetensors")
	weights.Save(badT, map[string]weights.Tensor{"x": want["x"], "t": {DType: "I64", Shape: []int{3}, I64: []int64{1, 2, 3}}}, nil)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"predict", "--model", model, "--in", in}, 2},
		{[]string{"predict", "--model", model, "--in", bad, "--out", out}, 2},
		{[]string{"predict", "--model", model, "--in", badT, "--out", out}, 2},
		{[]string{"export", "--format", "diffusers", "--model", "mnist", "--out", filepath.Join(dir, "m")}, 1},
		{[]string{"export", "--format", "onnx", "--model", model, "--out", filepath.Join(dir, "m")}, 2},
	} {
		if code := run(c.args); code != c.code {
			t.Errorf("%v: exit %d, want %d", c.args, code, c.code)
		}
	}
}
