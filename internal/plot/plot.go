// Package plot draws the experiments' line charts — several panels side by
// side in one PNG — with gonum.org/v1/plot, the pure-Go plotting library the
// module already depends on (no cgo, PNG output through its vgimg canvas), so
// every figure of the paper can be redrawn from a table of numbers without a
// Python toolchain.
package plot

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/ddpm-go/ddpm/imgio"
)

// Series is one named line: Y[k] against X[k].
type Series struct {
	Name string
	X, Y []float64
	// Dots draws a marker at every point as well as the line.
	Dots bool
}

// Panel is one chart. On a log axis, points with a coordinate that is not
// positive cannot be drawn and leave a gap in their line.
type Panel struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	// ZeroY extends a linear y axis down to 0 when all values are positive.
	ZeroY bool
	// YMax, when above the data, raises the top of the y axis (room for the
	// legend).
	YMax float64
	// LegendBottom puts the legend in the bottom right corner instead of
	// the top right.
	LegendBottom bool
	Series       []Series
}

// Size of one panel.
const (
	PanelWidth  = 4.6 * vg.Inch
	PanelHeight = 3.4 * vg.Inch
	dpi         = 110
)

// Save draws the panels in rows of cols (cols ≤ 0: all in one row) into a
// PNG at path, written atomically (see imgio.WritePNG).
func Save(path string, cols int, panels ...Panel) error {
	if len(panels) == 0 {
		return errors.New("plot: no panels")
	}
	if cols <= 0 || cols > len(panels) {
		cols = len(panels)
	}
	rows := (len(panels) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for k, pn := range panels {
		p, err := build(pn)
		if err != nil {
			return fmt.Errorf("plot %s: panel %q: %w", path, pn.Title, err)
		}
		plots[k/cols][k%cols] = p
	}
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(cols)*PanelWidth, vg.Length(rows)*PanelHeight), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	t := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(plots, t, dc)
	for r := range plots {
		for c, p := range plots[r] {
			if p != nil {
				p.Draw(canvases[r][c])
			}
		}
	}
	return imgio.WritePNG(path, img.Image())
}

// logTicks are gonum's log-scale ticks labelled with the powers of ten
// they stand for (1e-05, 0.001, 10, …) instead of their float64 rounding
// (9.999999999999999e-06).
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.LogTicks{Prec: -1}.Ticks(min, max)
	for k := range ts {
		if ts[k].Label != "" {
			ts[k].Label = strconv.FormatFloat(ts[k].Value, 'g', 6, 64)
		}
	}
	return ts
}

func build(pn Panel) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.Title
	p.X.Label.Text = pn.XLabel
	p.Y.Label.Text = pn.YLabel
	if pn.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = logTicks{}
	}
	if pn.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
	}
	p.Add(plotter.NewGrid())
	drawn := 0
	for k, s := range pn.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		pts := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			x, y := s.X[j], s.Y[j]
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) ||
				(pn.LogX && x <= 0) || (pn.LogY && y <= 0) {
				continue
			}
			pts = append(pts, plotter.XY{X: x, Y: y})
		}
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(k)
		line.Dashes = plotutil.Dashes(k)
		line.Width = vg.Points(1.5)
		p.Add(line)
		if s.Dots {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, err
			}
			sc.Color = plotutil.Color(k)
			sc.Shape = draw.CircleGlyph{}
			sc.Radius = vg.Points(2)
			p.Add(sc)
		}
		if len(pn.Series) > 1 && s.Name != "" {
			p.Legend.Add(s.Name, line)
		}
		drawn++
	}
	if drawn == 0 {
		return nil, errors.New("nothing to draw (no finite point, or none positive on a log axis)")
	}
	p.Legend.Top = !pn.LegendBottom
	if pn.ZeroY && !pn.LogY && p.Y.Min > 0 {
		p.Y.Min = 0
	}
	if pn.YMax > p.Y.Max {
		p.Y.Max = pn.YMax
	}
	return p, nil
}
