package quality

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/ddpm-go/ddpm/classifier"
	"github.com/ddpm-go/ddpm/data"
)

// NeighboursN is how many pairs [Report.Neighbours] returns by default.
const NeighboursN = 16

// NearCopyFactor and NearCopyQuantile define a near-copy: an image whose
// nearest training image (Euclidean distance in pixels) is closer than
// NearCopyFactor times the NearCopyQuantile-quantile of the same distance
// for the held-out real images of the floor. Real images the model never
// saw set the scale: only 1 % of them come as close to the training set as
// the quantile, and a near-copy must come twice as close again, so held-out
// images themselves are (almost) never near-copies and each near-copy is a
// sample closer to one training image than unseen data ever is.
const (
	NearCopyFactor   = 0.5
	NearCopyQuantile = 0.01
)

// Memorization compares how close the scored images sit to the training
// set with how close held-out real images do (the floor's N test images):
// for each image, the distance to its nearest training image, searched
// exactly over the whole train split, in pixels (Euclidean, over the
// C·H·W values in [−1, 1] that the classifier sees) and in the
// classifier's features. A model that memorises puts its samples nearer
// the training images than unseen real images are: medians below the
// floor's, and near-copies (see NearCopyFactor).
type Memorization struct {
	TrainN int `json:"train_images"` // training images searched (the whole split)
	// Threshold is the near-copy pixel distance: NearCopyFactor × the
	// NearCopyQuantile-quantile of the floor's pixel distances.
	Threshold float64   `json:"near_copy_threshold"`
	Images    MemoStats `json:"images"`
	Floor     MemoStats `json:"floor"`
}

// MemoStats summarise the nearest-training-image distances of one set.
type MemoStats struct {
	PixelMin      float64 `json:"pixel_min"`
	PixelMedian   float64 `json:"pixel_median"`
	PixelMean     float64 `json:"pixel_mean"`
	FeatureMin    float64 `json:"feature_min"`
	FeatureMedian float64 `json:"feature_median"`
	FeatureMean   float64 `json:"feature_mean"`
	NearCopies    int     `json:"near_copies"`     // images whose pixel distance is below the threshold
	NearCopyShare float64 `json:"near_copy_share"` // NearCopies / N
}

// StageMemorization is the [Progress] stage of the memorization check:
// Done of Total counts training images — run through the classifier (none
// when its features are cached), then searched in pixels, then in
// features (3 × the train split).
const StageMemorization = "nearest training images"

// memorization runs the check for the prepared images gen (n classifier
// inputs) and the floor's test images testIdx, whose features are genF and
// floorF. It returns the summary and, for each generated image, its
// nearest training image and pixel distance.
func memorization(ctx context.Context, opt *Options, gen []float32, n int, genF, floorF [][]float64, testIdx []int) (*Memorization, []int, []float64, error) {
	train, test, cls := opt.Train, opt.Test, opt.Classifier
	D := train.ImageSize()
	if len(gen) != n*D || test.ImageSize() != D {
		return nil, nil, nil, fmt.Errorf("quality: memorization: images of %d values, train %d, test %d", len(gen)/max(n, 1), D, test.ImageSize())
	}
	total := 3 * train.N
	report := func(done int) {
		if opt.Progress != nil {
			opt.Progress(Progress{Stage: StageMemorization, Done: done, Total: total})
		}
	}
	report(0)
	trainF, err := trainFeatures(cls, train, report)
	if err != nil {
		return nil, nil, nil, err
	}
	report(train.N)
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}

	// Pixels: the images, then the floor's test images, in one pass.
	q := make([]float32, 2*n*D)
	copy(q, gen)
	test.ToFloat(q[n*D:], testIdx, 0)
	idxBuf := make([]int, nnRefBlock)
	pixIdx, pixDist := nearestRows(q, 2*n, D, train.N, func(dst []float32, lo, hi int) {
		for k := range hi - lo {
			idxBuf[k] = lo + k
		}
		train.ToFloat(dst, idxBuf[:hi-lo], 0)
	}, func(done int) { report(train.N + done) })
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}

	// Features.
	fd := len(trainF) / train.N
	fq := make([]float32, 2*n*fd)
	for i, row := range slices.Concat(genF, floorF) {
		for j, v := range row {
			fq[i*fd+j] = float32(v)
		}
	}
	_, featDist := nearestRows(fq, 2*n, fd, train.N, func(dst []float32, lo, hi int) {
		copy(dst, trainF[lo*fd:hi*fd])
	}, func(done int) { report(2*train.N + done) })

	m := &Memorization{TrainN: train.N}
	m.Threshold = NearCopyFactor * quantile(pixDist[n:], NearCopyQuantile)
	m.Images = memoStats(pixDist[:n], featDist[:n], m.Threshold)
	m.Floor = memoStats(pixDist[n:], featDist[n:], m.Threshold)
	report(total)
	return m, pixIdx[:n], pixDist[:n], nil
}

