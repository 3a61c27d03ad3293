// Command _asm generates the SIMD micro-kernels of package gemm with avo.
//
// It lives in its own module so that avo never becomes a dependency of the
// main module; run it through `go generate ./engine/gemm`.
//
// Every kernel computes one r×NR tile of C over a kc-long slice of the inner
// dimension:
//
//	C[i][j] = alpha·Σ_p A(i,p)·Bp[p][j] + beta·C[i][j]   (beta == 0: C not read)
//
// Bp is a kc×NR panel with row stride ldb: a packed, zero-padded panel
// (ldb = NR) or, for small M where packing would not pay off, B itself. A is read in place, so no A
// packing is needed: the "n" kernels read row-major A (A(i,p) = a[i·lda+p],
// the !transA case) and the "t" kernels read A stored k×m (A(i,p) =
// a[p·lda+i], the transA case). One kernel is generated per row count
// r = 1..MR so that edge rows waste no FMAs; edge columns are handled by the
// Go driver through a scratch tile.
package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// isa describes one vector instruction set's kernel geometry.
type isa struct {
	name   string            // function-name prefix
	lanes  int               // float32 lanes per vector
	nvec   int               // vectors per row of the tile (NR = lanes·nvec)
	mr     int               // max rows of the tile
	newVec func() VecVirtual // allocates a vector register of the right width
}

var (
	avx512 = isa{name: "avx512", lanes: 16, nvec: 2, mr: 12, newVec: ZMM}
	avx2   = isa{name: "avx2", lanes: 8, nvec: 2, mr: 6, newVec: YMM}
	// avx512h is the half-width AVX-512 tile (12×16) for a last panel of
	// at most 16 columns, which the 32-wide tile would half waste.
	avx512h = isa{name: "avx512h", lanes: 16, nvec: 1, mr: 12, newVec: ZMM}
)

// unroll is how many k steps one iteration of the main loop does.
const unroll = 4 // advance() and bRow() assume 4

func main() {
	flag.Parse()
	ConstraintExpr("amd64,!purego")
	for _, s := range []isa{avx512, avx2} {
		for _, trans := range []bool{false, true} {
			for r := 1; r <= s.mr; r++ {
				kernel(s, r, trans)
			}
		}
		packB(s)
	}
	for _, trans := range []bool{false, true} {
		for r := 1; r <= avx512h.mr; r++ {
			kernel(avx512h, r, trans)
		}
	}
	transpose16()
	Generate()
}

