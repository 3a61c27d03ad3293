package nn

import (
	"sync"

	"github.com/ddpm-go/ddpm/engine/gemm"
	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// Conv2d is PyTorch's nn.Conv2d(cin, cout, k, stride, padding) with square
// kernels, zero padding and a bias. PadExtra adds zero rows below and
// columns to the right of Pad's (an explicit F.pad before the conv, e.g.
// TensorFlow's "SAME" stride-2 downsampling: Pad 0, PadExtra 1). Each image is lowered to a GEMM:
//
//	out[Cout, Ho·Wo] = W[Cout, Cin·K·K] · col[Cin·K·K, Ho·Wo] + bias
//
// where col is the im2col unrolling of the image (a 1×1 stride-1 conv
// without padding uses the image itself, which already is [Cin, H·W]). A
// stride-1 "same" conv with enough channels lowers only along x and runs
// one GEMM per kernel row instead (see lowerRows), writing K times less.
// The lowering is done a block of output rows at a time (about blockPixels
// pixels), each block followed by its GEMMs; output planes too small for an
// efficient GEMM are lowered several images at a time instead
// (forwardGrouped).
//
// The batch is split into one contiguous range per pool worker ("slot"); a
// slot owns its im2col scratch and, in Backward, private weight/bias
// gradient accumulators that are added into the Params' G after the loop in
// slot order. The split depends only on the batch size and the worker count,
// so gradients are bitwise reproducible run to run. With fewer images than
// workers the images run one after another and the GEMM parallelises inside.
type Conv2d struct {
	Cin, Cout, K, Stride, Pad int
	PadExtra                  int    // extra padding after the image (bottom, right); see NewConv2dPadded
	Weight                    *Param // [Cout, Cin, K, K]
	Bias                      *Param // [Cout]

	// Path choices for 3×3, stride-1, padding-1 layers. The zero values
	// take the fastest path for the plane (Winograd where it pays, see
	// winograd.go); the others compare the paths or give the direct conv's
	// rounding.
	NoWinograd         bool // im2col + GEMM, forward and backward
	NoWinograd4        bool // Winograd F(2×2, 3×3) on every plane, never F(4×4, 3×3)
	NoWinogradBackward bool // input and weight gradients on the GEMM path; the forward unchanged

	slots   []convSlot
	flipped []float32        // [Cin, Cout, K, K]: W transposed and rotated 180°, for Backward
	rowW    []float32        // [K, Cout, Cin, K]: W split by kernel row, for forwardRowTaps
	rowF    []float32        // [K, Cin, Cout, K]: flipped split by kernel row (instead of flipped)
	winoU   winoFilter       // the Winograd-transformed kernel, for forwardWinograd
	winoD   winoFilter       // the same for the input gradient, for backwardDataWinograd
	wino4   []*vec.Wino4Plan // the F(4×4) tables of the plane shapes (and strides) seen
	fwd     balancer         // the forward's batch split
}

// convSlot is the scratch of one batch range.
type convSlot struct {
	col    []float32 // im2col of one image (of dOut too, in Backward)
	acc    []float32 // forwardGrouped's GEMM result
	dW, dB []float32 // gradient accumulators of slots > 0
	used   bool      // ran in the latest eachSlot
	wino   winoSlot  // forwardWinograd's scratch
	dU     []float32 // weightGradWinograd's [36, Cout, Cin] accumulator
}

// NewConv2d makes a conv layer; its parameters are unbound until Bind.
func NewConv2d(cin, cout, k, stride, pad int) *Conv2d {
	if stride < 1 {
		stride = 1 // the spec writes 1×1 convs as "s0"; they are stride 1
	}
	return &Conv2d{
		Cin: cin, Cout: cout, K: k, Stride: stride, Pad: pad,
		Weight: newParam("weight", cout, cin, k, k),
		Bias:   newParam("bias", cout),
	}
}

// NewConv2dPadded is NewConv2d with padBegin zero rows above and columns
// left of the image and padEnd ≥ padBegin below and right of it: PyTorch's
// F.pad(x, (padBegin, padEnd, padBegin, padEnd)) followed by an unpadded
// conv. diffusers' Downsample2D with padding 0 (every google/ddpm-*
// model, TensorFlow's "SAME" for stride 2) is NewConv2dPadded(c, c, 3, 2,
// 0, 1). The symmetric layers' fast paths (Winograd, row taps) are not
// used; a 3×3 stride-2 layer on whole even images gets a lowering of its
// own (im2colDownSame).
func NewConv2dPadded(cin, cout, k, stride, padBegin, padEnd int) *Conv2d {
	if padEnd < padBegin || padBegin < 0 {
		panic("nn: NewConv2dPadded needs 0 ≤ padBegin ≤ padEnd")
	}
	l := NewConv2d(cin, cout, k, stride, padBegin)
	l.PadExtra = padEnd - padBegin
	return l
}

// Params returns weight and bias, in PyTorch's state_dict order.
func (l *Conv2d) Params() []*Param { return []*Param{l.Weight, l.Bias} }

// OutSize is the output height and width for an h×w input.
func (l *Conv2d) OutSize(h, w int) (int, int) {
	p := 2*l.Pad + l.PadExtra
	return (h+p-l.K)/l.Stride + 1, (w+p-l.K)/l.Stride + 1
}

// pointwise reports whether the layer is a plain channel mix (1×1, stride 1,
// no padding) whose im2col would be a copy of the input.
func (l *Conv2d) pointwise() bool {
	return l.K == 1 && l.Stride == 1 && l.Pad == 0 && l.PadExtra == 0
}

// Forward computes out [n, Cout, Ho, Wo] from in [n, Cin, h, w]; out must
// not alias in.
func (l *Conv2d) Forward(out, in []float32, n, h, w int) {
	l.ForwardBias(out, in, nil, n, h, w)
}

// ForwardBias is Forward with a second, per-image bias extra [n, Cout]
// added to every pixel (nil for none): the U-Net's timestep projection,
// added for free while the output is initialised with the bias. Its
// gradient is the same per-channel pixel sum as the bias's.
func (l *Conv2d) ForwardBias(out, in, extra []float32, n, h, w int) {
	if l.winograd(h, w) {
		l.forwardWinograd(out, in, extra, n, h, w)
		return
	}
	ho, wo := l.OutSize(h, w)
	// Small planes take the grouped lowering also when an image is alone
	// in its group (g = 1): the direct path adds the bias first and would
	// round differently, making an image's output depend on the size of
	// its batch (see ForwardConcat).
	if ho*wo < groupMaxPixels {
		l.forwardGrouped(out, in, extra, n, h, w, l.imageGroup(ho, wo, n))
		return
	}
	inSize, outSize, kk, howo := l.Cin*h*w, l.Cout*ho*wo, l.Cin*l.K*l.K, ho*wo
	rowTaps := l.rowTaps(h, w)
	if rowTaps {
		// Rebuilt every call, so borrowed rather than kept per layer.
		l.rowW = borrowKernel(len(l.Weight.W))
		defer func() { returnKernel(l.rowW); l.rowW = nil }()
		splitKernelRows(l.rowW, l.Weight.W, l.Cout, l.Cin, l.K)
	}
	l.eachSlotForward(n, func(s *convSlot, lo, hi int) {
		for i := lo; i < hi; i++ {
			x, y := in[i*inSize:(i+1)*inSize], out[i*outSize:(i+1)*outSize]
			// The GEMMs add onto the bias (beta = 1).
			if extra != nil {
				fillRows2(y, l.Bias.W, extra[i*l.Cout:(i+1)*l.Cout], howo)
			} else {
				fillRows(y, l.Bias.W, howo)
			}
			for oy := 0; oy < ho; oy += l.blockRows(wo) {
				if rowTaps {
					l.forwardRowTaps(s, y, x, h, w, oy)
					continue
				}
				p0, col, np := l.lower(s, x, h, w, ho, wo, oy)
				gemm.Sgemm(false, false, l.Cout, np, kk, 1, l.Weight.W, kk, col, np, 1, y[p0:], howo)
			}
		}
	})
}

// groupCols is the GEMM width Forward aims for on output planes of fewer
// than groupMaxPixels pixels, by lowering several images into one GEMM: a
// 7×7 plane alone is 49 columns, too few for the kernel's panels and its
// packing to pay off. 14×14 outputs gain nothing, hence the bound
// (BenchmarkConvForward, the 7×7 and 14×14 shapes).
const (
	groupCols      = 512
	groupMaxPixels = 128
)

// imageGroup is how many images Forward lowers into one GEMM: 1 for output
// planes of groupMaxPixels or more, otherwise enough for about groupCols
// columns, at most a slot's share of the batch.
func (l *Conv2d) imageGroup(ho, wo, n int) int {
	howo := ho * wo
	if howo >= groupMaxPixels {
		return 1
	}
	perSlot := (n + parallel.Workers() - 1) / parallel.Workers()
	return max(1, min(perSlot, (groupCols+howo-1)/howo))
}

// forwardGrouped is ForwardBias for small output planes: g images at a
// time are lowered side by side into col [Cin·K·K, g·Ho·Wo] (a pointwise
// conv copies the images' pixels), multiplied in one GEMM into acc
// [Cout, g·Ho·Wo], and scattered to the images with the bias added.
func (l *Conv2d) forwardGrouped(out, in, extra []float32, n, h, w, g int) {
	ho, wo := l.OutSize(h, w)
	howo := ho * wo
	l.forwardGroupedFrom(out, extra, n, howo, g, func(col []float32, ld, i int) {
		x := in[i*l.Cin*h*w : (i+1)*l.Cin*h*w]
		if l.pointwise() {
			copyPlanes(col, ld, x, l.Cin, howo)
		} else {
			im2colStride(col, ld, x, l.Cin, h, w, l.K, l.Stride, l.Pad, wo, 0, ho)
		}
	})
}

// forwardGroupedFrom runs forwardGrouped's GEMMs over groups of g images
// whose howo output pixels each lower reads in: lower(col, ld, i) writes
// image i's [Cin·K·K, howo] matrix at col with row stride ld.
func (l *Conv2d) forwardGroupedFrom(out, extra []float32, n, howo, g int, lower func(col []float32, ld, i int)) {
	kk, cout := l.Cin*l.K*l.K, l.Cout
	l.eachSlotForward(n, func(s *convSlot, lo, hi int) {
		for i0 := lo; i0 < hi; i0 += g {
			i1 := min(hi, i0+g)
			N := (i1 - i0) * howo
			Np, ld := gemmWidth(N)
			s.col = grow(s.col, kk*ld)
			s.acc = grow(s.acc, cout*ld)
			zeroColumns(s.col, kk, ld, N, Np)
			for i := i0; i < i1; i++ {
				lower(s.col[(i-i0)*howo:], ld, i)
			}
			gemm.Sgemm(false, false, cout, Np, kk, 1, l.Weight.W, kk, s.col, ld, 0, s.acc, ld)
			for i := i0; i < i1; i++ {
				y := out[i*cout*howo:]
				for o := 0; o < cout; o++ {
					vec.Affine(y[o*howo:(o+1)*howo], s.acc[o*ld+(i-i0)*howo:][:howo], 1, l.outBias(extra, i, o))
				}
			}
		}
	})
}

// ForwardConcat is Forward of a pointwise conv on torch.cat([a, b], dim=1),
// a [n, ca, h, w] and b [n, Cin−ca, h, w], without building the
// concatenation: the GEMM's inner dimension splits in two, W[:, :ca]·a +
// W[:, ca:]·b (small planes gather both into forwardGrouped's scratch, as
// Forward would). See GroupNorm.ForwardConcat.
func (l *Conv2d) ForwardConcat(out, a, b []float32, ca, n, h, w int) {
	if !l.pointwise() || ca <= 0 || ca >= l.Cin {
		panic("nn: Conv2d.ForwardConcat needs a 1×1 stride-1 conv and 0 < ca < Cin")
	}
	howo, cb := h*w, l.Cin-ca
	// Small planes gather both halves into one GEMM also when an image is
	// alone in its group (g = 1, batches of up to one image per worker):
	// splitting the inner dimension would sum in another order, and an
	// image's output would depend on the size of its batch. Package serve
	// denoises the images of many requests in one batch and promises each
	// request the images it would get alone.
	if howo < groupMaxPixels {
		l.forwardGroupedFrom(out, nil, n, howo, l.imageGroup(h, w, n), func(col []float32, ld, i int) {
			copyPlanes(col, ld, a[i*ca*howo:], ca, howo)
			copyPlanes(col[ca*ld:], ld, b[i*cb*howo:], cb, howo)
		})
		return
	}
	l.eachSlotForward(n, func(s *convSlot, lo, hi int) {
		for i := lo; i < hi; i++ {
			y := out[i*l.Cout*howo : (i+1)*l.Cout*howo]
			fillRows(y, l.Bias.W, howo) // the GEMMs add onto the bias
			gemm.Sgemm(false, false, l.Cout, howo, ca, 1, l.Weight.W, l.Cin, a[i*ca*howo:], howo, 1, y, howo)
			gemm.Sgemm(false, false, l.Cout, howo, cb, 1, l.Weight.W[ca:], l.Cin, b[i*cb*howo:], howo, 1, y, howo)
		}
	})
}

// copyPlanes copies the c planes of howo pixels at x into the first howo
// columns of c rows of col, ld apart: a pointwise conv's images gathered
// side by side for one GEMM.
func copyPlanes(col []float32, ld int, x []float32, c, howo int) {
	for k := 0; k < c; k++ {
		copy(col[k*ld:][:howo], x[k*howo:(k+1)*howo])
	}
}

// gemmWidth returns the width Np a conv forward multiplies its N GEMM
// columns over, N rounded up to whole panels of the GEMM kernel, and a
// row stride ld ≥ Np for its operands. A ragged last panel would be
// packed, computed into a scratch tile and copied out, while the columns
// past N cost the same multiplies either way: the forwards zero them in B
// (zeroColumns) and never read their results. Rows start on 64-byte lines (if the buffer
// does), since the GEMM reads B in place and split lines cost double
// loads, but are not a multiple of 512 bytes apart, which would put them
// all into the same few L1 sets to evict each other.
func gemmWidth(N int) (Np, ld int) {
	Np = gemm.RoundUpN(N)
	ld = (Np + 15) &^ 15
	if ld%128 == 0 {
		ld += 16
	}
	return Np, ld
}

// zeroColumns clears columns [n, np) of the rows × ld matrix b.
func zeroColumns(b []float32, rows, ld, n, np int) {
	for r := 0; r < rows; r++ {
		clear(b[r*ld+n : r*ld+np])
	}
}

// outBias is the constant ForwardBias adds to channel o of image i: the
// bias plus the image's extra bias, if any.
func (l *Conv2d) outBias(extra []float32, i, o int) float32 {
	if extra == nil {
		return l.Bias.W[o]
	}
	return l.Bias.W[o] + extra[i*l.Cout+o]
}

// rowTaps reports whether Forward (and the weight gradient) use the
// row-tap lowering (lowerRows): a stride-1 "same" conv (output as large as
// the input) with enough input channels that a GEMM over Cin·K of them is
// still efficient. The transposed convolution of Backward's input gradient
// is then "same" too and uses it when Cout·K is large enough.
func (l *Conv2d) rowTaps(h, w int) bool {
	ho, wo := l.OutSize(h, w)
	return l.Stride == 1 && l.K > 1 && ho == h && wo == w && l.PadExtra == 0 && l.Cin*l.K >= minRowTapK
}

// minRowTapK is the smallest GEMM inner dimension (channels·K) for which
// the row-tap lowering beats im2col.
const minRowTapK = 64

// forwardRowTaps adds into y [Cout, h·w] the conv of the block of output
// rows starting at oy: K GEMMs of inner dimension Cin·K (one per kernel
// row, see lowerRows) instead of one of Cin·K·K.
func (l *Conv2d) forwardRowTaps(s *convSlot, y, x []float32, h, w, oy int) {
	oy1 := min(h, oy+l.blockRows(w))
	col, span := lowerRows(s, x, l.Cin, h, w, l.K, l.Pad, oy, oy1)
	ck, np := l.Cin*l.K, (oy1-oy)*w
	for ky := 0; ky < l.K; ky++ {
		gemm.Sgemm(false, false, l.Cout, np, ck, 1, l.rowW[ky*l.Cout*ck:], ck, col[ky*w:], span, 1, y[oy*w:], h*w)
	}
}

// lowerRows is the row-tap lowering of output rows [oy, oy1) of a stride-1
// "same" conv of x [cin, h, w]: it lowers only along x, so row (c, kx) of
// col [cin·k, span] holds the input shifted by kx−pad columns over the
// block's rows plus k−1 rows of vertical context (zero off the image).
// The right-hand matrix of kernel row ky is then col itself offset by ky
// image rows, with row stride span: k times less to write than im2col.
func lowerRows(s *convSlot, x []float32, cin, h, w, k, pad, oy, oy1 int) (col []float32, span int) {
	span = (oy1 - oy + k - 1) * w
	s.col = grow(s.col, cin*k*span)
	for c := 0; c < cin; c++ {
		for kx := 0; kx < k; kx++ {
			shiftPlane(s.col[(c*k+kx)*span:][:span], x[c*h*w:(c+1)*h*w], h, w, -pad, kx-pad, oy, oy1+k-1)
		}
	}
	return s.col, span
}

// splitKernelRows writes dst[ky, o, i, kx] = w[o, i, ky, kx] for a kernel
// w [nout, nin, k, k]: the left-hand matrix [nout, nin·k] of each kernel
// row, for the row-tap lowering.
func splitKernelRows(dst, w []float32, nout, nin, k int) {
	for o := 0; o < nout; o++ {
		for i := 0; i < nin; i++ {
			for ky := 0; ky < k; ky++ {
				copy(dst[((ky*nout+o)*nin+i)*k:][:k], w[((o*nin+i)*k+ky)*k:][:k])
			}
		}
	}
}

// addJoinedKernelRowsT adds the row-tap weight gradient, stored per kernel
// row transposed, into the conv layout: w[o, i, ky, kx] += src[ky, i, kx, o].
func addJoinedKernelRowsT(w, src []float32, nout, nin, k int) {
	for ky := 0; ky < k; ky++ {
		for i := 0; i < nin; i++ {
			for kx := 0; kx < k; kx++ {
				row := src[((ky*nin+i)*k+kx)*nout:][:nout]
				for o, g := range row {
					w[((o*nin+i)*k+ky)*k+kx] += g
				}
			}
		}
	}
}

// Backward overwrites dIn [n, Cin, h, w] with the input gradient (skipped
// when dIn is nil, e.g. for the first layer) and adds the weight and bias
// gradients into the Params' G. in is the input Forward saw; dIn must not
// alias dOut.
func (l *Conv2d) Backward(dIn, dOut, in []float32, n, h, w int) {
	l.backward(dIn, dOut, in, n, h, w, false)
}

// BackwardAccumulate is Backward but *adds* the input gradient into dIn,
// for inputs that feed several layers (AttnBlock's q, k and v share one).
func (l *Conv2d) BackwardAccumulate(dIn, dOut, in []float32, n, h, w int) {
	l.backward(dIn, dOut, in, n, h, w, true)
}

func (l *Conv2d) backward(dIn, dOut, in []float32, n, h, w int, accumulate bool) {
	ho, wo := l.OutSize(h, w)
	inSize, outSize, kk, howo := l.Cin*h*w, l.Cout*ho*wo, l.Cin*l.K*l.K, ho*wo
	rowTaps := l.rowTaps(h, w)
	rowTapsDx := rowTaps && l.Cout*l.K >= minRowTapK
	// On F(4×4) planes the weight gradient comes from the Winograd
	// transforms too (weightGradWinograd), in the plain [Cout, Cin, 3, 3]
	// layout.
	winoDW := !accumulate && l.winograd(h, w) && w >= wino4MinWidth && w <= wino4MaxDWWidth && l.winoTile(h, w) == 4 && !l.NoWinogradBackward
	if winoDW {
		rowTaps = false
	}
	if dIn != nil && !accumulate && l.winograd(h, w) && !l.NoWinogradBackward {
		// dIn is a "same" 3×3 conv of dOut: the Winograd forward's
		// transforms with the flipped kernel, before the weight gradient.
		l.backwardDataWinograd(dIn, dOut, n, h, w)
		dIn = nil
	}
	switch {
	case dIn == nil:
	case rowTapsDx:
		l.splitFlippedRows()
	case l.transposedBackward():
		l.flipKernel()
	}
	l.eachSlot(n, func(s *convSlot, lo, hi int) {
		// Slot 0 accumulates straight into the Params' G, except with row
		// taps, whose weight gradient comes out split by kernel row.
		gW, gB := l.Weight.G, l.Bias.G
		if s != &l.slots[0] || rowTaps {
			s.dW = grow(s.dW, len(gW))
			clear(s.dW)
			gW = s.dW
		}
		if s != &l.slots[0] {
			s.dB = grow(s.dB, len(gB))
			clear(s.dB)
			gB = s.dB
		}
		if winoDW {
			for i := lo; i < hi; i++ {
				addRowSums(gB, dOut[i*outSize:(i+1)*outSize], howo)
			}
			l.weightGradWinograd(s, gW, in, dOut, lo, hi, h, w)
			return
		}
		for i := lo; i < hi; i++ {
			x, dy := in[i*inSize:(i+1)*inSize], dOut[i*outSize:(i+1)*outSize]

			// dB += Σ_pixels dy; dW += dy · colᵀ, a block of pixels at a time
			// (with row taps, dW[ky]ᵀ += (col offset by ky rows) · dyᵀ: the
			// GEMM then transposes dy for its packing rather than the
			// K/2 times wider col).
			addRowSums(gB, dy, howo)
			for oy := 0; oy < ho; oy += l.blockRows(wo) {
				if rowTaps {
					oy1 := min(ho, oy+l.blockRows(wo))
					col, span := lowerRows(s, x, l.Cin, h, w, l.K, l.Pad, oy, oy1)
					ck, np := l.Cin*l.K, (oy1-oy)*wo
					for ky := 0; ky < l.K; ky++ {
						gemm.Sgemm(false, true, ck, l.Cout, np, 1, col[ky*w:], span, dy[oy*wo:], howo, 1, gW[ky*l.Cout*ck:], l.Cout)
					}
					continue
				}
				p0, col, np := l.lower(s, x, h, w, ho, wo, oy)
				gemm.Sgemm(false, true, l.Cout, kk, np, 1, dy[p0:], howo, col, np, 1, gW, kk)
			}
			if dIn == nil {
				continue
			}

			dx := dIn[i*inSize : (i+1)*inSize]
			beta := float32(0)
			if accumulate {
				beta = 1
			}
			switch {
			case l.pointwise():
				// dx = Wᵀ · dy.
				gemm.Sgemm(true, false, l.Cin, howo, l.Cout, 1, l.Weight.W, l.Cin, dy, howo, beta, dx, howo)
			case rowTapsDx:
				// dx is dy convolved with the flipped kernel, a "same" conv
				// too: row taps over Cout·K.
				ck := l.Cout * l.K
				for y0 := 0; y0 < h; y0 += l.blockRows(w) {
					y1 := min(h, y0+l.blockRows(w))
					col, span := lowerRows(s, dy, l.Cout, h, w, l.K, l.K-1-l.Pad, y0, y1)
					for ky := 0; ky < l.K; ky++ {
						b := beta
						if ky > 0 {
							b = 1
						}
						gemm.Sgemm(false, false, l.Cin, (y1-y0)*w, ck, 1, l.rowF[ky*l.Cin*ck:], ck, col[ky*w:], span, b, dx[y0*w:], h*w)
					}
				}
			case l.transposedBackward():
				// dx is dy convolved with the flipped kernel (padding K−1−Pad):
				// one more im2col and a GEMM with the long Cout·K·K inner
				// dimension, instead of a K=Cout GEMM into a Cin·K·K × HW
				// dcol and a scalar scatter-add.
				kt := l.Cout * l.K * l.K
				for y0 := 0; y0 < h; y0 += l.blockRows(w) {
					y1 := min(h, y0+l.blockRows(w))
					np := (y1 - y0) * w
					s.col = grow(s.col, kt*np)
					im2col(s.col, dy, l.Cout, ho, wo, l.K, 1, l.K-1-l.Pad, w, y0, y1)
					gemm.Sgemm(false, false, l.Cin, np, kt, 1, l.flipped, kt, s.col, np, beta, dx[y0*w:], h*w)
				}
			default:
				// Strided: dcol = Wᵀ · dy, then fold the columns back onto
				// the pixels they came from.
				s.col = grow(s.col, kk*howo)
				dcol := s.col
				gemm.Sgemm(true, false, kk, howo, l.Cout, 1, l.Weight.W, kk, dy, howo, 0, dcol, howo)
				if !accumulate {
					clear(dx)
				}
				col2im(dx, dcol, l.Cin, h, w, l.K, l.Stride, l.Pad, ho, wo)
			}
		}
	})
	for i, s := range l.slots {
		switch {
		case !s.used:
		case rowTaps:
			addJoinedKernelRowsT(l.Weight.G, s.dW, l.Cout, l.Cin, l.K)
		case i > 0:
			addTo(l.Weight.G, s.dW)
		}
		if s.used && i > 0 {
			addTo(l.Bias.G, s.dB)
		}
	}
}

// transposedBackward reports whether Backward computes dIn as a stride-1
// convolution of dOut with the flipped kernel, which needs the padding to
// be at most K−1 (otherwise some output pixels see only padding and the
// transposed padding would be negative).
func (l *Conv2d) transposedBackward() bool {
	return l.Stride == 1 && !l.pointwise() && l.Pad <= l.K-1 && l.PadExtra == 0
}

// splitFlippedRows fills l.rowF[ky, ci, co, kx] = W[co, ci, K−1−ky, K−1−kx]:
// the flipped kernel (see flipKernel) split by kernel row, for the input
// gradient by row taps, built straight from W.
func (l *Conv2d) splitFlippedRows() {
	k := l.K
	l.rowF = grow(l.rowF, len(l.Weight.W))
	for co := 0; co < l.Cout; co++ {
		for ci := 0; ci < l.Cin; ci++ {
			src := l.Weight.W[(co*l.Cin+ci)*k*k:][:k*k]
			for ky := 0; ky < k; ky++ {
				dst := l.rowF[((ky*l.Cin+ci)*l.Cout+co)*k:][:k]
				for kx := range dst {
					dst[kx] = src[(k-1-ky)*k+k-1-kx]
				}
			}
		}
	}
}

// flipKernel fills l.flipped[ci, co, ky, kx] = W[co, ci, K−1−ky, K−1−kx],
// the kernel of the transposed convolution that maps dOut to dIn.
func (l *Conv2d) flipKernel() {
	k := l.K
	l.flipped = grow(l.flipped, len(l.Weight.W))
	for co := 0; co < l.Cout; co++ {
		for ci := 0; ci < l.Cin; ci++ {
			src := l.Weight.W[(co*l.Cin+ci)*k*k:][:k*k]
			dst := l.flipped[(ci*l.Cout+co)*k*k:][:k*k]
			for j := range dst {
				dst[j] = src[k*k-1-j]
			}
		}
	}
}

// blockPixels is about how many output pixels one lowering block covers: a
// whole 32×32 image, since smaller blocks' GEMMs cost more than keeping the
// block in L2 saves (BenchmarkConvForward); the blocks bound the scratch for
// large images.
const blockPixels = 1024

// blockRows is the number of output rows (of width wo) per im2col block.
func (l *Conv2d) blockRows(wo int) int {
	if l.pointwise() {
		return 1 << 30 // no im2col: one block
	}
	return max(1, blockPixels/wo)
}

// lower returns the GEMM's right-hand matrix for the block of output rows
// starting at oy of image x, as its first pixel p0, the matrix col
// [Cin·K·K, np] and its width np: x itself for a pointwise conv (one block
// of all pixels), otherwise the block's im2col in the slot's scratch.
func (l *Conv2d) lower(s *convSlot, x []float32, h, w, ho, wo, oy int) (p0 int, col []float32, np int) {
	if l.pointwise() {
		return 0, x, ho * wo
	}
	oy1 := min(ho, oy+l.blockRows(wo))
	np = (oy1 - oy) * wo
	s.col = grow(s.col, l.Cin*l.K*l.K*np)
	im2col(s.col, x, l.Cin, h, w, l.K, l.Stride, l.Pad, wo, oy, oy1)
	return oy * wo, s.col, np
}

// eachSlot runs fn over the batch split by forSlots, handing each range its
// slot, and marks the slots that ran. (If the pool turns out to be busy,
// ForChunk runs the whole batch in the caller, on slot 0, so the other slots
// may hold stale accumulators: hence the mark.)
func (l *Conv2d) eachSlot(n int, fn func(s *convSlot, lo, hi int)) {
	l.slotsFor(n)
	forSlots(n, func(slot, lo, hi int) {
		s := &l.slots[slot]
		s.used = true
		withScratch(s, func() { fn(s, lo, hi) })
	})
}

// eachSlotForward is eachSlot for the forward passes, whose batch split
// the layer's balancer adapts.
func (l *Conv2d) eachSlotForward(n int, fn func(s *convSlot, lo, hi int)) {
	l.slotsFor(n)
	l.fwd.run(n, func(slot, lo, hi int) {
		s := &l.slots[slot]
		s.used = true
		withScratch(s, func() { fn(s, lo, hi) })
	})
}

// convScratch is the lowering and Winograd scratch of a convSlot (col,
// acc, wino). Slots borrow a set for the length of a parallel loop instead
// of each layer keeping its own, so a network holds as many sets as run at
// once (one per pool worker), not one per layer and worker: the 256×256
// U-Net's hundred-odd convs held gigabytes of it.
type convScratch struct{ col, acc, v, m []float32 }

var scratchSets struct {
	sync.Mutex
	free []*convScratch
}

// kernelBufs are the row-tap forward's kernel copies (Conv2d.rowW), lent
// out like the scratch sets.
var kernelBufs struct {
	sync.Mutex
	free [][]float32
}

func borrowKernel(n int) []float32 {
	kernelBufs.Lock()
	defer kernelBufs.Unlock()
	var b []float32
	if k := len(kernelBufs.free); k > 0 {
		b, kernelBufs.free = kernelBufs.free[k-1], kernelBufs.free[:k-1]
	}
	return grow(b, n)
}

func returnKernel(b []float32) {
	kernelBufs.Lock()
	kernelBufs.free = append(kernelBufs.free, b)
	kernelBufs.Unlock()
}

// withScratch runs fn with a borrowed scratch set in s's col, acc and wino
// buffers (grown as fn needs), and returns it afterwards.
func withScratch(s *convSlot, fn func()) {
	scratchSets.Lock()
	var sc *convScratch
	if k := len(scratchSets.free); k > 0 {
		sc, scratchSets.free = scratchSets.free[k-1], scratchSets.free[:k-1]
	} else {
		sc = new(convScratch)
	}
	scratchSets.Unlock()
	s.col, s.acc, s.wino.v, s.wino.m = sc.col, sc.acc, sc.v, sc.m
	defer func() {
		sc.col, sc.acc, sc.v, sc.m = s.col, s.acc, s.wino.v, s.wino.m
		s.col, s.acc, s.wino.v, s.wino.m = nil, nil, nil, nil
		scratchSets.Lock()
		scratchSets.free = append(scratchSets.free, sc)
		scratchSets.Unlock()
	}()
	fn()
}

// slotsFor makes room for a batch of n and clears the slots' marks.
func (l *Conv2d) slotsFor(n int) {
	if k := numSlots(n); len(l.slots) < k {
		l.slots = append(l.slots, make([]convSlot, k-len(l.slots))...)
	}
	for i := range l.slots {
		l.slots[i].used = false
	}
}

// validRange returns the output columns [lo, hi) whose input column
// ox·stride + off falls inside [0, w); the rest read padding.
func validRange(wo, w, stride, off int) (lo, hi int) {
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	if w-1-off < 0 {
		return min(lo, wo), min(lo, wo)
	}
	hi = min(wo, (w-1-off)/stride+1)
	lo = min(lo, hi)
	return lo, hi
}

// im2col unrolls output rows [oy0, oy1) of one image x [cin, h, w] into col
// [cin·k·k, (oy1−oy0)·wo]: row (c, ky, kx) holds, for every output pixel of
// the block, the input pixel that kernel tap multiplies (0 where it falls in
// the padding).
func im2col(col, x []float32, cin, h, w, k, stride, pad, wo, oy0, oy1 int) {
	im2colStride(col, (oy1-oy0)*wo, x, cin, h, w, k, stride, pad, wo, oy0, oy1)
}

// im2colStride is im2col into rows ld apart (ld ≥ (oy1−oy0)·wo), so that
// several images' blocks can sit side by side in one matrix. pad is the
// padding above and left of the image; the output width wo (and the rows
// asked for) say how far the padding below and right of it reaches.
func im2colStride(col []float32, ld int, x []float32, cin, h, w, k, stride, pad, wo, oy0, oy1 int) {
	if k == 3 && stride == 1 && pad == 1 && oy0 == 0 && oy1 == h && wo == w && vec.Im2col3x3(col, ld, x, cin, h, w) {
		return // a small plane, whole: one register permute per tap
	}
	if k == 3 && stride == 2 && h%2 == 0 && w%2 == 0 && oy0 == 0 && oy1 == h/2 && wo == w/2 {
		switch pad {
		case 1:
			im2colDown(col, ld, x, cin, h, w)
			return
		case 0: // padding (0, 1): TensorFlow's "SAME"
			im2colDownSame(col, ld, x, cin, h, w)
			return
		}
	}
	np := (oy1 - oy0) * wo
	for c := 0; c < cin; c++ {
		xc := x[c*h*w : (c+1)*h*w]
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := col[((c*k+ky)*k+kx)*ld:][:np]
				if stride == 1 && wo == w {
					shiftPlane(row, xc, h, w, ky-pad, kx-pad, oy0, oy1)
				} else {
					im2colRow(row, xc, h, w, stride, ky-pad, kx-pad, wo, oy0, oy1)
				}
			}
		}
	}
}

