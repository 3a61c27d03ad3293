package vec

import (
	"fmt"
	"unsafe"
)

// The tile transforms of the Winograd F(4×4, 3×3) convolution (package nn:
// Conv2d's forward and input gradient, and on planes at least 13 pixels
// wide its weight gradient). A w-pixel row has
// tw = ⌈w/4⌉ tiles; tile t reads input pixels 4t−1 … 4t+4 of six rows (the
// pixels outside [0, w) and the rows outside [0, h) are the zero padding)
// and makes output pixels 4t … 4t+3 of four rows. ξ = 6r+c numbers the 36
// transformed values of a tile, r down and c across:
//
//	Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//	Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
//
// The AVX-512 kernels put one tile in each of 16 lanes, ⌊16/tw⌋ tile rows
// per call (28-pixel rows: two tile rows of 7 tiles; 14-pixel rows: four
// of 4; 7-pixel rows: eight of 2, the two tile rows of four images, in a
// batch plan; rows over 64 pixels: 16 tiles of one tile row). A call reads each input row of its tile rows as one stream of 64
// floats — tile row s's pixels at stream floats s·4tw … s·4tw+w−1, the
// rest zero — with masked loads whose offsets and masks a Wino4Plan works
// out once per plane shape, and a 16×4 transpose turns the stream into the
// four pixel phases x[4l+p] of the 16 tiles; the output goes back the same
// way.

// Wino4Plan holds the load and store tables of one plane shape (and, in a
// batch plan, of the strides between images).
type Wino4Plan struct {
	H, W, TH, TW int
	// Images is the number of images a call covers in a batch plan
	// (NewWino4BatchPlan), 0 in a plane plan.
	Images int
	rows   int // tile rows per kernel call, ⌊16/TW⌋ (1 on planes over 64 wide)
	segs   int // kernel calls per tile row: 1, or ⌈TW/16⌉ on planes over 64 wide
	k      wino4Consts
	// Plane plan: in[c], out[c] are call c's tables. Batch plan: in[g−1],
	// out[g−1] those of a call over g images.
	in                  []wino4In
	out                 []wino4Out
	inStride, outStride int // batch plan: floats between images' planes
}

// wino4Consts are the constants every call of a plane shape shares (the
// kernels read them at these offsets).
type wino4Consts struct {
	up, down [16]uint32 // 0, 64: lane l takes lane l−1, l+1 (d0 and d5)
	kUp      uint16     // 128: lanes whose left neighbour is in the same tile row
	kDown    uint16     // 130: lanes whose right neighbour is in the same tile row
	c2, c4   float32    // 132, 136
	c5, c8   float32    // 140, 144
	_        [12]byte
}

// wino4In is one input-transform call: for input row i of the call's tile
// rows and stream register j (floats 16j … 16j+15), two masked loads at
// byte offsets off[i][j][0..1] from the plane (the tile rows the register
// overlaps; mask 0 for none or a padding row); kst masks the stores.
type wino4In struct {
	off  [6][4][2]int64  // 0
	mask [6][4][2]uint16 // 384
	kst  uint16          // 480
	_    [6]byte
}

// wino4Out is one output-transform call: for output row a of the call's
// tile rows and stream register j, two masked stores (mask 0 past the
// plane's last row); kld masks the loads of M.
type wino4Out struct {
	off  [4][4][2]int64  // 0
	mask [4][4][2]uint16 // 256
	kld  uint16          // 320
	_    [6]byte
}

