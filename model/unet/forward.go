package unet

import (
	"fmt"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/engine/nn"
	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// fit resizes *buf to size elements, reallocating only when its capacity is
// too small. The layers take a slice's length as the tensor size, so every
// buffer must be exactly as long as the current batch needs; keeping the
// capacity means a smaller batch after a larger one allocates nothing.
func fit(buf *[]float32, size int) {
	if cap(*buf) < size {
		*buf = make([]float32, size)
	}
	*buf = (*buf)[:size]
}

// maxPerImage is the largest activation (channels·height·width) anywhere in
// the network, concatenations included: the size of Backward's ping-pong
// gradient buffers and scratch.
func (u *UNet) maxPerImage() int {
	c := u.cfg
	m := max(c.InCh, c.OutCh, c.Ch) * c.Res * c.Res
	for _, e := range append(append([]*entry{}, u.down...), u.up...) {
		hw := e.h * e.h
		m = max(m, e.cin*hw, e.cout*hw)
		if e.conv != nil && e.res == nil {
			m = max(m, e.cin*4*hw) // an Upsample's conv runs at 2h
		}
	}
	return m
}

// alloc sizes every activation and scratch buffer for a batch of n.
func (u *UNet) alloc(n int) {
	a, c := &u.act, u.cfg
	a.n = n
	if n > a.capN {
		a.capN = n
	}
	if cap(a.t) < n {
		a.t = make([]int, n)
	}
	a.t = a.t[:n]
	rr := c.Res * c.Res
	fit(&a.x, n*c.InCh*rr)
	for _, b := range []*[]float32{&a.temb1, &a.temb1s, &a.temb, &a.tembS, &a.dTembS, &a.dTemb, &a.dTmp} {
		fit(b, n*u.tembCh)
	}
	fit(&a.temb0, n*c.Ch)
	fit(&a.hIn, n*c.Ch*rr)
	maxC := 0
	resBufs := func(b *resBlock, h int) {
		hw := h * h
		for _, p := range []*[]float32{&b.h1, &b.a2, &b.out} {
			fit(p, n*b.cout*hw)
		}
		fit(&b.tp, n*b.cout)
		maxC = max(maxC, b.cout)
	}
	for _, e := range u.down {
		if e.res != nil {
			resBufs(e.res, e.h)
			e.out = e.res.out
		} else {
			fit(&e.convOut, n*e.cout*(e.h/2)*(e.h/2))
			e.out = e.convOut
		}
		if e.attn != nil {
			fit(&e.attnOut, n*e.cout*e.h*e.h)
			e.out = e.attnOut
		}
	}
	hm := c.Res >> (len(c.ChMult) - 1)
	resBufs(u.mid1, hm)
	resBufs(u.mid2, hm)
	fit(&a.midAttn, n*u.mid1.cout*hm*hm)
	for _, e := range u.up {
		hw := e.h * e.h
		if e.res != nil {
			fit(&e.cat, n*e.cin*hw)
			resBufs(e.res, e.h)
			e.out = e.res.out
		} else {
			fit(&e.upIn, n*e.cin*4*hw)
			fit(&e.convOut, n*e.cout*4*hw)
			e.out = e.convOut
		}
		if e.attn != nil {
			fit(&e.attnOut, n*e.cout*hw)
			e.out = e.attnOut
		}
	}
	cOut := u.up[len(u.up)-1].cout
	fit(&a.aOut, n*cOut*rr)
	m := n * u.maxPerImage()
	for _, b := range []*[]float32{&a.gA, &a.gB, &a.s1, &a.s2, &a.s3} {
		fit(b, m)
	}
	fit(&a.dTp, n*maxC)
	if len(a.dSkip) != len(u.skipShape) {
		a.dSkip = make([][]float32, len(u.skipShape))
	}
	for i, s := range u.skipShape {
		fit(&a.dSkip[i], n*s[0]*s[1]*s[1])
	}
}

// skipOut is skip tensor i of the forward pass: conv_in's output, then each
// down entry's output, in the order the reference pushes them on hs.
func (u *UNet) skipOut(i int) []float32 {
	if i == 0 {
		return u.act.hIn
	}
	return u.down[i-1].out
}

// upInput is up entry k's input h in the forward pass (the skip tensor
// aside): the middle's output for the first entry, else the previous up
// entry's output.
func (u *UNet) upInput(k int) []float32 {
	if k == 0 {
		return u.mid2.out
	}
	return u.up[k-1].out
}

// Forward computes ε̂ for n images x [n, InCh, Res, Res] at 0-based timesteps
// t (0 ≤ t[i] < 1000, embedded exactly as the reference does) into out [n,
// OutCh, Res, Res]. It keeps what Backward needs (x and t are copied, so the
// caller may reuse them). train enables dropout, whose masks are drawn from
// rng (which may be nil when !train or Dropout is 0).
func (u *UNet) Forward(out, x []float32, t []int, n int, train bool, rng *rand.Rand) {
	c := u.cfg
	rr := c.Res * c.Res
	if len(x) != n*c.InCh*rr || len(out) != n*c.OutCh*rr || len(t) != n {
		panic(fmt.Sprintf("unet: Forward: n=%d but len(x)=%d, len(out)=%d, len(t)=%d (want %d, %d, %d)",
			n, len(x), len(out), len(t), n*c.InCh*rr, n*c.OutCh*rr, n))
	}
	if train && c.Dropout > 0 && rng == nil {
		panic("unet: Forward: training with dropout needs an rng")
	}
	u.alloc(n)
	a := &u.act
	copy(a.x, x)
	copy(a.t, t)

	// Timestep embedding: sinusoid → dense → swish → dense; every residual
	// block then reads swish(temb), computed once here.
	nn.TimestepEmbeddingShift(a.temb0, a.t, c.Ch, float64(c.TimeFreqShift()), c.FlipSinToCos)
	u.dense0.Forward(a.temb1, a.temb0, n)
	nn.SiLUForward(a.temb1s, a.temb1)
	u.dense1.Forward(a.temb, a.temb1s, n)
	nn.SiLUForward(a.tembS, a.temb)

	u.convIn.Forward(a.hIn, a.x, n, c.Res, c.Res)
	h := a.hIn
	for _, e := range u.down {
		if e.res != nil {
			u.resForward(e.res, h, n, e.h, train, rng)
			h = e.res.out
			if e.attn != nil {
				e.attn.Forward(e.attnOut, h, n, e.h, e.h)
				h = e.attnOut
			}
		} else { // Downsample: conv3x3, stride 2, pad 1 (or 0, 1)
			e.conv.Forward(e.out, h, n, e.h, e.h)
			h = e.out
		}
	}
	hm := c.Res >> (len(c.ChMult) - 1)
	u.resForward(u.mid1, h, n, hm, train, rng)
	u.midAttn.Forward(a.midAttn, u.mid1.out, n, hm, hm)
	u.resForward(u.mid2, a.midAttn, n, hm, train, rng)
	h = u.mid2.out
	for _, e := range u.up {
		if e.res != nil {
			cs := u.skipShape[e.skip][0]
			if e.res.nin != nil {
				u.resForwardConcat(e.res, h, u.skipOut(e.skip), e.cin-cs, n, e.h, train, rng)
			} else { // no shortcut conv (cin = cout): the residual adds the whole input
				nn.ConcatForward(e.cat, h, u.skipOut(e.skip), n, e.cin-cs, cs, e.h*e.h)
				u.resForward(e.res, e.cat, n, e.h, train, rng)
			}
			h = e.res.out
			if e.attn != nil {
				e.attn.Forward(e.attnOut, h, n, e.h, e.h)
				h = e.attnOut
			}
		} else { // Upsample: nearest ×2, then conv3x3
			nn.Upsample2xForward(e.upIn, h, n, e.cin, e.h, e.h)
			e.conv.Forward(e.out, e.upIn, n, 2*e.h, 2*e.h)
			h = e.out
		}
	}
	u.normOut.Forward(a.aOut, h, n, rr) // with swish
	u.convOut.Forward(out, a.aOut, n, c.Res, c.Res)
}

// Backward propagates dOut = ∂L/∂out of the latest Forward: it adds every
// parameter gradient into Grads() (zero it first, once per step) and, when
// dX is non-nil, overwrites dX [n, InCh, Res, Res] with ∂L/∂x.
//
// Gradients flow through two ping-pong buffers (d holds the gradient of the
// current tensor, o receives the next); the gradient reaching each skip
// tensor from the up path is parked in dSkip and added when the down path
// gets back to the tensor that produced it.
func (u *UNet) Backward(dOut, dX []float32) {
	c, a := u.cfg, &u.act
	n, rr := a.n, c.Res*c.Res
	if n == 0 {
		panic("unet: Backward before Forward")
	}
	if len(dOut) != n*c.OutCh*rr || (dX != nil && len(dX) != n*c.InCh*rr) {
		panic(fmt.Sprintf("unet: Backward: len(dOut)=%d, len(dX)=%d for n=%d", len(dOut), len(dX), n))
	}
	clear(a.dTembS)
	d, o := a.gA, a.gB
	swap := func() { d, o = o, d }

	hLast := u.up[len(u.up)-1].out
	cOut := u.up[len(u.up)-1].cout
	s1 := a.s1[:n*cOut*rr]
	u.convOut.Backward(s1, dOut, a.aOut, n, c.Res, c.Res)
	u.normOut.Backward(d[:len(hLast)], s1, hLast, n, rr)

	for k := len(u.up) - 1; k >= 0; k-- {
		e := u.up[k]
		hw := e.h * e.h
		if e.res != nil {
			if e.attn != nil {
				sz := n * e.cout * hw
				e.attn.Backward(o[:sz], d[:sz], e.res.out, n, e.h, e.h)
				swap()
			}
			cs := u.skipShape[e.skip][0]
			// Forward may have read the block's input in its two halves:
			// build it here, where the norm and the shortcut's backward
			// need it whole.
			nn.ConcatForward(e.cat, u.upInput(k), u.skipOut(e.skip), n, e.cin-cs, cs, hw)
			u.resBackward(e.res, o[:n*e.cin*hw], d[:n*e.cout*hw], e.cat, n, e.h)
			nn.ConcatBackward(d[:n*(e.cin-cs)*hw], a.dSkip[e.skip], o[:n*e.cin*hw], n, e.cin-cs, cs, hw)
		} else {
			s := a.s1[:n*e.cin*4*hw]
			e.conv.Backward(s, d[:n*e.cout*4*hw], e.upIn, n, 2*e.h, 2*e.h)
			nn.Upsample2xBackward(o[:n*e.cin*hw], s, n, e.cin, e.h, e.h)
			swap()
		}
	}

	hm := c.Res >> (len(c.ChMult) - 1)
	sz := n * u.mid1.cout * hm * hm
	u.resBackward(u.mid2, o[:sz], d[:sz], a.midAttn, n, hm)
	swap()
	u.midAttn.Backward(o[:sz], d[:sz], u.mid1.out, n, hm, hm)
	swap()
	u.resBackward(u.mid1, o[:sz], d[:sz], u.skipOut(len(u.down)), n, hm)
	swap()

	for k := len(u.down) - 1; k >= 0; k-- {
		e := u.down[k]
		dk := a.dSkip[k+1]
		g := d[:len(dk)]
		nn.AddForward(g, g, dk) // this output also fed an up block
		in := u.skipOut(k)
		if e.res != nil {
			if e.attn != nil {
				e.attn.Backward(o[:len(g)], g, e.res.out, n, e.h, e.h)
				swap()
				g = d[:len(dk)]
			}
			u.resBackward(e.res, o[:len(in)], g, in, n, e.h)
		} else {
			e.conv.Backward(o[:len(in)], g, in, n, e.h, e.h)
		}
		swap()
	}
	g := d[:len(a.hIn)]
	nn.AddForward(g, g, a.dSkip[0])
	u.convIn.Backward(dX, g, a.x, n, c.Res, c.Res)

	// Timestep embedding: every temb_proj added into dTembS = ∂L/∂swish(temb).
	nn.SiLUBackward(a.dTemb, a.dTembS, a.temb)
	u.dense1.Backward(a.dTmp, a.dTemb, a.temb1s, n)
	nn.SiLUBackward(a.dTmp, a.dTmp, a.temb1)
	u.dense0.Backward(nil, a.dTmp, a.temb0, n)
}

// resForward runs a residual block on x [n, cin, h, h] into b.out.
func (u *UNet) resForward(b *resBlock, x []float32, n, h int, train bool, rng *rand.Rand) {
	u.resForwardConcat(b, x, nil, 0, n, h, train, rng)
}

// resForwardConcat is resForward on torch.cat([x, skip], dim=1) (x's ch
// channels first) read in place, when skip is not nil: an up block's
// input. The norm and the 1×1 shortcut are the only readers of the input,
// and both take it in two halves (see GroupNorm.ForwardConcat); b must
// have the shortcut (its input wider than its output).
func (u *UNet) resForwardConcat(b *resBlock, x, skip []float32, ch, n, h int, train bool, rng *rand.Rand) {
	hw := h * h
	a1 := u.act.s1[:n*b.cin*hw]
	if skip != nil {
		b.norm1.ForwardConcat(a1, x, skip, ch, n, hw) // with swish
	} else {
		b.norm1.Forward(a1, x, n, hw)
	}
	b.tembProj.Forward(b.tp, u.act.tembS, n)
	b.conv1.ForwardBias(b.h1, a1, b.tp, n, h, h) // + temb_proj, broadcast over the pixels
	b.norm2.Forward(b.a2, b.h1, n, hw)           // with swish
	b.drop.Forward(b.a2, b.a2, rng, train)
	b.conv2.Forward(b.out, b.a2, n, h, h)
	if b.nin != nil {
		sc := u.act.s1[:len(b.out)]
		if skip != nil {
			b.nin.ForwardConcat(sc, x, skip, ch, n, h, h)
		} else {
			b.nin.Forward(sc, x, n, h, h)
		}
		nn.AddForward(b.out, b.out, sc)
	} else {
		nn.AddForward(b.out, b.out, x)
	}
}

// resBackward overwrites dX [n, cin, h, h] with the block's input gradient
// given dOut, adds its parameter gradients and adds its temb_proj input
// gradient into act.dTembS. x is the block's forward input.
func (u *UNet) resBackward(b *resBlock, dX, dOut, x []float32, n, h int) {
	a := &u.act
	hw := h * h
	no, ni := n*b.cout*hw, n*b.cin*hw
	s1, s2, s3 := a.s1[:no], a.s2[:ni], a.s3[:ni]

	b.conv2.Backward(s1, dOut, b.a2, n, h, h)
	b.drop.Backward(s1, s1)
	b.norm2.Backward(s1, s1, b.h1, n, hw) // s1 = ∂L/∂h1

	// h1 = conv1(a1) + tp broadcast over the pixels.
	dTp := a.dTp[:n*b.cout]
	channelSums(dTp, s1, hw)
	b.tembProj.Backward(a.dTmp, dTp, a.tembS, n)
	nn.AddForward(a.dTembS, a.dTembS, a.dTmp)

	b.norm1.Reapply(s2, x, n, hw) // recompute conv1's input
	b.conv1.Backward(s3, s1, s2, n, h, h)
	b.norm1.Backward(dX, s3, x, n, hw)

	if b.nin != nil {
		b.nin.Backward(s2, dOut, x, n, h, h)
		nn.AddForward(dX, dX, s2)
	} else {
		nn.AddForward(dX, dX, dOut)
	}
}

// channelSums writes dst[row] = Σ of row row of y (rows of length hw): the
// gradient of a per-channel value broadcast over the pixels.
func channelSums(dst, y []float32, hw int) {
	parallel.For(len(dst), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			dst[r] = float32(vec.Sum(y[r*hw : (r+1)*hw]))
		}
	})
}

// Activations are the outputs of the latest Forward's modules, for
// comparing the network with another implementation stage by stage:
// "conv_in", "down.K" (each down-path entry: a residual block with its
// attention, or a Downsample), "mid" (the middle block), "up.K" and
// "norm_out" (silu(norm_out(h)), conv_out's input). Each holds the batch,
// [n, C, H, W]; the slices alias the network's buffers and change with the
// next Forward.
func (u *UNet) Activations() map[string][]float32 {
	a := &u.act
	m := map[string][]float32{"conv_in": a.hIn, "mid": u.mid2.out, "norm_out": a.aOut}
	for k, e := range u.down {
		m[fmt.Sprintf("down.%d", k)] = e.out
	}
	for k, e := range u.up {
		m[fmt.Sprintf("up.%d", k)] = e.out
	}
	return m
}
