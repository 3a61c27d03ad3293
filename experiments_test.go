package ddpm_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// pipeline8 is a freshly initialised 8×8 grey U-Net with a T = 20
// process: the experiments' logic at a few milliseconds a step.
func pipeline8(t *testing.T, v diffusion.ModelVar) *ddpm.Pipeline {
	t.Helper()
	dc := diffusion.DefaultConfig()
	dc.T, dc.Var = 20, v
	d, err := diffusion.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := unet.Config{InCh: 1, OutCh: d.OutChannels(1), Res: 8, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1, Groups: 4}
	net, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	net.Init(rand.New(rand.NewPCG(1, 2)))
	p, err := ddpm.New(net, dc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// digits are n 8×8 grey test images on the 256-level grid (a bright square
// of a different size in each), as a drawing would give them.
func digits(n int) *ddpm.Tensor {
	imgs := make([]image.Image, n)
	for i := range imgs {
		g := image.NewGray(image.Rect(0, 0, 8, 8))
		for y := 1; y < 3+i; y++ {
			for x := 2; x < 6; x++ {
				g.SetGray(x, y, color.Gray{Y: 255})
			}
		}
		imgs[i] = g
	}
	return ddpm.ImageTensor(imgs, 1, 8)
}

// counter checks that Progress counts 1..total with one total, and counts.
func counter(t *testing.T, total int) (func(done, total int), *int) {
	calls := new(int)
	return func(done, tot int) {
		*calls++
		if done != *calls || tot != total {
			t.Fatalf("progress %d/%d at call %d, want total %d", done, tot, *calls, total)
		}
	}, calls
}

// TestProgressive: Fig. 6's columns are evenly spaced reverse steps in the
// chain's order, the last x̂0 is the sample, and every step is observed.
func TestProgressive(t *testing.T) {
	p := pipeline8(t, diffusion.FixedLarge)
	progress, calls := counter(t, 20)
	seen := 0
	o := ddpm.ProgressiveOptions{Chains: 2, Columns: 5, Seed: 1, Progress: progress, Observe: func(i int, xt, xs []float32) { seen++ }}
	r, err := p.Progressive(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if *calls != 20 || seen != 20 || r.Samples.N != 2 {
		t.Fatalf("%d progress calls, %d observations, %d samples", *calls, seen, r.Samples.N)
	}
	for c, col := range r.Columns {
		if want := 20 - 4*(c+1) + 1; col.T != want || col.XStart.N != 2 || col.Xt.N != 2 {
			t.Errorf("column %d: t = %d (want %d), %d and %d images", c, col.T, want, col.XStart.N, col.Xt.N)
		}
	}
	if last := r.Columns[4]; last.RMSE > 1e-3 || !(r.Columns[0].RMSE > last.RMSE) {
		t.Errorf("RMSE to the sample: first column %g, last %g", r.Columns[0].RMSE, last.RMSE)
	}
	f := r.Figure(true)
	if f.Rows != 4 || f.Cols != 5 || f.Images.N != 20 || !slices.Equal(f.Images.Data[:64], r.Columns[0].Xt.Data[:64]) {
		t.Errorf("figure %d×%d of %d images", f.Rows, f.Cols, f.Images.N)
	}
	o.Progress, o.Observe = nil, nil
	again, _ := p.Progressive(context.Background(), o)
	if !slices.Equal(again.Samples.Data, r.Samples.Data) {
		t.Error("the same seed gave other chains")
	}
}

// TestSharedLatents: rows share the x_t of the given image (close to it at
// t = 1) or of one chain, whose sample is the reference.
func TestSharedLatents(t *testing.T) {
	p := pipeline8(t, diffusion.FixedSmall)
	img := digits(1)
	progress, calls := counter(t, 5+1)
	r, err := p.SharedLatents(context.Background(), ddpm.SharedOptions{Steps: []int{5, 1}, PerRow: 3, Image: img, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if *calls != 6 || len(r.Rows) != 2 || r.Rows[0].T != 5 || r.Rows[1].Samples.N != 3 || !slices.Equal(r.Reference.Data, img.Data) {
		t.Fatalf("%d progress calls, rows %+v", *calls, r.Rows)
	}
	for k, v := range r.Rows[1].Latent.Data {
		if math.Abs(float64(v-img.Data[k])) > 0.05 {
			t.Fatalf("x_1 differs from the image by %g at %d", v-img.Data[k], k)
		}
	}
	if row := r.Rows[0]; !(row.PixelStd > 0) || !(row.RMSE > 0) {
		t.Errorf("row at t = 5: std %g, RMSE %g", row.PixelStd, row.RMSE)
	}
	if f := r.Figure(); f.Rows != 2 || f.Cols != 4 || f.Images.N != 8 {
		t.Errorf("figure %d×%d of %d images", f.Rows, f.Cols, f.Images.N)
	}

	progress, calls = counter(t, 20+20+10+5)
	chain, err := p.SharedLatents(context.Background(), ddpm.SharedOptions{Steps: []int{20, 10, 5}, PerRow: 2, Progress: progress})
	if err != nil || *calls != 55 || chain.Reference.N != 1 || len(chain.Rows) != 3 {
		t.Fatalf("from a chain: %v after %d progress calls", err, *calls)
	}
	def, err := p.SharedLatents(context.Background(), ddpm.SharedOptions{Image: img})
	if err != nil || len(def.Rows) != 4 || def.Rows[3].T != 5 || def.Rows[0].Samples.N != 8 {
		t.Fatalf("defaults: %v, %d rows", err, len(def.Rows))
	}
}

// TestInterpolate: rows of one image per λ with the sources at the figure's
// ends, and one λ alone is that column of the row.
func TestInterpolate(t *testing.T) {
	p := pipeline8(t, diffusion.FixedSmall)
	x := digits(2)
	a, b := x.Slice(0, 1), x.Slice(1, 2)
	progress, calls := counter(t, 2+10)
	r, err := p.Interpolate(context.Background(), a, b, ddpm.InterpolateOptions{Steps: []int{2, 10}, Seed: 4, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if *calls != 12 || len(r.Lambdas) != 11 || len(r.Rows) != 2 || r.Rows[1].T != 10 || r.Rows[0].Images.N != 11 || r.Pixel.N != 11 {
		t.Fatalf("%d progress calls, λ %v, rows %+v", *calls, r.Lambdas, r.Rows)
	}
	rmse := func(x, y []float32) float64 {
		s := 0.0
		for k := range x {
			s += float64(x[k]-y[k]) * float64(x[k]-y[k])
		}
		return 127.5 * math.Sqrt(s/float64(len(x)))
	}
	if e := r.Rows[1]; e.RMSEA != rmse(e.Images.Slice(0, 1).Data, a.Data) || e.RMSEB != rmse(e.Images.Slice(10, 11).Data, b.Data) {
		t.Errorf("reconstruction errors %g, %g", e.RMSEA, e.RMSEB)
	}
	f := r.Figure()
	if f.Rows != 3 || f.Cols != 13 || !slices.Equal(f.Images.Data[12*64:13*64], b.Data) {
		t.Errorf("figure %d×%d", f.Rows, f.Cols)
	}
	one, err := p.Interpolate(context.Background(), a, b, ddpm.InterpolateOptions{Steps: []int{2, 10}, Seed: 4, Lambdas: []float64{0.3}})
	if err != nil {
		t.Fatal(err)
	}
	for k := range 2 {
		want := r.Rows[k].Images.Slice(3, 4).Data
		for j, v := range one.Rows[k].Images.Data {
			if math.Abs(float64(v-want[j])) > 1e-4 {
				t.Fatalf("row %d: λ = 0.3 alone differs from its column by %g", k, v-want[j])
			}
		}
	}
	if def, err := p.Interpolate(context.Background(), a, b, ddpm.InterpolateOptions{Lambdas: []float64{0, 1}}); err != nil || len(def.Rows) != 4 || def.Rows[3].T != 20 {
		t.Errorf("default rows: %v", err)
	}
}

// TestRateDistortion: the final rate plus the decoder is the bound
// BitsPerDim computes with the same seed, padding changes the units, and
// every (image, t) pair is observed.
func TestRateDistortion(t *testing.T) {
	p := pipeline8(t, diffusion.FixedLarge)
	x0 := digits(2)
	pairs := 0
	r, err := p.RateDistortion(context.Background(), x0, ddpm.RDOptions{Batch: 7, Seed: 3, Observe: func(img, i int, xt, xs []float32) { pairs++ }})
	if err != nil {
		t.Fatal(err)
	}
	bound, err := p.BitsPerDim(context.Background(), x0, ddpm.BPDOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := bound.Summary(1).TotalBPD; math.Abs(r.Total-want) > 1e-9*want || pairs != 2*20 {
		t.Errorf("total %g, BitsPerDim %g; %d pairs observed", r.Total, want, pairs)
	}
	rows, table := r.Rows(), r.Table()
	if len(rows) != 20 || rows[19].Rate != r.Rate[19] || len(table) != 10 || table[0].ReverseStep != 2 || r.Dims != 64 || r.DataDims != 64 {
		t.Fatalf("%d rows, table %+v, dims %d/%d", len(rows), table, r.Dims, r.DataDims)
	}
	padded, err := p.RateDistortion(context.Background(), x0, ddpm.RDOptions{Seed: 3, DataH: 6, DataW: 4})
	if err != nil {
		t.Fatal(err)
	}
	if padded.DataDims != 24 || math.Abs(padded.Rate[5]-r.Rate[5]*64/24) > 1e-9*r.Rate[5] || padded.RMSE[5] == r.RMSE[5] {
		t.Errorf("padded: %d data dims, rate %g (unpadded %g), RMSE %g", padded.DataDims, padded.Rate[5], r.Rate[5], padded.RMSE[5])
	}
}

// TestExperimentOptions: options that do not fit the model are
// ErrInvalidOption, and a cancelled context stops every method.
func TestExperimentOptions(t *testing.T) {
	p := pipeline8(t, diffusion.FixedLarge)
	ctx := context.Background()
	x := digits(2)
	a, b := x.Slice(0, 1), x.Slice(1, 2)
	big := &ddpm.Tensor{Data: make([]float32, 3*16*16), N: 1, C: 3, H: 16, W: 16}
	for name, err := range map[string]error{
		"columns > T": errOf(p.Progressive(ctx, ddpm.ProgressiveOptions{Columns: 21})),
		"chains < 0":  errOf(p.Progressive(ctx, ddpm.ProgressiveOptions{Chains: -1})),
		"t = 0":       errOf(p.SharedLatents(ctx, ddpm.SharedOptions{Steps: []int{0}})),
		"no steps":    errOf(p.SharedLatents(ctx, ddpm.SharedOptions{Steps: []int{}})),
		"two images":  errOf(p.SharedLatents(ctx, ddpm.SharedOptions{Image: x})),
		"per < 0":     errOf(p.SharedLatents(ctx, ddpm.SharedOptions{PerRow: -2})),
		"t = 21":      errOf(p.Interpolate(ctx, a, b, ddpm.InterpolateOptions{Steps: []int{21}})),
		"no λ":        errOf(p.Interpolate(ctx, a, b, ddpm.InterpolateOptions{Lambdas: []float64{}})),
		"shape":       errOf(p.Interpolate(ctx, a, big, ddpm.InterpolateOptions{})),
		"rd shape":    errOf(p.RateDistortion(ctx, big, ddpm.RDOptions{})),
		"rd padding":  errOf(p.RateDistortion(ctx, x, ddpm.RDOptions{DataH: 9, DataW: 8})),
	} {
		if !errors.Is(err, ddpm.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for name, err := range map[string]error{
		"progressive":  errOf(p.Progressive(cancelled, ddpm.ProgressiveOptions{})),
		"shared":       errOf(p.SharedLatents(cancelled, ddpm.SharedOptions{})),
		"shared image": errOf(p.SharedLatents(cancelled, ddpm.SharedOptions{Image: a})),
		"interpolate":  errOf(p.Interpolate(cancelled, a, b, ddpm.InterpolateOptions{})),
		"rd":           errOf(p.RateDistortion(cancelled, x, ddpm.RDOptions{})),
	} {
		if err != context.Canceled {
			t.Errorf("%s, cancelled: %v", name, err)
		}
	}
}

// errOf is the error of a call's two results.
func errOf[R any](_ R, err error) error { return err }

// TestImageTensor: pictures of any size and colour become model inputs,
// quantised like the data sets.
func TestImageTensor(t *testing.T) {
	white := image.NewRGBA(image.Rect(0, 0, 50, 40))
	for y := range 40 {
		for x := range 50 {
			white.Set(x, y, color.White)
		}
	}
	red := image.NewRGBA(image.Rect(0, 0, 20, 30))
	for y := range 30 {
		for x := range 20 {
			red.Set(x, y, color.RGBA{R: 255, A: 255})
		}
	}
	x := ddpm.ImageTensor([]image.Image{white, red}, 3, 8)
	if x.N != 2 || x.C != 3 || x.H != 8 || len(x.Data) != 2*3*64 {
		t.Fatalf("tensor %d×%d×%d×%d", x.N, x.C, x.H, x.W)
	}
	for k, v := range x.Data {
		img, ch := k/192, k%192/64
		want := float32(1)
		if img == 1 && ch > 0 {
			want = -1
		}
		if v != want {
			t.Fatalf("image %d channel %d: %g, want %g", img, ch, v, want)
		}
	}
	if g := ddpm.ImageTensor([]image.Image{white}, 1, 4); len(g.Data) != 16 || g.Data[5] != 1 {
		t.Errorf("grey: %v", g.Data)
	}
}
