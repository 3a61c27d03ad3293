package data

import (
	"errors"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// rgbImage is a w×h RGBA picture whose pixel (x, y) is f(x, y).
func rgbImage(w, h int, f func(x, y int) color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetRGBA(x, y, f(x, y))
		}
	}
	return img
}

func greyImage(w, h int, f func(x, y int) uint8) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetGray(x, y, color.Gray{f(x, y)})
		}
	}
	return img
}

func solid(c color.RGBA) func(x, y int) color.RGBA { return func(int, int) color.RGBA { return c } }

// TestFolderStrict: under Strict, images that already fit load unchanged,
// and every kind of mismatch is refused with a *MismatchError naming the
// file, its size and colour and what was wanted, unless the conversion is
// allowed.
func TestFolderStrict(t *testing.T) {
	red := solid(color.RGBA{255, 0, 0, 255})
	ramp := func(x, y int) color.RGBA { v := uint8(10*x + y); return color.RGBA{v, v, v, 255} }
	type file struct {
		name string
		img  image.Image
	}
	cases := []struct {
		name            string
		files           []file
		size, ch        int
		resize, convert bool
		want            string // error substring; "" means success
		mixed, sz, col  bool   // the error's Mixed, SizeDiffers, ColourDiffers
		check           func(t *testing.T, d *Dataset)
	}{
		{name: "fits RGB", files: []file{{"a.png", rgbImage(4, 4, red)}}, size: 4, ch: 3,
			check: func(t *testing.T, d *Dataset) {
				if d.C != 3 || d.H != 4 || d.Image(0)[0] != 255 || d.Image(0)[16] != 0 {
					t.Errorf("got %d channels, first pixel (%d, %d)", d.C, d.Image(0)[0], d.Image(0)[16])
				}
			}},
		{name: "fits grey", files: []file{{"a.png", greyImage(4, 4, func(x, y int) uint8 { return uint8(x * y) })}}, size: 4, ch: 1,
			check: func(t *testing.T, d *Dataset) {
				if v := d.Image(0)[3*4+3]; v != 9 {
					t.Errorf("pixel (3, 3) = %d, want 9", v)
				}
			}},
		{name: "grey content stored as RGB fits a grey model", files: []file{{"a.png", rgbImage(4, 4, ramp)}}, size: 4, ch: 1,
			check: func(t *testing.T, d *Dataset) {
				if v := d.Image(0)[2*4+3]; v != 32 {
					t.Errorf("pixel (3, 2) = %d, want 32 unchanged", v)
				}
			}},
		{name: "colour into grey", files: []file{{"cat.png", rgbImage(4, 4, red)}}, size: 4, ch: 1,
			want: "cat.png is 4×4 RGB; want 4×4 grey", col: true},
		{name: "colour into grey converted", files: []file{{"cat.png", rgbImage(4, 4, red)}}, size: 4, ch: 1, convert: true,
			check: func(t *testing.T, d *Dataset) {
				if v := d.Image(0)[0]; v != 76 { // 0.299·255
					t.Errorf("grey of red = %d, want 76", v)
				}
			}},
		{name: "grey into RGB", files: []file{{"g.png", greyImage(4, 4, func(int, int) uint8 { return 7 })}}, size: 4, ch: 3,
			want: "g.png is 4×4 grey; want 4×4 RGB", col: true},
		{name: "grey into RGB converted", files: []file{{"g.png", greyImage(4, 4, func(int, int) uint8 { return 7 })}}, size: 4, ch: 3, convert: true,
			check: func(t *testing.T, d *Dataset) {
				for c := 0; c < 3; c++ {
					if v := d.Image(0)[c*16]; v != 7 {
						t.Errorf("channel %d = %d, want 7", c, v)
					}
				}
			}},
		{name: "grey content stored as RGB stays RGB", files: []file{{"a.png", rgbImage(4, 4, ramp)}}, size: 4, ch: 3},
		{name: "wrong size", files: []file{{"cat3.png", rgbImage(64, 48, red)}}, size: 32, ch: 1,
			want: "cat3.png is 64×48 RGB; want 32×32 grey", sz: true, col: true},
		{name: "wrong size, right colour", files: []file{{"a.png", rgbImage(8, 8, red)}}, size: 4, ch: 3,
			want: "a.png is 8×8 RGB; want 4×4 RGB", sz: true},
		{name: "mixed sizes", files: []file{{"a.png", rgbImage(4, 4, red)}, {"b.png", rgbImage(4, 4, red)}, {"c.png", rgbImage(6, 4, red)}},
			size: 4, ch: 3, want: "mixes image sizes: a.png is 4×4, c.png is 6×4; want 4×4", mixed: true, sz: true},
		{name: "mixed sizes resized", files: []file{{"a.png", rgbImage(4, 4, red)}, {"c.png", rgbImage(6, 4, red)}},
			size: 2, ch: 3, resize: true,
			check: func(t *testing.T, d *Dataset) {
				if d.N != 2 || d.H != 2 {
					t.Fatalf("got %d images of %d×%d", d.N, d.H, d.W)
				}
				for i := range 2 {
					if v := d.Image(i); v[0] != 255 || v[4] != 0 {
						t.Errorf("image %d: (%d, %d), want pure red", i, v[0], v[4])
					}
				}
			}},
		{name: "resize still checks colour", files: []file{{"a.png", rgbImage(8, 8, red)}}, size: 4, ch: 1, resize: true,
			want: "a.png is 8×8 RGB; want 4×4 grey", sz: true, col: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				writeImage(t, filepath.Join(dir, f.name), f.img)
			}
			d, err := Load("folder:"+dir, "", WithSize(tc.size), WithChannels(tc.ch), Strict(tc.resize, tc.convert))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.check != nil {
					tc.check(t, d)
				}
				return
			}
			var me *MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *MismatchError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "folder:"+dir) {
				t.Errorf("err = %q, want it to start with folder:%s and contain %q", err, dir, tc.want)
			}
			if me.Mixed() != tc.mixed || me.SizeDiffers() != tc.sz || me.ColourDiffers() != tc.col {
				t.Errorf("mixed %v, size differs %v, colour differs %v; want %v, %v, %v",
					me.Mixed(), me.SizeDiffers(), me.ColourDiffers(), tc.mixed, tc.sz, tc.col)
			}
		})
	}
}

