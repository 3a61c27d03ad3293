package plot

import (
	"errors"
	"math"
)

// Curve is one named per-t curve for [PerT]: PerT[i] is the bound's term
// at t = i+1, as in diffusion.BoundSummary.PerTBPD.
type Curve struct {
	Name string
	PerT []float64
}

// PerT writes a PNG of the bound's term at each t against t, one line
// per curve (with a legend when there are several), on a log scale: the
// terms span many orders of magnitude, from the decoder at t = 1 to almost
// nothing near t = T, and the shape (most of the rate at small t) is what
// the plot is for. Terms that are not positive (an exact or rounded-to-zero
// KL) cannot be drawn on a log scale and leave a gap.
func PerT(path, title string, curves ...Curve) error {
	panel := Panel{Title: title, XLabel: "t", YLabel: "L(t−1) (bits/dim)", LogY: true}
	drawn := 0
	for _, c := range curves {
		s := Series{Name: c.Name}
		if len(curves) == 1 {
			s.Name = ""
		}
		for i, v := range c.PerT {
			s.X = append(s.X, float64(i+1))
			s.Y = append(s.Y, v)
			if v > 0 && !math.IsInf(v, 0) {
				drawn++
			}
		}
		panel.Series = append(panel.Series, s)
	}
	if drawn == 0 {
		return errors.New("plot: no positive term to draw")
	}
	return Save(path, 1, panel)
}