// im2colDown is im2colStride for whole images of the U-Net's Downsample
// conv (3×3, stride 2, padding 1, even h and w). Its taps read the image's
// four pixel phases P(py, px)[i, j] = x[2i+py, 2j+px], each ho×wo: taps
// (ky, kx) ∈ {1, 2}² are the phases (py, px) = (ky−1, kx−1) themselves,
// written by one de-interleaving pass, and the five taps with ky = 0 or kx
// = 0 read an odd phase one phase row (column) back: shiftPlane copies of
// those rows. The per-pixel gather of im2colRow cost more than the
// Downsample's GEMM.
func im2colDown(col []float32, ld int, x []float32, cin, h, w int) {
	ho, wo := h/2, w/2
	for c := 0; c < cin; c++ {
		tap := func(ky, kx int) []float32 { return col[((c*3+ky)*3+kx)*ld:][:ho*wo] }
		p00, p01, p10, p11 := tap(1, 1), tap(1, 2), tap(2, 1), tap(2, 2)
		splitPhases(p00, p01, p10, p11, x[c*h*w:(c+1)*h*w], h, w)
		shiftPlane(tap(0, 0), p11, ho, wo, -1, -1, 0, ho)
		shiftPlane(tap(0, 1), p10, ho, wo, -1, 0, 0, ho)
		shiftPlane(tap(0, 2), p11, ho, wo, -1, 0, 0, ho)
		shiftPlane(tap(1, 0), p01, ho, wo, 0, -1, 0, ho)
		shiftPlane(tap(2, 0), p11, ho, wo, 0, -1, 0, ho)
	}
}

