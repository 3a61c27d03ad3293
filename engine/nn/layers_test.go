package nn

import (
	"fmt"
	"math"
	"testing"
)

func TestLinear(t *testing.T) {
	for ci, tc := range []struct{ n, in, out int }{{1, 4, 3}, {5, 7, 6}, {32, 16, 64}} {
		t.Run(fmt.Sprintf("n%d_%dto%d", tc.n, tc.in, tc.out), func(t *testing.T) {
			rng := newRNG(uint64(100 + ci))
			l := NewLinear(tc.in, tc.out)
			bindRandom(rng, l.Params(), 0.5)
			if s := fmt.Sprint(l.Weight.Shape); s != fmt.Sprint([]int{tc.out, tc.in}) {
				t.Fatalf("weight shape %s", s)
			}
			in := randn(rng, tc.n*tc.in, 1)
			out := make([]float32, tc.n*tc.out)
			l.Forward(out, in, tc.n)
			ref := make([]float64, len(out))
			for r := 0; r < tc.n; r++ {
				for o := 0; o < tc.out; o++ {
					s := float64(l.Bias.W[o])
					for i := 0; i < tc.in; i++ {
						s += float64(in[r*tc.in+i]) * float64(l.Weight.W[o*tc.in+i])
					}
					ref[r*tc.out+o] = s
				}
			}
			if d := maxAbsDiff(out, ref); d > 1e-4 {
				t.Fatalf("forward off by %g", d)
			}
			g := randn(rng, len(out), 1)
			dIn := make([]float32, len(in))
			l.Backward(dIn, g, in, tc.n)
			loss := func() float64 { l.Forward(out, in, tc.n); return dot(g, out) }
			gradCheck(t, "dIn", in, dIn, loss, rng, 20, 1e-2, 1e-2)
			for _, p := range l.Params() {
				gradCheck(t, "d"+p.Name, p.W, p.G, loss, rng, 20, 1e-2, 1e-2)
			}
		})
	}
}

// groupNormRef is GroupNorm written straight from its definition, in float64.
func groupNormRef(l *GroupNorm, in []float32, n, hw int) []float64 {
	cpg := l.C / l.Groups
	out := make([]float64, len(in))
	for b := 0; b < n; b++ {
		for g := 0; g < l.Groups; g++ {
			x := in[(b*l.C+g*cpg)*hw : (b*l.C+(g+1)*cpg)*hw]
			var mean, v float64
			for _, e := range x {
				mean += float64(e)
			}
			mean /= float64(len(x))
			for _, e := range x {
				v += (float64(e) - mean) * (float64(e) - mean)
			}
			v /= float64(len(x))
			for i, e := range x {
				c := g*cpg + i/hw
				out[(b*l.C+g*cpg)*hw+i] = (float64(e)-mean)/math.Sqrt(v+float64(l.Eps))*float64(l.Weight.W[c]) + float64(l.Bias.W[c])
			}
		}
	}
	return out
}

func TestGroupNorm(t *testing.T) {
	for ci, tc := range []struct {
		n, groups, c, hw int
		eps              float32
		shift            float64 // a large common offset tests the two-pass variance
	}{
		{1, 1, 3, 5, 1e-5, 0},
		{3, 2, 4, 7, 1e-6, 0},
		{2, 4, 8, 16, 1e-6, 30},
		{4, 8, 16, 9, 1e-3, 0},
	} {
		for _, swish := range []bool{false, true} {
			t.Run(fmt.Sprintf("n%d_g%d_c%d_hw%d_swish%v", tc.n, tc.groups, tc.c, tc.hw, swish), func(t *testing.T) {
				rng := newRNG(uint64(200 + ci))
				l := NewGroupNorm(tc.groups, tc.c, tc.eps)
				l.Swish = swish
				bindRandom(rng, l.Params(), 1)
				in := randn(rng, tc.n*tc.c*tc.hw, 2)
				for i := range in {
					in[i] += float32(tc.shift)
				}
				out := make([]float32, len(in))
				l.Forward(out, in, tc.n, tc.hw)
				ref := groupNormRef(l, in, tc.n, tc.hw)
				if swish {
					for i, z := range ref {
						ref[i] = z / (1 + math.Exp(-z))
					}
				}
				if d := maxAbsDiff(out, ref); d > 1e-4 {
					t.Fatalf("forward off by %g", d)
				}
				g := randn(rng, len(out), 1)
				dIn := make([]float32, len(in))
				l.Backward(dIn, g, in, tc.n, tc.hw)
				loss := func() float64 { l.Forward(out, in, tc.n, tc.hw); return dot(g, out) }
				gradCheck(t, "dIn", in, dIn, loss, rng, 20, 1e-2, 2e-2)
				for _, p := range l.Params() {
					gradCheck(t, "d"+p.Name, p.W, p.G, loss, rng, 10, 1e-2, 1e-2)
				}
				// dIn may alias dOut.
				l.Forward(out, in, tc.n, tc.hw)
				zeroGrads(l.Params())
				alias := append([]float32(nil), g...)
				l.Backward(alias, alias, in, tc.n, tc.hw)
				for i := range alias {
					if alias[i] != dIn[i] {
						t.Fatalf("aliased backward differs at %d", i)
					}
				}
				// Reapply reproduces Forward's output.
				again := make([]float32, len(out))
				l.Reapply(again, in, tc.n, tc.hw)
				for i := range again {
					if again[i] != out[i] {
						t.Fatalf("Reapply differs at %d", i)
					}
				}
			})
		}
	}
}

