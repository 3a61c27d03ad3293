package nn

import "github.com/ddpm-go/ddpm/engine/vec"

// expf is the engine's float32 e^x (vec.Exp, the Cephes expf polynomial,
// about 2 ulp); the layers' bulk loops use vec's vector kernels, which
// compute the same formula 16 lanes at a time.
func expf(x float32) float32 { return vec.Exp(x) }
