package vec

import (
	"sync/atomic"
	"unsafe"
)

// Im2col3x3 lowers cin planes of h×w pixels (x, plane after plane) for a
// 3×3, stride-1, padding-1 convolution: im2col row c·9 + t, at col[(c·9 +
// t)·ld:][:h·w], holds plane c shifted by tap t = 3·ky + kx, that is pixel
// (y + ky − 1, x + kx − 1) at output pixel (y, x), 0 off the plane.
//
// It covers planes of at most 64 pixels and 15 columns (the MNIST U-Nets'
// 7×7 level, the CIFAR-sized ones' 8×8 and 4×4) with an AVX-512 kernel and
// reports whether it did; otherwise it writes nothing and the caller lowers
// the planes itself (package nn's im2col, one copy per tap, which on planes
// this small costs more in calls and zero fix-ups than in the copy).
func Im2col3x3(col []float32, ld int, x []float32, cin, h, w int) bool {
	hw := h * w
	if !useAVX512 || hw > 64 || w > 15 || cin <= 0 || hw <= 0 || ld < hw {
		return false
	}
	_ = x[cin*hw-1]
	_ = col[(cin*9-1)*ld+hw-1]
	im2col3x3AVX512(&col[0], ld, &x[0], hw, cin, &im2colTable(h, w).idx[0][0][0])
	return true
}

// im2colTab drives the im2col3x3 kernel for one plane shape; the kernel
// reads it at the fixed offsets its generator (_asm/im2col.go) names.
type im2colTab struct {
	idx   [9][4][16]uint32 // permute index of tap t, output register j
	valid [9][4]uint16     // lanes whose source pixel lies in the plane
	plane [4]uint16        // lanes j·16 + l < h·w
}

// im2colTabs caches the tables by plane shape [h][w] (h·w ≤ 64, w ≤ 15).
var im2colTabs [65][16]atomic.Pointer[im2colTab]

func im2colTable(h, w int) *im2colTab {
	if t := im2colTabs[h][w].Load(); t != nil {
		return t
	}
	t := newIm2colTab(h, w)
	im2colTabs[h][w].Store(t)
	return t
}

// newIm2colTab works out, for every tap and output lane, which pixel of the
// plane registers the kernel's two-register permute must pick: output
// pixel p = 16j + l reads source pixel s = p + dy·w + dx, which lies in
// registers j−1 and j (lanes s − 16(j−1)) for taps that read back, and in j
// and j+1 (lanes s − 16j) otherwise.
func newIm2colTab(h, w int) *im2colTab {
	t := new(im2colTab)
	hw := h * w
	for j := 0; j < 4; j++ {
		t.plane[j] = laneMask(16*j, hw)
	}
	for tap := 0; tap < 9; tap++ {
		dy, dx := tap/3-1, tap%3-1
		base := 0
		if tapReadsBack(tap) {
			base = -16
		}
		for j := 0; j < 4; j++ {
			for l := 0; l < 16; l++ {
				p := 16*j + l
				if p >= hw {
					continue
				}
				y, x := p/w+dy, p%w+dx
				if y < 0 || y >= h || x < 0 || x >= w {
					continue
				}
				t.idx[tap][j][l] = uint32(y*w + x - 16*j - base)
				t.valid[tap][j] |= 1 << l
			}
		}
	}
	return t
}

// tapReadsBack reports whether tap t of a 3×3 kernel reads a pixel before
// the output pixel in row-major order; it must agree with the generator's.
func tapReadsBack(t int) bool {
	dy, dx := t/3-1, t%3-1
	return dy < 0 || (dy == 0 && dx < 0)
}

// The kernel addresses the table by byte offset: each line fails to compile
// (a constant index out of range) if its field moves.
var (
	_ = [1]struct{}{}[unsafe.Offsetof(im2colTab{}.valid)-2304]
	_ = [1]struct{}{}[unsafe.Offsetof(im2colTab{}.plane)-2376]
)
