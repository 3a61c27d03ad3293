package metrics

import (
	"fmt"
	"math"
)

// ISSplits is the number of splits the Inception Score is averaged over,
// as in Salimans et al. 2016 and every paper that reports it (DDPM's
// Table 1 included).
const ISSplits = 10

// InceptionScore is exp(E_x KL(p(y|x) ‖ p(y))) computed from the class
// probabilities p(y|x) of generated images, one row per image, the way the
// reference implementation does it: the rows are cut into splits
// consecutive parts of ⌊n/splits⌋ rows (a remainder is dropped), each part
// gets its own marginal p(y) and score, and the result is the mean and the
// (population) standard deviation of the splits' scores. It ranges from 1
// (every image gets the same prediction) to the number of classes
// (confident predictions, all classes equally often).
func InceptionScore(probs [][]float64, splits int) (mean, std float64, err error) {
	if splits < 1 {
		return 0, 0, fmt.Errorf("inception score: %d splits, need at least 1", splits)
	}
	k, err := check("inception score", probs, splits)
	if err != nil {
		return 0, 0, err
	}
	for i, p := range probs {
		var s float64
		for _, v := range p {
			if v < 0 {
				return 0, 0, fmt.Errorf("inception score: row %d has a negative probability %g", i, v)
			}
			s += v
		}
		if math.Abs(s-1) > 1e-3 {
			return 0, 0, fmt.Errorf("inception score: row %d sums to %g, not 1 (pass probabilities, not logits)", i, s)
		}
	}
	part := len(probs) / splits
	scores := make([]float64, splits)
	py := make([]float64, k)
	for s := range splits {
		rows := probs[s*part : (s+1)*part]
		clear(py)
		for _, p := range rows {
			for j, v := range p {
				py[j] += v
			}
		}
		for j := range py {
			py[j] /= float64(part)
		}
		var kl float64
		for _, p := range rows {
			for j, v := range p {
				if v > 0 { // 0·log 0 = 0
					kl += v * (math.Log(v) - math.Log(py[j]))
				}
			}
		}
		scores[s] = math.Exp(kl / float64(part))
	}
	for _, v := range scores {
		mean += v
	}
	mean /= float64(splits)
	for _, v := range scores {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(splits)), nil
}

// UnsureBelow is the largest class probability under which
// ClassBreakdown counts an image as one the classifier is unsure of.
const UnsureBelow = 0.9

// ClassStats says why an Inception Score is what it is. With all N rows
// taken as one split, log IS = H(p(y)) − E_x H(p(y|x)): the KL's mean,
// expanded. The first entropy is the generator's class balance (ln K when
// every class is made equally often), the second the classifier's doubt
// about each image (0 when every image is plainly one class), so a low
// score is either missing classes or ambiguous images, and these numbers
// tell which.
type ClassStats struct {
	ClassEntropy float64 `json:"class_entropy"` // H(p(y)) of the marginal over all rows, nats
	PredEntropy  float64 `json:"pred_entropy"`  // mean H(p(y|x)), nats
	Unsure       float64 `json:"unsure"`        // share of rows whose largest probability is below UnsureBelow
}

// ClassBreakdown computes the ClassStats of the class probabilities
// p(y|x), one row per image (the rows are checked as InceptionScore
// checks them).
func ClassBreakdown(probs [][]float64) (ClassStats, error) {
	if _, _, err := InceptionScore(probs, 1); err != nil { // the same checks
		return ClassStats{}, fmt.Errorf("class breakdown: %w", err)
	}
	py := make([]float64, len(probs[0]))
	var s ClassStats
	for _, p := range probs {
		top := 0.0
		for j, v := range p {
			py[j] += v
			s.PredEntropy -= xlogx(v)
			top = max(top, v)
		}
		if top < UnsureBelow {
			s.Unsure++
		}
	}
	n := float64(len(probs))
	for _, v := range py {
		s.ClassEntropy -= xlogx(v / n)
	}
	s.PredEntropy /= n
	s.Unsure /= n
	return s, nil
}

// xlogx is x·ln x with 0·ln 0 = 0.
func xlogx(x float64) float64 {
	if x <= 0 {
		return 0
	}
	return x * math.Log(x)
}