// im2colDownSame is im2colDown for the asymmetric padding (0, 1) (one zero
// row below and one zero column right of the image; NewConv2dPadded(c, c,
// 3, 2, 0, 1)): tap (ky, kx) of output (i, j) reads x[2i+ky, 2j+kx], i.e.
// the phase P(ky mod 2, kx mod 2) at (i + ky/2, j + kx/2). The four taps
// with ky, kx < 2 are the phases themselves; the five others are phases
// shifted one phase row or column forward, zero past the image.
func im2colDownSame(col []float32, ld int, x []float32, cin, h, w int) {
	ho, wo := h/2, w/2
	for c := 0; c < cin; c++ {
		tap := func(ky, kx int) []float32 { return col[((c*3+ky)*3+kx)*ld:][:ho*wo] }
		p00, p01, p10, p11 := tap(0, 0), tap(0, 1), tap(1, 0), tap(1, 1)
		splitPhases(p00, p01, p10, p11, x[c*h*w:(c+1)*h*w], h, w)
		shiftPlane(tap(0, 2), p00, ho, wo, 0, 1, 0, ho)
		shiftPlane(tap(1, 2), p10, ho, wo, 0, 1, 0, ho)
		shiftPlane(tap(2, 0), p00, ho, wo, 1, 0, 0, ho)
		shiftPlane(tap(2, 1), p01, ho, wo, 1, 0, 0, ho)
		shiftPlane(tap(2, 2), p00, ho, wo, 1, 1, 0, ho)
	}
}

