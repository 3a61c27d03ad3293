package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/engine/parallel"
)

// convRef is a direct float64 convolution (PyTorch's definition).
func convRef(l *Conv2d, in []float32, n, h, w int) []float64 {
	ho, wo := l.OutSize(h, w)
	k := l.K
	out := make([]float64, n*l.Cout*ho*wo)
	for b := 0; b < n; b++ {
		for co := 0; co < l.Cout; co++ {
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					s := float64(l.Bias.W[co])
					for ci := 0; ci < l.Cin; ci++ {
						for ky := 0; ky < k; ky++ {
							for kx := 0; kx < k; kx++ {
								iy, ix := oy*l.Stride-l.Pad+ky, ox*l.Stride-l.Pad+kx
								if iy < 0 || iy >= h || ix < 0 || ix >= w {
									continue
								}
								s += float64(l.Weight.W[((co*l.Cin+ci)*k+ky)*k+kx]) * float64(in[((b*l.Cin+ci)*h+iy)*w+ix])
							}
						}
					}
					out[((b*l.Cout+co)*ho+oy)*wo+ox] = s
				}
			}
		}
	}
	return out
}

var convCases = []struct {
	n, cin, cout, k, stride, pad, h, w int
}{
	{1, 2, 3, 3, 1, 1, 5, 7},
	{3, 3, 4, 3, 1, 1, 4, 4},
	{3, 3, 2, 3, 2, 1, 5, 7},
	{2, 2, 3, 3, 2, 1, 4, 4},
	{4, 3, 5, 1, 1, 0, 5, 7},     // pointwise: no im2col
	{2, 2, 3, 1, 2, 0, 5, 5},     // 1×1 stride 2 goes through im2col
	{2, 1, 2, 3, 1, 0, 6, 5},     // no padding
	{5, 2, 2, 3, 2, 2, 3, 3},     // padding wider than the image border
	{2, 4, 3, 3, 1, 1, 1, 1},     // 1×1 image: only the centre tap sees data
	{2, 2, 3, 3, 1, 2, 4, 5},     // stride 1, padding K−1: transposed padding 0
	{2, 2, 3, 1, 1, 1, 3, 3},     // 1×1 padded: backward falls back to col2im
	{3, 3, 2, 5, 1, 2, 6, 7},     // 5×5 kernel
	{1, 2, 3, 3, 1, 1, 70, 20},   // im2col in blocks of rows (last one partial)
	{2, 2, 2, 3, 2, 1, 80, 72},   // strided, in blocks
	{2, 24, 3, 3, 1, 1, 6, 5},    // Cin·K ≥ 64: Forward by kernel rows
	{1, 22, 2, 3, 1, 1, 60, 20},  // by kernel rows, in blocks (last one partial)
	{1, 13, 2, 5, 1, 2, 9, 8},    // by kernel rows, 5×5
	{2, 22, 24, 3, 1, 1, 7, 10},  // input gradient by kernel rows too
	{3, 24, 22, 3, 1, 1, 60, 24}, // both, in blocks
	// Small planes: several images per GEMM (forwardGrouped), in groups of
	// 11 at 7×7, the last group of a slot partial.
	{25, 5, 6, 3, 1, 1, 7, 7},
	{25, 4, 3, 1, 1, 0, 7, 7},   // pointwise: the images' pixels copied
	{25, 3, 4, 3, 2, 1, 14, 13}, // strided, 7×7 output
	// Winograd forward (3×3, stride 1, padding 1, ≥ 8 channels each way):
	{2, 8, 9, 3, 1, 1, 28, 28}, // even size
	{3, 9, 8, 3, 1, 1, 7, 5},   // odd sizes: the last tile row and column are cut
	{2, 8, 8, 3, 1, 1, 1, 1},   // one pixel
	{2, 8, 10, 3, 1, 1, 2, 3},  // one tile row
	{30, 12, 8, 3, 1, 1, 7, 7}, // 25 images per GEMM batch: two batches per slot
	{1, 8, 8, 3, 1, 1, 64, 40}, // an image wider than a GEMM batch
	{2, 8, 9, 3, 1, 1, 13, 14}, // F(4×4, 3×3): cut last tiles
	{9, 8, 9, 3, 1, 1, 7, 7},   // F(4×4, 3×3) on narrow planes: four images a call, the last call partial
}

