package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// The kernels read the tables at fixed offsets (engine/vec/_asm/winograd4.go).
func TestWino4Layout(t *testing.T) {
	var k wino4Consts
	var in wino4In
	var out wino4Out
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"down", unsafe.Offsetof(k.down), 64}, {"kUp", unsafe.Offsetof(k.kUp), 128}, {"kDown", unsafe.Offsetof(k.kDown), 130},
		{"c2", unsafe.Offsetof(k.c2), 132}, {"c4", unsafe.Offsetof(k.c4), 136}, {"c5", unsafe.Offsetof(k.c5), 140}, {"c8", unsafe.Offsetof(k.c8), 144},
		{"in.mask", unsafe.Offsetof(in.mask), 384}, {"in.kst", unsafe.Offsetof(in.kst), 480},
		{"out.mask", unsafe.Offsetof(out.mask), 256}, {"out.kld", unsafe.Offsetof(out.kld), 320},
	} {
		if c.got != c.want {
			t.Errorf("%s at offset %d, the kernels read it at %d", c.name, c.got, c.want)
		}
	}
}

// wino4Close reports whether a kernel's value matches the portable code's
// to float32 rounding: the kernels fuse multiply-adds, so the last bits
// differ, by at most a few ulps of the magnitudes summed (scale).
func wino4Close(got, want, scale float32) bool {
	return math.Abs(float64(got-want)) <= 1e-6*float64(scale)
}

// The kernels match the portable transforms on every plane shape the plan
// takes (one or several tile rows per call, cut last tiles and tile rows,
// one to four calls), and write nothing outside their outputs.
func TestWino4Planes(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 kernels on this machine: the portable code is all there is")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, hw := range [][2]int{{28, 28}, {14, 14}, {13, 13}, {16, 16}, {1, 13}, {5, 17}, {9, 20}, {30, 32}, {11, 33}, {7, 64}, {64, 64}, {3, 49}, {9, 65}, {6, 128}, {5, 100}, {9, 256}} {
		h, w := hw[0], hw[1]
		p, err := NewWino4Plan(h, w)
		if err != nil {
			t.Fatal(err)
		}
		ld := p.Tiles() + 7
		x := randSlice(rng, h*w+32, 1)[:h*w]
		got := randSlice(rng, 36*ld, 1)
		want := append([]float32(nil), got...)
		p.InputPlane(got, ld, x)
		wino4InputGo(want, ld, x, h, w, 0, (h+3)/4)
		for i := range got {
			if !wino4Close(got[i], want[i], 100) {
				t.Fatalf("input %dx%d: v[%d] (ξ %d, tile %d) = %v, want %v", h, w, i, i/ld, i%ld, got[i], want[i])
			}
		}
		m := randSlice(rng, 36*ld, 1)
		buf := randSlice(rng, h*w+64, 1)
		ref := append([]float32(nil), buf...)
		p.OutputPlane(buf[16:16+h*w], m, ld, -0.5)
		wino4OutputGo(ref[16:16+h*w], h, w, m, ld, -0.5, 0, (h+3)/4)
		for i := range buf {
			if !wino4Close(buf[i], ref[i], 1000) {
				t.Fatalf("output %dx%d: y[%d] = %v, want %v", h, w, i-16, buf[i], ref[i])
			}
		}
	}
	if _, err := NewWino4Plan(7, 7); err == nil {
		t.Error("a 7-pixel-wide plan was made")
	}
}

