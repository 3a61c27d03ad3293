package metrics

import (
	"fmt"
	"math/rand/v2"
)

// Scores are the quality measures of one set of images against a
// reference set, with the JSON names `ddpm eval quality --json` prints.
type Scores struct {
	ISMean     float64 `json:"is_mean"`    // Inception Score (classifier probabilities), mean over ISSplits
	ISStd      float64 `json:"is_std"`     // its standard deviation over the splits
	FD         float64 `json:"fd"`         // Fréchet distance of the fitted Gaussians
	KID        float64 `json:"kid"`        // kernel distance (unbiased MMD², cubic kernel)
	KIDStderr  float64 `json:"kid_stderr"` // KID's standard error
	Precision  float64 `json:"precision"`  // improved precision, k = PRNeighbours
	Recall     float64 `json:"recall"`     // improved recall, k = PRNeighbours
	ClassStats         // the Inception Score's two entropies and the unsure share
}

// Compare scores the images whose features are gen and whose class
// probabilities are genProbs against the reference features ref: the
// distances FD and KID, precision and recall between the two sets, and the
// Inception Score of gen alone, with its ClassBreakdown. rng draws KID's subsets. stage, when not
// nil, is told the name of each measure before it is computed (the
// precision/recall neighbour search takes seconds on 10 000 images).
func Compare(ref, gen, genProbs [][]float64, rng *rand.Rand, stage func(name string)) (Scores, error) {
	if len(genProbs) != len(gen) {
		return Scores{}, fmt.Errorf("compare: %d feature rows but %d probability rows", len(gen), len(genProbs))
	}
	say := func(s string) {
		if stage != nil {
			stage(s)
		}
	}
	var s Scores
	var err error
	say("inception score")
	if s.ISMean, s.ISStd, err = InceptionScore(genProbs, ISSplits); err != nil {
		return Scores{}, err
	}
	if s.ClassStats, err = ClassBreakdown(genProbs); err != nil {
		return Scores{}, err
	}
	say("Fréchet distance")
	if s.FD, err = FD(ref, gen); err != nil {
		return Scores{}, err
	}
	say("KID")
	if s.KID, s.KIDStderr, err = KID(ref, gen, KIDSubsetSize, rng); err != nil {
		return Scores{}, err
	}
	say("precision/recall")
	if s.Precision, s.Recall, err = PrecisionRecall(ref, gen, PRNeighbours); err != nil {
		return Scores{}, err
	}
	return s, nil
}