func TestConv2d(t *testing.T) {
	for ci, tc := range convCases {
		t.Run(fmt.Sprintf("n%d_%dto%d_k%d_s%d_p%d_%dx%d", tc.n, tc.cin, tc.cout, tc.k, tc.stride, tc.pad, tc.h, tc.w), func(t *testing.T) {
			rng := newRNG(uint64(ci))
			l := NewConv2d(tc.cin, tc.cout, tc.k, tc.stride, tc.pad)
			checkConv(t, rng, l, tc)
		})
	}
}

// TestConv2dPadded: asymmetric padding (NewConv2dPadded) against the direct
// convolution, forward and backward, on every path it can take: TF "SAME"
// downsampling (3×3, stride 2, padding (0, 1)) on whole even images (its
// own lowering), in row blocks, on small planes grouped several images per
// GEMM, on odd sizes, and stride-1 layers (no Winograd, no row taps).
func TestConv2dPadded(t *testing.T) {
	for ci, tc := range []struct {
		n, cin, cout, k, stride, pad, h, w, padEnd int
	}{
		{2, 3, 4, 3, 2, 0, 8, 8, 1},    // the U-Net's asymmetric Downsample
		{3, 2, 3, 3, 2, 0, 16, 12, 1},  // non-square
		{25, 3, 4, 3, 2, 0, 14, 14, 1}, // 7×7 output: several images per GEMM
		{2, 2, 2, 3, 2, 0, 80, 72, 1},  // in row blocks
		{2, 2, 3, 3, 2, 0, 7, 9, 1},    // odd sizes: the general lowering
		{2, 9, 8, 3, 1, 0, 10, 10, 2},  // stride 1, "same" by (0, 2): no Winograd
		{2, 24, 8, 3, 1, 1, 6, 7, 2},   // stride 1, Cin·K ≥ 64: no row taps
		{2, 8, 8, 3, 2, 1, 8, 8, 2},    // (1, 2)
	} {
		t.Run(fmt.Sprintf("n%d_%dto%d_k%d_s%d_p%d,%d_%dx%d", tc.n, tc.cin, tc.cout, tc.k, tc.stride, tc.pad, tc.padEnd, tc.h, tc.w), func(t *testing.T) {
			rng := newRNG(uint64(500 + ci))
			l := NewConv2dPadded(tc.cin, tc.cout, tc.k, tc.stride, tc.pad, tc.padEnd)
			if ho, wo := l.OutSize(tc.h, tc.w); ho != (tc.h+tc.pad+tc.padEnd-tc.k)/tc.stride+1 || wo != (tc.w+tc.pad+tc.padEnd-tc.k)/tc.stride+1 {
				t.Fatalf("OutSize %d×%d", ho, wo)
			}
			checkConv(t, rng, l, struct{ n, cin, cout, k, stride, pad, h, w int }{tc.n, tc.cin, tc.cout, tc.k, tc.stride, tc.pad, tc.h, tc.w})
		})
	}
	// The U-Net's case equals an explicit F.pad(x, (0, 1, 0, 1)) and an
	// unpadded conv.
	rng := newRNG(99)
	const n, c, h = 2, 5, 8
	l := NewConv2dPadded(c, c, 3, 2, 0, 1)
	bindRandom(rng, l.Params(), 0.5)
	in := randn(rng, n*c*h*h, 1)
	out := make([]float32, n*c*(h/2)*(h/2))
	l.Forward(out, in, n, h, h)
	padded := make([]float32, n*c*(h+1)*(h+1))
	for i := 0; i < n*c; i++ {
		for y := 0; y < h; y++ {
			copy(padded[(i*(h+1)+y)*(h+1):][:h], in[(i*h+y)*h:][:h])
		}
	}
	l0 := NewConv2d(c, c, 3, 2, 0)
	Bind(l0.Params(), append(l.Weight.W[:len(l.Weight.W):len(l.Weight.W)], l.Bias.W...), make([]float32, len(l.Weight.W)+c))
	if ho, _ := l0.OutSize(h+1, h+1); ho != h/2 {
		t.Fatalf("padded OutSize %d", ho)
	}
	ref := make([]float32, len(out))
	l0.Forward(ref, padded, n, h+1, h+1)
	for i := range out {
		if d := abs32(out[i] - ref[i]); d > 1e-5 {
			t.Fatalf("output %d: %g, explicit padding gives %g", i, out[i], ref[i])
		}
	}
}

