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

// arena lends Predict its activations: get hands out the smallest free
// buffer large enough (a new one if there is none) and put takes it back.
// A pass makes the same requests as the last, so once warmed up it
// allocates nothing; a larger batch than any before drops the buffers,
// which are then sized for it and serve the smaller ones.
type arena struct {
	free [][]float32
	n    int // the largest batch seen
}

func (a *arena) batch(n int) {
	if n > a.n {
		a.free, a.n = nil, n
	}
}

func (a *arena) get(size int) []float32 {
	best := -1
	for i, b := range a.free {
		if cap(b) >= size && (best < 0 || cap(b) < cap(a.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]float32, size)
	}
	b := a.free[best]
	a.free[best] = a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	return b[:size]
}

func (a *arena) put(b []float32) { a.free = append(a.free, b) }

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
	u.allocEmbed(n)
	for _, b := range []*[]float32{&a.dTembS, &a.dTemb, &a.dTmp} {
		fit(b, n*u.tembCh)
	}
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

// allocEmbed sizes the timestep embedding's buffers, which Predict uses
// too.
func (u *UNet) allocEmbed(n int) {
	a := &u.act
	for _, b := range []*[]float32{&a.temb1, &a.temb1s, &a.temb, &a.tembS} {
		fit(b, n*u.tembCh)
	}
	fit(&a.temb0, n*u.cfg.Ch)
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
	u.checkForward(out, x, t, n)
	if train && u.cfg.Dropout > 0 && rng == nil {
		panic("unet: Forward: training with dropout needs an rng")
	}
	u.alloc(n)
	a := &u.act
	copy(a.x, x)
	copy(a.t, t)
	u.forward(out, a.x, a.t, n, train, rng)
}

// Predict runs the network in inference mode (no dropout) on a batch of
// len(t) images: it is the ε_θ(x_t, t) (or μ̃, x0, and log-variance) the
// diffusion package's samplers and likelihood call. Its output is Forward's
// bit for bit, but it keeps nothing for Backward: each activation comes
// from an arena and goes back once its last reader has run, so a pass holds
// the skip tensors and a residual block's buffers, not every activation of
// the network (the 256×256 network: EstimateMemory). Backward cannot follow
// it, and Activations does not show it.
func (u *UNet) Predict(out, xt []float32, t []int) {
	n := len(t)
	u.checkForward(out, xt, t, n)
	u.allocEmbed(n)
	u.act.n = 0 // nothing for Backward
	u.arena.batch(n)
	u.lean = true
	defer func() { u.lean = false }()
	u.forward(out, xt, t, n, false, nil)
}

func (u *UNet) checkForward(out, x []float32, t []int, n int) {
	c := u.cfg
	rr := c.Res * c.Res
	if len(x) != n*c.InCh*rr || len(out) != n*c.OutCh*rr || len(t) != n {
		panic(fmt.Sprintf("unet: Forward: n=%d but len(x)=%d, len(out)=%d, len(t)=%d (want %d, %d, %d)",
			n, len(x), len(out), len(t), n*c.InCh*rr, n*c.OutCh*rr, n))
	}
}

// take is the buffer of an activation of size floats: own, the one alloc
// sized, in Forward; one lent by the arena in Predict, which give returns.
func (u *UNet) take(own []float32, size int) []float32 {
	if u.lean {
		return u.arena.get(size)
	}
	return own[:size]
}

func (u *UNet) give(b []float32) {
	if u.lean {
		u.arena.put(b)
	}
}

