package likelihood

import (
	"errors"
	"fmt"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Curve is one named per-t curve for [PlotPerT]: PerT[i] is the term at
// t = i+1, as in [Summary.PerTBPD].
type Curve struct {
	Name string
	PerT []float64
}

// PlotPerT writes a PNG of the bound's term at each t against t, one line
// per curve (with a legend when there are several), on a log scale: the
// terms span many orders of magnitude, from the decoder at t = 1 to almost
// nothing near t = T, and the shape (most of the rate at small t) is what
// the plot is for. Terms that are not positive (an exact or rounded-to-zero
// KL) cannot be drawn on a log scale and leave a gap.
func PlotPerT(path, title string, curves ...Curve) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "t"
	p.Y.Label.Text = "L(t−1) (bits/dim)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	drawn := 0
	for k, c := range curves {
		pts := make(plotter.XYs, 0, len(c.PerT))
		for i, v := range c.PerT {
			if v > 0 && !math.IsInf(v, 0) {
				pts = append(pts, plotter.XY{X: float64(i + 1), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", c.Name, err)
		}
		line.Color = plotutil.Color(k)
		line.Dashes = plotutil.Dashes(k)
		p.Add(line)
		if len(curves) > 1 {
			p.Legend.Add(c.Name, line)
		}
		drawn++
	}
	if drawn == 0 {
		return errors.New("plot: no positive term to draw")
	}
	p.Legend.Top = true
	wt, err := p.WriterTo(7*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := wt.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("plot: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("plot: write %s: %w", path, err)
	}
	return nil
}