// NewWino4Plan builds the tables of h×w planes, w ≥ 13 (at least four
// tiles a row, so that a stream register overlaps at most two tile rows).
// A call covers ⌊16/TW⌋ tile rows of one plane, or on planes over 64 pixels
// wide a segment of 16 tiles (64 pixels) of one tile row: the kernels see
// the segment as a 64-wide plane, so the first tile of a segment misses its
// left neighbour's last pixel column and the last tile its right
// neighbour's first, which fixSegments adds (columns 0 and 5 of those
// tiles' transforms; the output transform needs no neighbours).
func NewWino4Plan(h, w int) (*Wino4Plan, error) {
	if w < 13 || h < 1 {
		return nil, fmt.Errorf("vec: Winograd F(4×4, 3×3) plan for a %d×%d plane: width must be at least 13", h, w)
	}
	p := newWino4Plan(h, w)
	for t0 := 0; t0 < p.TH; t0 += p.rows {
		for sx := range p.segs {
			var sets []wino4Set
			for ty := t0; ty < min(p.TH, t0+p.rows); ty++ {
				sets = append(sets, wino4Set{ty: ty, x0: 64 * sx})
			}
			p.addCall(sets)
		}
	}
	return p, nil
}

// NewWino4BatchPlan builds the tables of narrow planes (5 ≤ w ≤ 12: two or
// three tiles a row), whose calls cover the tile rows of several images
// instead: Images images per call when all of a call's ⌊16/TW⌋ tile rows are
// whole images' (7×7: two tile rows of two tiles an image, four images a
// call). inStride and outStride are the floats from one image's plane to
// the next image's (C·h·w in NCHW), on the input and the output side. The
// plan's Batch methods take n images; a last, partial call uses the tables
// of fewer images.
func NewWino4BatchPlan(h, w, inStride, outStride int) (*Wino4Plan, error) {
	p := newWino4Plan(h, w)
	if w < 5 || w > 12 || h < 1 || p.rows%p.TH != 0 {
		return nil, fmt.Errorf("vec: Winograd F(4×4, 3×3) batch plan for a %d×%d plane: needs width 5…12 and whole images per call", h, w)
	}
	if inStride < h*w || outStride < h*w {
		return nil, fmt.Errorf("vec: Winograd F(4×4, 3×3) batch plan: image strides %d, %d below the plane's %d pixels", inStride, outStride, h*w)
	}
	p.Images = p.rows / p.TH
	p.inStride, p.outStride = inStride, outStride
	for g := 1; g <= p.Images; g++ {
		var sets []wino4Set
		for img := range g {
			for ty := range p.TH {
				sets = append(sets, wino4Set{ty: ty, in: img * inStride, out: img * outStride})
			}
		}
		p.addCall(sets)
	}
	return p, nil
}

// wino4Set is one tile row of a call: tile row ty of the plane that starts
// in and out floats after the call's base pointers, from pixel column x0
// (a segment of a plane over 64 wide; else 0).
type wino4Set struct{ ty, in, out, x0 int }

// newWino4Plan sets up the shape and the constants of a plan.
func newWino4Plan(h, w int) *Wino4Plan {
	p := &Wino4Plan{H: h, W: w, TH: (h + 3) / 4, TW: (w + 3) / 4, segs: 1}
	tw := p.TW
	if tw > 16 { // segments of a tile row, set up as a 64-wide plane
		p.segs, tw = (tw+15)/16, 16
	}
	p.rows = 16 / tw
	k := &p.k
	for l := range 16 {
		k.up[l], k.down[l] = uint32(max(l-1, 0)), uint32(min(l+1, 15))
		if l < p.rows*tw && l%tw != 0 {
			k.kUp |= 1 << l
		}
		if l < p.rows*tw && l%tw != tw-1 {
			k.kDown |= 1 << l
		}
	}
	k.c2, k.c4, k.c5, k.c8 = 2, 4, 5, 8
	return p
}

