package nn

import (
	"github.com/ddpm-go/ddpm/engine/gemm"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// Winograd F(2×2, 3×3) forward of a 3×3, stride-1, padding-1 conv (Lavin &
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//
// The GEMM core already runs near the CPU's peak, so the way to a faster
// conv is fewer multiplies. Each 2×2 block of output pixels depends on a
// 4×4 tile d of the (padded) input, and
//
//	Y = Aᵀ [ Σ_cin (G g Gᵀ) ⊙ (Bᵀ d B) ] A
//
// with the constant matrices below. The 16 elementwise products summed over
// input channels are 16 GEMMs U[ξ] [Cout, Cin] · V[ξ] [Cin, tiles]: 16
// multiplies per 4 outputs and channel pair instead of 36, 2.25× fewer.
// The transforms are adds and subtracts only. F(2×2, 3×3) is the variant
// whose float32 error stays at the level of a reordered sum (its transforms
// hold only 0, ±1 and ±½); larger tiles save more but lose digits.
//
// Layout. An h×w image has th·tw tiles (th = ⌈h/2⌉, tw = ⌈w/2⌉), one GEMM
// column each; the transforms run a tile row at a time, 16 tiles per SIMD
// register (vec.WinogradInputRow, vec.WinogradOutputRow). Several images
// share one set of GEMMs so that the small planes (7×7: 16 tiles) still
// make wide GEMMs.
//
//	Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//	G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//	Aᵀ = [1 1 1 0; 0 1 −1 −1]

// winoMinC is the fewest channels (in and out) for which the Winograd
// forward is used: with fewer, its GEMMs are too thin (conv_in has one input
// channel, conv_out one output channel) and the transforms dominate.
const winoMinC = 8

// winoTiles is about how many GEMM columns (tiles) one batch of images
// contributes to the 16 GEMMs: enough for wide GEMMs while V and M stay
// near the L2 cache.
const winoTiles = 1024

// winograd reports whether Forward uses the Winograd path.
func (l *Conv2d) winograd() bool {
	return l.K == 3 && l.Stride == 1 && l.Pad == 1 && l.Cin >= winoMinC && l.Cout >= winoMinC && !DisableWinograd
}

// DisableWinograd turns the Winograd forward off (tests and benchmarks
// compare it with the direct conv).
var DisableWinograd bool

// winoFilter fills u [16, Cout, Cin] with U[ξ=4i+j][o][c] = (G g Gᵀ)[i][j]
// of each 3×3 filter g = W[o, c].
func winoFilter(u, w []float32, cout, cin int) {
	for o := 0; o < cout; o++ {
		for c := 0; c < cin; c++ {
			g := w[(o*cin+c)*9:][:9]
			// t = G g (4×3), then U = t Gᵀ (4×4).
			var t [4][3]float32
			for k := 0; k < 3; k++ {
				g0, g1, g2 := g[k], g[3+k], g[6+k]
				t[0][k] = g0
				t[1][k] = 0.5 * (g0 + g1 + g2)
				t[2][k] = 0.5 * (g0 - g1 + g2)
				t[3][k] = g2
			}
			for i := 0; i < 4; i++ {
				r := t[i]
				row := [4]float32{r[0], 0.5 * (r[0] + r[1] + r[2]), 0.5 * (r[0] - r[1] + r[2]), r[2]}
				for j := 0; j < 4; j++ {
					u[((4*i+j)*cout+o)*cin+c] = row[j]
				}
			}
		}
	}
}

// winoSlot is one batch range's Winograd scratch: the GEMM operands
// V [16][Cin, ld] and results M [16][Cout, ld] (planes sv and sm apart).
type winoSlot struct {
	v, m []float32
}

// forwardWinograd is ForwardBias for a layer with winograd() true.
func (l *Conv2d) forwardWinograd(out, in, extra []float32, n, h, w int) {
	cin, cout := l.Cin, l.Cout
	l.winoU = grow(l.winoU, 16*cout*cin)
	winoFilter(l.winoU, l.Weight.W, cout, cin)
	th, tw := (h+1)/2, (w+1)/2
	per := th * tw // GEMM columns (tiles) of one image
	chunk := max(1, winoTiles/per)
	l.eachSlot(n, func(s *convSlot, lo, hi int) {
		ws := &s.wino
		for i0 := lo; i0 < hi; i0 += chunk {
			i1 := min(hi, i0+chunk)
			N := (i1 - i0) * per
			// Rows of V and M start on 64-byte lines (if the buffers do),
			// since the GEMM reads V in place and split lines cost double
			// loads; but neither the row stride nor the stride between the
			// 16 planes is a multiple of 512 bytes, whose rows or planes
			// would all fall into the same few L1 sets and evict each other.
			ld := (N + 15) &^ 15
			if ld%128 == 0 {
				ld += 16
			}
			sv, sm := cin*ld+16, cout*ld+16 // plane strides of V and M
			ws.v = grow(ws.v, 16*sv)
			ws.m = grow(ws.m, 16*sm)
			for i := i0; i < i1; i++ {
				off := (i - i0) * per
				for c := 0; c < cin; c++ {
					x := in[(i*cin+c)*h*w:][:h*w]
					for ty := 0; ty < th; ty++ {
						var rows [4][]float32
						for r := range rows {
							if y := 2*ty - 1 + r; y >= 0 && y < h {
								rows[r] = x[y*w : (y+1)*w]
							}
						}
						vec.WinogradInputRow(ws.v[c*ld+off+ty*tw:], sv, &rows, w)
					}
				}
			}
			for xi := 0; xi < 16; xi++ {
				gemm.Sgemm(false, false, cout, N, cin, 1, l.winoU[xi*cout*cin:], cin,
					ws.v[xi*sv:], ld, 0, ws.m[xi*sm:], ld)
			}
			for i := i0; i < i1; i++ {
				off := (i - i0) * per
				for o := 0; o < cout; o++ {
					b := l.Bias.W[o]
					if extra != nil {
						b += extra[i*cout+o]
					}
					y := out[(i*cout+o)*h*w:][:h*w]
					for ty := 0; ty < th; ty++ {
						var y1 []float32
						if 2*ty+1 < h {
							y1 = y[(2*ty+1)*w : (2*ty+2)*w]
						}
						vec.WinogradOutputRow(y[2*ty*w:(2*ty+1)*w], y1, ws.m[o*ld+off+ty*tw:], sm, b)
					}
				}
			}
		}
	})
}
