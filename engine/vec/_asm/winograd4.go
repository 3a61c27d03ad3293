package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The Winograd F(4×4, 3×3) tile transforms of package nn's conv (see
// vec.Wino4Plan for the layout and the tables). One call transforms up to 16
// tiles, one per lane, from up to four tile rows. Each input row is loaded
// as a stream of 64 floats with the table's masked loads (two per register,
// for the two tile rows a register can straddle) and transposed into the
// four pixel phases x[4l+p]; the two phases a tile needs from its
// neighbours (pixels 4l−1 and 4l+4) are lane shifts, zeroed at the ends of
// each tile row. The 6×6 transform runs across (rows into a scratch
// buffer) and then down; the output transform runs down, across, and back
// through the inverse transpose into masked stores.

// Offsets in vec's wino4Consts, wino4In and wino4Out.
const (
	w4Up, w4Down, w4KUp, w4KDown  = 0, 64, 128, 130
	w4C2, w4C4, w4C5, w4C8        = 132, 136, 140, 144
	w4InOff, w4InMask, w4InKst    = 0, 384, 480
	w4OutOff, w4OutMask, w4OutKld = 0, 256, 320
)

func winograd4() {
	wino4In()
	wino4Out()
	wino4Dy()
}

// w4Consts broadcasts the constants the transforms multiply by.
func w4Consts(kp Register, offs ...int) []VecVirtual {
	var c []VecVirtual
	for _, o := range offs {
		r := ZMM()
		VBROADCASTSS(Mem{Base: kp, Disp: o}, r)
		c = append(c, r)
	}
	return c
}

// w4Bt applies Bᵀ to d0…d5: (4d0−5d2+d4, (d4−4d2)+(d3−4d1), (d4−4d2)−(d3−4d1),
// (d4−d2)+2(d3−d1), (d4−d2)−2(d3−d1), 4d1−5d3+d5).
func w4Bt(d [6]VecVirtual, c2, c4, c5 VecVirtual) [6]VecVirtual {
	var h [6]VecVirtual
	for i := range h {
		h[i] = ZMM()
	}
	VMOVAPS(d[4], h[0])
	VFNMADD231PS(c5, d[2], h[0])
	VFMADD231PS(c4, d[0], h[0])
	a, b := ZMM(), ZMM()
	VMOVAPS(d[4], a)
	VFNMADD231PS(c4, d[2], a)
	VMOVAPS(d[3], b)
	VFNMADD231PS(c4, d[1], b)
	VADDPS(b, a, h[1])
	VSUBPS(b, a, h[2])
	c, e := ZMM(), ZMM()
	VSUBPS(d[2], d[4], c)
	VSUBPS(d[1], d[3], e)
	VMOVAPS(c, h[3])
	VFMADD231PS(c2, e, h[3])
	VMOVAPS(c, h[4])
	VFNMADD231PS(c2, e, h[4])
	VMOVAPS(d[5], h[5])
	VFNMADD231PS(c5, d[3], h[5])
	VFMADD231PS(c4, d[1], h[5])
	return h
}

// w4At applies Aᵀ to m0…m5: (m0+s1+s2, d1+2d2, s1+4s2, d1+m5+8d2) with
// s1, d1 = m1 ± m2 and s2, d2 = m3 ± m4.
func w4At(m [6]VecVirtual, c2, c4, c8 VecVirtual) [4]VecVirtual {
	s1, d1, s2, d2 := ZMM(), ZMM(), ZMM(), ZMM()
	VADDPS(m[2], m[1], s1)
	VSUBPS(m[2], m[1], d1)
	VADDPS(m[4], m[3], s2)
	VSUBPS(m[4], m[3], d2)
	var y [4]VecVirtual
	for i := range y {
		y[i] = ZMM()
	}
	VADDPS(s1, m[0], y[0])
	VADDPS(s2, y[0], y[0])
	VMOVAPS(d1, y[1])
	VFMADD231PS(c2, d2, y[1])
	VMOVAPS(s1, y[2])
	VFMADD231PS(c4, s2, y[2])
	VADDPS(m[5], d1, y[3])
	VFMADD231PS(c8, d2, y[3])
	return y
}

