package nn

import (
	"bytes"
	"github.com/ddpm-go/ddpm/engine/gemm"
	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
	"unsafe"
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
// register (vec.WinogradInputPlane, vec.WinogradOutputPlane). Several images
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

// winoMinPixels is the smallest plane the Winograd forward is used on: on a
// 7×7 plane (16 tiles) the transforms cost more than the multiplies saved
// (measured at batch 32 on two cores: 1.03 ms against the direct conv's
// 0.82 ms), while 14×14 gains 1.75×.
const winoMinPixels = 100

// winoBytes bounds the GEMM operands V and M of one batch of images
// (16·(Cin+Cout)·4 bytes per tile): near the L2 cache's size, so that the
// transforms' writes and the GEMMs' reads mostly stay on the core.
const winoBytes = 2 << 20 // measured on the mnist-fast U-Net: 1–2 MiB beat 256 KiB and 8 MiB

// winograd reports whether Forward uses the Winograd path on h×w planes.
func (l *Conv2d) winograd(h, w int) bool {
	return l.K == 3 && l.Stride == 1 && l.Pad == 1 && l.Cin >= winoMinC && l.Cout >= winoMinC &&
		h*w >= winoMinPixels && !DisableWinograd
}

// DisableWinograd turns the Winograd forward off (tests and benchmarks
// compare it with the direct conv).
var DisableWinograd bool

// winoFilterRows fills u [16, Cout, Cin] with U[ξ=4i+j][o][c] =
// (G g Gᵀ)[i][j] of each 3×3 filter g = W[o, c], for output channels
// [o0, o1).
func winoFilterRows(u, w []float32, cout, cin, o0, o1 int) {
	for o := o0; o < o1; o++ {
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

// winoFilterCached brings l.winoU up to date with the weights. Sampling
// runs a thousand forward passes with the same weights, so the transform is
// redone only when they differ from the copy it was made from (one memory
// comparison, a tenth of the transform's cost), and then over the pool.
func (l *Conv2d) winoFilterCached() {
	w := l.Weight.W
	if len(l.winoW) == len(w) && bytes.Equal(f32Bytes(l.winoW), f32Bytes(w)) {
		return
	}
	cin, cout := l.Cin, l.Cout
	l.winoU = grow(l.winoU, 16*cout*cin)
	l.winoW = append(l.winoW[:0], w...)
	parallel.For(cout, func(lo, hi int) { winoFilterRows(l.winoU, w, cout, cin, lo, hi) })
}

func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

// winoSlot is one batch range's Winograd scratch: the GEMM operands
// V [16][Cin, ld] and results M [16][Cout, ld] (planes sv and sm apart).
type winoSlot struct {
	v, m []float32
}

// forwardWinograd is ForwardBias for a layer with winograd(h, w) true.
func (l *Conv2d) forwardWinograd(out, in, extra []float32, n, h, w int) {
	cin, cout := l.Cin, l.Cout
	l.winoFilterCached()
	th, tw := (h+1)/2, (w+1)/2
	per := th * tw // GEMM columns (tiles) of one image
	chunk := max(1, winoBytes/(64*per*(cin+cout)))
	l.eachSlotForward(n, func(s *convSlot, lo, hi int) {
		ws := &s.wino
		for i0 := lo; i0 < hi; i0 += chunk {
			i1 := min(hi, i0+chunk)
			N := (i1 - i0) * per
			// The GEMMs run over Np ≥ N columns (see gemmWidth); the 16
			// planes are not a multiple of 512 bytes apart either.
			Np, ld := gemmWidth(N)
			sv, sm := cin*ld+16, cout*ld+16 // plane strides of V and M
			ws.v = grow(ws.v, 16*sv)
			ws.m = grow(ws.m, 16*sm)
			for i := i0; i < i1; i++ {
				off := (i - i0) * per
				for c := 0; c < cin; c++ {
					vec.WinogradInputPlane(ws.v[c*ld+off:], sv, in[(i*cin+c)*h*w:][:h*w], h, w)
				}
			}
			for xi := 0; xi < 16; xi++ {
				zeroColumns(ws.v[xi*sv:], cin, ld, N, Np)
			}
			for xi := 0; xi < 16; xi++ {
				gemm.Sgemm(false, false, cout, Np, cin, 1, l.winoU[xi*cout*cin:], cin,
					ws.v[xi*sv:], ld, 0, ws.m[xi*sm:], ld)
			}
			for i := i0; i < i1; i++ {
				off := (i - i0) * per
				for o := 0; o < cout; o++ {
					vec.WinogradOutputPlane(out[(i*cout+o)*h*w:][:h*w], h, w, ws.m[o*ld+off:], sm, l.outBias(extra, i, o))
				}
			}
		}
	})
}
