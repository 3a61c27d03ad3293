package main

import (
	"image"
	_ "image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Every command with an output flag refuses a bad path before it loads a
// model or starts its work: one line, exit status 2 for an extension the
// writer cannot make, 1 for a directory that is not there.
func TestOutputChecksFirst(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	model := filepath.Join(dir, "no-such-model") // never reached
	weights := filepath.Join(missing, "w.safetensors")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"schedule", "--out", filepath.Join(missing, "s.png")}, 1, "--out " + filepath.Join(missing, "s.png") + ": directory " + missing + " does not exist"},
		{[]string{"schedule", "--out", filepath.Join(dir, "s.jpg")}, 2, `unsupported image format ".jpg"; name a .png file`},
		{[]string{"autoregressive", "--out", filepath.Join(dir, "a.svg")}, 2, "name a .png file"},
		{[]string{"rd", "--model", model, "--out", filepath.Join(missing, "rd.png")}, 1, "directory " + missing + " does not exist"},
		{[]string{"rd", "--model", model, "--out", filepath.Join(dir, "rd")}, 2, "no file extension; name a .png file"},
		{[]string{"eval", "bpd", "--model", model, "--plot", filepath.Join(missing, "p.png")}, 1, "--plot"},
		{[]string{"eval", "bpd", "--model", model, "--plot", filepath.Join(dir, "p.jpeg")}, 2, "name a .png file"},
		{[]string{"eval", "quality", "--model", model, "--samples", filepath.Join(missing, "g.png")}, 1, "--samples"},
		{[]string{"eval", "quality", "--model", model, "--doubted", filepath.Join(dir, "d.gif")}, 2, "name a .png, .jpg or .jpeg file"},
		{[]string{"progressive", "--model", model, "--out", filepath.Join(missing, "p.png")}, 1, "does not exist"},
		{[]string{"progressive", "--model", model, "--out", filepath.Join(dir, "p.bmp")}, 2, "name a .png, .jpg or .jpeg file"},
		{[]string{"interpolate", "--model", model, "--out", filepath.Join(missing, "i.jpg")}, 1, "does not exist"},
		{[]string{"interpolate", "--model", model, "--out", dir}, 2, "name a .png, .jpg or .jpeg file"},
		{[]string{"ablation", "--out", filepath.Join(missing, "exp")}, 1, "directory " + missing + " does not exist"},
		{[]string{"classifier", "train", "--data", "mnist", "--out", weights}, 1, "directory " + missing + " does not exist"},
		{[]string{"export", "--model", model, "--out", weights}, 1, "directory " + missing + " does not exist"},
		{[]string{"export", "--model", model, "--out", dir}, 1, "is a directory"},
	} {
		start := time.Now()
		stderr := captureStderr(t, func() {
			code, _ := runCaptured(t, c.args...)
			if code != c.code {
				t.Errorf("%v: exit status %d, want %d", c.args, code, c.code)
			}
		})
		if !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v: stderr %q, want one line containing %q", c.args, stderr, c.want)
		}
		if strings.Contains(stderr, "no-such-model") {
			t.Errorf("%v: the model was looked for before the output was checked: %q", c.args, stderr)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("%v: refused after %s, not at once", c.args, el)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s was created", missing)
	}
}

// A grid named .jpg is written as JPEG.
func TestProgressiveJPEG(t *testing.T) {
	model := expModel(t, diffusion.FixedLarge)
	fig := filepath.Join(t.TempDir(), "p.jpg")
	if code, _ := runCaptured(t, "progressive", "--model", model, "--n", "1", "--cols", "2", "--quiet", "--out", fig); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	f, err := os.Open(fig)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, format, err := image.DecodeConfig(f); err != nil || format != "jpeg" {
		t.Errorf("%s is %q (%v), want jpeg", fig, format, err)
	}
}