func memoStats(pix, feat []float64, threshold float64) MemoStats {
	s := MemoStats{
		PixelMin: slices.Min(pix), PixelMedian: quantile(pix, 0.5), PixelMean: mean(pix),
		FeatureMin: slices.Min(feat), FeatureMedian: quantile(feat, 0.5), FeatureMean: mean(feat),
	}
	for _, d := range pix {
		if d < threshold {
			s.NearCopies++
		}
	}
	s.NearCopyShare = float64(s.NearCopies) / float64(len(pix))
	return s
}

// quantile is the p-quantile of x by linear interpolation between order
// statistics (numpy's default).
func quantile(x []float64, p float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	h := p * float64(len(s)-1)
	lo := int(math.Floor(h))
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (h-float64(lo))*(s[lo+1]-s[lo])
}

func mean(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// featureCache keeps the features of the latest training set run through
// a classifier (60 000 MNIST images take tens of seconds), keyed by a hash
// of the classifier's weights and of the images, so that scoring several
// sets of images in one process computes them once.
var featureCache struct {
	sync.Mutex
	key   uint64
	feats []float32 // [N][FeatureDim]
}

var cacheSeed = maphash.MakeSeed()

// trainFeatures returns the features of every image of train, as float32
// rows (the search works in float32), from the cache when it can.
func trainFeatures(cls *classifier.Net, train *data.Dataset, progress func(done int)) ([]float32, error) {
	var h maphash.Hash
	h.SetSeed(cacheSeed)
	a := cls.Arch()
	fmt.Fprintf(&h, "%s %d %s %d %d %d %d|", a.Name, cls.NumClasses(), train.Name, train.N, train.C, train.H, train.W)
	w := cls.Weights()
	h.Write(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 4*len(w)))
	h.Write(train.Pixels)
	key := h.Sum64()
	featureCache.Lock()
	defer featureCache.Unlock()
	if featureCache.feats != nil && featureCache.key == key {
		return featureCache.feats, nil
	}
	out, err := cls.ApplyDataset(train, nil, progress)
	if err != nil {
		return nil, err
	}
	fd := cls.FeatureDim()
	f := make([]float32, train.N*fd)
	for i, row := range out.Features {
		for j, v := range row {
			f[i*fd+j] = float32(v)
		}
	}
	featureCache.key, featureCache.feats = key, f
	return f, nil
}

// Neighbours returns, for the k scored images gen nearest to a training
// image (nearest first; k ≤ 0 means NeighboursN), each image followed by
// its nearest training image from train (the split [Evaluate] searched,
// Options.Train), as one batch of 2k images of gen's shape: a grid with
// two columns shows rows of [image | nearest training image]. Training
// images smaller than gen (MNIST's 28×28 beside a padded model's 32×32)
// are padded the way data.Dataset.ToFloat pads. The report must come from
// Evaluate with the memorization check.
func (r *Report) Neighbours(gen Images, train *data.Dataset, k int) (Images, error) {
	if r.Memorization == nil || len(r.Nearest) != gen.N {
		return Images{}, fmt.Errorf("quality: the report has no memorization check for these %d images", gen.N)
	}
	if err := gen.check(); err != nil {
		return Images{}, err
	}
	if train.C != gen.C || train.H > gen.H || train.W > gen.W || gen.H != gen.W {
		return Images{}, fmt.Errorf("quality: training images %d×%d×%d cannot stand beside images %d×%d×%d", train.C, train.H, train.W, gen.C, gen.H, gen.W)
	}
	if k <= 0 {
		k = NeighboursN
	}
	k = min(k, gen.N)
	order := make([]int, gen.N)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(r.NearestDist[a], r.NearestDist[b]) })
	D := gen.Size()
	out := Images{X: make([]float32, 2*k*D), N: 2 * k, C: gen.C, H: gen.H, W: gen.W}
	for p, i := range order[:k] {
		copy(out.X[2*p*D:], gen.X[i*D:(i+1)*D])
		j := r.Nearest[i]
		if j < 0 || j >= train.N {
			return Images{}, fmt.Errorf("quality: nearest training image %d outside the %d of %s", j, train.N, train.Name)
		}
		pad := 0
		if train.H != gen.H {
			pad = gen.H
		}
		train.ToFloat(out.X[(2*p+1)*D:(2*p+2)*D], []int{j}, pad)
	}
	return out, nil
}
