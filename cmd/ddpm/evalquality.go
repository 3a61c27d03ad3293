package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/ddpm-go/ddpm"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/metrics/quality"
)

func init() {
	registerEval("quality", "sample quality on classifier features: FD, KID, IS, precision/recall, beside the real-data floor", runEvalQuality)
}

// maxGrid caps the --samples grid: 10 000 tiles would be a picture nobody
// can look at.
const maxGrid = 256

// qualityReport is what --json prints: the scores of the images (flat at
// the top level) and the real-data floor computed the same way.
type qualityReport = quality.Report

// runEvalQuality is `ddpm eval quality`: parse the flags, sample from a
// model or read a folder, score with package quality, print.
func runEvalQuality(args []string) error {
	fs := newFlags("eval quality", "[--model mnist|fashion-mnist|DIR|FILE | --ref DIR] [--n 1000] [--sampler ancestral|ddim|respaced|langevin] [flags]")
	mf := addModelFlags(fs, "")
	modelPath := mf.path
	refDir := fs.String("ref", "", "score this folder of PNG/JPEG images instead of sampling (any generator)")
	spec := fs.String("data", "", "data set the images imitate: mnist, fashion-mnist or emoji (default: the model's training data; required with --ref)")
	n := fs.Int("n", 1000, "number of images scored, and of real images in the floor (at most the test split's size; left at the default, capped to it)")
	batch := fs.Int("batch", 64, "images denoised together while sampling")
	seed := fs.Uint64("seed", 0, "random seed (samples, real subsets, KID subsets)")
	asJSON := fs.Bool("json", false, "print the scores as JSON")
	samples := fs.String("samples", "", fmt.Sprintf("also save a grid of (the first %d of) the scored images (.png, .jpg or .jpeg)", maxGrid))
	doubted := fs.String("doubted", "", fmt.Sprintf("also save a grid of the %d scored images the classifier is least sure of, least sure first (.png, .jpg or .jpeg)", quality.DoubtedN))
	clsPath := fs.String("classifier", "", "feature classifier weights (default: the one shipped for the data set)")
	memo := fs.Bool("memorization", true, "also measure each image's distance to its nearest training image (pixels and features) against held-out real images', and count near-copies")
	neighbours := fs.String("neighbours", "", fmt.Sprintf("also save the %d scored images nearest to a training image, nearest first, each followed by that training image (four pairs a row; .png, .jpg or .jpeg)", quality.NeighboursN))
	quiet := fs.Bool("quiet", false, "no progress bars")
	sf := addSamplerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelPath != "" && *refDir != "" {
		return usageErr("give exactly one of --model (sample from a model) and --ref (score a folder of images)")
	}
	if *modelPath == "" && *refDir == "" {
		*modelPath = ddpm.DefaultModel
	}
	if *refDir != "" && *spec == "" {
		return usageErr("--ref needs --data (which data set the images imitate)")
	}
	if *n < quality.MinN {
		return usageErr("--n must be at least %d, got %d", quality.MinN, *n)
	}
	if *batch <= 0 {
		return usageErr("--batch must be positive")
	}
	if err := checkImageOut("samples", *samples); err != nil {
		return err
	}
	if err := checkImageOut("doubted", *doubted); err != nil {
		return err
	}
	if err := checkImageOut("neighbours", *neighbours); err != nil {
		return err
	}
	if *neighbours != "" && !*memo {
		return usageErr("--neighbours needs the memorization check (drop --memorization=false)")
	}
	var p *ddpm.Pipeline
	if *modelPath != "" {
		var err error
		if p, err = mf.load(*quiet); err != nil {
			return err
		}
		if *spec == "" {
			if *spec, err = p.TrainingData(); err != nil {
				return usageErr("--data is required: %v", err)
			}
		}
	}
	// The classifier and the real images first: a bad --n or data set is
	// an error before the sampling starts, not after.
	opt := quality.Options{Data: *spec, Seed: *seed, SkipMemorization: !*memo}
	var err error
	if opt.Classifier, err = loadClassifier(*spec, *clsPath); err != nil {
		return err
	}
	if err := opt.Load(); err != nil {
		return err
	}
	if p != nil {
		cfg := p.Net.Config()
		if err := opt.CheckShape(cfg.InCh, cfg.Res, cfg.Res); err != nil {
			return fmt.Errorf("model %s: %w", p.Source.Name, err)
		}
	}
	if *n > opt.MaxN() && !flagSet(fs, "n") {
		*n = opt.MaxN()
		if !*quiet {
			fmt.Fprintf(os.Stderr, "scoring %d images: the %s test split, which the real-data floor draws from, holds %d\n", *n, *spec, *n)
		}
	}
	if *n > opt.MaxN() {
		return usageErr("--n %d exceeds the %d test images the real-data floor needs", *n, opt.MaxN())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var gen quality.Images
	if p != nil {
		if gen, opt.Source, err = sampleForQuality(ctx, p, fs, sf, *n, *batch, *seed, *quiet); err != nil {
			return interrupted(err)
		}
	} else {
		opt.Source = "folder " + *refDir
		if gen, err = opt.ReadFolder(*refDir, *n); err != nil {
			return err
		}
		if gen.N < *n {
			fmt.Fprintf(os.Stderr, "%s holds %d images: scoring all of them (and %d real ones for the floor)\n", *refDir, gen.N, gen.N)
		}
	}
	if *samples != "" {
		g := gen.First(maxGrid)
		if err := imgio.SaveGrid(*samples, g.X, g.N, g.C, g.H, g.W, 0); err != nil {
			return err
		}
	}

	bars := newQualityBars(*quiet)
	opt.Progress = bars.update
	r, err := quality.Evaluate(ctx, gen, opt)
	if err != nil {
		return interrupted(err)
	}
	bars.finish()
	if *doubted != "" {
		d := gen.Subset(r.Doubted)
		if err := imgio.SaveGrid(*doubted, d.X, d.N, d.C, d.H, d.W, 8); err != nil {
			return err
		}
	}
	if *neighbours != "" {
		const neighbourPairsPerRow = 4 // a 4-row picture for 16 pairs, wide enough for the README
		pairs, err := r.Neighbours(gen, opt.Train, quality.NeighboursN)
		if err != nil {
			return err
		}
		if err := imgio.SaveGrid(*neighbours, pairs.X, pairs.N, pairs.C, pairs.H, pairs.W, 2*neighbourPairsPerRow); err != nil {
			return err
		}
	}

	if *asJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	return r.WriteTable(os.Stdout)
}

// interrupted turns a cancellation by Ctrl-C into one line that says so.
func interrupted(err error) error {
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted: no scores")
	}
	return err
}