// splitPhases de-interleaves an h×w plane into its four (h/2)×(w/2)
// phases by row and column parity: p00 even rows and columns, p01 even rows
// and odd columns, p10 odd rows and even columns, p11 odd both.
func splitPhases(p00, p01, p10, p11, xc []float32, h, w int) {
	ho, wo := h/2, w/2
	for i := 0; i < ho; i++ {
		r0, r1 := xc[2*i*w:][:w], xc[(2*i+1)*w:][:w]
		e0, o0, e1, o1 := p00[i*wo:][:wo], p01[i*wo:][:wo], p10[i*wo:][:wo], p11[i*wo:][:wo]
		for j := range wo {
			e0[j], o0[j], e1[j], o1[j] = r0[2*j], r0[2*j+1], r1[2*j], r1[2*j+1]
		}
	}
}

// shiftPlane writes dst[oy−oy0, ox] = x[oy+dy, ox+dx] for output rows
// [oy0, oy1) of an h×w plane (0 outside it): one im2col row of a stride-1
// conv whose output is as wide as its input. Row-major, the shift is a
// constant offset, so the valid pixels are one long copy; the columns that
// wrapped around the row ends and the rows off the plane are zeroed
// afterwards.
func shiftPlane(dst, x []float32, h, w, dy, dx, oy0, oy1 int) {
	y0, y1 := max(oy0, -dy), min(oy1, h-dy) // output rows that read the plane
	x0, x1 := max(0, -dx), min(w, w-dx)     // output columns that do
	if y0 >= y1 || x0 >= x1 {
		clear(dst)
		return
	}
	clear(dst[:(y0-oy0)*w])
	clear(dst[(y1-oy0)*w:])
	a, b := (y0-oy0)*w+x0, (y1-1-oy0)*w+x1
	off := (oy0+dy)*w + dx
	copy(dst[a:b], x[a+off:b+off])
	if x0 == 0 && x1 == w {
		return
	}
	for oy := y0 - oy0; oy < y1-oy0; oy++ {
		r := dst[oy*w : (oy+1)*w]
		for i := range x0 { // a column or two: cheaper than a clear call
			r[i] = 0
		}
		for i := x1; i < w; i++ {
			r[i] = 0
		}
	}
}

