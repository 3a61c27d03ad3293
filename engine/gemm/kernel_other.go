//go:build !amd64 || purego

package gemm

// registerArch: only the portable kernel exists on this architecture or with
// the purego build tag.
func registerArch() {}
