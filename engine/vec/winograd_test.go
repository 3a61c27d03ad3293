package vec

import (
	"math/rand/v2"
	"testing"
)

// The Winograd row kernels must give exactly the portable code's bits at
// every width (one tile, the 16-tile lane boundary, several chunks, odd
// widths whose last tile is cut), with rows of padding anywhere, and must
// leave everything outside their outputs alone.
func TestWinogradRows(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 kernels on this machine: the portable code is all there is")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, w := range []int{1, 2, 3, 7, 14, 28, 31, 32, 33, 34, 64, 70} {
		for _, nilRow := range []int{-1, 0, 3} {
			tw := (w + 1) / 2
			ldv := tw + 5
			var rows [4][]float32
			for i := range rows {
				if i != nilRow {
					rows[i] = randSlice(rng, w, 1)
				}
			}
			got, want := randSlice(rng, 16*ldv, 1), make([]float32, 16*ldv)
			copy(want, got)
			winogradInputRow(got, ldv, &rows, w)
			winoInputRowGo(want, ldv, &rows, w)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("input w=%d nil row %d: v[%d] = %v, want %v", w, nilRow, i, got[i], want[i])
				}
			}

			m := randSlice(rng, 16*ldv, 1)
			for _, two := range []bool{true, false} {
				g0, g1 := randSlice(rng, w+3, 1), randSlice(rng, w+3, 1)
				w0, w1 := append([]float32(nil), g0...), append([]float32(nil), g1...)
				var y1, r1 []float32
				if two {
					y1, r1 = g1[:w], w1[:w]
				}
				winogradOutputRow(g0[:w], y1, m, ldv, 0.25)
				winoOutputRowGo(w0[:w], r1, m, ldv, 0.25)
				for i := range g0 {
					if g0[i] != w0[i] || g1[i] != w1[i] {
						t.Fatalf("output w=%d two=%v: pixel %d = %v, %v; want %v, %v", w, two, i, g0[i], g1[i], w0[i], w1[i])
					}
				}
			}
		}
	}
}

func TestLaneMask(t *testing.T) {
	for first := -20; first < 40; first++ {
		for w := 0; w < 40; w++ {
			var want uint16
			for l := 0; l < 16; l++ {
				if e := first + l; e >= 0 && e < w {
					want |= 1 << l
				}
			}
			if got := laneMask(first, w); got != want {
				t.Fatalf("laneMask(%d, %d) = %016b, want %016b", first, w, got, want)
			}
		}
	}
}

// The plane functions are the row functions over every tile row (checked
// here against the portable row code, padding rows above and below).
func TestWinogradPlanes(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, hw := range [][2]int{{1, 1}, {2, 3}, {7, 7}, {14, 14}, {3, 16}, {4, 15}, {16, 16}, {13, 9}, {28, 28}, {5, 33}, {9, 40}} {
		h, w := hw[0], hw[1]
		th, tw := (h+1)/2, (w+1)/2
		ld := th*tw + 3
		x := randSlice(rng, h*w, 1)
		got, want := make([]float32, 16*ld), make([]float32, 16*ld)
		WinogradInputPlane(got, ld, x, h, w)
		for ty := 0; ty < th; ty++ {
			rows := tileRows(x, h, w, ty)
			winoInputRowGo(want[ty*tw:], ld, &rows, w)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("input %dx%d: v[%d] = %v, want %v", h, w, i, got[i], want[i])
			}
		}
		m := randSlice(rng, 16*ld, 1)
		gy, wy := randSlice(rng, h*w, 1), make([]float32, h*w)
		WinogradOutputPlane(gy, h, w, m, ld, -0.5)
		for ty := 0; ty < th; ty++ {
			var y1 []float32
			if 2*ty+1 < h {
				y1 = wy[(2*ty+1)*w : (2*ty+2)*w]
			}
			winoOutputRowGo(wy[2*ty*w:(2*ty+1)*w], y1, m[ty*tw:], ld, -0.5)
		}
		for i := range gy {
			if gy[i] != wy[i] {
				t.Fatalf("output %dx%d: y[%d] = %v, want %v", h, w, i, gy[i], wy[i])
			}
		}
	}
}
