package vec

// The row transforms of the Winograd F(2×2, 3×3) convolution (package nn,
// Conv2d's forward). A tile row of a w-pixel-wide image has tw = ⌈w/2⌉
// tiles; tile t covers input pixels 2t−1 … 2t+2 of four consecutive rows
// (pixels outside [0, w) are the zero padding) and output pixels 2t, 2t+1
// of two rows. ξ = 4i+j numbers the 16 transformed values of a tile.
//
//	Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//	Aᵀ = [1 1 1 0; 0 1 −1 −1]

// winoZero stands for a row of padding: the kernel reads pixels −1 … 32
// around its pointer &winoZero[1].
var winoZero [48]float32

// Permutation tables of the two-tile-rows kernels (winoIn2, winoOut2), by
// tiles per row tw ≤ 8: lane l < tw takes tile l of the first tile row,
// lane tw ≤ l < 2·tw tile l−tw of the second.
var winoIdxIn, winoIdxOut [9][2][16]uint32

func init() {
	for tw := 1; tw <= 8; tw++ {
		for l := 0; l < 16; l++ {
			// Input: pixel lanes 2t (d0, d2) and 2t+1 (d1, d3) of the first
			// rows' register (0–15) or the second's (16–31).
			e := 0
			switch {
			case l < tw:
				e = 2 * l
			case l < 2*tw:
				e = 16 + 2*(l-tw)
			}
			winoIdxIn[tw][0][l], winoIdxIn[tw][1][l] = uint32(e), uint32(e+1)
			// Output: pixel l of a row is tile l/2's even (e, 0–15) or odd
			// (o, 16–31) output; the second tile row's tiles start at lane tw.
			o := l / 2
			if l%2 == 1 {
				o += 16
			}
			winoIdxOut[tw][0][l], winoIdxOut[tw][1][l] = uint32(o), uint32(o+tw)
		}
	}
}

// tileRows returns the four input rows of tile row ty of the h×w plane x,
// nil for the padding rows above and below it.
func tileRows(x []float32, h, w, ty int) (rows [4][]float32) {
	for r := range rows {
		if y := 2*ty - 1 + r; y >= 0 && y < h {
			rows[r] = x[y*w : (y+1)*w]
		}
	}
	return rows
}

// laneMask has bit l set when pixel first+l lies in [0, w).
func laneMask(first, w int) uint16 {
	a, b := max(0, -first), min(16, w-first) // lanes [a, b)
	if a >= b {
		return 0
	}
	return uint16((1<<b - 1) &^ (1<<a - 1))
}

// winogradInputRow and winogradOutputRow are the per-row form of the plane
// functions, one call per 16 tiles with masks worked out each time; package
// nn uses the plane functions, and these let the tests drive the one-row
// kernels with padding rows anywhere and any row width.
//
// winogradInputRow writes the input transform Bᵀ·d·B of every tile of one
// tile row to v[ξ·ldv + t]: rows holds the tile row's four input rows,
// each w pixels long, or nil for a row of padding.
func winogradInputRow(v []float32, ldv int, rows *[4][]float32, w int) {
	tw := (w + 1) / 2
	_ = v[15*ldv+tw-1]
	for i := range rows {
		if rows[i] != nil {
			_ = rows[i][w-1]
		}
	}
	if !useAVX512 {
		winoInputRowGo(v, ldv, rows, w)
		return
	}
	for t0 := 0; t0 < tw; t0 += 16 {
		e0 := 2 * t0 // pixel of lane 0's d1
		var p [4]*float32
		for i, r := range rows {
			if r == nil {
				p[i] = &winoZero[1]
			} else {
				p[i] = &r[e0]
			}
		}
		winoInAVX512(p[0], p[1], p[2], p[3], &v[t0], ldv,
			laneMask(e0-1, w), laneMask(e0+15, w), laneMask(e0+1, w), laneMask(e0+17, w),
			laneMask(t0, tw))
	}
}

// WinogradInputPlane writes the input transform of every tile of an h×w
// plane x to v[ξ·ldv + ty·tw + tx]: winogradInputRow for each tile row,
// with the masks worked out once per plane.
func WinogradInputPlane(v []float32, ldv int, x []float32, h, w int) {
	WinogradInputRows(v, ldv, x, h, w, 0, (h+1)/2)
}