// TestFolderAreaResize checks the box filter against averages computed by
// hand: a 16×12 picture is cropped to its centred 12×12 square, then each
// output pixel of a 4×4 result is the mean of a 3×3 block; enlarging 2×2
// to 4×4 repeats each pixel; a ratio that is not whole weighs the pixels
// it straddles by their coverage.
func TestFolderAreaResize(t *testing.T) {
	val := func(x, y int) uint8 { return uint8((7*x + 13*y) % 251) }
	cases := []struct {
		name    string
		w, h, s int
		want    func(x, y int) float64 // expected value before rounding
	}{
		{"shrink 3:1 after crop", 16, 12, 4, func(x, y int) float64 {
			sum := 0.0
			for dy := range 3 {
				for dx := range 3 {
					sum += float64(val(2+3*x+dx, 3*y+dy))
				}
			}
			return sum / 9
		}},
		{"enlarge 1:2", 2, 2, 4, func(x, y int) float64 { return float64(val(x/2, y/2)) }},
		{"shrink 3:2", 3, 3, 2, func(x, y int) float64 {
			// Output 0 covers source [0, 1.5): weights 2/3, 1/3; output 1 the rest.
			wt := [2][3]float64{{2.0 / 3, 1.0 / 3, 0}, {0, 1.0 / 3, 2.0 / 3}}
			sum := 0.0
			for sy := range 3 {
				for sx := range 3 {
					sum += wt[y][sy] * wt[x][sx] * float64(val(sx, sy))
				}
			}
			return sum
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeImage(t, filepath.Join(dir, "a.png"), rgbImage(tc.w, tc.h, func(x, y int) color.RGBA {
				v := val(x, y)
				return color.RGBA{v, 255 - v, v / 2, 255}
			}))
			d, err := Load("folder:"+dir, "", WithSize(tc.s), WithChannels(3), Strict(true, false))
			if err != nil {
				t.Fatal(err)
			}
			img, s := d.Image(0), tc.s
			for y := range s {
				for x := range s {
					w := tc.want(x, y)
					if got := float64(img[y*s+x]); math.Abs(got-w) > 0.5+1e-4 {
						t.Errorf("R(%d, %d) = %v, want %.3f", x, y, got, w)
					}
					if got := float64(img[s*s+y*s+x]); math.Abs(got-(255-w)) > 0.5+1e-4 {
						t.Errorf("G(%d, %d) = %v, want %.3f", x, y, got, 255-w)
					}
				}
			}
		})
	}
}

// TestBoxTaps: every output pixel's weights sum to 1, and shrinking uses
// every source pixel with total weight m/n.
func TestBoxTaps(t *testing.T) {
	for _, nm := range [][2]int{{1, 1}, {4, 2}, {3, 2}, {7, 3}, {2, 5}, {100, 32}, {28, 32}, {33, 7}} {
		n, m := nm[0], nm[1]
		per := make([]float64, n)
		for j, ts := range boxTaps(n, m) {
			sum := 0.0
			for _, tp := range ts {
				if tp.i < 0 || tp.i >= n || tp.w <= 0 {
					t.Fatalf("%d→%d: output %d has tap %+v", n, m, j, tp)
				}
				sum += float64(tp.w)
				per[tp.i] += float64(tp.w)
			}
			if math.Abs(sum-1) > 1e-6 {
				t.Errorf("%d→%d: output %d weights sum to %v", n, m, j, sum)
			}
		}
		for i, p := range per {
			if math.Abs(p-float64(m)/float64(n)) > 1e-5 {
				t.Errorf("%d→%d: source %d weighs %v in total, want %v", n, m, i, p, float64(m)/float64(n))
			}
		}
	}
}

// TestShape is the wording every mismatch message uses.
func TestShape(t *testing.T) {
	for _, tc := range []struct {
		w, h, c int
		want    string
	}{{32, 32, 1, "32×32 grey"}, {64, 48, 3, "64×48 RGB"}} {
		if got := Shape(tc.w, tc.h, tc.c); got != tc.want {
			t.Errorf("Shape(%d, %d, %d) = %q, want %q", tc.w, tc.h, tc.c, got, tc.want)
		}
	}
}
