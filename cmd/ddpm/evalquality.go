package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	_ "image/jpeg" // DecodeConfig of --ref folders
	_ "image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/metrics"
	"github.com/ddpm-go/ddpm/pretrained"
)

func init() {
	registerEval("quality", "sample quality on classifier features: FD, KID, IS, precision/recall, beside the real-data floor", runEvalQuality)
}

// minQualityN is the fewest images the metrics accept: KID needs ten
// subsets of at least two, the Inception Score ten splits.
const minQualityN = 2 * metrics.KIDMinSubsets

// maxGrid caps the --samples grid: 10 000 tiles would be a picture nobody
// can look at.
const maxGrid = 256

// doubtedGrid is how many images the --doubted grid shows (8×8).
const doubtedGrid = 64

// qualityReport is what --json prints: the scores of the images (flat at
// the top level) and the real-data floor computed the same way.
type qualityReport struct {
	Data     string `json:"data"`
	Source   string `json:"source"`
	N        int    `json:"n"`
	Seed     uint64 `json:"seed"`
	Features string `json:"features"`
	metrics.Scores
	Floor metrics.Scores `json:"floor"`
}

func runEvalQuality(args []string) error {
	fs := newFlags("eval quality", "[--model mnist|fashion-mnist|DIR|FILE | --ref DIR] [--n 1000] [--sampler ancestral|ddim|respaced|langevin] [flags]")
	modelPath := fs.String("model", "", "model to sample from: "+modelHelp+" (default "+pretrained.Default+" unless --ref is given)")
	refDir := fs.String("ref", "", "score this folder of PNG/JPEG images instead of sampling (any generator)")
	spec := fs.String("data", "", "data set the images imitate: mnist or fashion-mnist (default: the model's training data; required with --ref)")
	n := fs.Int("n", 1000, "number of images scored, and of real images in the floor")
	batch := fs.Int("batch", 64, "images denoised together while sampling")
	seed := fs.Uint64("seed", 0, "random seed (samples, real subsets, KID subsets)")
	asJSON := fs.Bool("json", false, "print the scores as JSON")
	samples := fs.String("samples", "", fmt.Sprintf("also save a PNG grid of (the first %d of) the scored images", maxGrid))
	doubted := fs.String("doubted", "", fmt.Sprintf("also save a PNG grid of the %d scored images the classifier is least sure of, least sure first", doubtedGrid))
	clsPath := fs.String("classifier", "", "feature classifier weights (default: the one shipped for the data set)")
	raw := fs.Bool("raw", false, "sample with the raw weights instead of the EMA weights")
	quiet := fs.Bool("quiet", false, "no progress bars")
	var dc diffusion.Config
	diffusionFlags(fs, &dc, false)
	sf := addSamplerFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelPath != "" && *refDir != "" {
		return usageErr("give exactly one of --model (sample from a model) and --ref (score a folder of images)")
	}
	if *modelPath == "" && *refDir == "" {
		*modelPath = pretrained.Default
	}
	if *refDir != "" && *spec == "" {
		return usageErr("--ref needs --data (which data set the images imitate)")
	}
	if *n < minQualityN {
		return usageErr("--n must be at least %d, got %d", minQualityN, *n)
	}
	if *batch <= 0 {
		return usageErr("--batch must be positive")
	}
	if *spec == "" {
		var err error
		if *spec, err = modelDataSpec(*modelPath); err != nil {
			return err
		}
	}
	cls, err := loadClassifier(*spec, *clsPath)
	if err != nil {
		return err
	}
	train, test, err := loadSplits(*spec)
	if err != nil {
		return err
	}
	if *n > test.N || *n > train.N {
		return usageErr("--n %d exceeds the %d test images the real-data floor needs", *n, min(test.N, train.N))
	}

	// The images to score, NCHW in [−1, 1], with their own shape.
	var (
		x       []float32
		c, side int
		source  string
	)
	if *modelPath != "" {
		source = "model " + *modelPath + ", " + sf.name + " sampler"
		if flagSet(fs, "var") {
			source += ", " + dc.Var.String() + " variance"
		}
		if x, c, side, err = sampleForQuality(*modelPath, *raw, fs, dc, sf, *n, *batch, *seed, *quiet); err != nil {
			return err
		}
	} else {
		source = "folder " + *refDir
		if x, c, side, err = loadRef(*refDir, n); err != nil {
			return err
		}
	}
	in, err := classifier.Prepare(x, *n, c, side, side)
	if err != nil {
		return err
	}
	if *samples != "" {
		k := min(*n, maxGrid)
		if err := imgio.SaveGrid(*samples, x[:k*c*side*side], k, c, side, side, 0); err != nil {
			return err
		}
	}

	// Features of the scored images, of N random train images (the
	// reference) and of N random test images (the floor: real data that
	// the reference has not seen, scored exactly like the samples).
	pick := rand.New(rand.NewPCG(*seed, 0x7265616c)) // "real"
	trainIdx, testIdx := pick.Perm(train.N)[:*n], pick.Perm(test.N)[:*n]
	bar := progress.New(3**n, "classifier features", "img", *quiet)
	gen, err := cls.Apply(in, *n, func(done int) { bar.Set(done) })
	if err != nil {
		return err
	}
	if *doubted != "" {
		if err := saveDoubted(*doubted, x, gen.Probs, c, side); err != nil {
			return err
		}
	}
	ref, err := cls.ApplyDataset(train, trainIdx, func(done int) { bar.Set(*n + done) })
	if err != nil {
		return err
	}
	floor, err := cls.ApplyDataset(test, testIdx, func(done int) { bar.Set(2**n + done) })
	if err != nil {
		return err
	}
	bar.Finish()

	// Compare names each measure as it starts: the bar counts the finished
	// ones (4 for the images, 4 for the floor).
	stages := progress.New(8, "metrics", "stage", *quiet)
	started := 0
	stage := func(name string) {
		stages.Set(started)
		started++
		stages.Describe(name)
	}
	kid := rand.New(rand.NewPCG(*seed, 0x6b6964)) // "kid"
	r := qualityReport{Data: *spec, Source: source, N: *n, Seed: *seed,
		Features: fmt.Sprintf("%s classifier, %d-d penultimate layer", *spec, classifier.FeatureDim)}
	if r.Scores, err = metrics.Compare(ref.Features, gen.Features, gen.Probs, kid, stage); err != nil {
		return fmt.Errorf("scoring the images (non-finite pixels from a diverged model?): %w", err)
	}
	if r.Floor, err = metrics.Compare(ref.Features, floor.Features, floor.Probs, kid, stage); err != nil {
		return fmt.Errorf("scoring the real-data floor: %w", err)
	}
	stages.Finish()

	if *asJSON {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	printQuality(r)
	return nil
}

// saveDoubted saves the doubtedGrid images of x (n×c×side×side) whose
// classifier probabilities probs have the lowest top class, least sure
// first: what a model gets wrong, to look at beside the doubt it scores.
func saveDoubted(path string, x []float32, probs [][]float64, c, side int) error {
	D := c * side * side
	idx := classifier.LeastSure(probs, doubtedGrid)
	grid := make([]float32, 0, len(idx)*D)
	for _, i := range idx {
		grid = append(grid, x[i*D:(i+1)*D]...)
	}
	return imgio.SaveGrid(path, grid, len(idx), c, side, side, 8)
}

// sampleForQuality draws n images from the model with the sampler the flags
// choose (ancestral by default), batch by batch with one generator seeded
// like `ddpm sample`, so the same seed, batch and sampler give the same
// images as that command. The shape is checked against the classifier
// before hours of sampling start.
func sampleForQuality(path string, raw bool, fs *flag.FlagSet, dc diffusion.Config, sf *samplerFlags, n, batch int, seed uint64, quiet bool) ([]float32, int, int, error) {
	m, d, err := loadModel(path, raw, fs, dc)
	if err != nil {
		return nil, 0, 0, err
	}
	sampler, err := sf.build(fs, d)
	if err != nil {
		return nil, 0, 0, err
	}
	cfg := m.Config()
	if _, err := classifier.Prepare(nil, 0, cfg.InCh, cfg.Res, cfg.Res); err != nil {
		return nil, 0, 0, fmt.Errorf("model %s: %w", path, err)
	}
	D := cfg.InCh * cfg.Res * cfg.Res
	rng := rand.New(rand.NewPCG(seed, 0x73616d70))
	chunks := (n + batch - 1) / batch
	bar := progress.New(chunks*sampler.Evaluations(d.T), fmt.Sprintf("sampling %d images (%s)", n, sampler), "eval", quiet)
	start := time.Now()
	x, err := diffusion.Generate(context.Background(), d, m, sampler, n, D, batch, rng, diffusion.Hooks{Progress: func(done, _ int) { bar.Set(done) }})
	if err != nil {
		return nil, 0, 0, err
	}
	bar.Finish()
	if !quiet {
		fmt.Fprintf(os.Stderr, "sampled %d images in %s\n", n, time.Since(start).Round(time.Second))
	}
	return x, cfg.InCh, cfg.Res, nil
}

// loadRef reads up to *n images of dir as grey pictures. Their side is
// the first image's when it is square and at least 28 pixels (a 32×32
// sample of a padded model is then centre-cropped by classifier.Prepare,
// not shrunk); other images are resized to 28×28. With fewer than *n
// images in dir, all of them are scored and *n shrinks to match, so that
// the floor uses as many real images.
func loadRef(dir string, n *int) ([]float32, int, int, error) {
	side, err := firstImageSide(dir)
	if err != nil {
		return nil, 0, 0, err
	}
	ds, err := data.Load("folder:"+dir, "", data.WithSize(side), data.WithChannels(1), data.WithLimit(*n))
	if err != nil {
		return nil, 0, 0, err
	}
	if ds.N < *n {
		if ds.N < minQualityN {
			return nil, 0, 0, fmt.Errorf("folder %s holds %d images; the metrics need at least %d", dir, ds.N, minQualityN)
		}
		fmt.Fprintf(os.Stderr, "%s holds %d images: scoring all of them (and %d real ones for the floor)\n", dir, ds.N, ds.N)
		*n = ds.N
	}
	idx := make([]int, ds.N)
	for i := range idx {
		idx[i] = i
	}
	x := make([]float32, ds.N*side*side)
	ds.ToFloat(x, idx, 0)
	return x, 1, side, nil
}

// firstImageSide is the side of the first (by name) image in dir if it is
// square and at least classifier.Size, else classifier.Size.
func firstImageSide(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("--ref: %w", err)
	}
	names := []string{}
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".png", ".jpg", ".jpeg":
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("--ref: %s holds no .png, .jpg or .jpeg images", dir)
	}
	slices.Sort(names)
	f, err := os.Open(filepath.Join(dir, names[0]))
	if err != nil {
		return 0, fmt.Errorf("--ref: %w", err)
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, fmt.Errorf("--ref: %s: %w", filepath.Join(dir, names[0]), err)
	}
	if cfg.Width == cfg.Height && cfg.Width >= classifier.Size && cfg.Width <= 64 {
		return cfg.Width, nil
	}
	return classifier.Size, nil
}

