package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestPerT(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bpd.png")
	perT := []float64{2, 0.5, 0.1, 0, 1e-4, 1e-6}
	if err := PerT(path, "test", Curve{"a", perT}, Curve{"b", []float64{1, 1, 1}}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("image is %v", b)
	}
	if err := PerT(path, "empty", Curve{"a", []float64{0, -1}}); err == nil {
		t.Error("a curve with nothing positive plotted without error")
	}
}
