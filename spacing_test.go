package ddpm

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/interop"
	"github.com/ddpm-go/ddpm/weights"
)

// tinyDiffusersDir is the diffusers fixture pipeline, or a skip.
func tinyDiffusersDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "shared", "peers", "diffusers", "tiny")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("diffusers fixtures absent: %v", err)
	}
	return dir
}

// TestDiffusersSpacing: a diffusers model's samplers visit its scheduler's
// timesteps (DDPMScheduler's leading: 750, 500, 250, 0 for 4 of 1000
// steps) unless the sampler chooses its own spacing; other models keep
// the even spacing.
func TestDiffusersSpacing(t *testing.T) {
	p, err := Load(tinyDiffusersDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Spacing != diffusion.SpacingLeading || p.StepsOffset != 0 {
		t.Fatalf("spacing %v offset %d, want leading 0", p.Spacing, p.StepsOffset)
	}
	trailing := DDIM(4)
	trailing.Spacing = diffusion.SpacingTrailing
	cases := []struct {
		sampler diffusion.Sampler
		want    []int
	}{
		{DDIM(4), []int{750, 500, 250, 0}},
		{Respaced(4), []int{750, 500, 250, 0}},
		{trailing, []int{999, 749, 499, 249}},
		{diffusion.DDIM{Steps: 4, Spacing: diffusion.SpacingEven}, []int{999, 666, 333, 0}},
	}
	for _, c := range cases {
		var seen []int
		_, err := p.SampleTensor(context.Background(), 1, SampleOptions{Sampler: c.sampler,
			Observe: func(i int, _, _ []float32) { seen = append(seen, i) }})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seen, c.want) {
			t.Errorf("%v: visited %v, want %v", p.SamplerFor(c.sampler), seen, c.want)
		}
	}
	even, err := New(p.Net, p.ProcessConfig())
	if err != nil {
		t.Fatal(err)
	}
	if s := even.SamplerFor(DDIM(4)); s != DDIM(4) {
		t.Errorf("a model not from diffusers resolves DDIM(4) to %v", s)
	}
}

// TestShardedPipeline: a diffusers folder whose UNet weights are sharded
// samples the unsharded folder's images bit for bit.
func TestShardedPipeline(t *testing.T) {
	src := tinyDiffusersDir(t)
	dir := t.TempDir()
	for _, f := range []string{"model_index.json", "unet/config.json", "scheduler/scheduler_config.json"} {
		b, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(f)))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, filepath.FromSlash(f))), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sd, meta, err := weights.Load(filepath.Join(src, "unet", interop.SafetensorsWeights))
	if err != nil {
		t.Fatal(err)
	}
	files, err := interop.SaveSharded(filepath.Join(dir, "unet"), interop.SafetensorsWeights, sd, meta, 400_000)
	if err != nil || len(files) < 3 {
		t.Fatalf("sharding wrote %v, %v", files, err)
	}
	var imgs [2][]float32
	for k, path := range []string{src, dir} {
		p, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		x, err := p.SampleTensor(context.Background(), 2, SampleOptions{Sampler: DDIM(3), Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		imgs[k] = x.Data
	}
	if !slices.Equal(imgs[0], imgs[1]) {
		t.Error("the sharded pipeline samples other images than the unsharded one")
	}
}