// w4A applies A (Aᵀ's transpose, 6×4) to y0…y3: (y0, e+o, e−o, e2+o2,
// e2−o2, y3) with e, o = y0+y2, y1+y3 and e2, o2 = y0+4y2, 2(y1+4y3).
func w4A(y [4]VecVirtual, c2, c4 VecVirtual) [6]VecVirtual {
	e, o, e2, o2 := ZMM(), ZMM(), ZMM(), ZMM()
	VADDPS(y[2], y[0], e)
	VADDPS(y[3], y[1], o)
	VMOVAPS(y[0], e2)
	VFMADD231PS(c4, y[2], e2)
	VMOVAPS(y[1], o2)
	VFMADD231PS(c4, y[3], o2)
	VMULPS(c2, o2, o2)
	t := [6]VecVirtual{y[0], ZMM(), ZMM(), ZMM(), ZMM(), y[3]}
	VADDPS(o, e, t[1])
	VSUBPS(o, e, t[2])
	VADDPS(o2, e2, t[3])
	VSUBPS(o2, e2, t[4])
	return t
}

// w4InLane transposes the 4×4 blocks inside each 128-bit lane of a…d.
func w4InLane(a, b, c, d VecVirtual) [4]VecVirtual {
	t := [4]VecVirtual{ZMM(), ZMM(), ZMM(), ZMM()}
	VUNPCKLPS(b, a, t[0])
	VUNPCKHPS(b, a, t[1])
	VUNPCKLPS(d, c, t[2])
	VUNPCKHPS(d, c, t[3])
	q := [4]VecVirtual{ZMM(), ZMM(), ZMM(), ZMM()}
	VUNPCKLPD(t[2], t[0], q[0])
	VUNPCKHPD(t[2], t[0], q[1])
	VUNPCKLPD(t[3], t[1], q[2])
	VUNPCKHPD(t[3], t[1], q[3])
	return q
}

// w4Blocks transposes the 4×4 matrix of 128-bit lanes of a…d.
func w4Blocks(a, b, c, d VecVirtual) [4]VecVirtual {
	// VSHUFF32X4 imm, src2, src1, dst: dst lanes 0, 1 from src1 (imm bits
	// 1:0, 3:2), lanes 2, 3 from src2 (bits 5:4, 7:6).
	sel := func(l0, l1, l2, l3 int) U8 { return U8(l0 | l1<<2 | l2<<4 | l3<<6) }
	u := [4]VecVirtual{ZMM(), ZMM(), ZMM(), ZMM()}
	VSHUFF32X4(sel(0, 1, 0, 1), b, a, u[0])
	VSHUFF32X4(sel(2, 3, 2, 3), b, a, u[1])
	VSHUFF32X4(sel(0, 1, 0, 1), d, c, u[2])
	VSHUFF32X4(sel(2, 3, 2, 3), d, c, u[3])
	s := [4]VecVirtual{ZMM(), ZMM(), ZMM(), ZMM()}
	VSHUFF32X4(sel(0, 2, 0, 2), u[2], u[0], s[0])
	VSHUFF32X4(sel(1, 3, 1, 3), u[2], u[0], s[1])
	VSHUFF32X4(sel(0, 2, 0, 2), u[3], u[1], s[2])
	VSHUFF32X4(sel(1, 3, 1, 3), u[3], u[1], s[3])
	return s
}

// w4Scratch loads n ≤ 6 vectors of the scratch buffer at sp: vectors
// first, first+step, … (64 bytes each); the rest of the six are unset.
func w4Scratch(sp Register, first, step, n int) [6]VecVirtual {
	var v [6]VecVirtual
	for i := range n {
		v[i] = ZMM()
		VMOVUPS(Mem{Base: sp, Disp: 64 * (first + i*step)}, v[i])
	}
	return v
}

// w4LoadStream loads one row's 64-float stream, registers j = 0…3, each
// with the two masked loads of a call table's entries (row·4+j)·2 + e:
// byte offsets from base at offDisp, masks at maskDisp.
func w4LoadStream(base, rp Register, offDisp, maskDisp, row int) [4]VecVirtual {
	var st [4]VecVirtual
	for j := range st {
		st[j] = ZMM()
		for e := 0; e < 2; e++ {
			n := (row*4+j)*2 + e
			off := GP64()
			MOVQ(Mem{Base: rp, Disp: offDisp + 8*n}, off)
			k := maskAt(Mem{Base: rp, Disp: maskDisp + 2*n})
			if e == 0 {
				VMOVUPS_Z(Mem{Base: base, Index: off, Scale: 1}, k, st[j])
			} else {
				VMOVUPS(Mem{Base: base, Index: off, Scale: 1}, k, st[j])
			}
		}
	}
	return st
}

