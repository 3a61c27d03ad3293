package quality

import (
	"math"

	"github.com/ddpm-go/ddpm/engine/gemm"
	"github.com/ddpm-go/ddpm/engine/parallel"
)

// Block sizes of the nearest-neighbour search: each reference block is
// filled once and multiplied against every query block, so that a
// 512×1024 distance tile (2 MB) is one GEMM of useful size.
const (
	nnRefBlock   = 1024
	nnQueryBlock = 512
)

// nearestRows finds, for each of the nq rows of q (d values each, row
// after row), the nearest (Euclidean) of nr reference rows, which fill
// writes into dst a block at a time (rows lo..hi−1, (hi−lo)·d values). It
// returns the reference row's index and the distance.
//
// The search is exact brute force: ‖q − r‖² = ‖q‖² − 2q·r + ‖r‖², with the
// dot products of a query block and a reference block as one SGEMM (the
// engine's, parallel inside) and the per-query minimum taken in parallel
// over the queries. The distance to the row found is then recomputed
// directly in float64, so the reported distances are exact; float32
// rounding in the GEMM can only pick between references whose squared
// distances agree to about 1e-6 of ‖q‖². Ties go to the lower index.
// progress, when not nil, is told how many reference rows are done after
// each block.
func nearestRows(q []float32, nq, d, nr int, fill func(dst []float32, lo, hi int), progress func(done int)) (idx []int, dist []float64) {
	idx = make([]int, nq)
	dist = make([]float64, nq)
	if nq == 0 || nr == 0 {
		return idx, dist
	}
	best := make([]float32, nq)
	for i := range best {
		best[i] = float32(math.Inf(1))
	}
	blk := make([]float32, min(nnRefBlock, nr)*d)
	rn := make([]float32, min(nnRefBlock, nr))
	g := make([]float32, min(nnQueryBlock, nq)*min(nnRefBlock, nr))
	for lo := 0; lo < nr; lo += nnRefBlock {
		hi := min(lo+nnRefBlock, nr)
		nb := hi - lo
		fill(blk[:nb*d], lo, hi)
		for j := range nb {
			rn[j] = float32(sqNorm(blk[j*d : (j+1)*d]))
		}
		for qlo := 0; qlo < nq; qlo += nnQueryBlock {
			qhi := min(qlo+nnQueryBlock, nq)
			gemm.Sgemm(false, true, qhi-qlo, nb, d, 1, q[qlo*d:qhi*d], d, blk[:nb*d], d, 0, g, nb)
			parallel.For(qhi-qlo, func(a, b int) {
				for r := a; r < b; r++ {
					row := g[r*nb : (r+1)*nb]
					bv, bi := best[qlo+r], -1
					for j, v := range row {
						// ‖q‖² is the same for the whole row: leave it out.
						if s := rn[j] - 2*v; s < bv {
							bv, bi = s, j
						}
					}
					if bi >= 0 {
						best[qlo+r], idx[qlo+r] = bv, lo+bi
					}
				}
			})
		}
		if progress != nil {
			progress(hi)
		}
	}
	row := make([]float32, d)
	for i := range nq {
		fill(row, idx[i], idx[i]+1)
		var s float64
		for k, v := range q[i*d : (i+1)*d] {
			e := float64(v) - float64(row[k])
			s += e * e
		}
		dist[i] = math.Sqrt(s)
	}
	return idx, dist
}

func sqNorm(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}