// addCall appends the tables of one call over sets: set s fills lanes
// s·TW … s·TW+TW−1 and stream floats s·4TW … s·4TW+W−1 (a segment: lanes
// 0 … 15 and floats 0 … 63 from pixel column x0, those past W zero).
func (p *Wino4Plan) addCall(sets []wino4Set) {
	h, w, tw := p.H, p.W, min(p.TW, 16)
	x0 := sets[0].x0
	sw := min(w-x0, 4*tw) // the pixels of a set's row
	// span returns the lanes of stream register j that set s fills, and
	// the byte offset of lane 0 for row y of the plane base floats in.
	span := func(s, j, y, base int) (uint16, int64) {
		lo, hi := max(16*j, s*4*tw), min(16*j+16, s*4*tw+sw)
		if lo >= hi {
			return 0, 0
		}
		m := uint16((1<<(hi-16*j) - 1) &^ (1<<(lo-16*j) - 1))
		return m, int64(4 * (base + y*w + x0 - s*4*tw + 16*j))
	}
	var in wino4In
	var out wino4Out
	in.kst = uint16(1<<((len(sets)-1)*tw+min(tw, p.TW-x0/4)) - 1)
	out.kld = in.kst
	for j := range 4 {
		for s, set := range sets {
			for i := range 6 {
				y := 4*set.ty - 1 + i
				if y < 0 || y >= h {
					continue
				}
				if m, off := span(s, j, y, set.in); m != 0 {
					e := slot(in.mask[i][j][:])
					in.off[i][j][e], in.mask[i][j][e] = off, m
				}
			}
			for a := range 4 {
				y := 4*set.ty + a
				if y >= h {
					continue
				}
				if m, off := span(s, j, y, set.out); m != 0 {
					e := slot(out.mask[a][j][:])
					out.off[a][j][e], out.mask[a][j][e] = off, m
				}
			}
		}
	}
	p.in = append(p.in, in)
	p.out = append(p.out, out)
}

// slot returns the first unused of a stream register's two load or store
// slots (mask 0).
func slot(masks []uint16) int {
	if masks[0] == 0 {
		return 0
	}
	if masks[1] != 0 {
		panic("vec: a stream register overlaps three tile rows")
	}
	return 1
}

// Tiles is the number of tiles (GEMM columns) of one plane.
func (p *Wino4Plan) Tiles() int { return p.TH * p.TW }

// InputPlane writes the input transform Bᵀ·d·B of every tile of the plane
// x to v[ξ·ldv + ty·TW + tx] (a plane plan).
func (p *Wino4Plan) InputPlane(v []float32, ldv int, x []float32) {
	p.input(v, ldv, 0, x, 0, 1, 1, 0, p.TH)
}

// InputPlanes is InputPlane for count planes at once (a plane plan): plane
// q is read from x[q·xStep:] and its tiles go to v[q·vStep:]. One call for
// all the channels of an image saves the per-call set-up of the kernels.
func (p *Wino4Plan) InputPlanes(v []float32, ldv, vStep int, x []float32, xStep, count int) {
	p.checkPlanes(count, vStep, xStep)
	p.input(v, ldv, vStep, x, xStep, 1, count, 0, p.TH)
}

// BandRows is the unit of InputPlanesRows' and OutputPlanesRows' bands:
// the tile rows one kernel call covers.
func (p *Wino4Plan) BandRows() int { return p.rows }

// InputPlanesRows is InputPlanes for tile rows [ty0, ty1) of the planes
// only, written from column 0 of v (tile (ty, tx) to column (ty−ty0)·TW +
// tx): a band of large planes, which keeps a layer's GEMM operands bounded.
// ty0 must be a multiple of BandRows, and so must ty1 unless it is TH.
func (p *Wino4Plan) InputPlanesRows(v []float32, ldv, vStep int, x []float32, xStep, count, ty0, ty1 int) {
	p.checkPlanes(count, vStep, xStep)
	p.checkBand(ty0, ty1)
	p.input(v, ldv, vStep, x, xStep, 1, count, ty0, ty1)
}