func printQuality(r qualityReport) {
	fmt.Printf("sample quality of %d images (%s) against %d random %s train images\n", r.N, r.Source, r.N, r.Data)
	fmt.Printf("features: %s (not Inception: not comparable with published FID/IS)\n\n", r.Features)
	row := func(name, a, b string) { fmt.Printf("%-28s %-22s %s\n", name, a, b) }
	row("", "images", "real floor (test vs train)")
	s, f := r.Scores, r.Floor
	row("FD (LeNet features)", fmt.Sprintf("%.3f", s.FD), fmt.Sprintf("%.3f", f.FD))
	row("KID (LeNet features)", fmt.Sprintf("%.4f ± %.4f", s.KID, s.KIDStderr), fmt.Sprintf("%.4f ± %.4f", f.KID, f.KIDStderr))
	row(fmt.Sprintf("IS (classifier, %d splits)", metrics.ISSplits), fmt.Sprintf("%.3f ± %.3f", s.ISMean, s.ISStd), fmt.Sprintf("%.3f ± %.3f", f.ISMean, f.ISStd))
	// log IS = H(y) − E H(y|x) (one split): which of the two holds it down.
	row("  class entropy H(y)", fmt.Sprintf("%.4f", s.ClassEntropy), fmt.Sprintf("%.4f", f.ClassEntropy))
	row("  doubt E H(y|x)", fmt.Sprintf("%.4f", s.PredEntropy), fmt.Sprintf("%.4f", f.PredEntropy))
	row(fmt.Sprintf("  unsure (top p < %.1f)", metrics.UnsureBelow), fmt.Sprintf("%.4f", s.Unsure), fmt.Sprintf("%.4f", f.Unsure))
	row(fmt.Sprintf("precision (k=%d)", metrics.PRNeighbours), fmt.Sprintf("%.4f", s.Precision), fmt.Sprintf("%.4f", f.Precision))
	row(fmt.Sprintf("recall (k=%d)", metrics.PRNeighbours), fmt.Sprintf("%.4f", s.Recall), fmt.Sprintf("%.4f", f.Recall))
}
