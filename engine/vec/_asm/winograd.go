package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The Winograd F(2×2, 3×3) row transforms of package nn's conv (see
// vec.WinogradInputPlane and vec.WinogradOutputPlane for what they compute).
// Each call handles up to 16 tiles, one per lane: the stride-2 tile columns
// are pulled out of two registers of consecutive pixels with VPERMI2PS, and
// every load and store is masked, so that rows of any width (28, 14, 7)
// need no padded copy and no scalar tail.

// permIndex emits a 16-lane dword index table and returns it.
func permIndex(name string, f func(l int) int) Mem {
	m := GLOBL(name, RODATA|NOPTR)
	for l := 0; l < 16; l++ {
		DATA(4*l, U32(uint32(f(l))))
	}
	return m
}

func winograd() {
	even := permIndex("winoEven", func(l int) int { return 2 * l })
	odd := permIndex("winoOdd", func(l int) int { return 2*l + 1 })
	// Interleave (a, b) → a0 b0 a1 b1 …: lanes 0–15 and 16–31 of the result.
	ilo := permIndex("winoInterLo", func(l int) int { return l/2 + 16*(l%2) })
	ihi := permIndex("winoInterHi", func(l int) int { return 8 + l/2 + 16*(l%2) })
	winoIn(even, odd)
	winoOut(ilo, ihi)
	winoIn2()
	winoOut2()
}

func mask(name string) OpmaskVirtual {
	g := GP32()
	Load(Param(name), g)
	k := K()
	KMOVW(g, k)
	return k
}

// winoIn: v[ξ·ldv + l] for ξ = 4i+j, lane l < popcount(mst), of the tiles
// whose input pixels are r_i[2l−1 … 2l+2] (i = 0…3, the tile's four rows).
// ma0/ma1 mask the pixels −1…14 and 15…30 relative to r_i, mb0/mb1 the
// pixels 1…16 and 17…32; masked-off pixels read as 0 (the padding).
func winoIn(even, odd Mem) {
	TEXT("winoInAVX512", NOSPLIT, "func(r0, r1, r2, r3, v *float32, ldv int, ma0, ma1, mb0, mb1, mst uint16)")
	Pragma("noescape")
	Doc("winoInAVX512 computes the Winograd F(2×2,3×3) input transform Bᵀ·d·B of up to 16 tiles of one tile row.")
	ka0, ka1, kb0, kb1, kst := mask("ma0"), mask("ma1"), mask("mb0"), mask("mb1"), mask("mst")
	ie, io := ZMM(), ZMM()
	VMOVUPS(even, ie)
	VMOVUPS(odd, io)
	perm := func(idx, lo, hi VecVirtual) VecVirtual {
		d := ZMM()
		VMOVAPS(idx, d)
		VPERMI2PS(hi, lo, d)
		return d
	}
	// Column pass on each row: with d_j the pixels 2l−1+j of lane l,
	// c = (d0−d2, d1+d2, d2−d1, d1−d3).
	var c [4][4]VecVirtual
	for i, name := range []string{"r0", "r1", "r2", "r3"} {
		p := Load(Param(name), GP64())
		a0, a1, b0, b1 := ZMM(), ZMM(), ZMM(), ZMM()
		VMOVUPS_Z(Mem{Base: p, Disp: -4}, ka0, a0)
		VMOVUPS_Z(Mem{Base: p, Disp: 60}, ka1, a1)
		VMOVUPS_Z(Mem{Base: p, Disp: 4}, kb0, b0)
		VMOVUPS_Z(Mem{Base: p, Disp: 68}, kb1, b1)
		d0, d1 := perm(ie, a0, a1), perm(io, a0, a1)
		d2, d3 := perm(ie, b0, b1), perm(io, b0, b1)
		c[i] = colPass(d0, d1, d2, d3)
	}
	// Row pass across the four rows, stored in ξ order.
	rowPassStore(c, kst)
	VZEROUPPER()
	RET()
}