func TestSiLU(t *testing.T) {
	rng := newRNG(300)
	for _, n := range []int{37, elemGrain + 5} { // serial and parallel paths
		in := randn(rng, n, 4)
		in[0], in[1], in[2] = -100, 100, 0
		out := make([]float32, n)
		SiLUForward(out, in)
		for i, x := range in {
			want := float64(x) / (1 + math.Exp(-float64(x)))
			if d := math.Abs(float64(out[i]) - want); d > 1e-6*max(1, math.Abs(want)) {
				t.Fatalf("silu(%g) = %g, want %g", x, out[i], want)
			}
		}
		g := randn(rng, n, 1)
		dIn := make([]float32, n)
		SiLUBackward(dIn, g, in)
		gradCheck(t, "dIn", in, dIn, func() float64 { SiLUForward(out, in); return dot(g, out) }, rng, 30, 1e-2, 1e-2)
		// In place: out aliases in, dIn aliases dOut.
		cp := append([]float32(nil), in...)
		SiLUForward(cp, cp)
		SiLUForward(out, in)
		gg := append([]float32(nil), g...)
		SiLUBackward(gg, gg, in)
		for i := range cp {
			if cp[i] != out[i] || gg[i] != dIn[i] {
				t.Fatalf("aliased SiLU differs at %d", i)
			}
		}
	}
}

func TestExpf(t *testing.T) {
	var worst float64
	for x := float32(-87); x <= 88; x += 0.01 {
		want := math.Exp(float64(x))
		worst = max(worst, math.Abs(float64(expf(x))-want)/want)
	}
	if worst > 3e-7 { // a few float32 ulp
		t.Errorf("expf max rel error %g", worst)
	}
	if e := expf(float32(math.Inf(-1))); e < 0 || e > 1e-37 {
		t.Errorf("expf(-Inf) = %g", e)
	}
	if e := expf(float32(math.Inf(1))); math.IsInf(float64(e), 0) || math.IsNaN(float64(e)) {
		t.Errorf("expf(+Inf) = %g", e)
	}
}

func TestAdd(t *testing.T) {
	rng := newRNG(301)
	a, b := randn(rng, 100, 1), randn(rng, 100, 1)
	out := make([]float32, 100)
	AddForward(out, a, b)
	AddForward(a, a, b) // aliasing
	for i := range out {
		if out[i] != a[i] {
			t.Fatalf("aliased add differs at %d", i)
		}
	}
}

func TestUpsample2x(t *testing.T) {
	rng := newRNG(400)
	n, c, h, w := 2, 3, 3, 5
	in := randn(rng, n*c*h*w, 1)
	out := make([]float32, 4*len(in))
	Upsample2xForward(out, in, n, c, h, w)
	for p := 0; p < n*c; p++ {
		for y := 0; y < 2*h; y++ {
			for x := 0; x < 2*w; x++ {
				if out[(p*2*h+y)*2*w+x] != in[(p*h+y/2)*w+x/2] {
					t.Fatalf("out[%d,%d,%d] is not its nearest source pixel", p, y, x)
				}
			}
		}
	}
	// Backward of the upsample of all-ones gradient is 4 per pixel; in general
	// it is the adjoint: <up(x), g> = <x, up'(g)>.
	g := randn(rng, len(out), 1)
	dIn := make([]float32, len(in))
	Upsample2xBackward(dIn, g, n, c, h, w)
	if l, r := dot(g, out), dot(dIn, in); math.Abs(l-r) > 1e-4*max(1, math.Abs(l)) {
		t.Errorf("adjoint mismatch: %g vs %g", l, r)
	}
	Upsample2xBackward(dIn, out, n, c, h, w) // round trip: 4·in
	for i := range in {
		if dIn[i] != 4*in[i] {
			t.Fatalf("round trip: %g, want 4·%g", dIn[i], in[i])
		}
	}
}

