package ddpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/hub"
	"github.com/ddpm-go/ddpm/internal/text"
	"github.com/ddpm-go/ddpm/interop"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/pretrained"
	"github.com/ddpm-go/ddpm/weights"
)

// ErrInvalidOption marks errors caused by options that do not fit the model
// (e.g. a fitted variance for a network that learns its own): the caller's
// choice, not a bad file.
var ErrInvalidOption = errors.New("invalid option")

// ErrNoTrainingData is returned when a model does not record the data set
// it was trained on and none was named.
var ErrNoTrainingData = errors.New("does not record the data set it was trained on")

// DefaultModel is the model commands use when none is named.
const DefaultModel = pretrained.Default

// ShippedModels lists the models embedded in the binary, by name.
func ShippedModels() []string { return pretrained.Names() }

// SourceKind is what a model source string named.
type SourceKind int

const (
	InMemory SourceKind = iota // made by New
	Shipped                    // embedded in the binary (package pretrained)
	RunDir                     // a `ddpm train --out` directory: its newest checkpoint
	File                       // a checkpoint or weights file
	// Diffusers is a Hugging Face diffusers model (package interop): a
	// DDPMPipeline folder, a bare UNet2DModel folder, or a weights file
	// with diffusers' (or pesser/pytorch_diffusion's) tensor names.
	Diffusers
)

// Source is where a pipeline's model came from.
type Source struct {
	Kind SourceKind
	// Name is the source string given to Load.
	Name string
	// Path is the file read (empty for shipped and in-memory models).
	Path string
	// ShadowsShipped is set when a local file or directory was read whose
	// name is also a shipped model's (as a local folder wins in diffusers'
	// from_pretrained): worth a warning.
	ShadowsShipped bool

	spacing diffusion.Spacing // a diffusers model's scheduler spacing, Pipeline.Spacing
	offset  int               // and its steps_offset
}

func (s Source) String() string {
	switch s.Kind {
	case Shipped:
		return "shipped model " + s.Name
	case RunDir:
		return "run " + s.Name + " (" + s.Path + ")"
	case File:
		return s.Path
	case Diffusers:
		if s.Name != s.Path {
			return "diffusers model " + s.Name + " (" + s.Path + ")"
		}
		return "diffusers model " + s.Path
	}
	return "in-memory model"
}

// An Option changes how [Load] builds a pipeline.
type Option func(*loadOptions)

type loadOptions struct {
	raw      bool
	variance *diffusion.ModelVar
	clip     *bool
	fitFile  string
	fitN     int // 0: not given
	progress func(done, total int)
}

// RawWeights loads the raw weights of a checkpoint instead of its EMA
// weights (shipped models and exported files hold only the EMA weights).
func RawWeights() Option { return func(o *loadOptions) { o.raw = true } }

// WithVariance overrides the reverse-process variance the model was saved
// with: [diffusion.FixedLarge] (σ_t² = β_t), [diffusion.FixedSmall]
// (σ_t² = β̃_t) or [diffusion.Fitted] (β̃_t plus the network's measured x̂0
// error, the tighter bound; see [WithFitFile] and [WithFitImages]).
func WithVariance(v diffusion.ModelVar) Option { return func(o *loadOptions) { o.variance = &v } }

// WithClip overrides whether x̂0 is clipped to [−1, 1] while sampling.
func WithClip(clip bool) Option { return func(o *loadOptions) { o.clip = &clip } }

// WithFitFile reads a fitted variance saved by `ddpm fit-variance` (or
// [Pipeline.SaveFit]) instead of measuring one; it implies WithVariance(Fitted).
func WithFitFile(path string) Option {
	return func(o *loadOptions) { o.fitFile = path; v := diffusion.Fitted; o.variance = &v }
}

// WithFitImages measures the fitted variance on the last n images of the
// model's training split (default [DefaultFitImages]), even for a shipped
// model whose fit ships beside it; it implies WithVariance(Fitted).
func WithFitImages(n int) Option {
	if n <= 0 {
		n = -1 // refused by MeasureFit, not mistaken for "not given"
	}
	return func(o *loadOptions) { o.fitN = n; v := diffusion.Fitted; o.variance = &v }
}

// WithProgress reports the progress of a variance fit measured during the
// load, in network evaluations.
func WithProgress(f func(done, total int)) Option { return func(o *loadOptions) { o.progress = f } }

// DefaultFitImages is how many training images a fitted variance is
// measured on: 64 images of 784 values give every step's x̂0 error to about
// 1 % and cost T forward passes of one batch.
const DefaultFitImages = 64

// fitMinBin is how many values a bin of x̂0 needs at a step to get a
// variance of its own; rarer bins take the step's pooled one. 100 values
// estimate a mean squared error to about 15 %.
const fitMinBin = 100

