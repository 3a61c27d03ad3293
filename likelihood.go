package ddpm

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/plot"
	"github.com/ddpm-go/ddpm/internal/text"
)

// BPDOptions control [Pipeline.BitsPerDim]. The zero value evaluates with
// 64 (image, t) pairs per network call and seed 0.
type BPDOptions struct {
	// Batch is the number of (image, t) pairs per network call (0: 64).
	Batch int
	// Seed seeds the draws of every x_t.
	Seed uint64
	// Progress is called after each network call with the pairs done out
	// of n·T.
	Progress func(done, total int)
}

// bpdSeedStream is the PCG stream of the bound's draws ("bpd"), as `ddpm
// eval bpd` has always used.
const bpdSeedStream = 0x627064

// BitsPerDim computes the variational bound on the negative
// log-likelihood (the paper's eq. 5, every term exact, with the discretized
// decoder) of each image of x0 (values on the 256-level grid of [−1, 1]),
// in bits per dimension. It costs T network evaluations per image; it stops
// between network calls once ctx is done, returning ctx.Err().
func (p *Pipeline) BitsPerDim(ctx context.Context, x0 *Tensor, o BPDOptions) (*diffusion.Bound, error) {
	if x0.C != p.Channels() || x0.H != p.Resolution() || x0.W != p.Resolution() {
		return nil, fmt.Errorf("%w: images of %d×%d×%d, the model takes %d×%d×%d", ErrInvalidOption, x0.C, x0.H, x0.W, p.Channels(), p.Resolution(), p.Resolution())
	}
	if o.Batch <= 0 {
		o.Batch = 64
	}
	return p.Process.EvaluateBound(ctx, p.net(), x0.Data, x0.N, diffusion.BoundOptions{
		Batch: o.Batch, Rng: rand.New(rand.NewPCG(o.Seed, bpdSeedStream)), Progress: o.Progress,
	})
}

// DataTensor converts the first n images of a split ("train" or "test") of
// the data set spec (empty: the model's training data) to the model's
// input, for [Pipeline.BitsPerDim].
func (p *Pipeline) DataTensor(spec, split string, n int) (*Tensor, error) {
	ds, spec, err := p.LoadData(spec, split)
	if err != nil {
		return nil, err
	}
	return p.firstImages(ds, spec, split, n)
}

// firstImages converts the first n images of ds in its sample order (see
// data.Dataset.SampleOrder: shuffled where the split is stored by label),
// the split split of the data set spec, to the model's input.
func (p *Pipeline) firstImages(ds *data.Dataset, spec, split string, n int) (*Tensor, error) {
	if n <= 0 || n > ds.N {
		return nil, fmt.Errorf("%w: %d images asked of the %d of the %s %s split", ErrInvalidOption, n, ds.N, spec, split)
	}
	idx := ds.SampleOrder()[:n]
	t := &Tensor{Data: make([]float32, n*p.dims()), N: n, C: p.Channels(), H: p.Resolution(), W: p.Resolution()}
	ds.ToFloat(t.Data, idx, p.Resolution())
	return t, nil
}

// EvalBPDOptions choose the images of [Pipeline.EvaluateBPD] and how the
// bound's x_t are drawn. The zero value takes the whole test split of the
// model's training data.
type EvalBPDOptions struct {
	// Data is the data-set spec (empty: the model's training data).
	Data string
	// Split is "train" or "test" (empty: test); compare them to see
	// overfitting.
	Split string
	// N is how many of the split's first images are evaluated (0: all).
	N int
	// BPDOptions are the batch, the seed and the progress of the bound.
	BPDOptions
	// Begin, when set, is called with the number of images once they are
	// read, before the bound starts: to announce a long job or size a
	// progress display.
	Begin func(images int)
}

// BPDReport is the bound of a data split's first images and where it came
// from, in bits per dimension of the data set's images (not of the
// model's padded input): what `ddpm eval bpd` prints.
type BPDReport struct {
	diffusion.BoundSummary
	Model    string  `json:"model"`
	Data     string  `json:"data"`
	Split    string  `json:"split"`
	T        int     `json:"T"`
	Dims     int     `json:"dims"`      // values per image the model sees (after padding)
	DataDims int     `json:"data_dims"` // values per image of the data set: the bits/dim denominator
	Seed     uint64  `json:"seed"`
	Var      string  `json:"var"`                  // the reverse variance the bound was computed with
	FitN     int     `json:"fit_images,omitempty"` // a fitted variance: the train images it was fitted on
	Seconds  float64 `json:"seconds"`
	// DecoderAtData is the decoder L_0 the images would score if the
	// network's mean at t = 1 were the image itself (absent with a learned
	// variance): the part of decoder_bpd that σ_1 alone costs.
	DecoderAtData float64 `json:"decoder_bpd_at_data,omitempty"`

	side, dataH, dataW int // the model's image side and the data set's image size, for WriteTable
}