func TestConcat(t *testing.T) {
	rng := newRNG(500)
	n, ca, cb, hw := 3, 2, 5, 7
	a, b := randn(rng, n*ca*hw, 1), randn(rng, n*cb*hw, 1)
	out := make([]float32, n*(ca+cb)*hw)
	ConcatForward(out, a, b, n, ca, cb, hw)
	for i := 0; i < n; i++ {
		for c := 0; c < ca+cb; c++ {
			for p := 0; p < hw; p++ {
				var want float32
				if c < ca {
					want = a[(i*ca+c)*hw+p]
				} else {
					want = b[(i*cb+c-ca)*hw+p]
				}
				if out[(i*(ca+cb)+c)*hw+p] != want {
					t.Fatalf("out[%d,%d,%d] wrong", i, c, p)
				}
			}
		}
	}
	da, db := make([]float32, len(a)), make([]float32, len(b))
	ConcatBackward(da, db, out, n, ca, cb, hw)
	for i := range a {
		if da[i] != a[i] {
			t.Fatal("round trip a")
		}
	}
	for i := range b {
		if db[i] != b[i] {
			t.Fatal("round trip b")
		}
	}
	ConcatBackward(nil, db, out, n, ca, cb, hw) // a needs no gradient
}

// TestForwardConcat: GroupNorm and the 1×1 conv read torch.cat([a, b], 1)
// in its two halves as they read the concatenation built by ConcatForward,
// on mnist-deep's up-block shapes: 7×7 planes (the conv's grouped GEMM),
// 14×14 and 28×28 (one GEMM per image, its inner dimension split), with
// the split between groups and inside one (64+32 channels in 8 groups).
func TestForwardConcat(t *testing.T) {
	for _, tc := range []struct{ n, ca, cb, h, groups, cout int }{
		{5, 64, 64, 7, 8, 64},
		{4, 32, 32, 14, 8, 32},
		{3, 16, 16, 28, 8, 16},
		{5, 64, 32, 7, 8, 64},  // a group across the split
		{2, 32, 16, 14, 8, 32}, // the same at 14×14
		{2, 48, 24, 14, 6, 24}, // halves of different sizes
	} {
		rng := newRNG(501)
		n, c, hw := tc.n, tc.ca+tc.cb, tc.h*tc.h
		a, b := randn(rng, n*tc.ca*hw, 1), randn(rng, n*tc.cb*hw, 1)
		cat := make([]float32, n*c*hw)
		ConcatForward(cat, a, b, n, tc.ca, tc.cb, hw)

		gn := NewGroupNormSwish(tc.groups, c, 1e-6)
		bindRandom(rng, gn.Params(), 0.5)
		want, got := make([]float32, n*c*hw), make([]float32, n*c*hw)
		gn.Forward(want, cat, n, hw)
		gn.ForwardConcat(got, a, b, tc.ca, n, hw)
		for i := range got {
			if d := got[i] - want[i]; d > 1e-5 || d < -1e-5 {
				t.Fatalf("%+v: GroupNorm.ForwardConcat[%d] = %g, Forward %g", tc, i, got[i], want[i])
			}
		}

		conv := NewConv2d(c, tc.cout, 1, 1, 0)
		bindRandom(rng, conv.Params(), 0.5)
		want, got = make([]float32, n*tc.cout*hw), make([]float32, n*tc.cout*hw)
		conv.Forward(want, cat, n, tc.h, tc.h)
		conv.ForwardConcat(got, a, b, tc.ca, n, tc.h, tc.h)
		for i := range got {
			if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%+v: Conv2d.ForwardConcat[%d] = %g, Forward %g", tc, i, got[i], want[i])
			}
		}
	}
}

