package nn

import (
	"math"

	"github.com/ddpm-go/ddpm/engine/gemm"
	"github.com/ddpm-go/ddpm/engine/parallel"
	"github.com/ddpm-go/ddpm/engine/vec"
)

// AttnBlock is the DDPM U-Net's self-attention block (the reference's
// AttnBlock), residual included. Per image, with x [C, HW]:
//
//	h = GroupNorm(x);  q, k, v = Wq·h + bq, Wk·h + bk, Wv·h + bv   (1×1 convs)
//	P = softmax_rows(qᵀk · C^-½)                                   [HW, HW]
//	a = v·Pᵀ                                                       [C, HW]
//	out = x + Wp·a + bp                                            (proj_out)
//
// With Heads > 1 (diffusers' attention_head_dim < C) the channels split
// into Heads consecutive groups of d = C/Heads: each head attends with its
// own rows of q, k and v, P_h = softmax_rows(q_hᵀk_h · d^-½), a_h = v_h·P_hᵀ,
// and proj_out mixes the heads' outputs (torch's multi-head attention with
// the heads laid out as diffusers' Attention lays them out). One head is the
// DDPM block.
//
// The norm and the four 1×1 convs are the package's own layers (so their
// parameters are ordinary Params named as PyTorch names them); the two
// attention GEMMs and the softmax run per image and head, in parallel.
// Forward keeps h, q, k, v, a and P for Backward: P is [n, Heads, HW, HW],
// which is the block's dominant memory (8 MiB for the small config's 16×16,
// batch 32, one head).
type AttnBlock struct {
	C                int
	Heads            int // attention heads (0 means 1); C must be a multiple
	Norm             *GroupNorm
	Q, K, V, ProjOut *Conv2d

	hn, q, k, v, a []float32   // [n, C, HW] saved by Forward
	p              []float32   // [n, Heads, HW, HW] softmax probabilities
	dA, dq, dk, dv []float32   // [n, C, HW] backward scratch
	dHn            []float32   // [n, C, HW] gradient of h, then of x through the norm
	dP             [][]float32 // [HW, HW] per slot: dP, then dS in place
}

// NewAttnBlockHeads is NewAttnBlock with heads attention heads of c/heads
// channels each; c must be a multiple of heads.
func NewAttnBlockHeads(c, heads, groups int, eps float32) *AttnBlock {
	if heads < 1 || c%heads != 0 {
		panic("nn: AttnBlock channels must be a multiple of the heads")
	}
	l := NewAttnBlock(c, groups, eps)
	l.Heads = heads
	return l
}

// heads is the number of heads, at least 1.
func (l *AttnBlock) heads() int { return max(1, l.Heads) }

// NewAttnBlock makes an attention block over c channels whose norm has the
// given groups and eps. Its parameters are unbound until Bind.
func NewAttnBlock(c, groups int, eps float32) *AttnBlock {
	l := &AttnBlock{C: c, Norm: NewGroupNorm(groups, c, eps),
		Q: NewConv2d(c, c, 1, 1, 0), K: NewConv2d(c, c, 1, 1, 0),
		V: NewConv2d(c, c, 1, 1, 0), ProjOut: NewConv2d(c, c, 1, 1, 0)}
	for prefix, ps := range map[string][]*Param{"norm.": l.Norm.Params(), "q.": l.Q.Params(),
		"k.": l.K.Params(), "v.": l.V.Params(), "proj_out.": l.ProjOut.Params()} {
		for _, p := range ps {
			p.Name = prefix + p.Name
		}
	}
	return l
}

// Params returns norm.weight, norm.bias, q.weight, q.bias, k.*, v.*,
// proj_out.*: PyTorch's state_dict order for the block.
func (l *AttnBlock) Params() []*Param {
	var ps []*Param
	for _, sub := range [][]*Param{l.Norm.Params(), l.Q.Params(), l.K.Params(), l.V.Params(), l.ProjOut.Params()} {
		ps = append(ps, sub...)
	}
	return ps
}