// EvaluateBPD computes the bound ([Pipeline.BitsPerDim]) of the first
// images of a data split, scaled to bits per data dimension, and the
// decoder's cost at an exact x̂0 beside it. Errors of the caller's choice
// (a split or a count that does not fit) wrap [ErrInvalidOption]; a
// cancelled ctx returns ctx.Err() and no report: the bound needs every t
// of every image.
func (p *Pipeline) EvaluateBPD(ctx context.Context, o EvalBPDOptions) (*BPDReport, error) {
	if o.Split == "" {
		o.Split = "test"
	}
	if o.N < 0 {
		return nil, fmt.Errorf("%w: the number of images must be ≥ 0 (0: the whole split), got %d", ErrInvalidOption, o.N)
	}
	ds, spec, err := p.LoadData(o.Data, o.Split)
	if err != nil {
		return nil, err
	}
	n := o.N
	if n == 0 {
		n = ds.N
	}
	x0, err := p.firstImages(ds, spec, o.Split, n)
	if err != nil {
		return nil, err
	}
	if o.Begin != nil {
		o.Begin(n)
	}
	start := time.Now()
	b, err := p.BitsPerDim(ctx, x0, o.BPDOptions)
	if err != nil {
		return nil, err
	}
	d := p.Process
	scale := float64(p.dims()) / float64(ds.ImageSize()) // bits per data dimension
	r := &BPDReport{
		BoundSummary: b.Summary(scale),
		Model:        p.Source.Name, Data: spec, Split: o.Split, T: d.T, Dims: p.dims(), DataDims: ds.ImageSize(), Seed: o.Seed,
		Seconds: time.Since(start).Seconds(), Var: d.Var.String(),
		side: p.Resolution(), dataH: ds.H, dataW: ds.W,
	}
	if d.Fit != nil {
		r.FitN = d.Fit.Images
	}
	if d.Var != diffusion.Learned {
		for _, v := range d.DecoderBPDAtData(x0.Data, n) {
			r.DecoderAtData += v * scale / float64(n)
		}
	}
	return r, nil
}

// SavePlot writes a PNG of the bound's term at every t to path.
func (r *BPDReport) SavePlot(path string) error {
	title := fmt.Sprintf("%s %s, %s: total %.4f bits/dim", r.Data, r.Split, text.Plural(r.N, "image"), r.TotalBPD)
	return plot.PerT(path, title, plot.Curve{Name: r.Split, PerT: r.PerTBPD})
}

// WriteTable writes the report as the table `ddpm eval bpd` prints: the
// total with its standard error, its three parts, and the speed.
func (r *BPDReport) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "NLL bound on the first %s of %s (%s), T = %d, model %s, variance %s\n", text.Plural(r.N, "image"), r.Data, r.Split, r.T, r.Model, r.Var)
	if r.Dims != r.DataDims {
		fmt.Fprintf(w, "images padded from %d×%d to %d×%d: bits are per data dimension (%d), i.e. the padded image's bound × %d/%d\n",
			r.dataH, r.dataW, r.side, r.side, r.DataDims, r.Dims, r.DataDims)
	}
	fmt.Fprintf(w, "  %-28s %10.5f ± %.5f bits/dim (± standard error over images)\n", "total L", r.TotalBPD, r.TotalBPDStderr)
	fmt.Fprintf(w, "  %-28s %10.3e\n", "prior L_T", r.PriorBPD)
	fmt.Fprintf(w, "  %-28s %10.5f\n", "terms L_1 + … + L_{T-1}", r.TermsBPD)
	fmt.Fprintf(w, "  %-28s %10.5f\n", "decoder L_0", r.DecoderBPD)
	if r.DecoderAtData > 0 {
		fmt.Fprintf(w, "  %-28s %10.5f (σ_1's cost: L_0 if the network's x̂0 at t = 1 were exact)\n", "  L_0 with μ = x0", r.DecoderAtData)
	}
	evals := float64(r.N * r.T)
	fmt.Fprintf(w, "%s, %.1f network evaluations/s\n", time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond), evals/r.Seconds)
}
