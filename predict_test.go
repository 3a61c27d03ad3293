package ddpm_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
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

// TestLoadHub: hf:org/name reads a hub repository from the huggingface_hub
// cache (offline here: HF_HUB_OFFLINE=1 over a cache laid out by hand),
// with .safetensors weights or .bin ones (old attention names, as the
// google/ddpm-* repositories hold them); a corrupt .bin, a repository not
// in the cache and a bad id are one line each.
func TestLoadHub(t *testing.T) {
	tiny := filepath.Join("..", "shared", "peers", "diffusers", "tiny")
	if _, err := os.Stat(tiny); err != nil {
		t.Skipf("diffusers fixtures absent: %v", err)
	}
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	t.Setenv("HF_HUB_OFFLINE", "1")
	const commit = "0123456789abcdef0123456789abcdef01234567"
	put := func(repo, file string, data []byte) {
		p := filepath.Join(cache, "models--test-org--"+repo, "snapshots", commit, file)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oldBin := filepath.Join(filepath.Dir(tiny), "tiny-old-bin")
	for repo, from := range map[string]string{"tiny": tiny, "tiny-bin": oldBin, "corrupt": tiny} {
		for _, f := range []string{"model_index.json", "unet/config.json", "scheduler/scheduler_config.json"} {
			b, err := os.ReadFile(filepath.Join(from, f))
			if err != nil {
				t.Fatal(err)
			}
			put(repo, f, b)
		}
		put(repo, "../../refs/main", []byte(commit))
	}
	w, _ := os.ReadFile(filepath.Join(tiny, "unet", "diffusion_pytorch_model.safetensors"))
	put("tiny", "unet/diffusion_pytorch_model.safetensors", w)
	w, _ = os.ReadFile(filepath.Join(oldBin, "unet", "diffusion_pytorch_model.bin"))
	put("tiny-bin", "unet/diffusion_pytorch_model.bin", w)
	put("corrupt", "unet/diffusion_pytorch_model.bin", []byte("PK\x03\x04"))

	for repo, expected := range map[string]string{"tiny": tiny, "tiny-bin": oldBin} {
		p, err := ddpm.Load("hf:test-org/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		if p.Source.Kind != ddpm.Diffusers || p.Source.Name != "hf:test-org/"+repo || p.Resolution() != 16 {
			t.Errorf("source %v", p.Source)
		}
		ts, _, _ := weights.Load(filepath.Join(expected, "expected.safetensors"))
		pr, err := p.PredictTensors(ts)
		if err != nil {
			t.Fatal(err)
		}
		var num, den float64
		for i, v := range ts["eps"].F32 {
			d := float64(pr["eps"].F32[i] - v)
			num, den = num+d*d, den+float64(v)*float64(v)
		}
		if e := math.Sqrt(num / den); !(e < 1e-4) {
			t.Errorf("%s: eps relative error %.3g", repo, e)
		}
	}
	for _, src := range []string{"hf:test-org/corrupt", "hf:test-org/absent", "hf:not a repo"} {
		_, err := ddpm.Load(src)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", src, err)
		} else {
			t.Logf("%s: %v", src, err)
		}
	}
	if _, err := ddpm.Load("hf:test-org/corrupt"); err == nil || !strings.Contains(err.Error(), ".bin") {
		t.Errorf("corrupt .bin: %v", err)
	}
}