func TestDropout(t *testing.T) {
	const n = 200000
	rng := newRNG(600)
	in := randn(rng, n, 1)
	for _, p := range []float32{0.1, 0.5} {
		l := NewDropout(p)
		out := make([]float32, n)
		l.Forward(out, in, newRNG(1), true)
		dropped := 0
		for i := range out {
			switch {
			case out[i] == 0:
				dropped++
			case math.Abs(float64(out[i]-in[i]/(1-p))) > 1e-6*math.Abs(float64(in[i])):
				t.Fatalf("p=%g: kept element %g not scaled: %g", p, in[i], out[i])
			}
		}
		frac := float64(dropped) / n
		sd := math.Sqrt(float64(p*(1-p)) / n)
		if math.Abs(frac-float64(p)) > 5*sd {
			t.Errorf("p=%g: dropped fraction %g", p, frac)
		}
		// Backward reuses the mask: dIn is zero exactly where out was.
		g := randn(rng, n, 1)
		dIn := make([]float32, n)
		l.Backward(dIn, g)
		for i := range dIn {
			if (out[i] == 0) != (dIn[i] == 0) || (dIn[i] != 0 && math.Abs(float64(dIn[i]-g[i]/(1-p))) > 1e-6*math.Abs(float64(g[i]))) {
				t.Fatalf("p=%g: backward mask differs at %d", p, i)
			}
		}
		// Same seed, same mask; in place works.
		cp := append([]float32(nil), in...)
		l.Forward(cp, cp, newRNG(1), true)
		for i := range cp {
			if cp[i] != out[i] {
				t.Fatalf("in-place/reseeded forward differs at %d", i)
			}
		}
	}
	// p == 0 and eval mode are the identity, forward and backward.
	for _, tc := range []struct {
		p     float32
		train bool
	}{{0, true}, {0.3, false}} {
		l := NewDropout(tc.p)
		out, dIn := make([]float32, 10), make([]float32, 10)
		l.Forward(out, in[:10], nil, tc.train)
		l.Backward(dIn, in[:10])
		for i := range out {
			if out[i] != in[i] || dIn[i] != in[i] {
				t.Fatalf("p=%g train=%v is not the identity", tc.p, tc.train)
			}
		}
	}
}

func TestTimestepEmbedding(t *testing.T) {
	ts := []int{0, 1, 17, 500, 999}
	for _, dim := range []int{4, 16, 32} {
		out := make([]float32, len(ts)*dim)
		TimestepEmbedding(out, ts, dim)
		half := dim / 2
		for b, tt := range ts {
			for i := 0; i < half; i++ {
				arg := float64(tt) * math.Pow(10000, -float64(i)/float64(half-1))
				if d := math.Abs(float64(out[b*dim+i]) - math.Sin(arg)); d > 1e-6 {
					t.Errorf("dim %d t %d sin[%d] off by %g", dim, tt, i, d)
				}
				if d := math.Abs(float64(out[b*dim+half+i]) - math.Cos(arg)); d > 1e-6 {
					t.Errorf("dim %d t %d cos[%d] off by %g", dim, tt, i, d)
				}
			}
		}
	}
}

// TestTimestepEmbeddingShift: diffusers' variants (frequency shift 0,
// halves flipped) against the formula, and shift 1 without flip is
// TimestepEmbedding bit for bit.
func TestTimestepEmbeddingShift(t *testing.T) {
	ts := []int{0, 3, 537, 999}
	const dim = 16
	half := dim / 2
	for _, shift := range []float64{0, 1} {
		for _, flip := range []bool{false, true} {
			out := make([]float32, len(ts)*dim)
			TimestepEmbeddingShift(out, ts, dim, shift, flip)
			for b, tt := range ts {
				for i := 0; i < half; i++ {
					arg := float64(tt) * math.Exp(-math.Log(10000)*float64(i)/(float64(half)-shift))
					s, c := out[b*dim+i], out[b*dim+half+i]
					if flip {
						s, c = c, s
					}
					if math.Abs(float64(s)-math.Sin(arg)) > 1e-6 || math.Abs(float64(c)-math.Cos(arg)) > 1e-6 {
						t.Fatalf("shift %v flip %v t %d: (%g, %g), want (%g, %g)", shift, flip, tt, s, c, math.Sin(arg), math.Cos(arg))
					}
				}
			}
		}
	}
	a, b := make([]float32, len(ts)*dim), make([]float32, len(ts)*dim)
	TimestepEmbedding(a, ts, dim)
	TimestepEmbeddingShift(b, ts, dim, 1, false)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d: %g vs %g", i, a[i], b[i])
		}
	}
}

func TestMSELoss(t *testing.T) {
	rng := newRNG(700)
	pred, target := randn(rng, 50, 1), randn(rng, 50, 1)
	d := make([]float32, 50)
	loss := MSELoss(d, pred, target)
	var want float64
	for i := range pred {
		e := float64(pred[i]) - float64(target[i])
		want += e * e
	}
	want /= 50
	if math.Abs(loss-want) > 1e-6*want { // the difference is taken in float32, like PyTorch
		t.Errorf("loss %g, want %g", loss, want)
	}
	scratch := make([]float32, 50)
	gradCheck(t, "dPred", pred, d, func() float64 { return MSELoss(scratch, pred, target) }, rng, 20, 1e-2, 1e-3)
}