func kernel(s isa, r int, transA bool) {
	mode := "n"
	if transA {
		mode = "t"
	}
	name := fmt.Sprintf("%s%s%d", s.name, mode, r)
	TEXT(name, NOSPLIT, "func(kc int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes a %d×%d tile of C (A %s); see package doc of the generator.", name, r, s.lanes*s.nvec, map[bool]string{false: "row-major", true: "k×m"}[transA]))

	kc := Load(Param("kc"), GP64())
	ap := Load(Param("a"), GP64())
	lda := Load(Param("lda"), GP64())
	SHLQ(U8(2), lda) // bytes
	bp := Load(Param("b"), GP64())
	ldb := Load(Param("ldb"), GP64())
	SHLQ(U8(2), ldb)
	ldb3 := GP64()
	LEAQ(Mem{Base: ldb, Index: ldb, Scale: 2}, ldb3)

	acc := make([][]VecVirtual, r)
	for i := range acc {
		acc[i] = make([]VecVirtual, s.nvec)
		for j := range acc[i] {
			acc[i][j] = s.newVec()
			VXORPS(acc[i][j], acc[i][j], acc[i][j])
		}
	}

	// Row addressing of A. For the row-major case four rows share one base
	// register and are reached through lda and 3·lda index registers; the
	// bases advance by 4 bytes per k step. For the k×m case all rows are
	// consecutive floats at one pointer that advances by lda per k step.
	var bases []GPVirtual
	var lda3 GPVirtual
	if !transA {
		nb := (r + 3) / 4
		for q := 0; q < nb; q++ {
			b := GP64()
			if q == 0 {
				MOVQ(ap, b)
			} else {
				LEAQ(Mem{Base: bases[q-1], Index: lda, Scale: 4}, b)
			}
			bases = append(bases, b)
		}
		if r > 3 {
			lda3 = GP64()
			LEAQ(Mem{Base: lda, Index: lda, Scale: 2}, lda3)
		}
	}
	rowAddr := func(i, u int) Mem {
		if transA {
			return Mem{Base: ap, Disp: 4 * i}
		}
		m := Mem{Base: bases[i/4], Disp: 4 * u}
		switch i % 4 {
		case 1:
			m.Index, m.Scale = lda, 1
		case 2:
			m.Index, m.Scale = lda, 2
		case 3:
			m.Index, m.Scale = lda3, 1
		}
		return m
	}
	// Row u of the current group of B rows: rows are ldb bytes apart (NR
	// floats for a packed panel, the matrix stride when B is read in place).
	bRow := func(u int) Mem {
		m := Mem{Base: bp}
		switch u {
		case 1:
			m.Index, m.Scale = ldb, 1
		case 2:
			m.Index, m.Scale = ldb, 2
		case 3:
			m.Index, m.Scale = ldb3, 1
		}
		return m
	}
	step := func(u int) {
		bv := make([]VecVirtual, s.nvec)
		for j := range bv {
			bv[j] = s.newVec()
			VMOVUPS(bRow(u).Offset(j*s.lanes*4), bv[j])
		}
		for i := 0; i < r; i++ {
			t := s.newVec()
			VBROADCASTSS(rowAddr(i, u), t)
			for j := range bv {
				VFMADD231PS(bv[j], t, acc[i][j])
			}
		}
		if transA {
			ADDQ(lda, ap)
		}
	}
	advance := func(n int) {
		if n == 4 {
			LEAQ(Mem{Base: bp, Index: ldb, Scale: 4}, bp)
		} else {
			ADDQ(ldb, bp)
		}
		if !transA {
			for _, b := range bases {
				ADDQ(U8(4*n), b)
			}
		}
	}

	Label("loop")
	CMPQ(kc, U8(unroll))
	JL(LabelRef("tail"))
	for u := 0; u < unroll; u++ {
		step(u)
	}
	advance(unroll)
	SUBQ(U8(unroll), kc)
	JMP(LabelRef("loop"))

	Label("tail")
	TESTQ(kc, kc)
	JZ(LabelRef("store"))
	step(0)
	advance(1)
	DECQ(kc)
	JMP(LabelRef("tail"))

	Label("store")
	cp := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	// Broadcast straight from the argument slots: a legacy MOVSS cannot
	// reach X16–X31, which the allocator hands out in the wide kernels.
	al, err := Param("alpha").Resolve()
	if err != nil {
		panic(err)
	}
	bb, err := Param("beta").Resolve()
	if err != nil {
		panic(err)
	}
	valpha := s.newVec()
	VBROADCASTSS(al.Addr, valpha)
	bt := GP32()
	MOVL(bb.Addr, bt)
	SHLL(U8(1), bt) // drops the sign: -0 counts as zero too
	JZ(LabelRef("beta0"))

	vbeta := s.newVec()
	VBROADCASTSS(bb.Addr, vbeta)
	for i := 0; i < r; i++ {
		for j := 0; j < s.nvec; j++ {
			m := Mem{Base: cp, Disp: j * s.lanes * 4}
			VMULPS(valpha, acc[i][j], acc[i][j])
			VFMADD231PS(m, vbeta, acc[i][j])
			VMOVUPS(acc[i][j], m)
		}
		if i < r-1 {
			ADDQ(ldc, cp)
		}
	}
	VZEROUPPER()
	RET()

	// beta == 0: C is write-only, so NaNs already in C cannot leak through.
	Label("beta0")
	for i := 0; i < r; i++ {
		for j := 0; j < s.nvec; j++ {
			VMULPS(valpha, acc[i][j], acc[i][j])
			VMOVUPS(acc[i][j], Mem{Base: cp, Disp: j * s.lanes * 4})
		}
		if i < r-1 {
			ADDQ(ldc, cp)
		}
	}
	VZEROUPPER()
	RET()
}

