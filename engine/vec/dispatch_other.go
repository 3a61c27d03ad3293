//go:build !amd64 || purego

package vec

// Without the generated kernels (another architecture, or the purego build
// tag) every function runs its portable Go loop; the stubs below are never
// called.
const useAVX512 = false

func unreachable() { panic("vec: AVX-512 kernel called without AVX-512") }

func siluAVX512(y, x *float32, n int)                                         { unreachable() }
func siluGradAVX512(dx, dy, x *float32, n int)                                { unreachable() }
func affineSiluAVX512(y, x *float32, n int, a, b float32)                     { unreachable() }
func affineSiluGradAVX512(dz, dy, x *float32, n int, a, b float32)            { unreachable() }
func affineAVX512(y, x *float32, n int, a, b float32)                         { unreachable() }
func lin3AVX512(z, x, y *float32, n int, a, b, c float32)                     { unreachable() }
func addAVX512(z, x, y *float32, n int)                                       { unreachable() }
func mulSubAVX512(z, x, y *float32, n int, t float32)                         { unreachable() }
func fillAVX512(y *float32, n int, v float32)                                 { unreachable() }
func expShiftSumAVX512(y, x *float32, n int, shift float32, acc *[16]float32) { unreachable() }
func maxAVX512(x *float32, n int, acc *[16]float32)                           { unreachable() }
func sumAVX512(x *float32, n int, acc *[16]float32)                           { unreachable() }
func dotAVX512(x, y *float32, n int, acc *[16]float32)                        { unreachable() }
func sumSqDevAVX512(x *float32, n int, mean float32, acc *[16]float32)        { unreachable() }
func sumDyXcAVX512(dy, x *float32, n int, mean float32, acc *[32]float32)     { unreachable() }
func adamAVX512(w, grad, m, v *float32, n int, wd, w1, b2, w2, bc2Sqrt, eps, stepSize float32) {
	unreachable()
}
func winoInAVX512(r0, r1, r2, r3, v *float32, ldv int, ma0, ma1, mb0, mb1, mst uint16) {
	unreachable()
}
func winoOutAVX512(m *float32, ldm int, y0, y1 *float32, bias float32, mld, m0lo, m0hi, m1lo, m1hi uint16) {
	unreachable()
}
func winoIn2AVX512(r0, r1, r2, r3, s0, s1, s2, s3, v *float32, ldv int, idx *[2][16]uint32, ma, mb, mst uint16) {
	unreachable()
}
func winoOut2AVX512(m *float32, ldm int, y0, y1, y2, y3 *float32, bias float32, idx *[2][16]uint32, mld, m0, m1, m2, m3 uint16) {
	unreachable()
}
func im2col3x3AVX512(col *float32, ld int, x *float32, hw, cin int, tab *uint32) { unreachable() }
func wino4InAVX512(v *float32, ldv int, x *float32, rec *int64, k *uint32, s *[36][16]float32) {
	unreachable()
}
func wino4OutAVX512(m *float32, ldm int, y *float32, bias *[16]float32, rec *int64, k *uint32, s *[24][16]float32) {
	unreachable()
}
func wino4DyAVX512(v *float32, ldv int, dy *float32, rec *int64, k *uint32, s *[24][16]float32) {
	unreachable()
}
