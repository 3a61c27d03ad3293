package gemm

// genericKern is the portable pure-Go micro-kernel: a 4×4 tile computed as
// 2×2 register blocks. Larger register blocks are slower: the compiler
// spills their accumulators to the stack (BenchmarkSgemm with
// DDPM_PUREGO=1).
// Its B panels are packed column-major (each of the 4 columns is kc
// contiguous floats) so that every operand stream is indexed by p alone and
// the compiler drops all bounds checks in the inner loops.
var genericKern = &kern{name: "generic", mr: 4, nr: 4, colPanel: true, tile: genericTile}

func genericTile(r, kc int, a []float32, ao, lda int, transA bool, b []float32, bo, _ int, c []float32, co, ldc int, alpha, beta float32) {
	var acc [4][4]float32
	bp := b[bo : bo+4*kc]
	for i := 0; i < r; i += 2 {
		two := i+1 < r
		for j := 0; j < 4; j += 2 {
			y0 := bp[j*kc : j*kc+kc]
			y1 := bp[(j+1)*kc : (j+1)*kc+kc]
			var s00, s01, s10, s11 float32
			switch {
			case !transA && two:
				s00, s01, s10, s11 = dot2x2(a[ao+i*lda:ao+i*lda+kc], a[ao+(i+1)*lda:ao+(i+1)*lda+kc], y0, y1)
			case !transA:
				s00, s01 = dot1x2(a[ao+i*lda:ao+i*lda+kc], y0, y1)
			default:
				s00, s01, s10, s11 = outer2x2T(kc, a, ao+i, lda, two, y0, y1)
			}
			acc[i][j], acc[i][j+1] = s00, s01
			if two {
				acc[i+1][j], acc[i+1][j+1] = s10, s11
			}
		}
	}
	for i := 0; i < r; i++ {
		row := c[co+i*ldc : co+i*ldc+4 : co+i*ldc+4]
		if beta == 0 {
			row[0] = alpha * acc[i][0]
			row[1] = alpha * acc[i][1]
			row[2] = alpha * acc[i][2]
			row[3] = alpha * acc[i][3]
		} else {
			row[0] = alpha*acc[i][0] + beta*row[0]
			row[1] = alpha*acc[i][1] + beta*row[1]
			row[2] = alpha*acc[i][2] + beta*row[2]
			row[3] = alpha*acc[i][3] + beta*row[3]
		}
	}
}

// dot2x2 returns the four dot products of rows x0, x1 with columns y0, y1.
func dot2x2(x0, x1, y0, y1 []float32) (s00, s01, s10, s11 float32) {
	x1 = x1[:len(x0)]
	y0 = y0[:len(x0)]
	y1 = y1[:len(x0)]
	for p, a0 := range x0 {
		a1, b0, b1 := x1[p], y0[p], y1[p]
		s00 += a0 * b0
		s01 += a0 * b1
		s10 += a1 * b0
		s11 += a1 * b1
	}
	return
}

func dot1x2(x0, y0, y1 []float32) (s00, s01 float32) {
	y0 = y0[:len(x0)]
	y1 = y1[:len(x0)]
	for p, a0 := range x0 {
		s00 += a0 * y0[p]
		s01 += a0 * y1[p]
	}
	return
}

// outer2x2T is dot2x2 for A stored k×m: A(i,p) = a[ao+p*lda+i] (and
// A(i+1,p) next to it when two).
func outer2x2T(kc int, a []float32, ao, lda int, two bool, y0, y1 []float32) (s00, s01, s10, s11 float32) {
	y0 = y0[:kc]
	y1 = y1[:kc]
	if !two {
		for p, b0 := range y0 {
			a0 := a[ao+p*lda]
			s00 += a0 * b0
			s01 += a0 * y1[p]
		}
		return
	}
	for p, b0 := range y0 {
		x := a[ao+p*lda : ao+p*lda+2 : ao+p*lda+2]
		a0, a1, b1 := x[0], x[1], y1[p]
		s00 += a0 * b0
		s01 += a0 * b1
		s10 += a1 * b0
		s11 += a1 * b1
	}
	return
}
