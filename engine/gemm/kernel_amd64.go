//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// asmFn is the signature of every generated micro-kernel (see _asm).
type asmFn func(kc int, a *float32, lda int, b *float32, ldb int, c *float32, ldc int, alpha, beta float32)

var (
	avx512Fns = [2][12]asmFn{
		{avx512n1, avx512n2, avx512n3, avx512n4, avx512n5, avx512n6, avx512n7, avx512n8, avx512n9, avx512n10, avx512n11, avx512n12},
		{avx512t1, avx512t2, avx512t3, avx512t4, avx512t5, avx512t6, avx512t7, avx512t8, avx512t9, avx512t10, avx512t11, avx512t12},
	}
	avx512hFns = [2][12]asmFn{
		{avx512hn1, avx512hn2, avx512hn3, avx512hn4, avx512hn5, avx512hn6, avx512hn7, avx512hn8, avx512hn9, avx512hn10, avx512hn11, avx512hn12},
		{avx512ht1, avx512ht2, avx512ht3, avx512ht4, avx512ht5, avx512ht6, avx512ht7, avx512ht8, avx512ht9, avx512ht10, avx512ht11, avx512ht12},
	}
	avx2Fns = [2][6]asmFn{
		{avx2n1, avx2n2, avx2n3, avx2n4, avx2n5, avx2n6},
		{avx2t1, avx2t2, avx2t3, avx2t4, avx2t5, avx2t6},
	}
)

// registerArch prepends the SIMD kernels this CPU supports to available.
func registerArch() {
	// The tiles' bounds are checked in asmTile; the packing kernels' here.
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		// strideB stays off: unlike AVX-512's, the 16-wide AVX2 panel is
		// faster packed than read in place (BenchmarkSgemm).
		k := &kern{name: "avx2", mr: 6, nr: 16,
			tile: asmTile(avx2Fns[0][:], avx2Fns[1][:], 16),
			packN: func(kc int, b []float32, bo, ldb int, dst []float32) {
				_ = dst[kc*16-1]
				_ = b[bo+(kc-1)*ldb+15]
				avx2packn(kc, &b[bo], ldb, &dst[0])
			},
		}
		available = append([]*kern{k}, available...)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		k := &kern{name: "avx512", mr: 12, nr: 32, strideB: true,
			tile: asmTile(avx512Fns[0][:], avx512Fns[1][:], 32),
			half: asmTile(avx512hFns[0][:], avx512hFns[1][:], 16),
			packN: func(kc int, b []float32, bo, ldb int, dst []float32) {
				_ = dst[kc*32-1]
				_ = b[bo+(kc-1)*ldb+31]
				avx512packn(kc, &b[bo], ldb, &dst[0])
			},
			packT: func(kc int, b []float32, bo, ldb int, dst []float32, do, ldd int) {
				_ = b[bo+15*ldb+kc-1]
				_ = dst[do+(kc-1)*ldd+15]
				avx512transpose16(kc, &b[bo], ldb, &dst[do], ldd)
			},
		}
		available = append([]*kern{k}, available...)
	}
}

// asmTile wraps the generated kernels of one tile width (n: row-major A,
// t: A stored k×m; element r−1 computes r rows) as a kern.tile. The bounds
// are checked here, once per tile, because the assembly trusts its
// pointers; Sgemm validated the matrices, so these checks only guard
// against driver bugs.
func asmTile(n, t []asmFn, width int) func(r, kc int, a []float32, ao, lda int, transA bool, b []float32, bo, ldb int, c []float32, co, ldc int, alpha, beta float32) {
	return func(r, kc int, a []float32, ao, lda int, transA bool, b []float32, bo, ldb int, c []float32, co, ldc int, alpha, beta float32) {
		fns := n
		if transA {
			fns = t
		}
		_ = b[bo+(kc-1)*ldb+width-1]
		_ = c[co+(r-1)*ldc+width-1]
		fns[r-1](kc, &a[ao], lda, &b[bo], ldb, &c[co], ldc, alpha, beta)
	}
}