// qualityBars draws quality.Evaluate's progress: a bar over the images the
// classifier has seen, then one over the measures, named as each starts.
type qualityBars struct {
	quiet                bool
	features, meas, memo *progress.Bar
}

func newQualityBars(quiet bool) *qualityBars { return &qualityBars{quiet: quiet} }

func (b *qualityBars) update(p quality.Progress) {
	switch p.Stage {
	case quality.StageFeatures:
		if b.features == nil {
			b.features = progress.New(p.Total, "classifier features", "img", b.quiet)
		}
		b.features.Set(p.Done)
	case quality.StageMetrics:
		if b.meas == nil {
			if b.features != nil {
				b.features.Finish()
			}
			b.meas = progress.New(p.Total, "metrics", "stage", b.quiet)
		}
		b.meas.Set(p.Done)
		if p.Measure != "" {
			b.meas.Describe(p.Measure)
		}
	case quality.StageMemorization:
		if b.memo == nil {
			if b.meas != nil {
				b.meas.Finish()
			}
			b.memo = progress.New(p.Total, "nearest training images", "img", b.quiet)
		}
		b.memo.Set(p.Done)
	}
}

func (b *qualityBars) finish() {
	if b.memo != nil {
		b.memo.Finish()
	} else if b.meas != nil {
		b.meas.Finish()
	}
}

// sampleForQuality draws n images from the model with the sampler the flags
// choose (ancestral by default), batch by batch with one generator seeded
// like `ddpm sample`, so the same seed, batch and sampler give the same
// images as that command. The shape is checked against the classifier
// before the sampling starts, and a long sampling run is announced with an
// estimate of its duration. source says where the images came from.
func sampleForQuality(ctx context.Context, p *ddpm.Pipeline, fs *flag.FlagSet, sf *samplerFlags, n, batch int, seed uint64, quiet bool) (gen quality.Images, source string, err error) {
	path, m, d := p.Source.Name, p.Net, p.Process
	source = "model " + path + ", " + sf.name + " sampler"
	if flagSet(fs, "var") {
		source += ", " + d.Var.String() + " variance"
	}
	sampler, err := sf.build(fs, p)
	if err != nil {
		return gen, "", err
	}
	cfg := m.Config() // its shape was checked against the classifier (Options.CheckShape)
	D := cfg.InCh * cfg.Res * cfg.Res
	chunks := (n + batch - 1) / batch
	evals := sampler.Evaluations(d.T)
	if e, ok := estimatePasses(m, chunks*evals, min(batch, n), D, d.OutChannels(cfg.InCh)*cfg.Res*cfg.Res, d.T/2); ok {
		hint := ""
		if fast := min(50, d.T); evals > 2*fast {
			hint = fmt.Sprintf("--sampler ddim --steps %d takes %s", fast, approx(e.scaled(chunks*fast)))
		}
		announce(fmt.Sprintf("sampling %d images × %d network evaluations (%s)", n, evals, sampler), e, hint)
	}
	bar := progress.New(chunks*evals, fmt.Sprintf("sampling %d images (%s)", n, sampler), "eval", quiet)
	start := time.Now()
	x, err := p.SampleTensor(ctx, n, ddpm.SampleOptions{Sampler: sampler, Seed: seed, Batch: batch,
		Progress: func(done, _ int) { bar.Set(done) }})
	if err != nil {
		return gen, "", err
	}
	bar.Finish()
	if !quiet {
		fmt.Fprintf(os.Stderr, "sampled %d images in %s\n", n, time.Since(start).Round(time.Second))
	}
	return quality.Images{X: x.Data, N: n, C: cfg.InCh, H: cfg.Res, W: cfg.Res}, source, nil
}