// Forward computes out = in + proj_out(attn(GN(in))) for in [n, C, h, w].
// out must not alias in.
func (l *AttnBlock) Forward(out, in []float32, n, h, w int) {
	hw, c := h*w, l.C
	size := c * hw
	heads := l.heads()
	d := c / heads // channels per head
	l.hn, l.q, l.k, l.v, l.a = grow(l.hn, n*size), grow(l.q, n*size), grow(l.k, n*size), grow(l.v, n*size), grow(l.a, n*size)
	l.p = grow(l.p, n*heads*hw*hw)

	l.Norm.Forward(l.hn, in, n, hw)
	l.Q.Forward(l.q, l.hn, n, h, w)
	l.K.Forward(l.k, l.hn, n, h, w)
	l.V.Forward(l.v, l.hn, n, h, w)

	scale := float32(1 / math.Sqrt(float64(d)))
	parallel.For(n*heads, func(lo, hi int) {
		for j := lo; j < hi; j++ { // image j/heads, head j%heads
			o := j/heads*size + j%heads*d*hw
			q, k, v, a := l.q[o:o+d*hw], l.k[o:o+d*hw], l.v[o:o+d*hw], l.a[o:o+d*hw]
			p := l.p[j*hw*hw : (j+1)*hw*hw]
			gemm.Sgemm(true, false, hw, hw, d, scale, q, hw, k, hw, 0, p, hw) // S = qᵀk·d^-½
			softmaxRows(p, hw)
			gemm.Sgemm(false, true, d, hw, hw, 1, v, hw, p, hw, 0, a, hw) // a = v·Pᵀ
		}
	})

	l.ProjOut.Forward(out, l.a, n, h, w)
	AddForward(out, out, in)
}

// Backward overwrites dIn [n, C, h, w] and adds every parameter gradient
// into its G. dIn may alias dOut; in is the input Forward saw.
func (l *AttnBlock) Backward(dIn, dOut, in []float32, n, h, w int) {
	hw, c := h*w, l.C
	size := c * hw
	heads := l.heads()
	d := c / heads
	l.dA, l.dq, l.dk, l.dv, l.dHn = grow(l.dA, n*size), grow(l.dq, n*size), grow(l.dk, n*size), grow(l.dv, n*size), grow(l.dHn, n*size)
	for len(l.dP) < numSlots(n*heads) {
		l.dP = append(l.dP, nil)
	}

	// out = in + proj_out(a): dOut reaches in directly (added last) and a
	// through proj_out.
	l.ProjOut.Backward(l.dA, dOut, l.a, n, h, w)

	scale := float32(1 / math.Sqrt(float64(d)))
	forSlots(n*heads, func(slot, lo, hi int) {
		l.dP[slot] = grow(l.dP[slot], hw*hw)
		dP := l.dP[slot]
		for j := lo; j < hi; j++ { // image j/heads, head j%heads
			o, e := j/heads*size+j%heads*d*hw, j/heads*size+(j%heads+1)*d*hw
			q, k, v := l.q[o:e], l.k[o:e], l.v[o:e]
			dA, dq, dk, dv := l.dA[o:e], l.dq[o:e], l.dk[o:e], l.dv[o:e]
			p := l.p[j*hw*hw : (j+1)*hw*hw]

			// a = v·Pᵀ: dv = dA·P, dP = dAᵀ·v.
			gemm.Sgemm(false, false, d, hw, hw, 1, dA, hw, p, hw, 0, dv, hw)
			gemm.Sgemm(true, false, hw, hw, d, 1, dA, hw, v, hw, 0, dP, hw)
			// P = softmax_rows(S): dS = P ⊙ (dP − rowsum(dP ⊙ P)).
			softmaxBackwardRows(dP, p, hw)
			// S = qᵀk·scale: dq = scale·k·dSᵀ, dk = scale·q·dS.
			gemm.Sgemm(false, true, d, hw, hw, scale, k, hw, dP, hw, 0, dq, hw)
			gemm.Sgemm(false, false, d, hw, hw, scale, q, hw, dP, hw, 0, dk, hw)
		}
	})

	// q, k and v all read h, so their input gradients add up.
	l.Q.Backward(l.dHn, l.dq, l.hn, n, h, w)
	l.K.BackwardAccumulate(l.dHn, l.dk, l.hn, n, h, w)
	l.V.BackwardAccumulate(l.dHn, l.dv, l.hn, n, h, w)
	l.Norm.Backward(l.dHn, l.dHn, in, n, hw)
	AddForward(dIn, dOut, l.dHn)
}

// softmaxRows replaces each row (length m) of s by its softmax, shifted by
// the row maximum so that the exponential never overflows.
func softmaxRows(s []float32, m int) {
	for r := 0; r < len(s)/m; r++ {
		row := s[r*m : (r+1)*m]
		sum := vec.ExpShiftSum(row, row, vec.Max(row))
		vec.Affine(row, row, float32(1/sum), 0)
	}
}

// softmaxBackwardRows turns dP into dS in place, row by row:
// dS = P ⊙ (dP − Σ_j dP_j·P_j), the softmax's Jacobian-vector product.
func softmaxBackwardRows(dp, p []float32, m int) {
	for r := 0; r < len(p)/m; r++ {
		d, pr := dp[r*m:(r+1)*m], p[r*m:(r+1)*m]
		vec.MulSub(d, pr, float32(vec.Dot(d, pr)))
	}
}