// WinogradInputRows is WinogradInputPlane for tile rows [ty0, ty1) of the
// plane only, written from column 0 of v (tile (ty, tx) to column
// (ty−ty0)·tw + tx): a band of a large plane, so that the GEMM operands of
// a layer stay bounded (and in cache) however large its planes are.
func WinogradInputRows(v []float32, ldv int, x []float32, h, w, ty0, ty1 int) {
	th, tw := (h+1)/2, (w+1)/2
	if ty0 < 0 || ty1 > th || ty0 >= ty1 {
		panic("vec: WinogradInputRows: tile rows out of range")
	}
	_ = x[h*w-1]
	_ = v[15*ldv+(ty1-ty0)*tw-1]
	if !useAVX512 {
		for ty := ty0; ty < ty1; ty++ {
			rows := tileRows(x, h, w, ty)
			winoInputRowGo(v[(ty-ty0)*tw:], ldv, &rows, w)
		}
		return
	}
	if tw <= 8 && ty0 == 0 && ty1 == th {
		winoInputPlane2(v, ldv, x, h, w)
		return
	}
	for t0 := 0; t0 < tw; t0 += 16 {
		e0 := 2 * t0
		ma0, ma1 := laneMask(e0-1, w), laneMask(e0+15, w)
		mb0, mb1 := laneMask(e0+1, w), laneMask(e0+17, w)
		mst := laneMask(t0, tw)
		for ty := ty0; ty < ty1; ty++ {
			var p [4]*float32
			for r := range p {
				if y := 2*ty - 1 + r; y >= 0 && y < h {
					p[r] = &x[y*w+e0]
				} else {
					p[r] = &winoZero[1]
				}
			}
			winoInAVX512(p[0], p[1], p[2], p[3], &v[(ty-ty0)*tw+t0], ldv, ma0, ma1, mb0, mb1, mst)
		}
	}
}

// WinogradOutputPlane writes the h×w output plane y = Aᵀ·M·A + bias from
// m[ξ·ldm + ty·tw + tx]: winogradOutputRow for each tile row, with the
// masks worked out once per plane.
func WinogradOutputPlane(y []float32, h, w int, m []float32, ldm int, bias float32) {
	WinogradOutputRows(y, h, w, m, ldm, bias, 0, (h+1)/2)
}

// WinogradOutputRows is WinogradOutputPlane for tile rows [ty0, ty1) only
// (output rows 2·ty0 … 2·ty1−1), their tiles read from column 0 of m, as
// WinogradInputRows writes them.
func WinogradOutputRows(y []float32, h, w int, m []float32, ldm int, bias float32, ty0, ty1 int) {
	th, tw := (h+1)/2, (w+1)/2
	if ty0 < 0 || ty1 > th || ty0 >= ty1 {
		panic("vec: WinogradOutputRows: tile rows out of range")
	}
	_ = y[h*w-1]
	_ = m[15*ldm+(ty1-ty0)*tw-1]
	if !useAVX512 {
		for ty := ty0; ty < ty1; ty++ {
			var y1 []float32
			if 2*ty+1 < h {
				y1 = y[(2*ty+1)*w : (2*ty+2)*w]
			}
			winoOutputRowGo(y[2*ty*w:(2*ty+1)*w], y1, m[(ty-ty0)*tw:], ldm, bias)
		}
		return
	}
	if tw <= 8 && ty0 == 0 && ty1 == th {
		winoOutputPlane2(y, h, w, m, ldm, bias)
		return
	}
	for t0 := 0; t0 < tw; t0 += 16 {
		e0 := 2 * t0
		lo, hi, mld := laneMask(e0, w), laneMask(e0+16, w), laneMask(t0, tw)
		for ty := ty0; ty < ty1; ty++ {
			p0 := &y[2*ty*w+e0]
			p1, lo1, hi1 := p0, uint16(0), uint16(0)
			if 2*ty+1 < h {
				p1, lo1, hi1 = &y[(2*ty+1)*w+e0], lo, hi
			}
			winoOutAVX512(&m[(ty-ty0)*tw+t0], ldm, p0, p1, bias, mld, lo, hi, lo1, hi1)
		}
	}
}

// winoInputPlane2 is WinogradInputPlane for planes at most 16 pixels wide:
// two tile rows per kernel call, so that narrow planes (14×14: 7 tiles a
// row) do not leave most lanes idle.
func winoInputPlane2(v []float32, ldv int, x []float32, h, w int) {
	th, tw := (h+1)/2, (w+1)/2
	row := func(y int) *float32 {
		if y >= 0 && y < h {
			return &x[y*w]
		}
		return &winoZero[1]
	}
	ma, mb := laneMask(-1, w), laneMask(1, w)
	for ty := 0; ty < th; ty += 2 {
		mst := laneMask(0, 2*tw)
		if ty+1 == th {
			mst = laneMask(0, tw)
		}
		y := 2*ty - 1
		winoIn2AVX512(row(y), row(y+1), row(y+2), row(y+3), row(y+2), row(y+3), row(y+4), row(y+5),
			&v[ty*tw], ldv, &winoIdxIn[tw], ma, mb, mst)
	}
}

