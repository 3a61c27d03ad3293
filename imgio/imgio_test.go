package imgio

import (
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestToByte(t *testing.T) {
	// Every pixel survives the data package's mapping p/127.5 − 1 and back.
	for p := 0; p < 256; p++ {
		if got := ToByte(float32(p)/127.5 - 1); got != uint8(p) {
			t.Errorf("pixel %d came back as %d", p, got)
		}
	}
	for v, want := range map[float32]uint8{-2: 0, 2: 255, 0: 128, -1: 0, 1: 255, float32(math.NaN()): 0, float32(math.Inf(1)): 255} {
		if got := ToByte(v); got != want {
			t.Errorf("ToByte(%v) = %d, want %d", v, got, want)
		}
	}
}

func TestSaveGridRoundTrip(t *testing.T) {
	dir := t.TempDir()
	// 5 RGB images of 3×2 in 2 columns → 3 rows.
	n, c, h, w := 5, 3, 3, 2
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(i%256)/127.5 - 1
	}
	path := filepath.Join(dir, "sub", "grid.png")
	if err := SaveGrid(path, x, n, c, h, w, 2); err != nil {
		t.Fatal(err)
	}
	img := readPNG(t, path)
	if b := img.Bounds(); b.Dx() != 2*w+Pad || b.Dy() != 3*h+2*Pad {
		t.Fatalf("grid is %v, want %d×%d", b, 2*w+Pad, 3*h+2*Pad)
	}
	for i := 0; i < n; i++ {
		ox, oy := (i%2)*(w+Pad), (i/2)*(h+Pad)
		for ch := 0; ch < c; ch++ {
			for y := 0; y < h; y++ {
				for xx := 0; xx < w; xx++ {
					r, g, b, _ := img.At(ox+xx, oy+y).RGBA()
					got := []uint32{r >> 8, g >> 8, b >> 8}[ch]
					if want := uint32(((i*c+ch)*h*w + y*w + xx) % 256); got != want {
						t.Fatalf("image %d channel %d (%d,%d) = %d, want %d", i, ch, xx, y, got, want)
					}
				}
			}
		}
	}
	// Padding and the empty sixth tile are white.
	if r, _, _, _ := img.At(w, 0).RGBA(); r>>8 != 255 {
		t.Errorf("gap pixel = %d", r>>8)
	}
	if r, _, _, _ := img.At(w+Pad, 2*(h+Pad)).RGBA(); r>>8 != 255 {
		t.Errorf("empty tile pixel = %d", r>>8)
	}
	// No temporary files are left behind.
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only grid.png", len(ents))
	}
}

func TestGridGrey(t *testing.T) {
	x := make([]float32, 10*4*4)
	for i := range x {
		x[i] = -1
	}
	img := GridImage(x, 10, 1, 4, 4, 0) // cols = ceil(√10) = 4, rows = 3
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("one channel gave %T, want *image.Gray", img)
	}
	if b := g.Bounds(); b.Dx() != 4*4+3*Pad || b.Dy() != 3*4+2*Pad {
		t.Errorf("grid is %v", b)
	}
	if g.GrayAt(0, 0).Y != 0 || g.GrayAt(4, 0).Y != 255 {
		t.Errorf("tile %d, gap %d", g.GrayAt(0, 0).Y, g.GrayAt(4, 0).Y)
	}
	if b := GridImage(x[:16], 1, 1, 4, 4, 8).Bounds(); b.Dx() != 4 || b.Dy() != 4 {
		t.Errorf("single image with cols=8: %v", b)
	}
}

func TestSaveEach(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "samples")
	n := 11
	x := make([]float32, n*4)
	for i := 0; i < n; i++ {
		for j := 0; j < 4; j++ {
			x[i*4+j] = float32(i*20)/127.5 - 1
		}
	}
	if err := SaveEach(dir, "s_", x, n, 1, 2, 2); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != n || ents[0].Name() != "s_00.png" || ents[10].Name() != "s_10.png" {
		t.Fatalf("files: %v %v", ents, err)
	}
	img := readPNG(t, filepath.Join(dir, "s_07.png")).(*image.Gray)
	if img.Bounds().Dx() != 2 || img.GrayAt(1, 1).Y != 140 {
		t.Errorf("s_07.png: %v, pixel %d", img.Bounds(), img.GrayAt(1, 1).Y)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "s_07.png")); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	x := make([]float32, 4)
	bad := filepath.Join(file, "grid.png") // parent is a regular file
	if err := SaveGrid(bad, x, 1, 1, 2, 2, 1); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("unwritable: err = %v, want it to name %s", err, bad)
	}
	if err := SaveEach(file, "p", x, 1, 1, 2, 2); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("SaveEach into a file: err = %v", err)
	}
	if err := SaveGrid(filepath.Join(dir, "g.png"), x, 1, 2, 2, 2, 1); err == nil {
		t.Error("wrong length accepted")
	}
	if err := SaveGrid(filepath.Join(dir, "g.png"), make([]float32, 8), 1, 2, 2, 2, 1); err == nil || !strings.Contains(err.Error(), "2-channel") {
		t.Errorf("2 channels: err = %v", err)
	}
	// A directory in the way of the final rename.
	os.Mkdir(filepath.Join(dir, "d.png"), 0o755)
	if err := SaveGrid(filepath.Join(dir, "d.png"), x, 1, 1, 2, 2, 1); err == nil {
		t.Error("rename over a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
