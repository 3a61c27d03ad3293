package imgio

import (
	"errors"
	"image"
	"image/jpeg"
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
	path := filepath.Join(dir, "grid.png")
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
	if err != nil || len(ents) != n || ents[0].Name() != "s_01.png" || ents[10].Name() != "s_11.png" {
		t.Fatalf("files: %v %v", ents, err)
	}
	img := readPNG(t, filepath.Join(dir, "s_08.png")).(*image.Gray) // image 7
	if img.Bounds().Dx() != 2 || img.GrayAt(1, 1).Y != 140 {
		t.Errorf("s_08.png: %v, pixel %d", img.Bounds(), img.GrayAt(1, 1).Y)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "s_08.png")); fi.Mode().Perm() != 0o644 {
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

func TestEachName(t *testing.T) {
	for _, c := range []struct {
		i, n int
		want string
	}{
		{0, 1, "sample-1.png"}, {8, 9, "sample-9.png"}, {0, 10, "sample-01.png"}, {9, 10, "sample-10.png"},
		{0, 1000, "sample-0001.png"}, {999, 1000, "sample-1000.png"}, {41, 1001, "sample-0042.png"},
	} {
		if got := EachName("sample-", c.i, c.n); got != c.want {
			t.Errorf("EachName(%d, %d) = %s, want %s", c.i, c.n, got, c.want)
		}
	}
}

// A missing directory is an error, not created: neither for a grid nor
// for SaveEach's parent.
func TestNoDirectoryCreated(t *testing.T) {
	dir := t.TempDir()
	x := make([]float32, 4)
	missing := filepath.Join(dir, "missing")
	err := SaveGrid(filepath.Join(missing, "g.png"), x, 1, 1, 2, 2, 1)
	if err == nil || !strings.Contains(err.Error(), "directory "+missing+" does not exist") {
		t.Errorf("grid in a missing directory: %v", err)
	}
	if err := SaveEach(filepath.Join(missing, "each"), "p", x, 1, 1, 2, 2); err == nil {
		t.Error("SaveEach created a directory two levels deep")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created", missing)
	}
}

func TestWriteImageFormats(t *testing.T) {
	dir := t.TempDir()
	n, c, h, w := 2, 3, 8, 8
	x := make([]float32, n*c*h*w)
	for i := range x {
		x[i] = float32(i%7)/3 - 1
	}
	for _, name := range []string{"g.jpg", "g.JPEG", "g.PNG"} {
		path := filepath.Join(dir, name)
		if err := SaveGrid(path, x, n, c, h, w, 0); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		_, format, err := image.Decode(f)
		f.Close()
		want := "jpeg"
		if strings.HasSuffix(name, ".PNG") {
			want = "png"
		}
		if err != nil || format != want {
			t.Errorf("%s decoded as %q (%v), want %s", name, format, err, want)
		}
	}
	// Grey JPEG: values survive within JPEG's error at quality 95.
	g := make([]float32, 16*16)
	for i := range g {
		g[i] = float32(i/16)/7.5 - 1 // rows 0..15 → pixels 0..255 in steps of 17
	}
	path := filepath.Join(dir, "grey.jpg")
	if err := SaveGrid(path, g, 1, 1, 16, 16, 1); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	img, err := jpeg.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for y := range 16 {
		r, _, _, _ := img.At(8, y).RGBA()
		if d := int(r>>8) - 17*y; d < -4 || d > 4 {
			t.Errorf("row %d: pixel %d, want %d ± 4", y, r>>8, 17*y)
		}
	}
	for _, bad := range []string{"g.gif", "g", "g.png.tmp"} {
		err := SaveGrid(filepath.Join(dir, bad), x, n, c, h, w, 0)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), ".png, .jpg or .jpeg") {
			t.Errorf("%s: err = %v, want ErrFormat naming the extensions", bad, err)
		}
	}
}

func TestCheckOutput(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	os.Mkdir(filepath.Join(dir, "d.png"), 0o755)
	for _, c := range []struct {
		path   string
		exts   []string
		want   string // "" for no error
		format bool   // the error wraps ErrFormat
	}{
		{filepath.Join(dir, "a.png"), nil, "", false},
		{filepath.Join(dir, "a.JPG"), nil, "", false},
		{filepath.Join(dir, "a.jpeg"), nil, "", false},
		{file, nil, "no file extension; name a .png, .jpg or .jpeg file", true},
		{filepath.Join(dir, "a.gif"), nil, `unsupported image format ".gif"; name a .png, .jpg or .jpeg file`, true},
		{filepath.Join(dir, "a.jpg"), []string{".png"}, `".jpg"; name a .png file`, true},
		{"", nil, "no file named", true},
		{"/nonexistent-ddpm-dir/x.png", nil, "/nonexistent-ddpm-dir/x.png: directory /nonexistent-ddpm-dir does not exist", false},
		{filepath.Join(file, "x.png"), nil, file + " is not a directory", false},
		{filepath.Join(dir, "d.png"), nil, "is a directory", false},
	} {
		err := CheckOutput(c.path, c.exts...)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("CheckOutput(%q): %v", c.path, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("CheckOutput(%q, %v) = %v, want it to say %q", c.path, c.exts, err, c.want)
		case c.want != "" && errors.Is(err, ErrFormat) != c.format:
			t.Errorf("CheckOutput(%q): errors.Is(ErrFormat) = %v", c.path, !c.format)
		}
	}
	if err := CheckFile(filepath.Join(dir, "w.safetensors")); err != nil {
		t.Errorf("CheckFile: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("the checks left files behind: %v", ents)
	}
}

func TestCheckOutputDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct{ dir, want string }{
		{dir, ""},
		{filepath.Join(dir, "new"), ""}, // created by SaveEach
		{filepath.Join(dir, "new") + "/", ""},
		{filepath.Join(dir, "a", "b"), "directory " + filepath.Join(dir, "a") + " does not exist"},
		{file, "is a file, not a directory"},
		{filepath.Join(file, "sub"), file + " is not a directory"},
		{"", "no directory named"},
	} {
		err := CheckOutputDir(c.dir)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckOutputDir(%q) = %v, want %q", c.dir, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Error("CheckOutputDir created the directory")
	}
}

func TestCheckUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into read-only directories")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(dir, 0o555)
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if err := CheckOutput(filepath.Join(dir, "x.png")); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("read-only directory: %v", err)
	}
	if err := CheckOutputDir(filepath.Join(dir, "sub")); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("new directory in a read-only one: %v", err)
	}
	if err := CheckOutputDir(dir); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Errorf("read-only directory: %v", err)
	}
}
