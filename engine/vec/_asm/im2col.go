package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// im2col3x3: the lowering of a 3×3, stride-1, padding-1 conv on planes of at
// most 64 pixels (vec.Im2col3x3 says what it computes). A plane fits in four
// registers; every tap's shifted copy of it is, per output register, one
// VPERMI2PS of two neighbouring plane registers with the padding lanes
// zeroed by a mask, so a 7×7 plane's nine im2col rows take 36 permutes and
// stores instead of nine copies, each with its zero fix-ups.
//
// The layout of the table vec builds per plane shape (vec.im2colTab):
//
//	idx   [9][4][16]uint32 at 0     permute index of tap t, output register j
//	valid [9][4]uint16     at 2304  lanes whose source pixel is in the plane
//	plane [4]uint16        at 2376  lanes j·16+l < h·w (loads and stores)
//
// Tap t = 3·ky + kx reads the pixel offset by (dy, dx) = (ky−1, kx−1); its
// offset in the row-major plane, dy·w + dx, is negative exactly when
// tapReadsBack(t), and then output register j draws on plane registers j−1
// and j, otherwise on j and j+1 (registers past the plane are zero). Package
// vec builds the indices by the same rule.
func im2col3x3() {
	TEXT("im2col3x3AVX512", NOSPLIT, "func(col *float32, ld int, x *float32, hw, cin int, tab *uint32)")
	Pragma("noescape")
	Doc("im2col3x3AVX512 lowers cin planes of hw ≤ 64 pixels for a 3×3, stride-1, padding-1 conv; see vec.Im2col3x3.")
	colp := Load(Param("col"), GP64())
	ld := Load(Param("ld"), GP64())
	SHLQ(U8(2), ld) // bytes between im2col rows
	xp := Load(Param("x"), GP64())
	hw := Load(Param("hw"), GP64())
	SHLQ(U8(2), hw)
	n := Load(Param("cin"), GP64())
	tab := Load(Param("tab"), GP64())
	var plane [4]OpmaskVirtual
	for j := range plane {
		plane[j] = K()
		KMOVW(Mem{Base: tab, Disp: 2376 + 2*j}, plane[j])
	}
	zero := ZMM()
	VPXORD(zero, zero, zero)

	Label("channel")
	var r [4]VecVirtual
	for j := range r {
		r[j] = ZMM()
		VMOVUPS_Z(Mem{Base: xp, Disp: 64 * j}, plane[j], r[j])
	}
	reg := func(j int) VecVirtual {
		if j < 0 || j > 3 {
			return zero
		}
		return r[j]
	}
	for t := 0; t < 9; t++ {
		for j := 0; j < 4; j++ {
			lo, hi := reg(j), reg(j+1)
			if tapReadsBack(t) {
				lo, hi = reg(j-1), reg(j)
			}
			d, kv := ZMM(), K()
			VMOVUPS(Mem{Base: tab, Disp: 64 * (4*t + j)}, d)
			KMOVW(Mem{Base: tab, Disp: 2304 + 2*(4*t+j)}, kv)
			VPERMI2PS_Z(hi, lo, kv, d)
			VMOVUPS(d, plane[j], Mem{Base: colp, Disp: 64 * j})
		}
		ADDQ(ld, colp)
	}
	ADDQ(hw, xp)
	DECQ(n)
	JNZ(LabelRef("channel"))
	VZEROUPPER()
	RET()
}

// tapReadsBack reports whether tap t of a 3×3 kernel reads a pixel before
// the output pixel in row-major order (dy < 0, or dy = 0 and dx < 0); it
// must agree with vec.tapReadsBack.
func tapReadsBack(t int) bool {
	dy, dx := t/3-1, t%3-1
	return dy < 0 || (dy == 0 && dx < 0)
}
