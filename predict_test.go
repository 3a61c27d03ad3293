package ddpm_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/weights"
)

// TestLoadDiffusers: a diffusers pipeline folder (the peer fixture) loads
// as a Diffusers source, its process from scheduler_config.json, and
// Predict gives diffusers' ε (0-based timesteps) within 1e-4.
func TestLoadDiffusers(t *testing.T) {
	dir := filepath.Join("..", "shared", "peers", "diffusers", "tiny")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("diffusers fixtures absent: %v", err)
	}
	p, err := ddpm.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source.Kind != ddpm.Diffusers || p.T() != 1000 || p.Resolution() != 16 || p.Channels() != 3 {
		t.Errorf("source %v, T %d, %d×%d×%d", p.Source, p.T(), p.Channels(), p.Resolution(), p.Resolution())
	}
	ts, _, err := weights.Load(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	x := &ddpm.Tensor{Data: ts["x"].F32, N: 2, C: 3, H: 16, W: 16}
	for k := range 2 {
		steps := []int{int(ts["t"].I64[2*k]), int(ts["t"].I64[2*k+1])}
		pr, err := p.Predict(x, steps)
		if err != nil {
			t.Fatal(err)
		}
		want := ts["eps"].F32[k*len(x.Data) : (k+1)*len(x.Data)]
		var num, den float64
		for i, v := range want {
			d := float64(pr.Eps.Data[i] - v)
			num, den = num+d*d, den+float64(v)*float64(v)
		}
		if e := math.Sqrt(num / den); !(e < 1e-4) {
			t.Errorf("case %d (t = %v): eps relative error %.3g", k, steps, e)
		}
	}
	if _, err := p.Predict(x, []int{0, 1000}); !errors.Is(err, ddpm.ErrInvalidOption) {
		t.Errorf("t = 1000: %v", err)
	}
	if _, err := ddpm.Load(dir, ddpm.RawWeights()); !errors.Is(err, ddpm.ErrInvalidOption) {
		t.Errorf("raw weights of a diffusers model: %v", err)
	}
}
