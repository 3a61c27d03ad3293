// Command _asm generates the AVX-512 kernels of package vec with avo.
//
// It lives in its own module so that avo never becomes a dependency of the
// main module; run it through `go generate ./engine/vec`.
//
// Every kernel streams over n float32s, 16 (one ZMM register) at a time; n
// must be a multiple of 16 (the Go wrappers in package vec run the tail).
// Kernels that reduce write their 16 per-lane partial results to acc, and
// the Go side adds the lanes up.
package main

import (
	"flag"
	"math"
	"strings"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

func main() {
	flag.Parse()
	ConstraintExpr("amd64,!purego")

	unary("siluAVX512", "y = x·σ(x)", []string{"y", "x"}, nil, func(e *expK, v, _ []VecVirtual) {
		s := e.sigmoid(v[1])
		VMULPS(s, v[1], v[0])
	})
	unary("siluGradAVX512", "dx = dy·σ(x)·(1 + x·(1 − σ(x)))", []string{"dx", "dy", "x"}, nil, func(e *expK, v, _ []VecVirtual) {
		siluGrad(e, v[0], v[1], v[2])
	})
	unary("affineSiluAVX512", "y = silu(a·x + b)", []string{"y", "x"}, []string{"a", "b"}, func(e *expK, v, s []VecVirtual) {
		VFMADD213PS(s[1], s[0], v[1]) // x = a·x + b
		sg := e.sigmoid(v[1])
		VMULPS(sg, v[1], v[0])
	})
	unary("affineSiluGradAVX512", "dz = dy·silu'(a·x + b)", []string{"dz", "dy", "x"}, []string{"a", "b"}, func(e *expK, v, s []VecVirtual) {
		VFMADD213PS(s[1], s[0], v[2])
		siluGrad(e, v[0], v[1], v[2])
	})
	unary("affineAVX512", "y = a·x + b", []string{"y", "x"}, []string{"a", "b"}, func(_ *expK, v, s []VecVirtual) {
		VFMADD213PS(s[1], s[0], v[1])
		VMOVAPS(v[1], v[0])
	})
	unary("lin3AVX512", "z = a·x + b·y + c", []string{"z", "x", "y"}, []string{"a", "b", "c"}, func(_ *expK, v, s []VecVirtual) {
		VFMADD213PS(s[2], s[1], v[2]) // y = b·y + c
		VFMADD231PS(s[0], v[1], v[2]) // y += a·x
		VMOVAPS(v[2], v[0])
	})
	unary("addAVX512", "z = x + y", []string{"z", "x", "y"}, nil, func(_ *expK, v, _ []VecVirtual) {
		VADDPS(v[2], v[1], v[0])
	})
	unary("mulSubAVX512", "z = y·(x − t)", []string{"z", "x", "y"}, []string{"t"}, func(_ *expK, v, s []VecVirtual) {
		VSUBPS(s[0], v[1], v[1])
		VMULPS(v[2], v[1], v[0])
	})
	unary("fillAVX512", "y = v", []string{"y"}, []string{"v"}, func(_ *expK, v, s []VecVirtual) {
		VMOVAPS(s[0], v[0])
	})

	reduceTo("expShiftSumAVX512", "y = e^(x − shift), acc = Σ y", []string{"y", "x"}, []string{"shift"}, 1, func(e *expK, v, s, acc []VecVirtual) {
		VSUBPS(s[0], v[1], v[1])
		ex := e.exp(v[1])
		VMOVAPS(ex, v[0])
		VADDPS(ex, acc[0], acc[0])
	})
	reduce("maxAVX512", "acc = max(x)", []string{"x"}, nil, 1, func(_ *expK, v, _, acc []VecVirtual) {
		VMAXPS(v[0], acc[0], acc[0])
	})
	reduce("sumAVX512", "acc = Σ x", []string{"x"}, nil, 1, func(_ *expK, v, _, acc []VecVirtual) {
		VADDPS(v[0], acc[0], acc[0])
	})
	reduce("dotAVX512", "acc = Σ x·y", []string{"x", "y"}, nil, 1, func(_ *expK, v, _, acc []VecVirtual) {
		VFMADD231PS(v[0], v[1], acc[0])
	})
	reduce("sumSqDevAVX512", "acc = Σ (x − mean)²", []string{"x"}, []string{"mean"}, 1, func(_ *expK, v, s, acc []VecVirtual) {
		VSUBPS(s[0], v[0], v[0])
		VFMADD231PS(v[0], v[0], acc[0])
	})
	reduce("sumDyXcAVX512", "acc[0:16] = Σ dy, acc[16:32] = Σ dy·(x − mean)", []string{"dy", "x"}, []string{"mean"}, 2, func(_ *expK, v, s, acc []VecVirtual) {
		VADDPS(v[0], acc[0], acc[0])
		VSUBPS(s[0], v[1], v[1])
		VFMADD231PS(v[0], v[1], acc[1])
	})
	adam()
	winograd()
	winograd4()
	im2col3x3()
	Generate()
}

// adam emits one Adam update (the loop body of optim.Adam.Step) over n
// parameters. It uses separate multiplies and adds, no FMAs, so that it
// rounds exactly like the portable Go loop.
func adam() {
	TEXT("adamAVX512", NOSPLIT, "func(w, grad, m, v *float32, n int, wd, w1, b2, w2, bc2Sqrt, eps, stepSize float32)")
	Pragma("noescape")
	Doc("adamAVX512 applies one Adam step to n parameters (n a multiple of 16); see vec.AdamStep.")
	names := []string{"w", "grad", "m", "v"}
	p := make([]Register, len(names))
	for i, nm := range names {
		p[i] = Load(Param(nm), GP64())
	}
	n := Load(Param("n"), GP64())
	sc := map[string]VecVirtual{}
	for _, nm := range []string{"wd", "w1", "b2", "w2", "bc2Sqrt", "eps", "stepSize"} {
		a, err := Param(nm).Resolve()
		if err != nil {
			panic(err)
		}
		sc[nm] = ZMM()
		VBROADCASTSS(a.Addr, sc[nm])
	}
	Label("loop")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	w, g, m, v, t := ZMM(), ZMM(), ZMM(), ZMM(), ZMM()
	VMOVUPS(Mem{Base: p[0]}, w)
	VMOVUPS(Mem{Base: p[1]}, g)
	VMOVUPS(Mem{Base: p[2]}, m)
	VMOVUPS(Mem{Base: p[3]}, v)
	VMULPS(sc["wd"], w, t)
	VADDPS(t, g, g) // g += wd·w
	VSUBPS(m, g, t)
	VMULPS(sc["w1"], t, t)
	VADDPS(t, m, m) // m += w1·(g − m)
	VMOVUPS(m, Mem{Base: p[2]})
	VMULPS(sc["b2"], v, v)
	VMULPS(sc["w2"], g, t)
	VMULPS(g, t, t)
	VADDPS(t, v, v) // v = v·b2 + w2·g·g
	VMOVUPS(v, Mem{Base: p[3]})
	VSQRTPS(v, t)
	VDIVPS(sc["bc2Sqrt"], t, t)
	VADDPS(sc["eps"], t, t) // den = sqrt(v)/bc2Sqrt + eps
	VDIVPS(t, m, t)
	VMULPS(sc["stepSize"], t, t)
	VSUBPS(t, w, w) // w −= stepSize·(m/den)
	VMOVUPS(w, Mem{Base: p[0]})
	for i := range p {
		ADDQ(U8(64), p[i])
	}
	SUBQ(U8(16), n)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// siluGrad emits dst = dy·σ(x)·(1 + x·(1 − σ(x))), clobbering dy.
func siluGrad(e *expK, dst, dy, x VecVirtual) {
	s := e.sigmoid(x)
	u := ZMM()
	VMOVAPS(x, u)
	VFNMADD231PS(s, x, u) // u = x − x·σ
	VADDPS(e.one, u, u)
	VMULPS(s, u, u)
	VMULPS(dy, u, dst)
}

// signature builds the Go declaration of a kernel over the named pointer
// operands, with scalar float32 parameters and (for reductions) an acc
// pointer to accN·16 lanes.
func signature(ptrs, scalars []string, accN int) string {
	sig := "func("
	for _, p := range ptrs {
		sig += p + " *float32, "
	}
	sig += "n int"
	for _, s := range scalars {
		sig += ", " + s + " float32"
	}
	if accN > 0 {
		sig += ", acc *[" + itoa(16*accN) + "]float32"
	}
	return sig + ")"
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// unary emits an elementwise kernel: body gets one register per pointer
// operand (loaded from all but the first, the output, which it must fill
// and which is stored) and one broadcast register per scalar.
func unary(name, doc string, ptrs, scalars []string, body func(e *expK, v, s []VecVirtual)) {
	kernel(name, doc, ptrs, scalars, 0, func(e *expK, v, s, _ []VecVirtual) { body(e, v, s) }, true)
}

// reduce emits a reduction kernel: every pointer operand is an input, and
// body accumulates into accN registers that start at zero (−∞ for max)
// and are stored to acc.
func reduce(name, doc string, ptrs, scalars []string, accN int, body func(e *expK, v, s, acc []VecVirtual)) {
	kernel(name, doc, ptrs, scalars, accN, body, false)
}

// reduceTo is reduce with an output: the first pointer operand is written
// as in unary.
func reduceTo(name, doc string, ptrs, scalars []string, accN int, body func(e *expK, v, s, acc []VecVirtual)) {
	kernel(name, doc, ptrs, scalars, accN, body, true)
}

func kernel(name, doc string, ptrs, scalars []string, accN int, body func(e *expK, v, s, acc []VecVirtual), output bool) {
	// The docs name every use of the exponential: σ, silu or e^.
	usesExp := strings.Contains(doc, "σ") || strings.Contains(doc, "silu") || strings.Contains(doc, "e^")
	TEXT(name, NOSPLIT, signature(ptrs, scalars, accN))
	Pragma("noescape")
	Doc(name + " computes " + doc + " over n float32s (n a multiple of 16).")

	p := make([]Register, len(ptrs))
	for i, nm := range ptrs {
		p[i] = Load(Param(nm), GP64())
	}
	n := Load(Param("n"), GP64())
	s := make([]VecVirtual, len(scalars))
	for i, nm := range scalars {
		a, err := Param(nm).Resolve()
		if err != nil {
			panic(err)
		}
		s[i] = ZMM()
		VBROADCASTSS(a.Addr, s[i])
	}
	e := &expK{}
	if usesExp {
		e.init() // before the loop, so the constants stay in registers
	}
	acc := make([]VecVirtual, accN)
	for i := range acc {
		if name == "maxAVX512" {
			acc[i] = bcast(float32(math.Inf(-1)))
			continue
		}
		acc[i] = ZMM()
		VXORPS(acc[i], acc[i], acc[i])
	}

	e.inLoop = true
	Label("loop")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	v := make([]VecVirtual, len(ptrs))
	for i := range ptrs {
		v[i] = ZMM()
		if i > 0 || !output {
			VMOVUPS(Mem{Base: p[i]}, v[i])
		}
	}
	body(e, v, s, acc)
	if output {
		VMOVUPS(v[0], Mem{Base: p[0]})
	}
	for i := range p {
		ADDQ(U8(64), p[i])
	}
	SUBQ(U8(16), n)
	JMP(LabelRef("loop"))

	Label("done")
	if accN > 0 {
		ap := Load(Param("acc"), GP64())
		for i := range acc {
			VMOVUPS(acc[i], Mem{Base: ap, Disp: 64 * i})
		}
	}
	VZEROUPPER()
	RET()
}

// expK holds the broadcast constants of the vector exponential; they are
// materialised lazily, so kernels without exp do not pay for them.
type expK struct {
	one, lo, hi, log2e, ln2Hi, ln2Lo, sign VecVirtual
	poly                                   []VecVirtual
	ready, inLoop                          bool
}

// bcast broadcasts the float32 constant f into a fresh register.
func bcast(f float32) VecVirtual {
	g := GP32()
	MOVL(U32(math.Float32bits(f)), g)
	z := ZMM()
	VPBROADCASTD(g, z)
	return z
}

func (e *expK) init() {
	if e.ready {
		return
	}
	if e.inLoop {
		panic("expK used by a kernel whose doc names neither σ, silu nor e^")
	}
	e.ready = true
	// The Cephes expf constants, the same as the scalar expf in vec.go.
	e.one = bcast(1)
	e.lo, e.hi = bcast(-87.3), bcast(88.3)
	e.log2e = bcast(1.44269504088896341)
	e.ln2Hi, e.ln2Lo = bcast(0.693359375), bcast(-2.12194440e-4)
	e.sign = bcast(float32(math.Copysign(0, -1)))
	for _, c := range []float32{1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
		4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1} {
		e.poly = append(e.poly, bcast(c))
	}
}

// exp returns a fresh register holding e^x (x clobbered): clamp, split
// x = k·ln2 + r with |r| ≤ ln2/2, a degree-7 polynomial for e^r, and
// VSCALEFPS for the 2^k.
func (e *expK) exp(x VecVirtual) VecVirtual {
	e.init()
	VMAXPS(e.lo, x, x)
	VMINPS(e.hi, x, x)
	k := ZMM()
	VMULPS(e.log2e, x, k)
	VRNDSCALEPS(U8(0), k, k) // round to nearest
	VFNMADD231PS(e.ln2Hi, k, x)
	VFNMADD231PS(e.ln2Lo, k, x) // x = r
	p := ZMM()
	VMOVAPS(e.poly[0], p)
	for _, c := range e.poly[1:] {
		VFMADD213PS(c, x, p) // p = p·r + c
	}
	r2 := ZMM()
	VMULPS(x, x, r2)
	VFMADD213PS(x, r2, p) // p = p·r² + r
	VADDPS(e.one, p, p)
	VSCALEFPS(k, p, p)
	return p
}

// sigmoid returns a fresh register holding 1/(1 + e^−x), x preserved; the
// reciprocal is VRCP14PS refined by one Newton step (about 1 ulp).
func (e *expK) sigmoid(x VecVirtual) VecVirtual {
	e.init()
	nx := ZMM()
	VXORPS(e.sign, x, nx)
	d := e.exp(nx)
	VADDPS(e.one, d, d)
	r := ZMM()
	VRCP14PS(d, r)
	t := ZMM()
	VMOVAPS(e.one, t)
	VFNMADD231PS(r, d, t) // t = 1 − d·r
	VFMADD231PS(t, r, r)  // r += r·t
	return r
}