// checkConv checks l's Forward against the direct convolution and its
// Backward against central differences, accumulation and
// BackwardAccumulate.
func checkConv(t *testing.T, rng *rand.Rand, l *Conv2d, tc struct{ n, cin, cout, k, stride, pad, h, w int }) {
	bindRandom(rng, l.Params(), 0.5)
	ho, wo := l.OutSize(tc.h, tc.w)
	in := randn(rng, tc.n*tc.cin*tc.h*tc.w, 1)
	out := make([]float32, tc.n*tc.cout*ho*wo)

	l.Forward(out, in, tc.n, tc.h, tc.w)
	// Relative to the outputs' size: float32 sums of 24·9 products
	// of the Winograd transforms' magnitudes lose a few more digits
	// than the plain dot products.
	ref := convRef(l, in, tc.n, tc.h, tc.w)
	scale := 1.0
	for _, v := range ref {
		scale = max(scale, math.Abs(v))
	}
	if d := maxAbsDiff(out, ref); d > 1e-5*scale {
		t.Fatalf("forward differs from direct convolution by %g (outputs up to %g)", d, scale)
	}

	g := randn(rng, len(out), 1)
	dIn := randn(rng, len(in), 1) // garbage: Backward must overwrite it
	l.Backward(dIn, g, in, tc.n, tc.h, tc.w)
	loss := func() float64 { l.Forward(out, in, tc.n, tc.h, tc.w); return dot(g, out) }
	gradCheck(t, "dIn", in, dIn, loss, rng, 20, 1e-2, 1e-2)
	for _, p := range l.Params() {
		gradCheck(t, "d"+p.Name, p.W, p.G, loss, rng, 20, 1e-2, 1e-2)
	}

	// Parameter gradients accumulate; dIn == nil skips the input gradient.
	w0 := append([]float32(nil), l.Weight.G...)
	l.Backward(nil, g, in, tc.n, tc.h, tc.w)
	for i, v := range l.Weight.G {
		if d := v - 2*w0[i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("weight gradient does not accumulate: %g vs 2·%g", v, w0[i])
		}
	}

	// BackwardAccumulate adds the input gradient onto what is there.
	acc := make([]float32, len(in))
	for i := range acc {
		acc[i] = 1
	}
	l.BackwardAccumulate(acc, g, in, tc.n, tc.h, tc.w)
	// (Backward's dIn may come from the Winograd transforms and
	// BackwardAccumulate's from the GEMM path: relative to dIn's size.)
	tol := float32(1e-4)
	for _, v := range dIn {
		tol = max(tol, 1e-5*abs32(v))
	}
	for i := range acc {
		if d := acc[i] - 1 - dIn[i]; d > tol || d < -tol {
			t.Fatalf("BackwardAccumulate: %g, want 1+%g", acc[i], dIn[i])
		}
	}
}

func TestConv2dShapes(t *testing.T) {
	l := NewConv2d(3, 8, 3, 2, 1)
	if ho, wo := l.OutSize(32, 31); ho != 16 || wo != 16 {
		t.Errorf("OutSize(32,31) = %d,%d, want 16,16", ho, wo)
	}
	ps := l.Params()
	if len(ps) != 2 || ps[0].Name != "weight" || ps[1].Name != "bias" ||
		fmt.Sprint(ps[0].Shape) != "[8 3 3 3]" || fmt.Sprint(ps[1].Shape) != "[8]" {
		t.Errorf("params: %v %v / %v %v", ps[0].Name, ps[0].Shape, ps[1].Name, ps[1].Shape)
	}
}

