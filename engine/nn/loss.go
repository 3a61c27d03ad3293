package nn

// MSELoss returns mean((pred − target)²) and writes its gradient
// dPred = 2(pred − target)/N, N = len(pred). dPred may alias pred. The sum
// is taken in float64 so the loss does not depend on the tensor size's
// rounding.
func MSELoss(dPred, pred, target []float32) float64 {
	n := len(pred)
	scale := 2 / float32(n)
	var s float64
	for i, p := range pred {
		d := p - target[i]
		s += float64(d) * float64(d)
		dPred[i] = scale * d
	}
	return s / float64(n)
}
