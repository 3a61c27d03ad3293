package ddpm_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// TestLoadDataAsTrained: a model trained on a folder with --resize reads
// its training data back as training did (centre crop, area filter), not
// with the lenient resampling other folder reads use.
func TestLoadDataAsTrained(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 3 {
		img := image.NewRGBA(image.Rect(0, 0, 40, 24))
		for k := range img.Pix {
			img.Pix[k] = uint8(rng.IntN(256))
		}
		for k := 3; k < len(img.Pix); k += 4 {
			img.Pix[k] = 255
		}
		img.Set(0, 0, color.RGBA{255, 0, 0, 255})
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))+".png"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := unet.ConfigByName("tiny")
	if err != nil {
		t.Fatal(err)
	}
	net, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	spec := "folder:" + dir
	model := filepath.Join(t.TempDir(), "m.safetensors")
	train := `{"data":"` + spec + `","strict_fit":true,"resize":true}`
	if err := checkpoint.SaveWeights(model, net, diffusion.DefaultConfig(), false, map[string]string{"train": train}); err != nil {
		t.Fatal(err)
	}
	p, err := ddpm.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	strict, err := data.Load(spec, "train", data.WithSize(cfg.Res), data.WithChannels(3), data.Strict(true, false))
	if err != nil {
		t.Fatal(err)
	}
	lenient, err := data.Load(spec, "train", data.WithSize(cfg.Res), data.WithChannels(3))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(strict.Pixels, lenient.Pixels) {
		t.Fatal("the fixture does not tell the two resamplings apart")
	}
	for _, s := range []string{"", spec} {
		ds, got, err := p.LoadData(s, "train")
		if err != nil {
			t.Fatal(err)
		}
		if got != spec || !bytes.Equal(ds.Pixels, strict.Pixels) {
			t.Errorf("LoadData(%q): spec %q, pixels as training read them: %v", s, got, bytes.Equal(ds.Pixels, strict.Pixels))
		}
	}
}