// fitSeed seeds the fit's x_t draws ("fit").
const fitSeed = 0x666974

// Load reads a model: the name of a shipped model ([ShippedModels]), a run
// directory of `ddpm train`, a checkpoint or a weights file, or a Hugging
// Face diffusers model — a pipeline folder (model_index.json, unet/,
// scheduler/), a bare UNet2DModel folder (config.json and weights) or
// .safetensors weights with diffusers' tensor names and their config.json
// beside them (see package interop; PyTorch .bin and .ckpt pickles are
// read too, through interop.ReadPickle) — or one on the
// Hugging Face hub, hf:org/name[@revision] (e.g. hf:google/ddpm-cifar10-32),
// fetched into the huggingface_hub cache (package hub; HF_HUB_OFFLINE=1
// reads the cache alone). A local file or directory wins over a shipped
// model or a hub id of the same name.
func Load(source string, opts ...Option) (*Pipeline, error) {
	return LoadContext(context.Background(), source, opts...)
}

// LoadContext is [Load] with a context, which stops a variance fit
// measured during the load.
func LoadContext(ctx context.Context, source string, opts ...Option) (*Pipeline, error) {
	var o loadOptions
	for _, f := range opts {
		f(&o)
	}
	net, dc, src, err := open(ctx, source, o.raw)
	if err != nil {
		return nil, err
	}
	fitted := o.variance != nil && *o.variance == diffusion.Fitted
	if o.variance != nil && !fitted {
		dc.Var = *o.variance
	}
	if o.clip != nil {
		dc.Clip = *o.clip
	}
	if fitted && dc.Var == diffusion.Learned {
		return nil, fmt.Errorf("%w: a fitted variance replaces a fixed one; %s learns its own", ErrInvalidOption, src)
	}
	d, err := diffusion.New(dc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	if want, have := d.OutChannels(net.Config().InCh), net.Config().OutCh; want != have {
		return nil, fmt.Errorf("%w: variance %s needs a network with %d output channels, %s has %d (trained with another variance choice)", ErrInvalidOption, dc.Var, want, src, have)
	}
	p := &Pipeline{Net: net, Process: d, Source: src, config: dc, Spacing: src.spacing, StepsOffset: src.offset}
	if fitted {
		p.config.Var = diffusion.Fitted
		if err := p.fit(ctx, o); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// open resolves a source string to a network and its diffusion config.
func open(ctx context.Context, source string, raw bool) (*unet.UNet, diffusion.Config, Source, error) {
	src := Source{Name: source}
	if source == "" {
		return nil, diffusion.Config{}, src, fmt.Errorf("%w: no model named (shipped models: %s)", ErrInvalidOption, strings.Join(ShippedModels(), ", "))
	}
	st, statErr := os.Stat(source)
	if statErr != nil && pretrained.Has(source) {
		src.Kind = Shipped
		if raw {
			return nil, diffusion.Config{}, src, fmt.Errorf("%w: the shipped model %s holds only its EMA weights", ErrInvalidOption, source)
		}
		net, dc, err := pretrained.Load(source)
		return net, dc, src, err
	}
	if statErr != nil && strings.HasPrefix(source, "hf:") {
		return openHub(ctx, source, raw, src)
	}
	if statErr != nil {
		return nil, diffusion.Config{}, src, fmt.Errorf("model %s: %w (shipped models: %s)", source, statErr, strings.Join(ShippedModels(), ", "))
	}
	src.ShadowsShipped = pretrained.Has(source)
	src.Kind, src.Path = File, source
	if st.IsDir() {
		src.Kind, src.Path = RunDir, checkpoint.Path(source)
		if _, err := os.Stat(src.Path); err != nil {
			if interop.IsDiffusers(source) {
				return openDiffusers(source, raw, src)
			}
			if src.ShadowsShipped {
				return nil, diffusion.Config{}, src, fmt.Errorf("model %s: the local directory %s holds no checkpoint and hides the shipped model of that name (run from another directory, or rename it)", source, source)
			}
			return nil, diffusion.Config{}, src, fmt.Errorf("model %s: the directory holds no checkpoint (%s): is it a `ddpm train --out` directory?", source, filepath.Base(src.Path))
		}
	} else if interop.IsDiffusers(source) {
		return openDiffusers(source, raw, src)
	} else if err := sniffSafetensors(source); err != nil {
		return nil, diffusion.Config{}, src, fmt.Errorf("model %s: %w", source, err)
	}
	net, dc, err := checkpoint.LoadModel(source, raw, nil)
	return net, dc, src, err
}

// openDiffusers reads the diffusers model at path (interop.Load).
func openDiffusers(path string, raw bool, src Source) (*unet.UNet, diffusion.Config, Source, error) {
	src.Kind, src.Path = Diffusers, path
	if raw {
		return nil, diffusion.Config{}, src, fmt.Errorf("%w: a diffusers model holds one set of weights (no raw/EMA pair)", ErrInvalidOption)
	}
	m, err := interop.Load(path)
	if err != nil {
		return nil, diffusion.Config{}, src, fmt.Errorf("model %s: %w", src.Name, err)
	}
	src.spacing, src.offset = m.Spacing, m.StepsOffset
	return m.Net, m.Process, src, nil
}

// openHub fetches the diffusers model of a hub id hf:org/name[@revision]
// into the hub cache (what a DDPM needs: hub.Pipeline, with the shards of a
// sharded checkpoint) and reads it. While
// no pickle reader is plugged in, a repository whose weights are .bin only
// is refused before anything is downloaded.
func openHub(ctx context.Context, source string, raw bool, src Source) (*unet.UNet, diffusion.Config, Source, error) {
	repo, rev, err := hub.ParseRef(source)
	if err != nil {
		return nil, diffusion.Config{}, src, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	sel := hub.Pipeline
	if interop.ReadPickle == nil {
		sel = func(files []string) ([]string, error) {
			picked, err := hub.Pipeline(files)
			for _, f := range picked {
				if strings.HasSuffix(f, ".bin") || strings.HasSuffix(f, ".bin.index.json") {
					return nil, fmt.Errorf("its weights are %s, a PyTorch pickle, which cannot be read yet (no pickle reader is built in), and no .safetensors", f)
				}
			}
			return picked, err
		}
	}
	dir, err := hub.NewClient().SnapshotWithShards(ctx, repo, rev, sel)
	if err != nil {
		return nil, diffusion.Config{}, src, fmt.Errorf("model %w", err)
	}
	return openDiffusers(dir, raw, src)
}

// sniffSafetensors reports a file that is plainly not safetensors (an
// image, text) in words rather than as an absurd header length.
func sniffSafetensors(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 512)
	k, _ := io.ReadFull(f, head)
	head = head[:k]
	if k >= 9 && head[8] == '{' {
		return nil
	}
	kind := http.DetectContentType(head)
	if i := strings.IndexByte(kind, ';'); i >= 0 {
		kind = kind[:i]
	}
	switch {
	case kind == "application/octet-stream" && k > 0:
		return nil // binary: the safetensors reader says what is wrong with it
	case k == 0:
		kind = "an empty file"
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		kind = "a zip archive (a PyTorch .bin/.pt?)"
	default:
		kind = "of type " + kind
	}
	return fmt.Errorf("not a safetensors checkpoint or weights file (it is %s)", kind)
}

// TrainingData is the data-set spec the model was trained on, as its file
// records it (e.g. "mnist"), for measurements on its own data.
func (p *Pipeline) TrainingData() (string, error) {
	f, err := p.trainingDataFit()
	return f.Data, err
}

// trainingDataFit is the training data the model records, with how its
// folder images were fitted to the network.
func (p *Pipeline) trainingDataFit() (checkpoint.DataFit, error) {
	var meta map[string]string
	var err error
	switch p.Source.Kind {
	case Shipped:
		meta, err = pretrained.Metadata(p.Source.Name)
	case RunDir, File:
		_, meta, err = weights.Load(p.Source.Path)
	}
	if err != nil {
		return checkpoint.DataFit{}, fmt.Errorf("model %s: %w", p.Source.Name, err)
	}
	f, err := checkpoint.TrainingDataFit(meta)
	if err != nil {
		return f, fmt.Errorf("model %s: %w", p.Source.Name, err)
	}
	if f.Data == "" {
		return f, fmt.Errorf("%s %w", p.Source, ErrNoTrainingData)
	}
	return f, nil
}

// LoadData reads a split ("train" or "test") of the data set spec (empty:
// the model's training data) in the model's image size and channels. The
// model's own training data is read as training read it: folder images
// cropped, scaled and converted only as its --resize and --channels did.
func (p *Pipeline) LoadData(spec, split string) (*data.Dataset, string, error) {
	if split != "train" && split != "test" {
		return nil, "", fmt.Errorf("%w: split must be train or test, got %q", ErrInvalidOption, split)
	}
	cfg := p.Net.Config()
	opts := []data.Option{data.WithSize(cfg.Res), data.WithChannels(cfg.InCh)}
	if spec == "" || strings.HasPrefix(spec, "folder:") {
		f, err := p.trainingDataFit()
		if err != nil && spec == "" {
			return nil, "", err
		}
		if err == nil && (spec == "" || spec == f.Data) {
			spec = f.Data
			if f.StrictFit {
				opts = append(opts, data.Strict(f.Resize, f.Channels != 0))
			}
		}
	}
	ds, err := data.Load(spec, split, opts...)
	if err != nil {
		return nil, "", err
	}
	if ds.C != cfg.InCh {
		return nil, "", fmt.Errorf("data set %s has %s, the model takes %d", spec, text.Plural(ds.C, "channel"), cfg.InCh)
	}
	if err := ds.CheckSize(cfg.Res); err != nil {
		return nil, "", err
	}
	return ds, spec, nil
}

// fit replaces the process's variance by the fitted one: read from
// o.fitFile, the one shipped beside a shipped model, or measured.
func (p *Pipeline) fit(ctx context.Context, o loadOptions) error {
	if o.fitFile != "" {
		if o.fitN != 0 {
			return fmt.Errorf("%w: a saved fit file and a number of images to measure one on exclude each other", ErrInvalidOption)
		}
		f, info, err := checkpoint.LoadFit(o.fitFile)
		if err != nil {
			return err
		}
		if err := p.fitSuits(info); err != nil {
			return fmt.Errorf("fit %s: %w", o.fitFile, err)
		}
		return p.useFit(f, o.fitFile)
	}
	if p.Source.Kind == Shipped && o.fitN == 0 {
		f, info, ok, err := pretrained.Fit(p.Source.Name)
		if err == nil && ok {
			err = p.fitSuits(info)
		}
		if err == nil && ok {
			return p.useFit(f, "shipped with "+p.Source.Name)
		}
		// A shipped fit that does not suit (the clipping changed): measure one.
	}
	n := o.fitN
	if n == 0 {
		n = DefaultFitImages
	}
	f, spec, err := p.MeasureFit(ctx, n, o.progress)
	if err != nil {
		return err
	}
	return p.useFit(f, fmt.Sprintf("%d %s train images", f.Images, spec))
}

func (p *Pipeline) useFit(f *diffusion.VarianceFit, from string) error {
	fd, err := p.Process.WithFit(f)
	if err != nil {
		return err
	}
	p.fixed, p.Process, p.fitFrom = p.Process, fd, from
	return nil
}

// fitSuits reports why a saved fit cannot stand for this network: it was
// measured on other weights or with the other clipping.
func (p *Pipeline) fitSuits(info checkpoint.FitInfo) error {
	if w := checkpoint.WeightsDigest(p.Net); info.ModelDigest != w {
		return fmt.Errorf("fitted to another network (weights %.12s…, this one's are %.12s…): make one with ddpm fit-variance", info.ModelDigest, w)
	}
	if info.Clip != p.Process.Clip {
		return fmt.Errorf("fitted with clipping %v, the process clips: %v (clip as the fit did, or refit)", info.Clip, p.Process.Clip)
	}
	return nil
}

// MeasureFit measures the fitted variance of the network under its fixed
// variance (diffusion.VarianceFit): its x̂0 error at every step and the
// best decoder scale, on the last n images of its training split in its
// sample order (data.Dataset.SampleOrder) — images that first-N train and
// test evaluations of the bound do not use. It
// returns the fit and the data set's spec; it does not change p.
func (p *Pipeline) MeasureFit(ctx context.Context, n int, progress func(done, total int)) (*diffusion.VarianceFit, string, error) {
	d := p.Process
	if p.fixed != nil {
		d = p.fixed
	}
	ds, spec, err := p.LoadData("", "train")
	if err != nil {
		return nil, "", fmt.Errorf("a fitted variance is measured on the model's training data: %w", err)
	}
	if n <= 0 || n > ds.N {
		return nil, "", fmt.Errorf("%w: fit images must be in 1..%d (the %s train split), got %d", ErrInvalidOption, ds.N, spec, n)
	}
	idx := ds.SampleOrder()[ds.N-n:]
	x0 := make([]float32, n*p.dims())
	ds.ToFloat(x0, idx, p.Resolution())
	f, err := d.MeasureFit(ctx, p.Net, x0, n, fitMinBin, diffusion.BoundOptions{
		Batch: 64, Rng: rand.New(rand.NewPCG(fitSeed, 0)), Progress: progress,
	})
	if err != nil {
		return nil, "", fmt.Errorf("fitting the variance: %w", err)
	}
	return f, spec, nil
}

// SaveFit writes the fitted variance f of this network to path, for
// [WithFitFile] and `--fit FILE`; spec names the data it was measured on.
func (p *Pipeline) SaveFit(path string, f *diffusion.VarianceFit, spec string) error {
	info := checkpoint.FitInfo{ModelDigest: checkpoint.WeightsDigest(p.Net), Data: spec, MinBin: fitMinBin, Clip: p.Process.Clip}
	return checkpoint.SaveFit(path, f, info)
}
