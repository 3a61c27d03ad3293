package ddpm

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/experiments/rd"
)

// RDOptions control [Pipeline.RateDistortion]. The zero value evaluates 64
// (image, t) pairs per network call with seed 0, for images that fill the
// model's input.
type RDOptions struct {
	// Batch is the number of (image, t) pairs per network call (0: 64).
	Batch int
	// Seed seeds the draws of every x_t: the draws of [Pipeline.BitsPerDim]
	// with the same seed, so the final rate + decoder is its bound.
	Seed uint64
	// DataH and DataW are the size of the images before they were padded
	// to the model's input (centred, as data sets pad 28×28 MNIST to
	// 32×32): rates are then per data dimension and the distortion counts
	// the data pixels only, as `ddpm eval bpd` reports. 0: the images fill
	// the input.
	DataH, DataW int
	// Progress is called after each network call with the pairs done out
	// of N·T.
	Progress func(done, total int)
	// Observe sees each pair as it is computed: image img at diffusion
	// index i (t = i+1), its x_t and the receiver's estimate x̂0 (valid
	// during the call), for a live view of progressive compression.
	Observe func(img, i int, xt, xStart []float32)
	// Term sees each pair's term of the rate as it is computed, in bits per
	// data dimension: L_{t−1} of image img at index i = t−1 (the decoder L_0
	// at i = 0); the rate after reverse step k is the prior plus the terms
	// at i ≥ T−k+1. For a live rate curve.
	Term func(img, i int, bits float64)
}

// RDResult is Table 4 and Fig. 5: the rate–distortion curve of progressive
// lossy compression, averaged over the images.
type RDResult struct {
	// Curve holds Rate and RMSE after each reverse step k = 1..T (index
	// k−1), and the prior, decoder and whole bound, in bits per data
	// dimension.
	rd.Curve
	Dims     int // values per image as the model sees them
	DataDims int // values per image before padding: the bits/dim denominator
}

// RDRow is the curve after one reverse step.
type RDRow struct {
	ReverseStep int     // k = T − t + 1: x_t received
	Rate        float64 // L_T + … + L_t, bits per data dimension
	RMSE        float64 // of x̂0(x_t) against x0, on [0, 255]
}

// Rows is the curve at every reverse step 1..T.
func (r *RDResult) Rows() []RDRow {
	rows := make([]RDRow, r.T)
	for k := range rows {
		rows[k] = RDRow{ReverseStep: k + 1, Rate: r.Rate[k], RMSE: r.RMSE[k]}
	}
	return rows
}

// Table is Table 4's rows: reverse steps T/10, 2T/10, …, T.
func (r *RDResult) Table() []RDRow {
	var rows []RDRow
	for _, k := range rd.TableSteps(r.T) {
		rows = append(rows, RDRow{ReverseStep: k, Rate: r.Rate[k-1], RMSE: r.RMSE[k-1]})
	}
	return rows
}

// RateDistortion sends the images x0 (values on the 256-level grid of
// [−1, 1]) through the reverse process (Algorithms 3–4): after each step the
// rate so far and the distortion of the receiver's x̂0, Table 4 and Fig. 5.
// It costs T network evaluations per image; it stops between network calls
// once ctx is done, returning ctx.Err().
func (p *Pipeline) RateDistortion(ctx context.Context, x0 *Tensor, o RDOptions) (*RDResult, error) {
	if err := p.checkImages(x0, 0, "the images"); err != nil {
		return nil, err
	}
	mask, dataDims, err := p.dataMask(o.DataH, o.DataW)
	if err != nil {
		return nil, err
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	c, err := rd.Run(ctx, p.Process, p.net(), x0.Data, x0.N, rd.Options{
		Batch: o.Batch, Rng: rand.New(rand.NewPCG(o.Seed, bpdSeedStream)),
		Scale: float64(p.dims()) / float64(dataDims), Mask: mask,
		Progress: o.Progress, Observe: o.Observe, Term: o.Term,
	})
	if err != nil {
		return nil, err
	}
	return &RDResult{Curve: *c, Dims: p.dims(), DataDims: dataDims}, nil
}

// dataMask marks the values of the model's input that hold the pixels of
// an h×w image rather than padding, found by padding a white image as data
// sets pad theirs, and counts them; nil and all values when h and w are 0.
func (p *Pipeline) dataMask(h, w int) ([]bool, int, error) {
	res, c := p.Resolution(), p.Channels()
	switch {
	case h == 0 && w == 0:
		return nil, p.dims(), nil
	case h < 1 || w < 1 || h > res || w > res:
		return nil, 0, fmt.Errorf("%w: images of %d×%d do not pad to the model's %d×%d", ErrInvalidOption, h, w, res, res)
	}
	white := &data.Dataset{N: 1, C: c, H: h, W: w, Pixels: bytes.Repeat([]byte{255}, c*h*w)}
	x := make([]float32, p.dims())
	white.ToFloat(x, []int{0}, res)
	mask := make([]bool, len(x))
	for k, v := range x {
		mask[k] = v == 1
	}
	return mask, c * h * w, nil
}
