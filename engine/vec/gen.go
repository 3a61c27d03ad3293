package vec

// The AVX-512 kernels are generated with avo; the generator is its own module
// in _asm so avo stays out of the main module's dependencies.
//go:generate go run -C _asm . -out ../vec_amd64.s -stubs ../stubs_amd64.go -pkg vec
