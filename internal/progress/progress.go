// Package progress is the one progress display every long-running command
// uses: a bar with count, rate, elapsed and remaining time, and a free-form
// detail (the current loss, images/s, …). It wraps
// github.com/schollz/progressbar, chosen because it is maintained, has no
// cgo, and renders rate and ETA itself.
package progress

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Bar is a progress bar over a known number of units.
type Bar struct {
	bar   *progressbar.ProgressBar
	quiet bool
}

// New starts a bar of total units named unit (e.g. "step") on stderr.
// A quiet bar draws nothing.
func New(total int, desc, unit string, quiet bool) *Bar {
	var w io.Writer = os.Stderr
	if quiet {
		w = io.Discard
	}
	b := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetWidth(24),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionOnCompletion(func() { io.WriteString(w, "\n") }),
	)
	return &Bar{bar: b, quiet: quiet}
}

// Describe sets the detail shown after the bar.
func (b *Bar) Describe(s string) { b.bar.Describe(s) }

// Add advances the bar by n units.
func (b *Bar) Add(n int) { _ = b.bar.Add(n) }

// Set moves the bar to n units done.
func (b *Bar) Set(n int) { _ = b.bar.Set(n) }

// Finish fills the bar and ends its line.
func (b *Bar) Finish() { _ = b.bar.Finish() }