// OutputPlanesRows is OutputPlanes for the tile rows [ty0, ty1) that
// InputPlanesRows transformed, their tiles read from column 0 of m.
func (p *Wino4Plan) OutputPlanesRows(y []float32, yStep int, m []float32, ldm, mStep, count, ty0, ty1 int, bias func(q int) float32) {
	p.checkPlanes(count, yStep, mStep)
	p.checkBand(ty0, ty1)
	p.output(y, yStep, m, ldm, mStep, 1, count, ty0, ty1, func(q, _ int) float32 { return bias(q) })
}

func (p *Wino4Plan) checkBand(ty0, ty1 int) {
	if p.Images > 0 || ty0 < 0 || ty0 >= ty1 || ty1 > p.TH || ty0%p.rows != 0 || (ty1%p.rows != 0 && ty1 != p.TH) {
		panic(fmt.Sprintf("vec: Winograd band of tile rows [%d, %d) on a plan of %d rows, %d a call", ty0, ty1, p.TH, p.rows))
	}
}

// OutputPlane writes the h×w output plane y = Aᵀ·M·A + bias from
// m[ξ·ldm + ty·TW + tx] (a plane plan).
func (p *Wino4Plan) OutputPlane(y []float32, m []float32, ldm int, bias float32) {
	p.output(y, 0, m, ldm, 0, 1, 1, 0, p.TH, func(int, int) float32 { return bias })
}

// OutputPlanes is OutputPlane for count planes at once (a plane plan):
// plane q goes to y[q·yStep:] from the tiles at m[q·mStep:], plus bias(q).
func (p *Wino4Plan) OutputPlanes(y []float32, yStep int, m []float32, ldm, mStep, count int, bias func(q int) float32) {
	p.checkPlanes(count, yStep, mStep)
	p.output(y, yStep, m, ldm, mStep, 1, count, 0, p.TH, func(q, _ int) float32 { return bias(q) })
}

// GradOutputPlane writes A·dY·Aᵀ of every 4×4 tile of the h×w output
// gradient dy (pixels past the plane are 0) to v[ξ·ldv + ty·TW + tx]: the
// transform of the weight gradient (package nn), which sums these times the
// input transforms over tiles. It reads dy through the output tables.
func (p *Wino4Plan) GradOutputPlane(v []float32, ldv int, dy []float32) {
	p.gradOutput(v, ldv, 0, dy, 0, 1)
}

// GradOutputPlanes is GradOutputPlane for count planes at once: plane q of
// dy at dy[q·dyStep:], its tiles to v[q·vStep:].
func (p *Wino4Plan) GradOutputPlanes(v []float32, ldv, vStep int, dy []float32, dyStep, count int) {
	p.checkPlanes(count, vStep, dyStep)
	p.gradOutput(v, ldv, vStep, dy, dyStep, count)
}

func (p *Wino4Plan) gradOutput(v []float32, ldv, vStep int, dy []float32, dyStep, count int) {
	if p.Images > 0 {
		panic("vec: GradOutputPlane on a batch plan")
	}
	_ = dy[(count-1)*dyStep+p.H*p.W-1]
	_ = v[(count-1)*vStep+35*ldv+p.Tiles()-1]
	if !useAVX512 {
		for q := range count {
			wino4GradOutputGo(v[q*vStep:], ldv, dy[q*dyStep:], p.H, p.W)
		}
		return
	}
	var scratch [24][16]float32
	for q := range count {
		vq, dq := v[q*vStep:], dy[q*dyStep:]
		for c := range p.numCalls(1) {
			t, col, _ := p.call(c, 1)
			wino4DyAVX512(&vq[col], ldv, &dq[0], (*int64)(unsafe.Pointer(&p.out[t])), (*uint32)(unsafe.Pointer(&p.k)), &scratch)
		}
	}
}

// InputBatch is InputPlane for the planes of n images of a batch plan,
// count planes (channels) at once: plane q of image i starts at
// x[q·xStep + i·inStride] and its tiles at column i·Tiles() of v[q·vStep:].
func (p *Wino4Plan) InputBatch(v []float32, ldv, vStep int, x []float32, xStep, n, count int) {
	p.checkBatch(n)
	p.checkPlanes(count, vStep, xStep)
	p.input(v, ldv, vStep, x, xStep, n, count, 0, p.TH)
}

