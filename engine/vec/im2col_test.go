package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestIm2col3x3 checks the kernel against the definition on every plane
// shape it takes (h·w ≤ 64, w ≤ 15), with gaps between the rows (ld > h·w)
// that must stay untouched, and that it declines the shapes it does not.
func TestIm2col3x3(t *testing.T) {
	if !useAVX512 {
		if Im2col3x3(make([]float32, 9*49), 49, make([]float32, 49), 1, 7, 7) {
			t.Fatal("Im2col3x3 claimed a plane without AVX-512")
		}
		t.Skip("no AVX-512: Im2col3x3 declines every shape (checked)")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const cin, gap = 3, 5
	sentinel := float32(math.NaN())
	for w := 1; w <= 15; w++ {
		for h := 1; h*w <= 64; h++ {
			hw, ld := h*w, h*w+gap
			x := randSlice(rng, cin*hw, 1)
			col := make([]float32, cin*9*ld)
			for i := range col {
				col[i] = sentinel
			}
			if !Im2col3x3(col, ld, x, cin, h, w) {
				t.Fatalf("%dx%d: declined", h, w)
			}
			for c := 0; c < cin; c++ {
				for tap := 0; tap < 9; tap++ {
					row := col[(c*9+tap)*ld:][:ld]
					for p := 0; p < hw; p++ {
						y, xx := p/w+tap/3-1, p%w+tap%3-1
						want := float32(0)
						if y >= 0 && y < h && xx >= 0 && xx < w {
							want = x[c*hw+y*w+xx]
						}
						if row[p] != want {
							t.Fatalf("%dx%d channel %d tap %d pixel %d: %v, want %v", h, w, c, tap, p, row[p], want)
						}
					}
					for p := hw; p < ld; p++ {
						if row[p] == row[p] { // not the NaN sentinel
							t.Fatalf("%dx%d channel %d tap %d: wrote past the plane at %d", h, w, c, tap, p)
						}
					}
				}
			}
		}
	}
	for _, s := range [][2]int{{9, 8}, {4, 16}, {1, 65}} { // 72 pixels; 16 columns; 65 pixels
		h, w := s[0], s[1]
		if Im2col3x3(make([]float32, 9*h*w), h*w, make([]float32, h*w), 1, h, w) {
			t.Fatalf("%dx%d: claimed a plane the kernel cannot hold", h, w)
		}
	}
}
