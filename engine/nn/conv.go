package nn

import "github.com/ddpm-go/ddpm/engine/gemm"

// Conv2d is PyTorch's nn.Conv2d(cin, cout, k, stride, padding) with square
// kernels, zero padding and a bias. Each image is lowered to a GEMM:
//
//	out[Cout, Ho·Wo] = W[Cout, Cin·K·K] · col[Cin·K·K, Ho·Wo] + bias
//
// where col is the im2col unrolling of the image (a 1×1 stride-1 conv
// without padding uses the image itself, which already is [Cin, H·W]).
//
// The batch is split into one contiguous range per pool worker ("slot"); a
// slot owns its im2col scratch and, in Backward, private weight/bias
// gradient accumulators that are added into the Params' G after the loop in
// slot order. The split depends only on the batch size and the worker count,
// so gradients are bitwise reproducible run to run. With fewer images than
// workers the images run one after another and the GEMM parallelises inside.
type Conv2d struct {
	Cin, Cout, K, Stride, Pad int
	Weight                    *Param // [Cout, Cin, K, K]
	Bias                      *Param // [Cout]

	slots   []convSlot
	flipped []float32 // [Cin, Cout, K, K]: W transposed and rotated 180°, for Backward
}

// convSlot is the scratch of one batch range.
type convSlot struct {
	col    []float32 // im2col of one image (of dOut too, in Backward)
	dW, dB []float32 // gradient accumulators of slots > 0
	used   bool      // ran in the latest eachSlot
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

// Params returns weight and bias, in PyTorch's state_dict order.
func (l *Conv2d) Params() []*Param { return []*Param{l.Weight, l.Bias} }

// OutSize is the output height and width for an h×w input.
func (l *Conv2d) OutSize(h, w int) (int, int) {
	return (h+2*l.Pad-l.K)/l.Stride + 1, (w+2*l.Pad-l.K)/l.Stride + 1
}

// pointwise reports whether the layer is a plain channel mix (1×1, stride 1,
// no padding) whose im2col would be a copy of the input.
func (l *Conv2d) pointwise() bool { return l.K == 1 && l.Stride == 1 && l.Pad == 0 }

// Forward computes out [n, Cout, Ho, Wo] from in [n, Cin, h, w]; out must
// not alias in.
func (l *Conv2d) Forward(out, in []float32, n, h, w int) {
	ho, wo := l.OutSize(h, w)
	inSize, outSize, kk, howo := l.Cin*h*w, l.Cout*ho*wo, l.Cin*l.K*l.K, ho*wo
	l.eachSlot(n, func(s *convSlot, lo, hi int) {
		for i := lo; i < hi; i++ {
			x, y := in[i*inSize:(i+1)*inSize], out[i*outSize:(i+1)*outSize]
			col := l.lower(s, x, h, w, ho, wo)
			fillRows(y, l.Bias.W, howo)
			gemm.Sgemm(false, false, l.Cout, howo, kk, 1, l.Weight.W, kk, col, howo, 1, y, howo)
		}
	})
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
	if dIn != nil && l.transposedBackward() {
		l.flipKernel()
	}
	l.eachSlot(n, func(s *convSlot, lo, hi int) {
		gW, gB := l.Weight.G, l.Bias.G
		if s != &l.slots[0] {
			s.dW, s.dB = grow(s.dW, len(gW)), grow(s.dB, len(gB))
			clear(s.dW)
			clear(s.dB)
			gW, gB = s.dW, s.dB
		}
		for i := lo; i < hi; i++ {
			x, dy := in[i*inSize:(i+1)*inSize], dOut[i*outSize:(i+1)*outSize]

			// dB += Σ_pixels dy; dW += dy · colᵀ.
			addRowSums(gB, dy, howo)
			col := l.lower(s, x, h, w, ho, wo)
			gemm.Sgemm(false, true, l.Cout, kk, howo, 1, dy, howo, col, howo, 1, gW, kk)
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
			case l.transposedBackward():
				// dx is dy convolved with the flipped kernel (padding K−1−Pad):
				// one more im2col and a GEMM with the long Cout·K·K inner
				// dimension, instead of a K=Cout GEMM into a Cin·K·K × HW
				// dcol and a scalar scatter-add.
				kt := l.Cout * l.K * l.K
				s.col = grow(s.col, kt*h*w)
				im2col(s.col, dy, l.Cout, ho, wo, l.K, 1, l.K-1-l.Pad, h, w)
				gemm.Sgemm(false, false, l.Cin, h*w, kt, 1, l.flipped, kt, s.col, h*w, beta, dx, h*w)
			default:
				// Strided: dcol = Wᵀ · dy, then fold the columns back onto
				// the pixels they came from.
				dcol := s.col // col is no longer needed for this image
				gemm.Sgemm(true, false, kk, howo, l.Cout, 1, l.Weight.W, kk, dy, howo, 0, dcol, howo)
				if !accumulate {
					clear(dx)
				}
				col2im(dx, dcol, l.Cin, h, w, l.K, l.Stride, l.Pad, ho, wo)
			}
		}
	})
	for _, s := range l.slots[1:] {
		if s.used {
			addTo(l.Weight.G, s.dW)
			addTo(l.Bias.G, s.dB)
		}
	}
}

