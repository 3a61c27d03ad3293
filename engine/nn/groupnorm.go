package nn

import (
	"math"

	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// GroupNorm is PyTorch's nn.GroupNorm(groups, c, eps): each image's channels
// are split into groups of C/groups consecutive channels, each group is
// normalised by its own mean and (biased) variance, then every channel gets
// its affine weight and bias:
//
//	out = (x − mean_g) / sqrt(var_g + eps) · weight_c + bias_c
//
// With Swish set the layer is that norm followed by swish (x·σ(x)), fused:
// the U-Net always applies the nonlinearity right after its norms (except in
// AttnBlock), so Forward writes only silu(GN(x)), and Backward takes the
// gradient of that output and recomputes the pre-activation from x.
//
// Forward saves mean and 1/sqrt(var+eps) per (image, group); Backward
// recomputes the normalised input from them instead of storing a copy.
// Work is split over image·group.
type GroupNorm struct {
	Groups, C int
	Eps       float32
	Swish     bool   // apply swish after the affine map (see above)
	Weight    *Param // [C]
	Bias      *Param // [C]

	mean, rstd []float32 // [n·Groups] from the latest Forward
	sumDy      []float64 // [n·C] Σ_pixels dz, for the bias gradient
	sumDyXhat  []float64 // [n·C] Σ_pixels dz·x̂, for the weight gradient
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

// NewGroupNormSwish is NewGroupNorm with Swish set: silu(GroupNorm(x)).
func NewGroupNormSwish(groups, c int, eps float32) *GroupNorm {
	l := NewGroupNorm(groups, c, eps)
	l.Swish = true
	return l
}

// Params returns weight and bias, in PyTorch's state_dict order.
func (l *GroupNorm) Params() []*Param { return []*Param{l.Weight, l.Bias} }

// Forward normalises in [n, C, hw] into out (which may alias in only if the
// caller keeps no use for in: Backward needs the original input).
func (l *GroupNorm) Forward(out, in []float32, n, hw int) {
	size := l.C / l.Groups * hw // elements per group
	l.mean, l.rstd = grow(l.mean, n*l.Groups), grow(l.rstd, n*l.Groups)
	parallel.For(n*l.Groups, func(lo, hi int) {
		for ng := lo; ng < hi; ng++ {
			x := in[ng*size : (ng+1)*size]
			l.mean[ng], l.rstd[ng] = groupStats(x, nil, l.Eps)
			l.applyGroup(out[ng*size:(ng+1)*size], x, ng, hw)
		}
	})
}

// ForwardConcat is Forward on torch.cat([a, b], dim=1), a [n, ca, hw] and
// b [n, C−ca, hw], without building the concatenation: each group's
// channels are read where they are (a group across the split takes its
// statistics over both parts). The U-Net's up blocks take their input this
// way, saving a copy of every up block's input per sampling step
// (BenchmarkSampleStepMNISTDeeper). Backward still needs the concatenated
// input.
func (l *GroupNorm) ForwardConcat(out, a, b []float32, ca, n, hw int) {
	if ca <= 0 || ca >= l.C {
		panic("nn: GroupNorm.ForwardConcat: split outside the channels")
	}
	cpg, cb := l.C/l.Groups, l.C-ca
	l.mean, l.rstd = grow(l.mean, n*l.Groups), grow(l.rstd, n*l.Groups)
	parallel.For(n*l.Groups, func(lo, hi int) {
		for ng := lo; ng < hi; ng++ {
			i, k0, k1 := ng/l.Groups, ng%l.Groups*cpg, (ng%l.Groups+1)*cpg
			// Channels [k0, k1) of the concatenation: those below ca
			// in a, the rest in b.
			xa := a[(i*ca+min(k0, ca))*hw : (i*ca+min(k1, ca))*hw]
			xb := b[(i*cb+max(k0, ca)-ca)*hw : (i*cb+max(k1, ca)-ca)*hw]
			l.mean[ng], l.rstd[ng] = groupStats(xa, xb, l.Eps)
			y := out[ng*cpg*hw : (ng+1)*cpg*hw]
			l.applyChannels(y[:len(xa)], xa, ng, k0, hw)
			l.applyChannels(y[len(xa):], xb, ng, k0+len(xa)/hw, hw)
		}
	})
}

// Reapply writes the latest Forward's output again from the same input,
// reusing the saved statistics: one elementwise pass, for callers that
// recompute an activation in backward instead of keeping it.
func (l *GroupNorm) Reapply(out, in []float32, n, hw int) {
	size := l.C / l.Groups * hw
	parallel.For(n*l.Groups, func(lo, hi int) {
		for ng := lo; ng < hi; ng++ {
			l.applyGroup(out[ng*size:(ng+1)*size], in[ng*size:(ng+1)*size], ng, hw)
		}
	})
}

// applyGroup writes the output of group ng (image·Groups + group) from its
// input x using the saved statistics.
func (l *GroupNorm) applyGroup(y, x []float32, ng, hw int) {
	l.applyChannels(y, x, ng, ng%l.Groups*(l.C/l.Groups), hw)
}

// applyChannels writes the output of channels c0, c0+1, … of group ng from
// their input x (len(x)/hw of them) using the group's saved statistics.
func (l *GroupNorm) applyChannels(y, x []float32, ng, c0, hw int) {
	for c := 0; c < len(x)/hw; c++ {
		scale, shift := l.channelAffine(c0+c, l.mean[ng], l.rstd[ng])
		yc, xc := y[c*hw:(c+1)*hw], x[c*hw:(c+1)*hw]
		if l.Swish {
			vec.AffineSiLU(yc, xc, scale, shift)
		} else {
			vec.Affine(yc, xc, scale, shift)
		}
	}
}

// channelAffine folds normalisation and channel c's affine parameters into
// the norm output z = x·scale + shift.
func (l *GroupNorm) channelAffine(c int, mean, rstd float32) (scale, shift float32) {
	sc := float64(rstd) * float64(l.Weight.W[c])
	return float32(sc), float32(float64(l.Bias.W[c]) - float64(mean)*sc)
}

// Backward overwrites dIn [n, C, hw] and adds the weight and bias gradients
// into the Params' G. dOut is the gradient of Forward's output (after
// swish, with Swish set). With dz the gradient of the norm's output z,
// x̂ the normalised input, γ the weight and M the group size, the input
// gradient of one group is
//
//	dx = rstd · (γ·dz − mean(γ·dz) − x̂ · mean(γ·dz·x̂))
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
			// and the two group means of the formula above. With swish,
			// dz = dy·silu'(z) is first written into dx (z recomputed
			// from x), and the rest reads it from there.
			var mDy, mDyXhat float64
			for c := 0; c < cpg; c++ {
				x, dz := in[ng*size+c*hw:][:hw], dOut[ng*size+c*hw:][:hw]
				if l.Swish {
					dx := dIn[ng*size+c*hw:][:hw]
					scale, shift := l.channelAffine(c0+c, mean, rstd)
					vec.AffineSiLUGrad(dx, dz, x, scale, shift)
					dz = dx
				}
				sDz, sDzXc := vec.SumDyXc(dz, x, mean)
				sDzXhat := sDzXc * float64(rstd)
				l.sumDy[b*l.C+c0+c], l.sumDyXhat[b*l.C+c0+c] = sDz, sDzXhat
				g := float64(l.Weight.W[c0+c])
				mDy += g * sDz
				mDyXhat += g * sDzXhat
			}
			mDy /= float64(size)
			mDyXhat /= float64(size)

			for c := 0; c < cpg; c++ {
				x, dz := in[ng*size+c*hw:][:hw], dOut[ng*size+c*hw:][:hw]
				dx := dIn[ng*size+c*hw:][:hw]
				if l.Swish {
					dz = dx
				}
				normBackward(dx, dz, x, mean, rstd, l.Weight.W[c0+c], mDy, mDyXhat)
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

// groupStats returns the mean and 1/sqrt(var+eps) of x and y together
// (y is nil or empty except for a group split across a concatenation),
// two-pass (the one-pass E[x²]−E[x]² cancels badly when the mean is large).
func groupStats(x, y []float32, eps float32) (mean, rstd float32) {
	n := float64(len(x) + len(y))
	m := (vec.Sum(x) + vec.Sum(y)) / n
	ss := vec.SumSqDev(x, float32(m)) + vec.SumSqDev(y, float32(m))
	return float32(m), float32(1 / math.Sqrt(ss/n+float64(eps)))
}

// normBackward writes dx = rstd·(g·dz − mDy − x̂·mDyXhat) with
// x̂ = (x − mean)·rstd, expanded into one a·dz + b·x + c pass.
func normBackward(dx, dz, x []float32, mean, rstd, g float32, mDy, mDyXhat float64) {
	r := float64(rstd)
	a := r * float64(g)
	b := -r * r * mDyXhat
	c := r * (float64(mean)*r*mDyXhat - mDy)
	vec.Lin3(dx, dz, x, float32(a), float32(b), float32(c))
}