// w4StoreColumn stores the six values of one transform column to ξ = 6r + j
// for r = 0…5: at p, p + ld6, … (p points at column j's first plane),
// masked by kst.
func w4StoreColumn(o [6]VecVirtual, p, ld6 Register, kst OpmaskVirtual) {
	q := GP64()
	MOVQ(p, q)
	for r := range o {
		VMOVUPS(o[r], kst, Mem{Base: q})
		if r < 5 {
			ADDQ(ld6, q)
		}
	}
}

func maskAt(m Mem) OpmaskVirtual {
	k := K()
	KMOVW(m, k)
	return k
}

func wino4In() {
	TEXT("wino4InAVX512", NOSPLIT, "func(v *float32, ldv int, x *float32, rec *int64, k *uint32, s *[36][16]float32)")
	Pragma("noescape")
	Doc("wino4InAVX512 computes the Winograd F(4×4,3×3) input transform of one call's tiles; see vec.Wino4Plan.")
	xp := Load(Param("x"), GP64())
	rp := Load(Param("rec"), GP64())
	kp := Load(Param("k"), GP64())
	sp := Load(Param("s"), GP64())
	c := w4Consts(kp, w4C2, w4C4, w4C5)
	c2, c4, c5 := c[0], c[1], c[2]
	up, down := ZMM(), ZMM()
	VMOVUPS(Mem{Base: kp, Disp: w4Up}, up)
	VMOVUPS(Mem{Base: kp, Disp: w4Down}, down)
	kUp, kDown := maskAt(Mem{Base: kp, Disp: w4KUp}), maskAt(Mem{Base: kp, Disp: w4KDown})
	// Across: each input row i into h[i][0…5] in the scratch.
	for i := 0; i < 6; i++ {
		st := w4LoadStream(xp, rp, w4InOff, w4InMask, i)
		b := w4Blocks(st[0], st[1], st[2], st[3])
		p := w4InLane(b[0], b[1], b[2], b[3]) // p[q] lane l = pixel 4l+q of the row
		d0, d5 := ZMM(), ZMM()
		VPERMPS_Z(p[3], up, kUp, d0)     // pixel 4l−1
		VPERMPS_Z(p[0], down, kDown, d5) // pixel 4l+4
		h := w4Bt([6]VecVirtual{d0, p[0], p[1], p[2], p[3], d5}, c2, c4, c5)
		for j := 0; j < 6; j++ {
			VMOVUPS(h[j], Mem{Base: sp, Disp: 64 * (6*i + j)})
		}
	}
	// Down: column j of every row into ξ = 6r + j.
	vp := Load(Param("v"), GP64())
	ld := Load(Param("ldv"), GP64())
	SHLQ(U8(2), ld) // bytes between ξ planes
	ld6 := GP64()
	IMUL3Q(U8(6), ld, ld6)
	kst := maskAt(Mem{Base: rp, Disp: w4InKst})
	for j := 0; j < 6; j++ {
		w4StoreColumn(w4Bt(w4Scratch(sp, j, 6, 6), c2, c4, c5), vp, ld6, kst)
		if j < 5 {
			ADDQ(ld, vp)
		}
	}
	VZEROUPPER()
	RET()
}