// winoOut: the output transform Aᵀ·M·A of up to 16 tiles (lane l holds
// M[ξ] at m[ξ·ldm + l], masked by mld), plus bias, interleaved into pixels
// 0…31 of output rows y0 and y1 (stores masked by m0lo/m0hi, m1lo/m1hi).
func winoOut(ilo, ihi Mem) {
	TEXT("winoOutAVX512", NOSPLIT, "func(m *float32, ldm int, y0, y1 *float32, bias float32, mld, m0lo, m0hi, m1lo, m1hi uint16)")
	Pragma("noescape")
	Doc("winoOutAVX512 computes the Winograd F(2×2,3×3) output transform Aᵀ·M·A + bias of up to 16 tiles of one tile row.")
	r, bias := outPrologue()
	lo, hi := ZMM(), ZMM()
	VMOVUPS(ilo, lo)
	VMOVUPS(ihi, hi)
	for a, name := range []string{"y0", "y1"} {
		e, o := outColumns(r[a], bias)
		p0, p1 := ZMM(), ZMM()
		VMOVAPS(lo, p0)
		VPERMI2PS(o, e, p0)
		VMOVAPS(hi, p1)
		VPERMI2PS(o, e, p1)
		yp := Load(Param(name), GP64())
		klo, khi := mask("m"+string(rune('0'+a))+"lo"), mask("m"+string(rune('0'+a))+"hi")
		VMOVUPS(p0, klo, Mem{Base: yp})
		VMOVUPS(p1, khi, Mem{Base: yp, Disp: 64})
	}
	VZEROUPPER()
	RET()
}

// winoIn2: winoIn for planes at most 16 pixels wide (tw ≤ 8 tiles), two tile
// rows per call: lanes [0, tw) hold the tiles of the rows r0…r3 and lanes
// [tw, 2·tw) those of s0…s3, so that the stores of both tile rows are one
// contiguous run. Each row needs only the pixels −1…14 (ma) and 1…16 (mb);
// the tables idx[0] (even: d0, d2) and idx[1] (odd: d1, d3) pick lane
// 2l (+1) of the first row set's register for l < tw, and lane 2(l−tw) (+1)
// of the second's above.
func winoIn2() {
	TEXT("winoIn2AVX512", NOSPLIT, "func(r0, r1, r2, r3, s0, s1, s2, s3, v *float32, ldv int, idx *[2][16]uint32, ma, mb, mst uint16)")
	Pragma("noescape")
	Doc("winoIn2AVX512 computes the Winograd F(2×2,3×3) input transform of two tile rows of a plane at most 16 pixels wide.")
	ka, kb, kst := mask("ma"), mask("mb"), mask("mst")
	ip := Load(Param("idx"), GP64())
	ie, io := ZMM(), ZMM()
	VMOVUPS(Mem{Base: ip}, ie)
	VMOVUPS(Mem{Base: ip, Disp: 64}, io)
	perm := func(idx, lo, hi VecVirtual) VecVirtual {
		d := ZMM()
		VMOVAPS(idx, d)
		VPERMI2PS(hi, lo, d)
		return d
	}
	var c [4][4]VecVirtual
	for i := 0; i < 4; i++ {
		p := Load(Param("r"+string(rune('0'+i))), GP64())
		q := Load(Param("s"+string(rune('0'+i))), GP64())
		a1, a2, b1, b2 := ZMM(), ZMM(), ZMM(), ZMM()
		VMOVUPS_Z(Mem{Base: p, Disp: -4}, ka, a1)
		VMOVUPS_Z(Mem{Base: q, Disp: -4}, ka, a2)
		VMOVUPS_Z(Mem{Base: p, Disp: 4}, kb, b1)
		VMOVUPS_Z(Mem{Base: q, Disp: 4}, kb, b2)
		d0, d1 := perm(ie, a1, a2), perm(io, a1, a2)
		d2, d3 := perm(ie, b1, b2), perm(io, b1, b2)
		c[i] = colPass(d0, d1, d2, d3)
	}
	rowPassStore(c, kst)
	VZEROUPPER()
	RET()
}

// winoOut2: winoOut for planes at most 16 pixels wide, two tile rows per
// call (lanes as in winoIn2): output rows y0, y1 from lanes [0, tw) and y2,
// y3 from lanes [tw, 2·tw), through the interleave tables idx[0] and idx[1];
// m0…m3 mask the rows' stores (0 for a row past the image).
func winoOut2() {
	TEXT("winoOut2AVX512", NOSPLIT, "func(m *float32, ldm int, y0, y1, y2, y3 *float32, bias float32, idx *[2][16]uint32, mld, m0, m1, m2, m3 uint16)")
	Pragma("noescape")
	Doc("winoOut2AVX512 computes the Winograd F(2×2,3×3) output transform of two tile rows of a plane at most 16 pixels wide.")
	r, bias := outPrologue()
	ip := Load(Param("idx"), GP64())
	t1, t2 := ZMM(), ZMM()
	VMOVUPS(Mem{Base: ip}, t1)
	VMOVUPS(Mem{Base: ip, Disp: 64}, t2)
	for a := 0; a < 2; a++ {
		e, o := outColumns(r[a], bias)
		for set, tab := range []VecVirtual{t1, t2} {
			row := 2*set + a
			p := ZMM()
			VMOVAPS(tab, p)
			VPERMI2PS(o, e, p)
			yp := Load(Param("y"+string(rune('0'+row))), GP64())
			k := mask("m" + string(rune('0'+row)))
			VMOVUPS(p, k, Mem{Base: yp})
		}
	}
	VZEROUPPER()
	RET()
}

