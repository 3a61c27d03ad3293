package nn

import (
	"math"

	"github.com/ddpm-go/ddpm/engine/parallel"
)

// GroupNorm is PyTorch's nn.GroupNorm(groups, c, eps): each image's channels
// are split into groups of C/groups consecutive channels, each group is
// normalised by its own mean and (biased) variance, then every channel gets
// its affine weight and bias:
//
//	out = (x − mean_g) / sqrt(var_g + eps) · weight_c + bias_c
//
// Forward saves mean and 1/sqrt(var+eps) per (image, group); Backward
// recomputes the normalised input from them instead of storing a copy.
// Statistics are accumulated in float64. Work is split over image·group.
type GroupNorm struct {
	Groups, C int
	Eps       float32
	Weight    *Param // [C]
	Bias      *Param // [C]

	mean, rstd []float32 // [n·Groups] from the latest Forward
	sumDy      []float64 // [n·C] Σ_pixels dy, for the bias gradient
	sumDyXhat  []float64 // [n·C] Σ_pixels dy·x̂, for the weight gradient
}

// NewGroupNorm makes a group norm over c channels; c must be a multiple of
// groups. Its parameters are unbound until Bind.
func NewGroupNorm(groups, c int, eps float32) *GroupNorm {
	if groups <= 0 || c%groups != 0 {
		panic("nn: GroupNorm channels must be a multiple of groups")
	}
	return &GroupNorm{Groups: groups, C: c, Eps: eps,
		Weight: newParam("weight", c), Bias: newParam("bias", c)}
}

// Params returns weight and bias, in PyTorch's state_dict order.
func (l *GroupNorm) Params() []*Param { return []*Param{l.Weight, l.Bias} }

// Forward normalises in [n, C, hw] into out (which may alias in only if the
// caller keeps no use for in: Backward needs the original input).
func (l *GroupNorm) Forward(out, in []float32, n, hw int) {
	cpg := l.C / l.Groups
	size := cpg * hw // elements per group
	l.mean, l.rstd = grow(l.mean, n*l.Groups), grow(l.rstd, n*l.Groups)
	parallel.For(n*l.Groups, func(lo, hi int) {
		for ng := lo; ng < hi; ng++ {
			x := in[ng*size : (ng+1)*size]
			mean, rstd := groupStats(x, float64(l.Eps))
			l.mean[ng], l.rstd[ng] = float32(mean), float32(rstd)
			c0 := (ng % l.Groups) * cpg
			for c := 0; c < cpg; c++ {
				scale := rstd * float64(l.Weight.W[c0+c])
				shift := float64(l.Bias.W[c0+c]) - mean*scale
				normAffine(out[ng*size+c*hw:][:hw], x[c*hw:(c+1)*hw], float32(scale), float32(shift))
			}
		}
	})
}

// Backward overwrites dIn [n, C, hw] and adds the weight and bias gradients
// into the Params' G. With x̂ the normalised input, γ the weight and M the
// group size, the input gradient of one group is
//
//	dx = rstd · (γ·dy − mean(γ·dy) − x̂ · mean(γ·dy·x̂))
//
// where the means run over the group. dIn may alias dOut.
func (l *GroupNorm) Backward(dIn, dOut, in []float32, n, hw int) {
	cpg := l.C / l.Groups
	size := cpg * hw
	l.sumDy, l.sumDyXhat = grow64(l.sumDy, n*l.C), grow64(l.sumDyXhat, n*l.C)
	parallel.For(n*l.Groups, func(lo, hi int) {
		for ng := lo; ng < hi; ng++ {
			mean, rstd := l.mean[ng], l.rstd[ng]
			c0 := (ng % l.Groups) * cpg
			b := ng / l.Groups

			// Per-channel sums; they give both the parameter gradients
			// and the two group means of the formula above.
			var mDy, mDyXhat float64
			for c := 0; c < cpg; c++ {
				x, dy := in[ng*size+c*hw:][:hw], dOut[ng*size+c*hw:][:hw]
				sDy, sDyXhat := channelSums(dy, x, mean, rstd)
				l.sumDy[b*l.C+c0+c], l.sumDyXhat[b*l.C+c0+c] = sDy, sDyXhat
				g := float64(l.Weight.W[c0+c])
				mDy += g * sDy
				mDyXhat += g * sDyXhat
			}
			mDy /= float64(size)
			mDyXhat /= float64(size)

			for c := 0; c < cpg; c++ {
				x, dy := in[ng*size+c*hw:][:hw], dOut[ng*size+c*hw:][:hw]
				dx := dIn[ng*size+c*hw:][:hw]
				g := l.Weight.W[c0+c]
				normBackward(dx, dy, x, mean, rstd, g, float32(mDy), float32(mDyXhat))
			}
		}
	})
	// Parameter gradients: reduce the per-image sums in image order.
	for b := 0; b < n; b++ {
		for c := 0; c < l.C; c++ {
			l.Weight.G[c] += float32(l.sumDyXhat[b*l.C+c])
			l.Bias.G[c] += float32(l.sumDy[b*l.C+c])
		}
	}
}

// groupStats returns the mean and 1/sqrt(var+eps) of x, two-pass in float64
// (the one-pass E[x²]−E[x]² cancels badly when the mean is large).
func groupStats(x []float32, eps float64) (mean, rstd float64) {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mean = s / float64(len(x))
	var ss float64
	for _, v := range x {
		d := float64(v) - mean
		ss += d * d
	}
	return mean, 1 / math.Sqrt(ss/float64(len(x))+eps)
}

// normAffine writes y = x·scale + shift (normalisation and affine folded).
func normAffine(y, x []float32, scale, shift float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] = x[i]*scale + shift
	}
}

// channelSums returns Σ dy and Σ dy·x̂ with x̂ = (x − mean)·rstd.
func channelSums(dy, x []float32, mean, rstd float32) (sDy, sDyXhat float64) {
	x = x[:len(dy)]
	for i, d := range dy {
		sDy += float64(d)
		sDyXhat += float64(d * (x[i] - mean) * rstd)
	}
	return sDy, sDyXhat
}

// normBackward writes dx = rstd·(g·dy − mDy − x̂·mDyXhat).
func normBackward(dx, dy, x []float32, mean, rstd, g, mDy, mDyXhat float32) {
	dy, x = dy[:len(dx)], x[:len(dx)]
	for i := range dx {
		xhat := (x[i] - mean) * rstd
		dx[i] = rstd * (g*dy[i] - mDy - xhat*mDyXhat)
	}
}
