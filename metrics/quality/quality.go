// Package quality scores generated images the way `ddpm eval quality`
// does: it runs them, a random subset of a data set's train split (the
// reference) and as many random test images (the real-data floor) through a
// classifier trained on that data set, and compares the features and class
// probabilities with package metrics — Fréchet distance, KID, Inception
// Score with its two entropies, improved precision and recall. The floor is
// what real images that the reference has not seen score: a sample can
// only be judged beside it, since with a LeNet instead of Inception no
// published number is comparable. A memorization check ([Memorization])
// compares the images' distances to their nearest training image with the
// floor's.
//
// The number of images N is at least [MinN] and at most the size of the
// test split ([Options.MaxN]): the floor scores N distinct test images.
// For MNIST that is 10 000; for the emoji data set, whose test split is
// 379 images, it is 379.
//
// The images come as one NCHW float32 tensor in [−1, 1] ([Images]), from a
// sampler or from a folder of pictures ([ReadFolder]).
package quality

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/metrics"
)

// MinN is the fewest images Evaluate scores: KID needs ten subsets of at
// least two images, the Inception Score ten splits.
const MinN = 2 * metrics.KIDMinSubsets

// DoubtedN is how many images [Report.Doubted] lists.
const DoubtedN = 64

// Images is a batch of N images of C×H×W values in [−1, 1], NCHW, image
// after image: what the samplers produce and imgio writes.
type Images struct {
	X          []float32
	N, C, H, W int
}

// Size is the number of values of one image, C·H·W.
func (im Images) Size() int { return im.C * im.H * im.W }

// check reports whether X holds N images of the stated shape.
func (im Images) check() error {
	if im.N < 0 || im.C < 1 || im.H < 1 || im.W < 1 || len(im.X) != im.N*im.Size() {
		return fmt.Errorf("quality: %d values are not %d images of %d×%d×%d", len(im.X), im.N, im.C, im.H, im.W)
	}
	return nil
}

// Subset returns the images idx of im, in that order, as a new batch
// (copied): e.g. the [Report.Doubted] images for a grid.
func (im Images) Subset(idx []int) Images {
	D := im.Size()
	out := Images{X: make([]float32, 0, len(idx)*D), N: len(idx), C: im.C, H: im.H, W: im.W}
	for _, i := range idx {
		out.X = append(out.X, im.X[i*D:(i+1)*D]...)
	}
	return out
}

// First returns the first k images of im (all of them if k ≥ N), sharing
// its storage.
func (im Images) First(k int) Images {
	k = min(max(k, 0), im.N)
	return Images{X: im.X[:k*im.Size()], N: k, C: im.C, H: im.H, W: im.W}
}

// CheckShape reports whether images of c channels and h×w pixels can be
// scored by a LeNet classifier (MNIST, Fashion-MNIST): it takes grey 28×28
// images, or larger square ones that it centre-crops (a 32×32 model's
// padded digits). [Options.CheckShape] checks against the classifier in
// use. Call it before sampling for an hour.
func CheckShape(c, h, w int) error {
	_, err := classifier.Prepare(nil, 0, c, h, w)
	return err
}

// CheckShape reports whether images of c channels and h×w pixels can be
// scored with o's classifier (the LeNet's rule before [Options.Load]; the
// emoji classifier takes 3×32×32 images).
func (o *Options) CheckShape(c, h, w int) error {
	if o.Classifier == nil {
		return CheckShape(c, h, w)
	}
	_, err := o.Classifier.Prepare(nil, 0, c, h, w)
	return err
}

// Options say what the images are compared against and how.
type Options struct {
	// Data names the data set the images imitate ("mnist",
	// "fashion-mnist"): the report's name for it, and where Train, Test
	// and Classifier come from when they are nil.
	Data string
	// Classifier computes the features and class probabilities; nil
	// means the one shipped for Data.
	Classifier *classifier.Net
	// Train is the reference (N random images of it) and Test the floor
	// (N random images scored like the generated ones); nil means Data's
	// splits, loaded by [Options.Load].
	Train, Test *data.Dataset
	// Seed draws the real subsets and KID's subsets: the same seed and
	// images give the same report.
	Seed uint64
	// Source says where the images came from, for the report (a model and
	// sampler, a folder).
	Source string
	// Progress, when not nil, is called as the work advances.
	Progress func(Progress)
	// SkipMemorization leaves out the memorization check, which runs the
	// whole train split through the classifier (tens of seconds for
	// MNIST's 60 000 images, once per process) and searches it.
	SkipMemorization bool
}

// Stages of [Progress].
const (
	// StageFeatures: Done of Total images run through the classifier —
	// the generated ones, then the reference, then the floor (3N).
	StageFeatures = "classifier features"
	// StageMetrics: Done of Total (8) measures finished, four for the
	// images and four for the floor; Measure names the one starting.
	StageMetrics = "metrics"
)

// Progress is one report of how far [Evaluate] is.
type Progress struct {
	Stage       string // StageFeatures or StageMetrics
	Done, Total int
	Measure     string // with StageMetrics: the measure being computed ("" when all are done)
}