func TestConv2dForwardBias(t *testing.T) {
	// cout 5: the GEMM paths; cout 9: the Winograd forward.
	for _, cout := range []int{5, 9} {
		rng := newRNG(77)
		const n, cin, h, w = 3, 24, 6, 7
		l := NewConv2d(cin, cout, 3, 1, 1)
		bindRandom(rng, l.Params(), 0.5)
		in := randn(rng, n*cin*h*w, 1)
		extra := randn(rng, n*cout, 1)
		want, got := make([]float32, n*cout*h*w), make([]float32, n*cout*h*w)
		l.Forward(want, in, n, h, w)
		l.ForwardBias(got, in, extra, n, h, w)
		for i := range got {
			if d := got[i] - want[i] - extra[i/(h*w)]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("cout %d: ForwardBias[%d] = %g, want %g + %g", cout, i, got[i], want[i], extra[i/(h*w)])
			}
		}
	}
}

// TestWinogradMatchesDirect: the Winograd forward — F(4×4, 3×3) on planes at
// least 13 pixels wide, F(2×2, 3×3) on narrower ones or everywhere with
// NoWinograd4 — and the GEMM conv it replaces agree to float32
// rounding on the shipped model's shapes, with enough images that a slot
// runs several GEMM batches.
func TestWinogradMatchesDirect(t *testing.T) {
	for _, only2 := range []bool{false, true} {
		for _, c := range []struct{ n, cin, cout, h, w int }{
			{40, 24, 24, 28, 28}, {70, 48, 48, 7, 7}, {9, 96, 48, 14, 14}, {3, 8, 8, 33, 35},
			{3, 8, 9, 13, 13}, {2, 9, 8, 17, 16}, {2, 8, 8, 5, 64}, {1, 8, 8, 40, 61},
			{5, 8, 8, 1, 1}, {3, 9, 8, 7, 5}, {2, 8, 10, 2, 3}, // below winoMinPixels: called directly
		} {
			rng := newRNG(uint64(c.cin + c.h))
			l := NewConv2d(c.cin, c.cout, 3, 1, 1)
			if !l.winograd(max(c.h*c.w, winoMinPixels), 1) {
				t.Fatalf("%+v: Winograd not chosen", c)
			}
			bindRandom(rng, l.Params(), 0.3)
			in := randn(rng, c.n*c.cin*c.h*c.w, 1)
			direct, wino := make([]float32, c.n*c.cout*c.h*c.w), make([]float32, c.n*c.cout*c.h*c.w)
			check := func(when string) {
				t.Helper()
				l.NoWinograd = true
				l.Forward(direct, in, c.n, c.h, c.w)
				l.NoWinograd, l.NoWinograd4 = false, only2
				l.forwardWinograd(wino, in, nil, c.n, c.h, c.w)
				l.NoWinograd4 = false
				var scale float64
				for _, v := range direct {
					scale = max(scale, float64(abs32(v)))
				}
				if d := maxAbsDiff(wino, toF64(direct)); d > 1e-5*scale {
					t.Errorf("%+v, F(2×2) only %v: %sWinograd differs from the direct conv by %g (outputs up to %g)", c, only2, when, d, scale)
				}
			}
			check("")
			// The transformed kernel is cached: a weight update must reach it.
			l.Weight.W[len(l.Weight.W)/2] += 1
			check("after a weight update, ")
			// So is the tile size: switching it must re-transform.
			l.NoWinograd4 = !only2
			l.forwardWinograd(wino, in, nil, c.n, c.h, c.w)
			l.NoWinograd4 = false
			check("after the other tile size, ")
		}
	}
}