// colPass is the input transform along a row, Bᵀ·(d0, d1, d2, d3) =
// (d0−d2, d1+d2, d2−d1, d1−d3).
func colPass(d0, d1, d2, d3 VecVirtual) [4]VecVirtual {
	c := [4]VecVirtual{ZMM(), ZMM(), ZMM(), ZMM()}
	VSUBPS(d2, d0, c[0])
	VADDPS(d2, d1, c[1])
	VSUBPS(d1, d2, c[2])
	VSUBPS(d3, d1, c[3])
	return c
}

// rowPassStore applies Bᵀ across the four rows' column passes c[i][j] and
// stores the 16 results (masked by kst) at v, ldv floats apart, in ξ order.
func rowPassStore(c [4][4]VecVirtual, kst OpmaskVirtual) {
	vp := Load(Param("v"), GP64())
	ld := Load(Param("ldv"), GP64())
	SHLQ(U8(2), ld)
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			t := ZMM()
			switch i {
			case 0:
				VSUBPS(c[2][j], c[0][j], t)
			case 1:
				VADDPS(c[2][j], c[1][j], t)
			case 2:
				VSUBPS(c[1][j], c[2][j], t)
			case 3:
				VSUBPS(c[3][j], c[1][j], t)
			}
			VMOVUPS(t, kst, Mem{Base: vp})
			if i < 3 || j < 3 {
				ADDQ(ld, vp)
			}
		}
	}
}

// loadM loads the 16 GEMM results M[ξ] (masked by kld) from m, ldm floats
// apart.
func loadM(kld OpmaskVirtual) [4][4]VecVirtual {
	mp := Load(Param("m"), GP64())
	ld := Load(Param("ldm"), GP64())
	SHLQ(U8(2), ld)
	var mv [4][4]VecVirtual
	for i := 0; i < 4; i++ {
		for j := 0; j < 4; j++ {
			mv[i][j] = ZMM()
			VMOVUPS_Z(Mem{Base: mp}, kld, mv[i][j])
			if i < 3 || j < 3 {
				ADDQ(ld, mp)
			}
		}
	}
	return mv
}

// outRowPass is the output transform's row pass: r0_j = (m0j+m1j)+m2j,
// r1_j = (m1j−m2j)−m3j.
func outRowPass(mv [4][4]VecVirtual) [2][4]VecVirtual {
	var r [2][4]VecVirtual
	for j := 0; j < 4; j++ {
		r[0][j], r[1][j] = ZMM(), ZMM()
		VADDPS(mv[1][j], mv[0][j], r[0][j])
		VADDPS(mv[2][j], r[0][j], r[0][j])
		VSUBPS(mv[2][j], mv[1][j], r[1][j])
		VSUBPS(mv[3][j], r[1][j], r[1][j])
	}
	return r
}

// outPrologue loads M (masked by the mld parameter), runs the output row
// pass and broadcasts the bias parameter: the common start of winoOut and
// winoOut2.
func outPrologue() (r [2][4]VecVirtual, bias VecVirtual) {
	r = outRowPass(loadM(mask("mld")))
	return r, broadcastParam("bias")
}

// broadcastParam broadcasts the float32 parameter name to every lane.
func broadcastParam(name string) VecVirtual {
	a, err := Param(name).Resolve()
	if err != nil {
		panic(err)
	}
	r := ZMM()
	VBROADCASTSS(a.Addr, r)
	return r
}

// outColumns is the output transform's column pass on one row-pass result
// ra, with the bias added: y_a0 = ((ra0+ra1)+ra2)+bias and
// y_a1 = ((ra1−ra2)−ra3)+bias.
func outColumns(ra [4]VecVirtual, bias VecVirtual) (e, o VecVirtual) {
	e, o = ZMM(), ZMM()
	VADDPS(ra[1], ra[0], e)
	VADDPS(ra[2], e, e)
	VADDPS(bias, e, e)
	VSUBPS(ra[2], ra[1], o)
	VSUBPS(ra[3], o, o)
	VADDPS(bias, o, o)
	return e, o
}