// OutputBatch is OutputPlane for the planes of n images of a batch plan,
// count planes at once: plane q of image i goes to y[q·yStep +
// i·outStride] from the tiles at column i·Tiles() of m[q·mStep:], and its
// pixels get bias(q, i).
func (p *Wino4Plan) OutputBatch(y []float32, yStep int, m []float32, ldm, mStep, n, count int, bias func(q, i int) float32) {
	p.checkBatch(n)
	p.checkPlanes(count, yStep, mStep)
	p.output(y, yStep, m, ldm, mStep, n, count, 0, p.TH, bias)
}

// InStride and OutStride are a batch plan's floats between images' planes.
func (p *Wino4Plan) InStride() int  { return p.inStride }
func (p *Wino4Plan) OutStride() int { return p.outStride }

func (p *Wino4Plan) checkBatch(n int) {
	if p.Images == 0 || n < 1 {
		panic(fmt.Sprintf("vec: Winograd batch call with %d images on a plan for %d per call", n, p.Images))
	}
}

// checkPlanes rejects what the kernels' bounds checks (made on the last
// plane only) would not catch.
func (p *Wino4Plan) checkPlanes(count, step1, step2 int) {
	if count < 1 || step1 < 0 || step2 < 0 {
		panic(fmt.Sprintf("vec: Winograd call for %d planes with steps %d, %d", count, step1, step2))
	}
}

// numCalls is the number of kernel calls for n images (n = 1 in a plane
// plan), and call(c, n) call c's table, its first GEMM column and its first
// image: a plane plan's calls walk its tile rows, a batch plan's its images,
// Images at a time.
func (p *Wino4Plan) numCalls(n int) int {
	if p.Images == 0 {
		return len(p.in)
	}
	return (n + p.Images - 1) / p.Images
}

// callRange is the calls [c0, c1) that cover tile rows [ty0, ty1) (all of
// a batch plan's calls for n images).
func (p *Wino4Plan) callRange(n, ty0, ty1 int) (c0, c1 int) {
	if p.Images > 0 {
		return 0, p.numCalls(n)
	}
	return ty0 / p.rows * p.segs, (ty1 + p.rows - 1) / p.rows * p.segs
}

func (p *Wino4Plan) call(c, n int) (table, col, img int) {
	if p.Images == 0 {
		return c, c/p.segs*p.rows*p.TW + c%p.segs*16, 0
	}
	img = c * p.Images
	return min(p.Images, n-img) - 1, img * p.Tiles(), img
}

// input is InputPlane(s), InputPlanesRows and InputBatch: count planes of
// n images each, tile rows [ty0, ty1) of each (all of them in a batch
// plan). The scratch space is set up once for all of them.
func (p *Wino4Plan) input(v []float32, ldv, vStep int, x []float32, xStep, n, count, ty0, ty1 int) {
	per := (ty1 - ty0) * p.TW
	_ = x[(count-1)*xStep+(n-1)*p.inStride+p.H*p.W-1]
	_ = v[(count-1)*vStep+35*ldv+n*per-1]
	if !useAVX512 {
		for q := range count {
			for i := range n {
				wino4InputGo(v[q*vStep+i*per:], ldv, x[q*xStep+i*p.inStride:], p.H, p.W, ty0, ty1)
			}
		}
		return
	}
	var scratch [36][16]float32
	c0, c1 := p.callRange(n, ty0, ty1)
	for q := range count {
		vq, xq := v[q*vStep:], x[q*xStep:]
		for c := c0; c < c1; c++ {
			t, col, img := p.call(c, n)
			col -= ty0 * p.TW
			wino4InAVX512(&vq[col], ldv, &xq[img*p.inStride], (*int64)(unsafe.Pointer(&p.in[t])), (*uint32)(unsafe.Pointer(&p.k)), &scratch)
		}
		if p.segs > 1 {
			p.fixSegments(vq, ldv, xq, ty0, ty1)
		}
	}
}

