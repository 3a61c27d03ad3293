package quality

import (
	"fmt"
	"io"

	"github.com/ddpm-go/ddpm/metrics"
)

// WriteTable prints r as `ddpm eval quality` does: a heading, then one
// row per measure with the images' value beside the real-data floor's.
func (r *Report) WriteTable(w io.Writer) error {
	var err error
	printf := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	printf("sample quality of %d images (%s) against %d random %s train images\n", r.N, r.Source, r.N, r.Data)
	printf("features: %s (not Inception: not comparable with published FID/IS)\n\n", r.Features)
	row := func(name, a, b string) { printf("%-28s %-22s %s\n", name, a, b) }
	row("", "images", "real floor (test vs train)")
	s, f := r.Scores, r.Floor
	net := r.Net
	if net == "" {
		net = "LeNet"
	}
	row("FD ("+net+" features)", fmt.Sprintf("%.3f", s.FD), fmt.Sprintf("%.3f", f.FD))
	row("KID ("+net+" features)", fmt.Sprintf("%.4f ± %.4f", s.KID, s.KIDStderr), fmt.Sprintf("%.4f ± %.4f", f.KID, f.KIDStderr))
	row(fmt.Sprintf("IS (classifier, %d splits)", metrics.ISSplits), fmt.Sprintf("%.3f ± %.3f", s.ISMean, s.ISStd), fmt.Sprintf("%.3f ± %.3f", f.ISMean, f.ISStd))
	// log IS = H(y) − E H(y|x) (one split): which of the two holds it down.
	row("  class entropy H(y)", fmt.Sprintf("%.4f", s.ClassEntropy), fmt.Sprintf("%.4f", f.ClassEntropy))
	row("  doubt E H(y|x)", fmt.Sprintf("%.4f", s.PredEntropy), fmt.Sprintf("%.4f", f.PredEntropy))
	row(fmt.Sprintf("  unsure (top p < %.1f)", metrics.UnsureBelow), fmt.Sprintf("%.4f", s.Unsure), fmt.Sprintf("%.4f", f.Unsure))
	row(fmt.Sprintf("precision (k=%d)", metrics.PRNeighbours), fmt.Sprintf("%.4f", s.Precision), fmt.Sprintf("%.4f", f.Precision))
	row(fmt.Sprintf("recall (k=%d)", metrics.PRNeighbours), fmt.Sprintf("%.4f", s.Recall), fmt.Sprintf("%.4f", f.Recall))
	if m := r.Memorization; m != nil {
		// The distance from each image to its nearest of all the training
		// images: a memorising model sits nearer than unseen real data.
		printf("\nmemorization: distance to the nearest of all %d train images\n", m.TrainN)
		a, b := m.Images, m.Floor
		row("  pixel L2, median (min)", fmt.Sprintf("%.3f (%.3f)", a.PixelMedian, a.PixelMin), fmt.Sprintf("%.3f (%.3f)", b.PixelMedian, b.PixelMin))
		row("  feature L2, median (min)", fmt.Sprintf("%.3f (%.3f)", a.FeatureMedian, a.FeatureMin), fmt.Sprintf("%.3f (%.3f)", b.FeatureMedian, b.FeatureMin))
		row(fmt.Sprintf("  near-copies (L2 < %.3f)", m.Threshold), fmt.Sprintf("%.4f (%d)", a.NearCopyShare, a.NearCopies), fmt.Sprintf("%.4f (%d)", b.NearCopyShare, b.NearCopies))
	}
	return err
}