// winoOutputPlane2 is WinogradOutputPlane for planes at most 16 pixels
// wide, two tile rows (four output rows) per kernel call.
func winoOutputPlane2(y []float32, h, w int, m []float32, ldm int, bias float32) {
	th, tw := (h+1)/2, (w+1)/2
	full := laneMask(0, w)
	for ty := 0; ty < th; ty += 2 {
		var p [4]*float32
		var k [4]uint16
		for r := range p {
			p[r] = &y[0]
			if oy := 2*ty + r; oy < h {
				p[r], k[r] = &y[oy*w], full
			}
		}
		mld := laneMask(0, 2*tw)
		if ty+1 == th {
			mld = laneMask(0, tw)
		}
		winoOut2AVX512(&m[ty*tw], ldm, p[0], p[1], p[2], p[3], bias, &winoIdxOut[tw], mld, k[0], k[1], k[2], k[3])
	}
}

// winoInputRowGo is winogradInputRow in portable Go (and its reference).
func winoInputRowGo(v []float32, ldv int, rows *[4][]float32, w int) {
	px := func(r []float32, e int) float32 {
		if r == nil || e < 0 || e >= w {
			return 0
		}
		return r[e]
	}
	for t := 0; t < (w+1)/2; t++ {
		var c [4][4]float32
		for i, r := range rows {
			d0, d1, d2, d3 := px(r, 2*t-1), px(r, 2*t), px(r, 2*t+1), px(r, 2*t+2)
			c[i] = [4]float32{d0 - d2, d1 + d2, d2 - d1, d1 - d3}
		}
		for j := 0; j < 4; j++ {
			v[(0+j)*ldv+t] = c[0][j] - c[2][j]
			v[(4+j)*ldv+t] = c[1][j] + c[2][j]
			v[(8+j)*ldv+t] = c[2][j] - c[1][j]
			v[(12+j)*ldv+t] = c[1][j] - c[3][j]
		}
	}
}

// winogradOutputRow writes output rows y0 and y1 (nil past the image's
// last row) of one tile row, Aᵀ·M·A + bias, from m[ξ·ldm + t] for its
// tw = ⌈len(y0)/2⌉ tiles.
func winogradOutputRow(y0, y1, m []float32, ldm int, bias float32) {
	w := len(y0)
	tw := (w + 1) / 2
	_ = m[15*ldm+tw-1]
	if y1 != nil {
		_ = y1[w-1]
	}
	if !useAVX512 {
		winoOutputRowGo(y0, y1, m, ldm, bias)
		return
	}
	for t0 := 0; t0 < tw; t0 += 16 {
		e0 := 2 * t0
		lo, hi := laneMask(e0, w), laneMask(e0+16, w)
		p1, lo1, hi1 := &y0[e0], uint16(0), uint16(0)
		if y1 != nil {
			p1, lo1, hi1 = &y1[e0], lo, hi
		}
		winoOutAVX512(&m[t0], ldm, &y0[e0], p1, bias, laneMask(t0, tw), lo, hi, lo1, hi1)
	}
}

// winoOutputRowGo is winogradOutputRow in portable Go (and its reference),
// adding in the kernel's order so that both give the same bits.
func winoOutputRowGo(y0, y1, m []float32, ldm int, bias float32) {
	w := len(y0)
	for t := 0; t < (w+1)/2; t++ {
		var r [2][4]float32
		for j := 0; j < 4; j++ {
			m0, m1, m2, m3 := m[j*ldm+t], m[(4+j)*ldm+t], m[(8+j)*ldm+t], m[(12+j)*ldm+t]
			r[0][j] = m0 + m1 + m2
			r[1][j] = m1 - m2 - m3
		}
		for a, y := range [2][]float32{y0, y1} {
			if y == nil {
				continue
			}
			ra := r[a]
			y[2*t] = ra[0] + ra[1] + ra[2] + bias
			if 2*t+1 < w {
				y[2*t+1] = ra[1] - ra[2] - ra[3] + bias
			}
		}
	}
}
