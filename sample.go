package ddpm

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	"math"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/sysmem"
	"github.com/ddpm-go/ddpm/model/unet"
)

// Ancestral is the paper's Algorithm 2: all T steps of the reverse process.
func Ancestral() diffusion.Sampler { return diffusion.Ancestral{} }

// DDIM is the deterministic DDIM sampler (Song et al. 2021) over steps
// timesteps, spaced as the model's scheduler config says for a diffusers
// model and evenly otherwise; set the result's Eta for η > 0 (1: the DDPM
// posterior's variance), its Spacing (and StepsOffset) for another
// spacing, e.g. diffusion.SpacingTrailing.
func DDIM(steps int) diffusion.DDIM { return diffusion.DDIM{Steps: steps} }

// Respaced is Algorithm 2 on the process respaced to steps timesteps
// (improved-diffusion's respacing; Nichol & Dhariwal 2021), spaced as
// DDIM's are; set the result's Spacing for another spacing.
func Respaced(steps int) diffusion.Respaced { return diffusion.Respaced{Steps: steps} }

// Langevin is annealed Langevin dynamics with the model's score (Section
// 3.2 of the paper): 100 noise levels, 10 updates each, step scale 1; change
// the result's fields for other settings.
func Langevin() diffusion.Langevin { return diffusion.DefaultLangevin() }

// SampleOptions control [Pipeline.Sample]. The zero value is Algorithm 2
// over all T steps, seed 0, 64 images denoised together.
type SampleOptions struct {
	// Sampler is the reverse process to run (nil: Ancestral).
	Sampler diffusion.Sampler
	// Seed seeds x_T and the sampler's noise: the same seed, sampler and
	// batch give the same images, as `ddpm sample --seed` does.
	Seed uint64
	// Batch is how many images are denoised together (0: 64).
	Batch int
	// Source, when set, is the generator to draw from instead of a new
	// [SampleSource] for Seed. Calls sharing one Source continue one draw:
	// n images sampled a batch per call are those of one call, and the
	// Source's MarshalBinary state resumes a draw that was stopped.
	Source *rand.PCG
	// Progress is called after each network evaluation with the count
	// over all batches.
	Progress func(done, total int)
	// Observe sees every step's x_t and predicted x̂0 of the batch being
	// denoised (image-major, C·H·W values each, in [−1, 1]).
	Observe diffusion.Observer
}

// DefaultBatch is how many images are denoised together by default.
const DefaultBatch = 64

// SampleRNG is the generator [Pipeline.SampleTensor] draws x_T and the
// sampler's noise from for a seed (PCG stream "samp"): a server or tool that
// runs the reverse process itself reproduces the pipeline's images with it.
func SampleRNG(seed uint64) *rand.Rand { return rand.New(SampleSource(seed)) }

// SampleSource is the source of [SampleRNG] for a seed.
func SampleSource(seed uint64) *rand.PCG { return rand.NewPCG(seed, 0x73616d70) }

// Evaluations is the number of network evaluations that sampling n images
// with o costs: what Progress counts to.
func (p *Pipeline) Evaluations(n int, o SampleOptions) int {
	s, batch := p.sampler(o), p.batchFor(n, o)
	return (n + batch - 1) / batch * s.Evaluations(p.T())
}

func (o SampleOptions) sampler() diffusion.Sampler {
	if o.Sampler == nil {
		return diffusion.Ancestral{}
	}
	return o.Sampler
}

func (o SampleOptions) batch() int {
	if o.Batch <= 0 {
		return DefaultBatch
	}
	return o.Batch
}

// batchFor is the batch sampling n images with o runs: o's batch, at most
// n, and at most what the memory available holds by the network's
// estimate (unet.EstimateMemory), but at least 1 (Check then says whether
// that fits). The 256×256 network needs about 0.25 GB an image besides its
// ~1 GB of weights and transformed kernels, so its batches shrink to fit
// (the seed's noise is drawn batch by batch, so a batch that had to shrink
// gives other images than the batch asked for would have).
func (p *Pipeline) batchFor(n int, o SampleOptions) int {
	batch := min(o.batch(), n)
	avail, ok := sysmem.Available()
	if !ok {
		return batch
	}
	m := p.sampleMemory()
	room := avail - float64(n)*float64(p.dims())*4 - m.Fixed
	return max(1, min(batch, int(room/m.PerImage)))
}

// sampleMemory is what sampling will still allocate: the network's
// estimate (unet.EstimateMemory) less its weights, which are loaded and
// resident already, so the available memory no longer counts them (the
// loaders decode them straight into the network and hold no copy).
func (p *Pipeline) sampleMemory() unet.Memory {
	m := unet.EstimateMemory(p.Net.Config(), false)
	m.Fixed = max(0, m.Fixed-4*float64(unet.NumParams(p.Net.Config())))
	return m
}

