package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

func TestInterpolateCommand(t *testing.T) {
	model := expModel(t, diffusion.FixedSmall)
	dir := t.TempDir()
	fig := filepath.Join(dir, "i.png")
	var out bytes.Buffer
	if err := interpolateCommand([]string{"--model", model, "--data", "mnist", "--a", "2", "--b", "5", "--t", "3,10",
		"--lambdas", "4", "--json", "--quiet", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Rows    []interpRow `json:"rows"`
		Lambdas []float64   `json:"lambdas"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(r.Rows) != 2 || r.Rows[0].T != 3 || r.Rows[1].T != 10 || len(r.Lambdas) != 5 {
		t.Fatalf("rows %+v, λ %v", r.Rows, r.Lambdas)
	}
	// Grid: pixel row + 2 latent rows; source, 5 λ, source.
	if w, h := pngSize(t, fig); w != 2*(7*32+6*2) || h != 2*(3*32+2*2) {
		t.Errorf("grid %d×%d", w, h)
	}

	// PNG sources of another size and in colour are fitted to the model.
	mk := func(name string, c color.Color, w, h int) string {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.Set(x, y, c)
			}
		}
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		return p
	}
	white, black := mk("w.png", color.White, 50, 40), mk("b.png", color.Black, 20, 30)
	x, err := loadSourceImage(white, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range x {
		if v != 1 {
			t.Fatalf("white source value %g", v)
		}
	}
	out.Reset()
	if err := interpolateCommand([]string{"--model", model, "--png-a", white, "--png-b", black, "--t", "1",
		"--json", "--quiet", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 1 || len(r.Lambdas) != 11 {
		t.Errorf("rows %+v, λ %v", r.Rows, r.Lambdas)
	}
	if _, err := loadSourceImage(filepath.Join(dir, "nothing.png"), 1, 32); err == nil {
		t.Error("missing file: no error")
	}
	bad := filepath.Join(dir, "bad.png")
	os.WriteFile(bad, []byte("\x89PNG\r\n\x1a\nnope"), 0o644)
	if _, err := loadSourceImage(bad, 3, 32); err == nil {
		t.Error("corrupt file: no error")
	}
}