// packB copies kc rows of NR consecutive floats of row-major B (row stride
// ldb) into a contiguous kc×NR panel. It is the !transB packing of full-width
// panels, which otherwise costs a memmove call per 128 bytes.
func packB(s isa) {
	name := s.name + "packn"
	TEXT(name, NOSPLIT, "func(kc int, b *float32, ldb int, dst *float32)")
	Pragma("noescape")
	Doc(name + " packs kc rows of NR floats (row stride ldb) contiguously into dst.")
	kc := Load(Param("kc"), GP64())
	src := Load(Param("b"), GP64())
	ldb := Load(Param("ldb"), GP64())
	SHLQ(U8(2), ldb)
	dst := Load(Param("dst"), GP64())
	Label("loop")
	TESTQ(kc, kc)
	JZ(LabelRef("done"))
	for j := 0; j < s.nvec; j++ {
		v := s.newVec()
		VMOVUPS(Mem{Base: src, Disp: j * s.lanes * 4}, v)
		VMOVUPS(v, Mem{Base: dst, Disp: j * s.lanes * 4})
	}
	ADDQ(ldb, src)
	ADDQ(U32(s.nvec*s.lanes*4), dst)
	DECQ(kc)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// transpose16 packs 16 rows of a transB matrix (B stored n×k, row stride ldb)
// into 16 columns of a row-major panel (row stride ldd): dst[p·ldd+i] =
// src[i·ldb+p] for i < 16, p < kc, kc a multiple of 16. It transposes 16×16
// blocks in registers with the usual unpck/shuf sequence: a scalar transpose
// costs over a cycle per element, as much as the FMAs it feeds when M is a
// conv layer's 32–64 output channels.
func transpose16() {
	TEXT("avx512transpose16", NOSPLIT, "func(kc int, src *float32, ldb int, dst *float32, ldd int)")
	Pragma("noescape")
	Doc("avx512transpose16 writes dst[p*ldd+i] = src[i*ldb+p] for i < 16, p < kc (kc % 16 == 0).")
	kc := Load(Param("kc"), GP64())
	src := Load(Param("src"), GP64())
	ldb := Load(Param("ldb"), GP64())
	SHLQ(U8(2), ldb)
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(U8(2), ldd)
	t := GP64()

	Label("loop")
	CMPQ(kc, U8(16))
	JL(LabelRef("done"))
	r := make([]VecVirtual, 16)
	MOVQ(src, t)
	for i := range r {
		r[i] = ZMM()
		VMOVUPS(Mem{Base: t}, r[i])
		if i < 15 {
			ADDQ(ldb, t)
		}
	}
	u := make([]VecVirtual, 16)
	for i := range u {
		u[i] = ZMM()
	}
	// Go operand order: OP b, a, dst computes dst = op(a, b).
	for i := 0; i < 8; i++ {
		VUNPCKLPS(r[2*i+1], r[2*i], u[2*i])
		VUNPCKHPS(r[2*i+1], r[2*i], u[2*i+1])
	}
	for i := 0; i < 4; i++ {
		VUNPCKLPD(u[4*i+2], u[4*i], r[4*i])
		VUNPCKHPD(u[4*i+2], u[4*i], r[4*i+1])
		VUNPCKLPD(u[4*i+3], u[4*i+1], r[4*i+2])
		VUNPCKHPD(u[4*i+3], u[4*i+1], r[4*i+3])
	}
	for h := 0; h < 16; h += 8 {
		for i := 0; i < 4; i++ {
			VSHUFF32X4(U8(0x88), r[h+i+4], r[h+i], u[h+i])
			VSHUFF32X4(U8(0xdd), r[h+i+4], r[h+i], u[h+i+4])
		}
	}
	for i := 0; i < 8; i++ {
		VSHUFF32X4(U8(0x88), u[i+8], u[i], r[i])
		VSHUFF32X4(U8(0xdd), u[i+8], u[i], r[i+8])
	}
	MOVQ(dst, t)
	for i := range r {
		VMOVUPS(r[i], Mem{Base: t})
		if i < 15 {
			ADDQ(ldd, t)
		}
	}
	ADDQ(U8(64), src)
	LEAQ(Mem{Base: t, Index: ldd, Scale: 1}, dst)
	SUBQ(U8(16), kc)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}