// transposedBackward reports whether Backward computes dIn as a stride-1
// convolution of dOut with the flipped kernel, which needs the padding to
// be at most K−1 (otherwise some output pixels see only padding and the
// transposed padding would be negative).
func (l *Conv2d) transposedBackward() bool {
	return l.Stride == 1 && !l.pointwise() && l.Pad <= l.K-1
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

// lower returns the GEMM's right-hand matrix for image x: x itself for a
// pointwise conv, otherwise its im2col in the slot's scratch.
func (l *Conv2d) lower(s *convSlot, x []float32, h, w, ho, wo int) []float32 {
	if l.pointwise() {
		return x
	}
	s.col = grow(s.col, l.Cin*l.K*l.K*ho*wo)
	im2col(s.col, x, l.Cin, h, w, l.K, l.Stride, l.Pad, ho, wo)
	return s.col
}

// eachSlot runs fn over the batch split by forSlots, handing each range its
// slot, and marks the slots that ran. (If the pool turns out to be busy,
// ForChunk runs the whole batch in the caller, on slot 0, so the other slots
// may hold stale accumulators: hence the mark.)
func (l *Conv2d) eachSlot(n int, fn func(s *convSlot, lo, hi int)) {
	if k := numSlots(n); len(l.slots) < k {
		l.slots = append(l.slots, make([]convSlot, k-len(l.slots))...)
	}
	for i := range l.slots {
		l.slots[i].used = false
	}
	forSlots(n, func(slot, lo, hi int) {
		s := &l.slots[slot]
		s.used = true
		fn(s, lo, hi)
	})
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

// im2col unrolls one image x [cin, h, w] into col [cin·k·k, ho·wo]: row
// (c, ky, kx) holds, for every output pixel, the input pixel that kernel tap
// multiplies (0 where it falls in the padding).
func im2col(col, x []float32, cin, h, w, k, stride, pad, ho, wo int) {
	for c := 0; c < cin; c++ {
		xc := x[c*h*w : (c+1)*h*w]
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := col[((c*k+ky)*k+kx)*ho*wo:][:ho*wo]
				off := kx - pad
				lo, hi := validRange(wo, w, stride, off)
				for oy := 0; oy < ho; oy++ {
					dst := row[oy*wo : (oy+1)*wo]
					iy := oy*stride - pad + ky
					if iy < 0 || iy >= h {
						clear(dst)
						continue
					}
					src := xc[iy*w : (iy+1)*w]
					clear(dst[:lo])
					clear(dst[hi:])
					if stride == 1 {
						copy(dst[lo:hi], src[lo+off:hi+off])
						continue
					}
					for ox := lo; ox < hi; ox++ {
						dst[ox] = src[ox*stride+off]
					}
				}
			}
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
