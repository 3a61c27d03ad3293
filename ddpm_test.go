package ddpm_test

import (
	"context"
	"errors"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
)

// TestLoadErrors: every bad source is one line that says what is wrong.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, source, want string
	}{
		{"text", write("notes.txt", []byte("just some text, long enough to be sniffed")), "not a safetensors checkpoint or weights file (it is of type text/plain)"},
		{"png", write("x.png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01")), "it is of type image/png"},
		{"zip", write("model.bin", []byte("PK\x03\x04 rest of a zip")), "a zip archive"},
		{"empty file", write("nothing.safetensors", nil), "an empty file"},
		{"empty dir", empty, "holds no checkpoint"},
		{"missing", filepath.Join(dir, "nope"), "no such file or directory (shipped models: "},
		{"empty name", "", "no model named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ddpm.Load(tc.source)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Load(%q) = %v, want one line containing %q", tc.source, err, tc.want)
			}
		})
	}
	if _, err := ddpm.Load("mnist", ddpm.RawWeights()); !errors.Is(err, ddpm.ErrInvalidOption) {
		t.Errorf("raw weights of a shipped model: %v, want ErrInvalidOption", err)
	}
}

// TestShadowing: a local folder named like a shipped model wins, and says so.
func TestShadowing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("mnist", 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := ddpm.Load("mnist")
	if err == nil || !strings.Contains(err.Error(), "hides the shipped model") {
		t.Fatalf("a local folder mnist: %v, want it read (and found empty)", err)
	}
	p, err := ddpm.Load("fashion-mnist")
	if err != nil || p.Source.Kind != ddpm.Shipped || p.Source.ShadowsShipped {
		t.Fatalf("fashion-mnist: %v, %+v", err, p.Source)
	}
}

// TestSampleMatchesGenerate: the pipeline samples what the diffusion
// package's batched loop draws with the documented seed stream, and the
// options reach the sampler.
func TestSampleMatchesGenerate(t *testing.T) {
	p, err := ddpm.Load("mnist")
	if err != nil {
		t.Fatal(err)
	}
	o := ddpm.SampleOptions{Sampler: ddpm.DDIM(3), Seed: 5, Batch: 2}
	calls := 0
	o.Progress = func(done, total int) {
		calls++
		if done != calls || total != p.Evaluations(3, o) || total != 2*3 {
			t.Fatalf("progress %d/%d after %d calls", done, total, calls)
		}
	}
	got, err := p.SampleTensor(context.Background(), 3, o)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.SampleTensor(context.Background(), 3, ddpm.SampleOptions{Sampler: ddpm.DDIM(3), Seed: 5, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	for k := range got.Data {
		if got.Data[k] != again.Data[k] {
			t.Fatal("the same seed gave other images")
		}
	}
	imgs := got.Images()
	if _, ok := imgs[0].(*image.Gray); !ok || len(imgs) != 3 || got.N != 3 || got.C != 1 {
		t.Errorf("images %T × %d, tensor %d×%d", imgs[0], len(imgs), got.N, got.C)
	}
	g := ddpm.Grid(imgs, 2)
	if b := g.Bounds(); b.Dx() != 2*28+2 || b.Dy() != 2*28+2 {
		t.Errorf("grid of 3 in 2 columns is %v", b)
	}
}

func TestSampleRefuses(t *testing.T) {
	p, err := ddpm.Load("mnist")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    int
		o    ddpm.SampleOptions
		want string
	}{
		{0, ddpm.SampleOptions{}, "must be ≥ 1"},
		{1, ddpm.SampleOptions{Sampler: ddpm.DDIM(0)}, "out of range"},
		{1, ddpm.SampleOptions{Sampler: ddpm.Respaced(5000)}, "out of range"},
		{1 << 40, ddpm.SampleOptions{}, "of memory"},
	} {
		_, err := p.Sample(context.Background(), tc.n, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Sample(%d, %v) = %v, want %q", tc.n, tc.o.Sampler, err, tc.want)
		}
	}
}

// TestFittedVariance: the shipped fit is used as it is, and described.
func TestFittedVariance(t *testing.T) {
	p, err := ddpm.Load("mnist", ddpm.WithVariance(diffusion.Fitted))
	if err != nil {
		t.Fatal(err)
	}
	if p.Process.Var != diffusion.Fitted || !strings.Contains(p.DescribeFit(), "shipped with mnist") {
		t.Errorf("var %v, %q", p.Process.Var, p.DescribeFit())
	}
	plain, _ := ddpm.Load("mnist")
	if plain.DescribeFit() != "" {
		t.Errorf("an unfitted pipeline describes a fit: %q", plain.DescribeFit())
	}
	if _, err := ddpm.Load("mnist", ddpm.WithFitFile(filepath.Join(t.TempDir(), "none.safetensors"))); err == nil {
		t.Error("a missing fit file loads")
	}
}