// The portable transforms against their definition: Bᵀ·d·B and Aᵀ·M·A in
// float64 with the matrices written out.
func TestWino4Matrices(t *testing.T) {
	bt := [6][6]float64{{4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}}
	at := [4][6]float64{{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}}
	rng := rand.New(rand.NewPCG(11, 12))
	var d [6]float32
	var m [6]float32
	for range 100 {
		for i := range d {
			d[i], m[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		v, y := wino4Row(d), wino4Col(m)
		for r := range 6 {
			var s float64
			for c := range 6 {
				s += bt[r][c] * float64(d[c])
			}
			if math.Abs(s-float64(v[r])) > 1e-5 {
				t.Fatalf("Bᵀd[%d] = %v, want %v", r, v[r], s)
			}
		}
		for r := range 4 {
			var s float64
			for c := range 6 {
				s += at[r][c] * float64(m[c])
			}
			if math.Abs(s-float64(y[r])) > 1e-5 {
				t.Fatalf("Aᵀm[%d] = %v, want %v", r, y[r], s)
			}
		}
	}
}

// The output-gradient transform against its portable code (every plane
// shape the plan takes, nothing written outside the tiles' columns), and
// the portable code against A·dY·Aᵀ written out.
func TestWino4GradOutput(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, hw := range [][2]int{{28, 28}, {14, 14}, {13, 13}, {1, 13}, {5, 17}, {30, 32}, {11, 33}, {64, 64}, {3, 49}, {6, 128}, {5, 100}} {
		h, w := hw[0], hw[1]
		p, err := NewWino4Plan(h, w)
		if err != nil {
			t.Fatal(err)
		}
		ld := p.Tiles() + 5
		dy := randSlice(rng, h*w, 1)
		got := randSlice(rng, 36*ld, 1)
		want := append([]float32(nil), got...)
		p.GradOutputPlane(got, ld, dy)
		wino4GradOutputGo(want, ld, dy, h, w)
		for i := range got {
			if !wino4Close(got[i], want[i], 100) {
				t.Fatalf("%dx%d: v[%d] (ξ %d, tile %d) = %v, want %v", h, w, i, i/ld, i%ld, got[i], want[i])
			}
		}
		// Tile (ty, tx) against the sums written out: A[r][a]·dY[a][q]·A[c][q].
		a := [6][4]float64{{1, 0, 0, 0}, {1, 1, 1, 1}, {1, -1, 1, -1}, {1, 2, 4, 8}, {1, -2, 4, -8}, {0, 0, 0, 1}}
		ty, tx := p.TH-1, p.TW-1 // the last tile: cut by the plane's edges when h or w is not a multiple of 4
		for r := range 6 {
			for c := range 6 {
				var s float64
				for ya := range 4 {
					for q := range 4 {
						if y, x := 4*ty+ya, 4*tx+q; y < h && x < w {
							s += a[r][ya] * float64(dy[y*w+x]) * a[c][q]
						}
					}
				}
				if g := want[(6*r+c)*ld+ty*p.TW+tx]; math.Abs(float64(g)-s) > 1e-4 {
					t.Fatalf("%dx%d: (A·dY·Aᵀ)[%d][%d] = %v, want %v", h, w, r, c, g, s)
				}
			}
		}
	}
}

// Batch plans (narrow planes, several images per call) match the portable
// transforms image by image, with full and partial last calls, and write
// nothing between the images' planes.
func TestWino4Batch(t *testing.T) {
	if !useAVX512 {
		t.Skip("no AVX-512 kernels on this machine: the portable code is all there is")
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, hw := range [][2]int{{7, 7}, {5, 5}, {8, 8}, {3, 10}, {4, 12}, {1, 5}, {6, 7}} {
		h, w := hw[0], hw[1]
		inStride, outStride := 3*h*w+5, 2*h*w+3
		p, err := NewWino4BatchPlan(h, w, inStride, outStride)
		if err != nil {
			t.Fatalf("%dx%d: %v", h, w, err)
		}
		for _, n := range []int{1, p.Images, p.Images + 1, 3*p.Images - 1} {
			// Two planes (channels) per call: plane q of image i at
			// x[q·xStep + i·inStride], its tiles at v[q·vStep:].
			const count = 2
			per := p.Tiles()
			step := n*per + 3
			ld := count*step + 5
			xStep, yStep := h*w+1, h*w+1
			x := randSlice(rng, (count-1)*xStep+(n-1)*inStride+h*w, 1)
			got := randSlice(rng, 36*ld, 1)
			want := append([]float32(nil), got...)
			p.InputBatch(got, ld, step, x, xStep, n, count)
			for q := range count {
				for i := range n {
					wino4InputGo(want[q*step+i*per:], ld, x[q*xStep+i*inStride:], h, w, 0, (h+3)/4)
				}
			}
			for i := range got {
				if !wino4Close(got[i], want[i], 100) {
					t.Fatalf("input %dx%d n=%d: v[%d] (ξ %d, column %d) = %v, want %v", h, w, n, i, i/ld, i%ld, got[i], want[i])
				}
			}
			m := randSlice(rng, 36*ld, 1)
			bias := func(q, i int) float32 { return float32(i) - 0.5 + 10*float32(q) }
			gy := randSlice(rng, (count-1)*yStep+(n-1)*outStride+h*w+16, 1)
			wy := append([]float32(nil), gy...)
			p.OutputBatch(gy, yStep, m, ld, step, n, count, bias)
			for q := range count {
				for i := range n {
					wino4OutputGo(wy[q*yStep+i*outStride:], h, w, m[q*step+i*per:], ld, bias(q, i), 0, (h+3)/4)
				}
			}
			for i := range gy {
				if !wino4Close(gy[i], wy[i], 1000) {
					t.Fatalf("output %dx%d n=%d: y[%d] = %v, want %v", h, w, n, i, gy[i], wy[i])
				}
			}
		}
	}
	for _, hw := range [][2]int{{12, 12}, {9, 8}, {7, 4}, {7, 13}} {
		if _, err := NewWino4BatchPlan(hw[0], hw[1], 1000, 1000); err == nil {
			t.Errorf("a batch plan for %dx%d was made", hw[0], hw[1])
		}
	}
}

// InputPlanes, OutputPlanes and GradOutputPlanes do what one call per plane
// does, bit for bit, with the planes and their tiles at the steps given,
// and write nothing else.
func TestWino4ManyPlanes(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for _, hw := range [][2]int{{28, 28}, {14, 14}, {13, 13}, {5, 17}, {9, 130}} {
		h, w := hw[0], hw[1]
		p, err := NewWino4Plan(h, w)
		if err != nil {
			t.Fatal(err)
		}
		const count = 3
		per := p.Tiles()
		step := per + 2 // columns between the planes' tiles
		ld := count*step + 5
		xStep := h*w + 3 // floats between the planes
		x := randSlice(rng, (count-1)*xStep+h*w, 1)
		m := randSlice(rng, 36*ld, 1)
		bias := func(q int) float32 { return 0.25 * float32(q+1) }

		got := randSlice(rng, 36*ld, 1)
		want := append([]float32(nil), got...)
		p.InputPlanes(got, ld, step, x, xStep, count)
		for q := range count {
			p.InputPlane(want[q*step:], ld, x[q*xStep:][:h*w])
		}
		if !slices.Equal(got, want) {
			t.Errorf("%dx%d: InputPlanes differs from InputPlane per plane", h, w)
		}

		got = randSlice(rng, 36*ld, 1)
		want = append(want[:0], got...)
		p.GradOutputPlanes(got, ld, step, x, xStep, count)
		for q := range count {
			p.GradOutputPlane(want[q*step:], ld, x[q*xStep:][:h*w])
		}
		if !slices.Equal(got, want) {
			t.Errorf("%dx%d: GradOutputPlanes differs from GradOutputPlane per plane", h, w)
		}

		y := randSlice(rng, (count-1)*xStep+h*w+16, 1)
		wy := append([]float32(nil), y...)
		p.OutputPlanes(y, xStep, m, ld, step, count, bias)
		for q := range count {
			p.OutputPlane(wy[q*xStep:][:h*w], m[q*step:], ld, bias(q))
		}
		if !slices.Equal(y, wy) {
			t.Errorf("%dx%d: OutputPlanes differs from OutputPlane per plane", h, w)
		}
	}
}

// TestWinogradBands: the transforms of a plane's tile rows band by band
// (InputPlanesRows, WinogradInputRows and their outputs) are bitwise those
// of the whole plane, on the kernels this machine runs.
func TestWinogradBands(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, hw := range [][2]int{{64, 64}, {30, 32}, {28, 28}, {11, 33}, {66, 70}, {15, 200}} {
		h, w := hw[0], hw[1]
		x := randSlice(rng, h*w, 1)
		// F(2×2): bands of 1 and 3 tile rows.
		th, tw := (h+1)/2, (w+1)/2
		ld := th*tw + 5
		whole := make([]float32, 16*ld)
		WinogradInputPlane(whole, ld, x, h, w)
		yWhole := make([]float32, h*w)
		WinogradOutputPlane(yWhole, h, w, whole, ld, 0.25)
		for _, band := range []int{1, 3} {
			y := make([]float32, h*w)
			for ty0 := 0; ty0 < th; ty0 += band {
				ty1 := min(th, ty0+band)
				v := make([]float32, 16*ld)
				WinogradInputRows(v, ld, x, h, w, ty0, ty1)
				for xi := range 16 {
					for k := range (ty1 - ty0) * tw {
						if v[xi*ld+k] != whole[xi*ld+ty0*tw+k] {
							t.Fatalf("F(2×2) %dx%d band %d: v differs at ξ %d, tile %d", h, w, band, xi, ty0*tw+k)
						}
					}
				}
				WinogradOutputRows(y, h, w, whole[ty0*tw:], ld, 0.25, ty0, ty1)
			}
			if !slices.Equal(y, yWhole) {
				t.Fatalf("F(2×2) %dx%d band %d: output differs", h, w, band)
			}
		}
		if w < 13 {
			continue
		}
		p, err := NewWino4Plan(h, w)
		if err != nil {
			t.Fatal(err)
		}
		ld = p.Tiles() + 5
		whole = make([]float32, 2*36*ld)
		p.InputPlanes(whole, ld, 36*ld, append(x, x...), h*w, 2)
		yWhole = make([]float32, 2*h*w)
		p.OutputPlanes(yWhole, h*w, whole, ld, 36*ld, 2, func(q int) float32 { return float32(q) })
		r := p.BandRows()
		y := make([]float32, 2*h*w)
		for ty0 := 0; ty0 < p.TH; ty0 += r {
			ty1 := min(p.TH, ty0+r)
			v := make([]float32, 2*36*ld)
			p.InputPlanesRows(v, ld, 36*ld, append(x, x...), h*w, 2, ty0, ty1)
			for q := range 2 {
				for xi := range 36 {
					for k := range (ty1 - ty0) * p.TW {
						if v[q*36*ld+xi*ld+k] != whole[q*36*ld+xi*ld+ty0*p.TW+k] {
							t.Fatalf("F(4×4) %dx%d: v differs at plane %d, ξ %d, tile %d", h, w, q, xi, ty0*p.TW+k)
						}
					}
				}
			}
			p.OutputPlanesRows(y, h*w, whole[ty0*p.TW:], ld, 36*ld, 2, ty0, ty1, func(q int) float32 { return float32(q) })
		}
		if !slices.Equal(y, yWhole) {
			t.Fatalf("F(4×4) %dx%d: banded output differs", h, w)
		}
	}
}