// Check reports whether n images can be sampled with o: a valid sampler
// and enough memory. Sample calls it first; callers that write files can
// call it before they start.
func (p *Pipeline) Check(n int, o SampleOptions) error {
	if n < 1 {
		return fmt.Errorf("%w: the number of images must be ≥ 1, got %d", ErrInvalidOption, n)
	}
	if err := p.sampler(o).Validate(p.T()); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	batch := p.batchFor(n, o)
	need := float64(n)*float64(p.dims())*4 + p.sampleMemory().Bytes(batch)
	return sysmem.Fits(need, fmt.Sprintf("%d images in batches of %d", n, batch), "sample fewer images per call, or a smaller batch")
}

// SampleTensor draws n images and returns their values in [−1, 1]. It
// stops between network evaluations once ctx is done, returning ctx.Err().
func (p *Pipeline) SampleTensor(ctx context.Context, n int, o SampleOptions) (*Tensor, error) {
	if err := p.Check(n, o); err != nil {
		return nil, err
	}
	rng := SampleRNG(o.Seed)
	if o.Source != nil {
		rng = rand.New(o.Source)
	}
	x, err := diffusion.Generate(ctx, p.Process, p.net(), p.sampler(o), n, p.dims(), p.batchFor(n, o), rng,
		diffusion.Hooks{Progress: o.Progress, Observe: o.Observe})
	if err != nil {
		return nil, err
	}
	return &Tensor{Data: x, N: n, C: p.Channels(), H: p.Resolution(), W: p.Resolution()}, nil
}

// Sample draws n images: *image.Gray for a grey model, *image.RGBA for a
// colour one. See [SampleOptions] for the sampler, seed and progress.
func (p *Pipeline) Sample(ctx context.Context, n int, o SampleOptions) ([]image.Image, error) {
	t, err := p.SampleTensor(ctx, n, o)
	if err != nil {
		return nil, err
	}
	return t.Images(), nil
}

// Tensor is a batch of images as the network sees them: N images of C
// channels of H×W values in [−1, 1], image-major then channel-major.
type Tensor struct {
	Data       []float32
	N, C, H, W int
}

// Image converts image i to 8 bits per channel: *image.Gray for one
// channel, *image.RGBA for three.
func (t *Tensor) Image(i int) image.Image {
	d := t.C * t.H * t.W
	return imgio.GridImage(t.Data[i*d:(i+1)*d], 1, t.C, t.H, t.W, 1)
}

// Images converts every image.
func (t *Tensor) Images() []image.Image {
	out := make([]image.Image, t.N)
	for i := range out {
		out[i] = t.Image(i)
	}
	return out
}

// Grid lays images of one size out in rows of cols (0: about √n),
// separated by white lines as the commands' grids are: *image.Gray when
// every image is grey, *image.RGBA otherwise.
func Grid(imgs []image.Image, cols int) image.Image {
	if len(imgs) == 0 {
		return image.NewGray(image.Rect(0, 0, 0, 0))
	}
	if cols <= 0 {
		cols = int(math.Ceil(math.Sqrt(float64(len(imgs)))))
	}
	cols = min(cols, len(imgs))
	rows := (len(imgs) + cols - 1) / cols
	w, h := imgs[0].Bounds().Dx(), imgs[0].Bounds().Dy()
	rect := image.Rect(0, 0, cols*w+(cols-1)*imgio.Pad, rows*h+(rows-1)*imgio.Pad)
	var dst draw.Image = image.NewRGBA(rect)
	if allGray(imgs) {
		dst = image.NewGray(rect)
	}
	draw.Draw(dst, rect, image.White, image.Point{}, draw.Src)
	for i, img := range imgs {
		at := image.Pt((i%cols)*(w+imgio.Pad), (i/cols)*(h+imgio.Pad))
		draw.Draw(dst, image.Rectangle{at, at.Add(image.Pt(w, h))}, img, img.Bounds().Min, draw.Src)
	}
	return dst
}

func allGray(imgs []image.Image) bool {
	for _, img := range imgs {
		if _, ok := img.(*image.Gray); !ok {
			return false
		}
	}
	return true
}

// SaveGrid writes images as one [Grid] picture to path, PNG or JPEG by its
// extension, atomically; the directory must exist.
func SaveGrid(path string, imgs []image.Image, cols int) error {
	if err := imgio.CheckOutput(path); err != nil {
		return err
	}
	return imgio.WriteImage(path, Grid(imgs, cols))
}