// TestWinogradBackwardMatchesGEMM: the input gradient through the Winograd
// transforms (both tile sizes) and the weight gradient (F(4×4) planes) agree
// with the GEMM path's to float32 rounding, the bias gradient is untouched
// by the choice, and a weight update reaches the cached transformed kernel.
func TestWinogradBackwardMatchesGEMM(t *testing.T) {
	for _, only2 := range []bool{false, true} {
		for _, c := range []struct{ n, cin, cout, h, w int }{
			{5, 24, 24, 28, 28}, {3, 96, 48, 14, 14}, {4, 8, 12, 13, 15}, {3, 9, 8, 10, 11}, {6, 48, 48, 7, 7},
		} {
			rng := newRNG(uint64(c.cout + c.w))
			l := NewConv2d(c.cin, c.cout, 3, 1, 1)
			bindRandom(rng, l.Params(), 0.3)
			in := randn(rng, c.n*c.cin*c.h*c.w, 1)
			dOut := randn(rng, c.n*c.cout*c.h*c.w, 1)
			run := func(gemmPath bool) (dIn, gW, gB []float32) {
				l.NoWinogradBackward, l.NoWinograd4 = gemmPath, only2
				defer func() { l.NoWinogradBackward, l.NoWinograd4 = false, false }()
				clear(l.Weight.G)
				clear(l.Bias.G)
				dIn = randn(rng, len(in), 1) // garbage: must be overwritten
				l.Backward(dIn, dOut, in, c.n, c.h, c.w)
				return dIn, append([]float32(nil), l.Weight.G...), append([]float32(nil), l.Bias.G...)
			}
			for round := range 2 {
				want, wW, wB := run(true)
				got, gW, gB := run(false)
				var scale float64
				for _, v := range want {
					scale = max(scale, float64(abs32(v)))
				}
				if d := maxAbsDiff(got, toF64(want)); d > 1e-5*scale {
					t.Errorf("%+v, F(2×2) only %v, round %d: Winograd dIn differs from the GEMM path's by %g (up to %g)", c, only2, round, d, scale)
				}
				// On F(4×4) planes the weight gradient comes from the
				// transforms too: equal to rounding; the bias's is the same sum.
				var wScale float64
				for _, v := range wW {
					wScale = max(wScale, float64(abs32(v)))
				}
				if d := maxAbsDiff(gW, toF64(wW)); d > 1e-5*wScale {
					t.Errorf("%+v, F(2×2) only %v, round %d: Winograd dW differs from the GEMM path's by %g (up to %g)", c, only2, round, d, wScale)
				}
				if !slices.Equal(gB, wB) {
					t.Errorf("%+v: the bias gradient depends on the path", c)
				}
				l.Weight.W[len(l.Weight.W)/3] -= 0.5 // the cached kernel must follow
			}
		}
	}
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}

func toF64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// TestForwardSplitInvariant: the forward's output is bitwise the same
// wherever the balancer cuts the batch (the premise of adapting the cut),
// on the Winograd, grouped and direct paths, with a per-image bias.
func TestForwardSplitInvariant(t *testing.T) {
	if parallel.Workers() != 2 {
		t.Skip("the balancer splits over two workers only")
	}
	cases := []struct{ cin, cout, k, stride, pad, h, n int }{
		{24, 24, 3, 1, 1, 28, 17}, // Winograd
		{48, 48, 3, 1, 1, 7, 25},  // grouped, small-plane im2col
		{24, 24, 3, 2, 1, 28, 18}, // direct, stride 2
		{24, 1, 3, 1, 1, 28, 16},  // direct, row taps
		{48, 48, 1, 1, 0, 7, 21},  // grouped pointwise
	}
	for _, c := range cases {
		rng := newRNG(uint64(c.cin*100 + c.h))
		l := NewConv2d(c.cin, c.cout, c.k, c.stride, c.pad)
		bindRandom(rng, l.Params(), 0.2)
		ho, wo := l.OutSize(c.h, c.h)
		in := randn(rng, c.n*c.cin*c.h*c.h, 1)
		extra := randn(rng, c.n*c.cout, 1)
		var ref []float32
		for _, share := range []float64{0.5, balancerMin, balancerMax, 0.41} {
			l.fwd.share = share
			out := make([]float32, c.n*c.cout*ho*wo)
			l.ForwardBias(out, in, extra, c.n, c.h, c.h)
			if ref == nil {
				ref = out
				continue
			}
			for i := range out {
				if out[i] != ref[i] {
					t.Fatalf("%+v: cut at share %.2f changes output %d: %v vs %v", c, share, i, out[i], ref[i])
				}
			}
		}
	}
}