// Load fills in the classifier and the splits that o leaves nil, from
// o.Data, and checks that the splits suit the classifier. A caller that
// calls it before producing the images can check their number against
// [Options.MaxN] first; [Evaluate] calls it itself.
func (o *Options) Load() error {
	if o.Classifier == nil || o.Train == nil || o.Test == nil {
		if o.Data == "" {
			return errors.New("quality: no data set named")
		}
	}
	var err error
	if o.Classifier == nil {
		if o.Classifier, _, err = classifier.Embedded(o.Data); err != nil {
			return err
		}
	}
	if o.Train == nil {
		if o.Train, err = data.Load(o.Data, "train"); err != nil {
			return err
		}
	}
	if o.Test == nil {
		if o.Test, err = data.Load(o.Data, "test"); err != nil {
			return err
		}
	}
	return nil
}

// MaxN is the most images [Evaluate] scores with o: the floor draws as
// many real images from each split as there are images. It is 0 before
// [Options.Load].
func (o *Options) MaxN() int {
	if o.Train == nil || o.Test == nil {
		return 0
	}
	return min(o.Train.N, o.Test.N)
}

// Report is the outcome of [Evaluate]; its JSON form is what
// `ddpm eval quality --json` prints: the scores of the images at the top
// level and the real-data floor under "floor".
type Report struct {
	Data     string `json:"data"`
	Source   string `json:"source"`
	N        int    `json:"n"`
	Seed     uint64 `json:"seed"`
	Features string `json:"features"`
	// Net names the feature network for the table ("LeNet", "cnn32").
	Net string `json:"feature_net"`
	metrics.Scores
	Floor metrics.Scores `json:"floor"`
	// Memorization is the nearest-training-image check (nil when skipped).
	Memorization *Memorization `json:"memorization,omitempty"`
	// Doubted are the indices of the DoubtedN images (fewer when N is
	// smaller) whose most probable class the classifier gives the lowest
	// probability, least sure first: what holds the Inception Score down,
	// to look at (Images.Subset).
	Doubted []int `json:"-"`
	// Nearest and NearestDist are, for each image, the index in the train
	// split of its nearest training image (in pixels) and the distance:
	// see [Report.Neighbours].
	Nearest     []int     `json:"-"`
	NearestDist []float64 `json:"-"`
}

// Evaluate scores the images gen against N random train images of the
// data set and, computed the same way, N random test images against the
// same reference: the floor. Unless opt.SkipMemorization, it then runs
// the memorization check against the whole train split. ctx is checked
// between the stages (the three classifier passes, the images' measures
// and the floor's, the memorization searches).
func Evaluate(ctx context.Context, gen Images, opt Options) (*Report, error) {
	if err := gen.check(); err != nil {
		return nil, err
	}
	n := gen.N
	if n < MinN {
		return nil, fmt.Errorf("quality: the metrics need at least %d images, got %d", MinN, n)
	}
	if err := opt.Load(); err != nil {
		return nil, err
	}
	if n > opt.MaxN() {
		return nil, fmt.Errorf("quality: %d images exceed the %d real images of each split that the floor needs", n, opt.MaxN())
	}
	in, err := opt.Classifier.Prepare(gen.X, n, gen.C, gen.H, gen.W)
	if err != nil {
		return nil, err
	}
	report := func(p Progress) {
		if opt.Progress != nil {
			opt.Progress(p)
		}
	}
	cls := opt.Classifier

	// Features of the scored images, of N random train images (the
	// reference) and of N random test images (the floor: real data that
	// the reference has not seen, scored exactly like the images).
	pick := rand.New(rand.NewPCG(opt.Seed, 0x7265616c)) // "real"
	trainIdx, testIdx := pick.Perm(opt.Train.N)[:n], pick.Perm(opt.Test.N)[:n]
	features := func(base int) func(int) {
		return func(done int) { report(Progress{Stage: StageFeatures, Done: base + done, Total: 3 * n}) }
	}
	report(Progress{Stage: StageFeatures, Total: 3 * n})
	g, err := cls.Apply(in, n, features(0))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ref, err := cls.ApplyDataset(opt.Train, trainIdx, features(n))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	floor, err := cls.ApplyDataset(opt.Test, testIdx, features(2*n))
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Each measure is announced as it starts: Done counts the finished
	// ones (4 for the images, 4 for the floor).
	started := 0
	stage := func(name string) {
		report(Progress{Stage: StageMetrics, Done: started, Total: 8, Measure: name})
		started++
	}
	kid := rand.New(rand.NewPCG(opt.Seed, 0x6b6964)) // "kid"
	netName := cls.Arch().Name
	if netName == classifier.LeNet {
		netName = "LeNet"
	}
	r := &Report{Data: opt.Data, Source: opt.Source, N: n, Seed: opt.Seed,
		Features: fmt.Sprintf("%s classifier, %d-d penultimate layer", opt.Data, cls.FeatureDim()),
		Net:      netName,
		Doubted:  classifier.LeastSure(g.Probs, DoubtedN)}
	if r.Scores, err = metrics.Compare(ref.Features, g.Features, g.Probs, kid, stage); err != nil {
		return nil, fmt.Errorf("scoring the images (non-finite pixels from a diverged model?): %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.Floor, err = metrics.Compare(ref.Features, floor.Features, floor.Probs, kid, stage); err != nil {
		return nil, fmt.Errorf("scoring the real-data floor: %w", err)
	}
	report(Progress{Stage: StageMetrics, Done: 8, Total: 8})
	if !opt.SkipMemorization {
		if r.Memorization, r.Nearest, r.NearestDist, err = memorization(ctx, &opt, in, n, g.Features, floor.Features, testIdx); err != nil {
			return nil, err
		}
	}
	return r, nil
}
