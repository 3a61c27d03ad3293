package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ddpm-go/ddpm/engine/parallel"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShape is one GEMM of the U-Net (small config, batch 32) or a
// reference shape.
type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
}

var benchShapes = []benchShape{
	// Forward convs, per image: M=Cout, N=H·W, K=9·Cin.
	{"conv32x32_c32", false, false, 32, 1024, 288},
	{"conv16x16_c64", false, false, 64, 256, 576},
	{"conv8x8_c64", false, false, 64, 64, 576},
	{"conv16x16_c128in", false, false, 64, 256, 1152},
	// 1×1 convs (residual shortcuts, attention projections).
	{"conv1x1_32x32", false, false, 64, 1024, 32},
	{"conv1x1_16x16", false, false, 128, 256, 64},
	// Backward: dcol = Wᵀ·dOut (M=9Cin, N=HW, K=Cout).
	{"bwd_dcol_32x32", true, false, 288, 1024, 32},
	{"bwd_dcol_16x16", true, false, 576, 256, 64},
	// Backward: dW = dOut·colᵀ (M=Cout, N=9Cin, K=HW).
	{"bwd_dW_32x32", false, true, 32, 288, 1024},
	{"bwd_dW_16x16", false, true, 64, 576, 256},
	// Whole batch in one call: N = 32·1024.
	{"batched_conv32x32", false, false, 32, 32 * 1024, 288},
	{"square1024", false, false, 1024, 1024, 1024},
}

func benchData(s benchShape) (a, b, c []float32, lda, ldb int) {
	rng := rand.New(rand.NewPCG(9, 9))
	a = randSlice(rng, s.m*s.k)
	b = randSlice(rng, s.k*s.n)
	c = make([]float32, s.m*s.n)
	lda, ldb = s.k, s.n
	if s.transA {
		lda = s.m
	}
	if s.transB {
		ldb = s.k
	}
	return
}

func BenchmarkSgemm(b *testing.B) {
	kernels := []string{Kernel()}
	if Kernel() != "generic" {
		kernels = append(kernels, "generic")
	}
	if len(Kernels()) > 2 { // e.g. avx512 machine: show avx2 too
		kernels = Kernels()
	}
	prev := Kernel()
	defer setKernel(prev)
	for _, s := range benchShapes {
		a, bm, c, lda, ldb := benchData(s)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for _, kn := range kernels {
			if kn == "generic" && flops > 4e9 {
				continue // too slow to be worth the wait
			}
			b.Run(fmt.Sprintf("%s/%s", s.name, kn), func(b *testing.B) {
				if err := setKernel(kn); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		// Single-threaded, as when a layer parallelises over the batch and
		// calls Sgemm per image: inside parallel.For the call runs serially.
		b.Run(s.name+"/"+prev+"_1thread", func(b *testing.B) {
			if err := setKernel(prev); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				parallel.ForChunk(2, 1, func(lo, hi int) {
					if lo == 0 {
						Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
					}
				})
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		b.Run(s.name+"/gonum", func(b *testing.B) {
			if flops > 4e9 {
				b.Skip("too slow")
			}
			ta, tb := blas.NoTrans, blas.NoTrans
			if s.transA {
				ta = blas.Trans
			}
			if s.transB {
				tb = blas.Trans
			}
			var impl gonum.Implementation
			for b.Loop() {
				impl.Sgemm(ta, tb, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmBatchParallel measures the conv shapes the way the layers
// call them: the batch (32 images) split over the pool, each worker running
// its images' GEMMs serially with its own operands. This is the aggregate
// two-core throughput the U-Net sees, as opposed to one call split in two.
func BenchmarkSgemmBatchParallel(b *testing.B) {
	const batch = 32
	for _, s := range benchShapes[:10] {
		a, bm, _, lda, ldb := benchData(s)
		cs := make([][]float32, batch)
		bs := make([][]float32, batch)
		for i := range cs {
			cs[i] = make([]float32, s.m*s.n)
			bs[i] = append([]float32(nil), bm...)
		}
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * batch
		b.Run(s.name+"/"+Kernel(), func(b *testing.B) {
			for b.Loop() {
				parallel.For(batch, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bs[i], ldb, 0, cs[i], s.n)
					}
				})
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