func wino4Out() {
	TEXT("wino4OutAVX512", NOSPLIT, "func(m *float32, ldm int, y *float32, bias *[16]float32, rec *int64, k *uint32, s *[24][16]float32)")
	Pragma("noescape")
	Doc("wino4OutAVX512 computes the Winograd F(4×4,3×3) output transform Aᵀ·M·A + bias (per lane) of one call's tiles; see vec.Wino4Plan.")
	mp := Load(Param("m"), GP64())
	ld := Load(Param("ldm"), GP64())
	SHLQ(U8(2), ld)
	ld6 := GP64()
	IMUL3Q(U8(6), ld, ld6)
	rp := Load(Param("rec"), GP64())
	kp := Load(Param("k"), GP64())
	sp := Load(Param("s"), GP64())
	c := w4Consts(kp, w4C2, w4C4, w4C8)
	c2, c4, c8 := c[0], c[1], c[2]
	kld := maskAt(Mem{Base: rp, Disp: w4OutKld})
	// Down: column j of M (ξ = 6r + j) into s[a][j].
	for j := 0; j < 6; j++ {
		var col [6]VecVirtual
		p := GP64()
		MOVQ(mp, p)
		for r := 0; r < 6; r++ {
			col[r] = ZMM()
			VMOVUPS_Z(Mem{Base: p}, kld, col[r])
			if r < 5 {
				ADDQ(ld6, p)
			}
		}
		o := w4At(col, c2, c4, c8)
		for a := 0; a < 4; a++ {
			VMOVUPS(o[a], Mem{Base: sp, Disp: 64 * (6*a + j)})
		}
		if j < 5 {
			ADDQ(ld, mp)
		}
	}
	bias := ZMM()
	VMOVUPS(Mem{Base: Load(Param("bias"), GP64())}, bias) // lane l: the bias of tile l's image
	yp := Load(Param("y"), GP64())
	// Across: row a's four pixel phases, plus the bias, back into streams.
	for a := 0; a < 4; a++ {
		q := w4At(w4Scratch(sp, 6*a, 1, 6), c2, c4, c8)
		for i := range q {
			VADDPS(bias, q[i], q[i])
		}
		t := w4InLane(q[0], q[1], q[2], q[3])
		st := w4Blocks(t[0], t[1], t[2], t[3])
		for j := 0; j < 4; j++ {
			for e := 0; e < 2; e++ {
				n := (a*4+j)*2 + e
				off := GP64()
				MOVQ(Mem{Base: rp, Disp: w4OutOff + 8*n}, off)
				k := maskAt(Mem{Base: rp, Disp: w4OutMask + 2*n})
				VMOVUPS(st[j], k, Mem{Base: yp, Index: off, Scale: 1})
			}
		}
	}
	VZEROUPPER()
	RET()
}

func wino4Dy() {
	TEXT("wino4DyAVX512", NOSPLIT, "func(v *float32, ldv int, dy *float32, rec *int64, k *uint32, s *[24][16]float32)")
	Pragma("noescape")
	Doc("wino4DyAVX512 computes A·dY·Aᵀ of one call's 4×4 output-gradient tiles (the weight gradient's transform); see vec.Wino4Plan.GradOutputPlane.")
	dp := Load(Param("dy"), GP64())
	rp := Load(Param("rec"), GP64())
	kp := Load(Param("k"), GP64())
	sp := Load(Param("s"), GP64())
	c := w4Consts(kp, w4C2, w4C4)
	c2, c4 := c[0], c[1]
	// Across: gradient row a (read with the output tables' offsets and
	// masks) into its pixel phases, then A into s[a][0…5].
	for a := 0; a < 4; a++ {
		st := w4LoadStream(dp, rp, w4OutOff, w4OutMask, a)
		b := w4Blocks(st[0], st[1], st[2], st[3])
		p := w4InLane(b[0], b[1], b[2], b[3])
		t := w4A(p, c2, c4)
		for j := 0; j < 6; j++ {
			VMOVUPS(t[j], Mem{Base: sp, Disp: 64 * (6*a + j)})
		}
	}
	// Down: column j of the four rows into ξ = 6r + j.
	vp := Load(Param("v"), GP64())
	ld := Load(Param("ldv"), GP64())
	SHLQ(U8(2), ld)
	ld6 := GP64()
	IMUL3Q(U8(6), ld, ld6)
	kst := maskAt(Mem{Base: rp, Disp: w4OutKld})
	for j := 0; j < 6; j++ {
		col := w4Scratch(sp, j, 6, 4)
		w4StoreColumn(w4A([4]VecVirtual{col[0], col[1], col[2], col[3]}, c2, c4), vp, ld6, kst)
		if j < 5 {
			ADDQ(ld, vp)
		}
	}
	VZEROUPPER()
	RET()
}
