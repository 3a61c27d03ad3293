package gemm

// The AVX-512 and AVX2 micro-kernels are generated with avo; the generator is
// its own module in _asm so avo stays out of the main module's dependencies.
//go:generate go run -C _asm . -out ../gemm_amd64.s -stubs ../stubs_amd64.go -pkg gemm