// forward is Forward and Predict; every buffer it writes comes from take.
func (u *UNet) forward(out, x []float32, t []int, n int, train bool, rng *rand.Rand) {
	c, a := u.cfg, &u.act
	rr := c.Res * c.Res

	// Timestep embedding: sinusoid → dense → swish → dense; every residual
	// block then reads swish(temb), computed once here.
	nn.TimestepEmbeddingShift(a.temb0, t, c.Ch, float64(c.TimeFreqShift()), c.FlipSinToCos)
	u.dense0.Forward(a.temb1, a.temb0, n)
	nn.SiLUForward(a.temb1s, a.temb1)
	u.dense1.Forward(a.temb, a.temb1s, n)
	nn.SiLUForward(a.tembS, a.temb)

	h := u.take(a.hIn, n*c.Ch*rr)
	u.convIn.Forward(h, x, n, c.Res, c.Res)
	skips := append(u.skips[:0], h) // skipOut's tensors, for the up path
	for _, e := range u.down {
		if e.res != nil {
			h = u.resForwardConcat(e.res, h, nil, 0, n, e.h, train, rng)
			if e.attn != nil {
				o := u.take(e.attnOut, len(h))
				e.attn.Forward(o, h, n, e.h, e.h)
				u.give(h)
				h = o
			}
		} else { // Downsample: conv3x3, stride 2, pad 1 (or 0, 1)
			o := u.take(e.convOut, n*e.cout*(e.h/2)*(e.h/2))
			e.conv.Forward(o, h, n, e.h, e.h)
			h = o
		}
		skips = append(skips, h)
	}
	hm := c.Res >> (len(c.ChMult) - 1)
	m1 := u.resForwardConcat(u.mid1, h, nil, 0, n, hm, train, rng)
	ma := u.take(a.midAttn, len(m1))
	u.midAttn.Forward(ma, m1, n, hm, hm)
	u.give(m1)
	h = u.resForwardConcat(u.mid2, ma, nil, 0, n, hm, train, rng)
	u.give(ma)
	for _, e := range u.up {
		hw := e.h * e.h
		if e.res != nil {
			skip := skips[e.skip]
			cs := u.skipShape[e.skip][0]
			var o []float32
			if e.res.nin != nil {
				o = u.resForwardConcat(e.res, h, skip, e.cin-cs, n, e.h, train, rng)
			} else { // no shortcut conv (cin = cout): the residual adds the whole input
				cat := u.take(e.cat, n*e.cin*hw)
				nn.ConcatForward(cat, h, skip, n, e.cin-cs, cs, hw)
				o = u.resForwardConcat(e.res, cat, nil, 0, n, e.h, train, rng)
				u.give(cat)
			}
			u.give(h)
			u.give(skip)
			h = o
			if e.attn != nil {
				o := u.take(e.attnOut, len(h))
				e.attn.Forward(o, h, n, e.h, e.h)
				u.give(h)
				h = o
			}
		} else { // Upsample: nearest ×2, then conv3x3
			up := u.take(e.upIn, n*e.cin*4*hw)
			nn.Upsample2xForward(up, h, n, e.cin, e.h, e.h)
			u.give(h)
			h = u.take(e.convOut, n*e.cout*4*hw)
			e.conv.Forward(h, up, n, 2*e.h, 2*e.h)
			u.give(up)
		}
	}
	ao := u.take(a.aOut, n*u.up[len(u.up)-1].cout*rr)
	u.normOut.Forward(ao, h, n, rr) // with swish
	u.give(h)
	u.convOut.Forward(out, ao, n, c.Res, c.Res)
	u.give(ao)
	u.skips = skips[:0]
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

// resForwardConcat runs a residual block on x and returns its output (b.out
// in Forward). When skip is not nil the input is torch.cat([x, skip],
// dim=1) (x's ch channels first) read in place: an up block's input. The
// norm and the 1×1 shortcut are the only readers of the input, and both
// take it in two halves (see GroupNorm.ForwardConcat); b must have the
// shortcut (its input wider than its output). In Predict each buffer goes
// back to the arena as soon as it has been read.
func (u *UNet) resForwardConcat(b *resBlock, x, skip []float32, ch, n, h int, train bool, rng *rand.Rand) []float32 {
	hw := h * h
	no := n * b.cout * hw
	a1 := u.take(u.act.s1, n*b.cin*hw)
	if skip != nil {
		b.norm1.ForwardConcat(a1, x, skip, ch, n, hw) // with swish
	} else {
		b.norm1.Forward(a1, x, n, hw)
	}
	tp := u.take(b.tp, n*b.cout)
	b.tembProj.Forward(tp, u.act.tembS, n)
	h1 := u.take(b.h1, no)
	b.conv1.ForwardBias(h1, a1, tp, n, h, h) // + temb_proj, broadcast over the pixels
	u.give(tp)
	u.give(a1)
	a2 := u.take(b.a2, no)
	b.norm2.Forward(a2, h1, n, hw) // with swish
	u.give(h1)
	b.drop.Forward(a2, a2, rng, train)
	out := u.take(b.out, no)
	b.conv2.Forward(out, a2, n, h, h)
	u.give(a2)
	if b.nin != nil {
		sc := u.take(u.act.s1, no)
		if skip != nil {
			b.nin.ForwardConcat(sc, x, skip, ch, n, h, h)
		} else {
			b.nin.Forward(sc, x, n, h, h)
		}
		nn.AddForward(out, out, sc)
		u.give(sc)
	} else {
		nn.AddForward(out, out, x)
	}
	return out
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
