package nn

import (
	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// SiLUForward is swish: out = x·sigmoid(x). out may alias in (the U-Net
// keeps the input for Backward when it needs it).
func SiLUForward(out, in []float32) {
	forElems(len(in), func(lo, hi int) {
		vec.SiLU(out[lo:hi], in[lo:hi])
	})
}

// SiLUBackward writes dIn = dOut·σ(x)·(1 + x·(1 − σ(x))), the derivative of
// x·σ(x). dIn may alias dOut; in is the input Forward saw.
func SiLUBackward(dIn, dOut, in []float32) {
	forElems(len(in), func(lo, hi int) {
		vec.SiLUGrad(dIn[lo:hi], dOut[lo:hi], in[lo:hi])
	})
}

// AddForward writes out = a + b elementwise; out may alias a or b. Its
// backward is the identity for both operands, so there is no AddBackward:
// the caller hands the same gradient to both.
func AddForward(out, a, b []float32) {
	forElems(len(out), func(lo, hi int) {
		vec.Add(out[lo:hi], a[lo:hi], b[lo:hi])
	})
}

// Upsample2xForward is F.interpolate(scale_factor=2, mode="nearest"): every
// pixel of in [n, c, h, w] becomes a 2×2 block of out [n, c, 2h, 2w].
func Upsample2xForward(out, in []float32, n, c, h, w int) {
	parallel.For(n*c, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			upsamplePlane(out[p*4*h*w:(p+1)*4*h*w], in[p*h*w:(p+1)*h*w], h, w)
		}
	})
}

// Upsample2xBackward sums each 2×2 block of dOut [n, c, 2h, 2w] into dIn
// [n, c, h, w].
func Upsample2xBackward(dIn, dOut []float32, n, c, h, w int) {
	parallel.For(n*c, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			downsumPlane(dIn[p*h*w:(p+1)*h*w], dOut[p*4*h*w:(p+1)*4*h*w], h, w)
		}
	})
}

func upsamplePlane(y, x []float32, h, w int) {
	for i := 0; i < h; i++ {
		src := x[i*w : (i+1)*w]
		row := y[2*i*2*w : (2*i+1)*2*w]
		for j, v := range src {
			row[2*j], row[2*j+1] = v, v
		}
		copy(y[(2*i+1)*2*w:(2*i+2)*2*w], row)
	}
}

func downsumPlane(dx, dy []float32, h, w int) {
	for i := 0; i < h; i++ {
		r0, r1 := dy[2*i*2*w:(2*i+1)*2*w], dy[(2*i+1)*2*w:(2*i+2)*2*w]
		dst := dx[i*w : (i+1)*w]
		for j := range dst {
			dst[j] = r0[2*j] + r0[2*j+1] + r1[2*j] + r1[2*j+1]
		}
	}
}

// ConcatForward is torch.cat([a, b], dim=1): out [n, ca+cb, hw] holds image
// i's channels of a [n, ca, hw] followed by those of b [n, cb, hw].
func ConcatForward(out, a, b []float32, n, ca, cb, hw int) {
	sa, sb := ca*hw, cb*hw
	parallel.For(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst := out[i*(sa+sb) : (i+1)*(sa+sb)]
			copy(dst[:sa], a[i*sa:(i+1)*sa])
			copy(dst[sa:], b[i*sb:(i+1)*sb])
		}
	})
}

// ConcatBackward splits dOut [n, ca+cb, hw] back into da and db (either
// may be nil when that operand needs no gradient).
func ConcatBackward(da, db, dOut []float32, n, ca, cb, hw int) {
	sa, sb := ca*hw, cb*hw
	parallel.For(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			src := dOut[i*(sa+sb) : (i+1)*(sa+sb)]
			if da != nil {
				copy(da[i*sa:(i+1)*sa], src[:sa])
			}
			if db != nil {
				copy(db[i*sb:(i+1)*sb], src[sa:])
			}
		}
	})
}
