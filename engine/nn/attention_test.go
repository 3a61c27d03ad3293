package nn

import (
	"fmt"
	"math"
	"testing"
)

// attnRef is the reference's AttnBlock.forward in naive float64 loops.
func attnRef(l *AttnBlock, in []float32, n, hw int) []float64 {
	c := l.C
	hn := groupNormRef(l.Norm, in, n, hw)
	conv1x1 := func(cv *Conv2d, x []float64) []float64 { // x [C, HW] of one image
		y := make([]float64, c*hw)
		for o := 0; o < c; o++ {
			for p := 0; p < hw; p++ {
				s := float64(cv.Bias.W[o])
				for i := 0; i < c; i++ {
					s += float64(cv.Weight.W[o*c+i]) * x[i*hw+p]
				}
				y[o*hw+p] = s
			}
		}
		return y
	}
	out := make([]float64, len(in))
	for b := 0; b < n; b++ {
		h := hn[b*c*hw : (b+1)*c*hw]
		q, k, v := conv1x1(l.Q, h), conv1x1(l.K, h), conv1x1(l.V, h)
		// Head hd owns channels [hd·d, (hd+1)·d):
		// w[i][j] = softmax_j(Σ_c q[c,i] k[c,j] / sqrt(d)); a[c,i] = Σ_j v[c,j] w[i][j]
		a := make([]float64, c*hw)
		heads := max(1, l.Heads)
		d := c / heads
		for hd := 0; hd < heads; hd++ {
			for i := 0; i < hw; i++ {
				w := make([]float64, hw)
				mx := math.Inf(-1)
				for j := range w {
					for ch := hd * d; ch < (hd+1)*d; ch++ {
						w[j] += q[ch*hw+i] * k[ch*hw+j]
					}
					w[j] /= math.Sqrt(float64(d))
					mx = max(mx, w[j])
				}
				var sum float64
				for j := range w {
					w[j] = math.Exp(w[j] - mx)
					sum += w[j]
				}
				for ch := hd * d; ch < (hd+1)*d; ch++ {
					var s float64
					for j := range w {
						s += v[ch*hw+j] * w[j] / sum
					}
					a[ch*hw+i] = s
				}
			}
		}
		proj := conv1x1(l.ProjOut, a)
		for i := range proj {
			out[b*c*hw+i] = float64(in[b*c*hw+i]) + proj[i]
		}
	}
	return out
}

func TestAttnBlock(t *testing.T) {
	for ci, tc := range []struct{ n, c, groups, h, w, heads int }{
		{1, 4, 2, 3, 3, 1},
		{3, 8, 4, 4, 5, 1},
		{4, 16, 8, 4, 4, 1},
		// Several heads (diffusers' attention_head_dim): 4 of 4 channels,
		// 2 of 8, and one head per channel.
		{3, 16, 8, 4, 4, 4},
		{1, 16, 4, 3, 5, 2},
		{2, 4, 2, 3, 3, 4},
	} {
		t.Run(fmt.Sprintf("n%d_c%d_g%d_%dx%d_h%d", tc.n, tc.c, tc.groups, tc.h, tc.w, tc.heads), func(t *testing.T) {
			rng := newRNG(uint64(800 + ci))
			l := NewAttnBlockHeads(tc.c, tc.heads, tc.groups, 1e-6)
			// Weights large enough that the softmax is far from uniform.
			bindRandom(rng, l.Params(), 0.7)
			hw := tc.h * tc.w
			in := randn(rng, tc.n*tc.c*hw, 1)
			out := make([]float32, len(in))
			l.Forward(out, in, tc.n, tc.h, tc.w)
			if d := maxAbsDiff(out, attnRef(l, in, tc.n, hw)); d > 1e-4 {
				t.Fatalf("forward differs from the naive float64 block by %g", d)
			}

			g := randn(rng, len(out), 1)
			dIn := make([]float32, len(in))
			l.Backward(dIn, g, in, tc.n, tc.h, tc.w)
			loss := func() float64 { l.Forward(out, in, tc.n, tc.h, tc.w); return dot(g, out) }
			gradCheck(t, "dIn", in, dIn, loss, rng, 20, 1e-2, 2e-2)
			for _, p := range l.Params() {
				if p == l.K.Bias {
					// Adding b to every key adds q_i·b to a whole softmax
					// row, which cancels: the true gradient is exactly 0,
					// so check it is rounding noise only.
					for _, v := range p.G {
						if math.Abs(float64(v)) > 1e-4 {
							t.Errorf("dk.bias = %g, want ≈ 0", v)
						}
					}
					continue
				}
				gradCheck(t, "d"+p.Name, p.W, p.G, loss, rng, 10, 1e-2, 2e-2)
			}

			// dIn may alias dOut.
			l.Forward(out, in, tc.n, tc.h, tc.w)
			alias := append([]float32(nil), g...)
			l.Backward(alias, alias, in, tc.n, tc.h, tc.w)
			for i := range alias {
				if alias[i] != dIn[i] {
					t.Fatalf("aliased backward differs at %d: %g vs %g", i, alias[i], dIn[i])
				}
			}
		})
	}
}

func TestAttnBlockParams(t *testing.T) {
	l := NewAttnBlock(8, 4, 1e-6)
	want := "norm.weight[8] norm.bias[8] q.weight[8 8 1 1] q.bias[8] k.weight[8 8 1 1] k.bias[8] " +
		"v.weight[8 8 1 1] v.bias[8] proj_out.weight[8 8 1 1] proj_out.bias[8] "
	got := ""
	for _, p := range l.Params() {
		got += fmt.Sprintf("%s%v ", p.Name, p.Shape)
	}
	if got != want {
		t.Errorf("params\n got %s\nwant %s", got, want)
	}
}