// TestBalancer: every image lands in exactly one range, also when the
// pool is busy (nested in a parallel loop), and the cut moves toward the
// range that runs faster per image.
func TestBalancer(t *testing.T) {
	if parallel.Workers() != 2 {
		t.Skip("the balancer splits over two workers only")
	}
	for _, n := range []int{1, 2, 3, 4, 5, balancerMinBatch, 17, 64} {
		for _, share := range []float64{0, balancerMin, 0.5, balancerMax} {
			check := func(where string) {
				b := balancer{share: share}
				seen := make([]int, n)
				b.run(n, func(slot, lo, hi int) {
					for i := lo; i < hi; i++ {
						seen[i]++
					}
				})
				for i, c := range seen {
					if c != 1 {
						t.Fatalf("%s n=%d share=%.2f: image %d visited %d times", where, n, share, i, c)
					}
				}
			}
			check("alone")
			parallel.For(2, func(lo, hi int) {
				if lo == 0 {
					check("nested")
				}
			})
		}
	}
	// Range 1 twice as slow per image: the cut moves to give range 0 more
	// (equal times at a share of 2/3).
	var b balancer
	for range 10 {
		b.run(balancerMinBatch+4, func(slot, lo, hi int) {
			time.Sleep(time.Duration((hi-lo)*(slot+1)) * 300 * time.Microsecond)
		})
	}
	if b.share < 0.58 {
		t.Fatalf("share %.3f after 10 calls with range 1 twice as slow, want ≥ 0.58 (→ 0.667)", b.share)
	}
}

// TestWinogradBandsExact: a plane whose Winograd operands exceed winoBytes
// runs in bands of tile rows; the output is bitwise that of the whole
// plane in one GEMM batch (and close to the direct conv), forward and input
// gradient, F(2×2) (wider than 64) and F(4×4).
func TestWinogradBandsExact(t *testing.T) {
	for _, c := range [][3]int{{16, 24, 70}, {32, 32, 64}, {24, 16, 33}, {16, 16, 130}} {
		cin, cout, hw := c[0], c[1], c[2]
		rng := newRNG(uint64(hw))
		l := NewConv2d(cin, cout, 3, 1, 1)
		bindRandom(rng, l.Params(), 0.1)
		n := 2
		in := randn(rng, n*cin*hw*hw, 1)
		run := func(bytes int) []float32 {
			defer func(b int) { winoBytes = b }(winoBytes)
			winoBytes = bytes
			out := make([]float32, n*cout*hw*hw)
			l.Forward(out, in, n, hw, hw)
			dIn := make([]float32, len(in))
			zeroGrads(l.Params())
			l.Backward(dIn, out, in, n, hw, hw)
			return append(out, dIn...)
		}
		whole, banded := run(1<<40), run(64<<10)
		if !slices.Equal(whole, banded) {
			t.Errorf("%d→%d @%d: banded Winograd differs from the whole plane's", cin, cout, hw)
		}
		// Alone (batch 1) an image's tile rows are split among the workers:
		// its output is still the one it gets in a batch.
		alone := make([]float32, cout*hw*hw)
		l.Forward(alone, in[:cin*hw*hw], 1, hw, hw)
		if !slices.Equal(alone, whole[:len(alone)]) {
			t.Errorf("%d→%d @%d: an image alone differs from the same image in a batch", cin, cout, hw)
		}
		l.NoWinograd = true
		direct := run(1 << 40)
		l.NoWinograd = false
		var worst, scale float64
		for i := range direct {
			worst = max(worst, math.Abs(float64(direct[i]-banded[i])))
			scale = max(scale, math.Abs(float64(direct[i])))
		}
		if worst > 1e-5*scale {
			t.Errorf("%d→%d @%d: banded Winograd off the direct conv by %.3g of %.3g", cin, cout, hw, worst, scale)
		}
	}
}