// fixSegments redoes, in portable Go, the transform columns that a
// segment's kernel call got without the neighbouring segment's pixels:
// column 0 (Bᵀ row 0: pixels 4tx−1, 4tx+1, 4tx+3) of each segment's first
// tile and column 5 (row 5: pixels 4tx, 4tx+2, 4tx+4) of each segment's
// last, for tile rows [ty0, ty1) of the plane x, written from column 0 of
// v.
func (p *Wino4Plan) fixSegments(v []float32, ldv int, x []float32, ty0, ty1 int) {
	h, w := p.H, p.W
	for ty := ty0; ty < ty1; ty++ {
		for tx := 16; tx < p.TW; tx += 16 {
			for _, t := range [2]int{tx - 1, tx} { // the last tile of one segment, the first of the next
				c, e := 0, 4*t-1
				if t == tx-1 {
					c, e = 5, 4*t
				}
				// Both rows of Bᵀ are 4·d[e] − 5·d[e+2] + d[e+4] (wino4Row).
				var col [6]float32
				for i := range col {
					y := 4*ty - 1 + i
					if y < 0 || y >= h {
						continue
					}
					var d [3]float32
					for k := range d {
						if e+2*k < w {
							d[k] = x[y*w+e+2*k]
						}
					}
					col[i] = d[2] - 5*d[1] + 4*d[0]
				}
				out := wino4Row(col)
				for k := range out {
					v[(6*k+c)*ldv+(ty-ty0)*p.TW+t] = out[k]
				}
			}
		}
	}
}

// output is OutputPlane(s), OutputPlanesRows and OutputBatch.
func (p *Wino4Plan) output(y []float32, yStep int, m []float32, ldm, mStep, n, count, ty0, ty1 int, bias func(q, i int) float32) {
	per := (ty1 - ty0) * p.TW
	_ = y[(count-1)*yStep+(n-1)*p.outStride+p.H*p.W-1]
	_ = m[(count-1)*mStep+35*ldm+n*per-1]
	if !useAVX512 {
		for q := range count {
			for i := range n {
				wino4OutputGo(y[q*yStep+i*p.outStride:], p.H, p.W, m[q*mStep+i*per:], ldm, bias(q, i), ty0, ty1)
			}
		}
		return
	}
	c0, c1 := p.callRange(n, ty0, ty1)
	var scratch [24][16]float32
	var b [16]float32 // lane l: the bias of the image tile l belongs to
	for q := range count {
		yq, mq := y[q*yStep:], m[q*mStep:]
		for c := c0; c < c1; c++ {
			t, col, img := p.call(c, n)
			col -= ty0 * p.TW
			switch {
			case p.Images == 0 && c == c0: // a plane plan's calls share one image
				v := bias(q, 0)
				for l := range b {
					b[l] = v
				}
			case p.Images > 0: // lanes l·per … l·per+per−1: image img+l (the spare lanes: the last)
				for k, l := 0, 0; l < len(b); k++ {
					v := bias(q, img+min(k, n-1-img))
					for e := min(l+per, len(b)); l < e; l++ {
						b[l] = v
					}
				}
			}
			wino4OutAVX512(&mq[col], ldm, &yq[img*p.outStride], &b, (*int64)(unsafe.Pointer(&p.out[t])), (*uint32)(unsafe.Pointer(&p.k)), &scratch)
		}
	}
}

// wino4A applies A (6×4, Aᵀ's transpose) to four values.
func wino4A(y [4]float32) [6]float32 {
	e, o := y[0]+y[2], y[1]+y[3]
	e2, o2 := y[0]+4*y[2], 2*(y[1]+4*y[3])
	return [6]float32{y[0], e + o, e - o, e2 + o2, e2 - o2, y[3]}
}