// im2colRow is the general case of one im2col row: tap offset (offY, offX)
// from each output pixel's strided origin, output rows [oy0, oy1).
func im2colRow(row, xc []float32, h, w, stride, offY, offX, wo, oy0, oy1 int) {
	lo, hi := validRange(wo, w, stride, offX)
	for oy := oy0; oy < oy1; oy++ {
		dst := row[(oy-oy0)*wo : (oy-oy0+1)*wo]
		iy := oy*stride + offY
		if iy < 0 || iy >= h {
			clear(dst)
			continue
		}
		src := xc[iy*w : (iy+1)*w]
		clear(dst[:lo])
		clear(dst[hi:])
		if stride == 1 {
			copy(dst[lo:hi], src[lo+offX:hi+offX])
			continue
		}
		for ox := lo; ox < hi; ox++ {
			dst[ox] = src[ox*stride+offX]
		}
	}
}

// col2im is the adjoint of im2col: it adds every entry of col [cin·k·k,
// ho·wo] onto the input pixel it was copied from (padding entries are
// dropped).
func col2im(x, col []float32, cin, h, w, k, stride, pad, ho, wo int) {
	for c := 0; c < cin; c++ {
		xc := x[c*h*w : (c+1)*h*w]
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := col[((c*k+ky)*k+kx)*ho*wo:][:ho*wo]
				off := kx - pad
				lo, hi := validRange(wo, w, stride, off)
				for oy := 0; oy < ho; oy++ {
					iy := oy*stride - pad + ky
					if iy < 0 || iy >= h {
						continue
					}
					src := row[oy*wo : (oy+1)*wo]
					dst := xc[iy*w : (iy+1)*w]
					if stride == 1 {
						addTo(dst[lo+off:hi+off], src[lo:hi])
						continue
					}
					for ox := lo; ox < hi; ox++ {
						dst[ox*stride+off] += src[ox]
					}
				}
			}
		}
	}
}