// wino4GradOutputGo is GradOutputPlane in portable Go (and its reference).
func wino4GradOutputGo(v []float32, ldv int, dy []float32, h, w int) {
	th, tw := (h+3)/4, (w+3)/4
	px := func(y, x int) float32 {
		if y >= h || x >= w {
			return 0
		}
		return dy[y*w+x]
	}
	for ty := range th {
		for tx := range tw {
			var rows [4][6]float32
			for a := range 4 {
				rows[a] = wino4A([4]float32{px(4*ty+a, 4*tx), px(4*ty+a, 4*tx+1), px(4*ty+a, 4*tx+2), px(4*ty+a, 4*tx+3)})
			}
			for c := range 6 {
				col := wino4A([4]float32{rows[0][c], rows[1][c], rows[2][c], rows[3][c]})
				for r := range 6 {
					v[(6*r+c)*ldv+ty*tw+tx] = col[r]
				}
			}
		}
	}
}

// wino4Row applies Bᵀ to six values (the kernels' order of operations,
// without their fused multiply-adds).
func wino4Row(d [6]float32) [6]float32 {
	a, b := d[4]-4*d[2], d[3]-4*d[1]
	c, e := d[4]-d[2], d[3]-d[1]
	return [6]float32{d[4] - 5*d[2] + 4*d[0], a + b, a - b, c + 2*e, c - 2*e, d[5] - 5*d[3] + 4*d[1]}
}

// wino4Col applies Aᵀ to six values.
func wino4Col(m [6]float32) [4]float32 {
	s1, d1, s2, d2 := m[1]+m[2], m[1]-m[2], m[3]+m[4], m[3]-m[4]
	return [4]float32{m[0] + s1 + s2, d1 + 2*d2, s1 + 4*s2, d1 + m[5] + 8*d2}
}

// wino4InputGo is InputPlane in portable Go (and its reference), for tile
// rows [ty0, ty1), written from column 0 of v.
func wino4InputGo(v []float32, ldv int, x []float32, h, w, ty0, ty1 int) {
	tw := (w + 3) / 4
	px := func(y, e int) float32 {
		if y < 0 || y >= h || e < 0 || e >= w {
			return 0
		}
		return x[y*w+e]
	}
	for ty := ty0; ty < ty1; ty++ {
		for tx := range tw {
			var rows [6][6]float32
			for i := range 6 {
				var d [6]float32
				for j := range 6 {
					d[j] = px(4*ty-1+i, 4*tx-1+j)
				}
				rows[i] = wino4Row(d)
			}
			for c := range 6 {
				col := wino4Row([6]float32{rows[0][c], rows[1][c], rows[2][c], rows[3][c], rows[4][c], rows[5][c]})
				for r := range 6 {
					v[(6*r+c)*ldv+(ty-ty0)*tw+tx] = col[r]
				}
			}
		}
	}
}

// wino4OutputGo is OutputPlane in portable Go (and its reference), for
// tile rows [ty0, ty1), read from column 0 of m.
func wino4OutputGo(y []float32, h, w int, m []float32, ldm int, bias float32, ty0, ty1 int) {
	tw := (w + 3) / 4
	for ty := ty0; ty < ty1; ty++ {
		for tx := range tw {
			var cols [4][6]float32
			for c := range 6 {
				var mc [6]float32
				for r := range 6 {
					mc[r] = m[(6*r+c)*ldm+(ty-ty0)*tw+tx]
				}
				o := wino4Col(mc)
				for a := range 4 {
					cols[a][c] = o[a]
				}
			}
			for a := range 4 {
				o := wino4Col(cols[a])
				for q := range 4 {
					if oy, ox := 4*ty+a, 4*tx+q; oy < h && ox < w {
						y[oy*w+ox] = o[q] + bias
					}
				}
			}
		}
	}
}
