// Package progress is the one progress display every long-running command
// uses: count, rate, elapsed and remaining time, and a free-form detail
// (the current loss, images/s, …).
//
// On a terminal it draws a bar that redraws itself in place, with
// github.com/schollz/progressbar (maintained, no cgo, renders rate and ETA
// itself). Anywhere else — a log file, a pipe, a CI job — redrawing would
// pile carriage-return frames onto one ever-growing line, so it prints a
// plain line every ten seconds instead, and a last one at the end:
//
//	step 1200/3000 (40%) · 3.21 step/s · elapsed 6m14s · ETA 9m21s · loss 0.0312 · 102.7 img/s
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// DefaultInterval is how often a Bar that is not on a terminal prints a
// line.
const DefaultInterval = 10 * time.Second

// Bar is a progress display over a known number of units.
type Bar struct {
	bar *progressbar.ProgressBar // on a terminal
	log *logger                  // anywhere else
}

// Option adjusts a Bar made by NewWriter.
type Option func(*config)

type config struct {
	every    time.Duration
	now      func() time.Time
	terminal *bool
}

// Interval sets how often a Bar that is not on a terminal prints a line
// (default DefaultInterval).
func Interval(d time.Duration) Option { return func(c *config) { c.every = d } }

// Clock replaces time.Now, for tests.
func Clock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Terminal forces the terminal bar (true) or the plain lines (false)
// instead of detecting what the writer is.
func Terminal(on bool) Option { return func(c *config) { c.terminal = &on } }

// New starts a display of total units named unit (e.g. "step") on
// stderr: a bar when stderr is a terminal, plain lines otherwise. A quiet
// display shows nothing.
func New(total int, desc, unit string, quiet bool) *Bar {
	if quiet {
		return NewWriter(io.Discard, total, desc, unit, Terminal(false), Interval(time.Duration(1<<63-1)))
	}
	return NewWriter(os.Stderr, total, desc, unit)
}

// NewWriter starts a display on w; see New.
func NewWriter(w io.Writer, total int, desc, unit string, opts ...Option) *Bar {
	c := config{every: DefaultInterval, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	term := IsTerminal(w)
	if c.terminal != nil {
		term = *c.terminal
	}
	if !term {
		return &Bar{log: &logger{w: w, total: total, desc: desc, unit: unit, every: c.every, now: c.now, start: c.now()}}
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
	return &Bar{bar: b}
}

// IsTerminal reports whether w is a terminal (a character device), where
// a bar can redraw itself in place.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Terminal reports whether the display is a bar drawn in place: a message
// printed meanwhile should then start with a newline.
func (b *Bar) Terminal() bool { return b.bar != nil }

// Describe sets the detail shown after the counts.
func (b *Bar) Describe(s string) {
	if b.bar != nil {
		b.bar.Describe(s)
		return
	}
	b.log.describe(s)
}

// Add advances the display by n units.
func (b *Bar) Add(n int) {
	if b.bar != nil {
		_ = b.bar.Add(n)
		return
	}
	b.log.add(n)
}

// Set moves the display to n units done.
func (b *Bar) Set(n int) {
	if b.bar != nil {
		_ = b.bar.Set(n)
		return
	}
	b.log.set(n)
}

// Begin says that n units were done before the display started (a resumed
// run's earlier steps): they count as done but not towards the rate.
func (b *Bar) Begin(n int) {
	if b.bar != nil {
		_ = b.bar.Set(n)
		return
	}
	b.log.begin(n)
}

// Finish completes the display: a full bar and a newline, or a last line.
func (b *Bar) Finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
		return
	}
	b.log.finish()
}

// logger prints the plain lines of a display that is not on a terminal.
type logger struct {
	mu                 sync.Mutex
	w                  io.Writer
	total              int
	desc, unit, detail string
	every              time.Duration
	now                func() time.Time

	start, last time.Time
	cur, base   int  // units done; units done before the display started (Begin)
	printed     bool // a line was printed, at last
	printedAt   int  // cur when it was
	finished    bool
}

func (l *logger) describe(s string) {
	l.mu.Lock()
	l.detail = s
	l.mu.Unlock()
}

func (l *logger) begin(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur, l.base = n, n
}

func (l *logger) set(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance(n)
}

func (l *logger) add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance(l.cur + n)
}

// advance moves to n units done and prints a line when one is due.
func (l *logger) advance(n int) {
	l.cur = n
	t := l.now()
	// The first unit's line shows at once that the work runs, and at
	// what rate; then one line per interval.
	if !l.printed || t.Sub(l.last) >= l.every {
		l.print(t)
	}
}

func (l *logger) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.finished {
		return
	}
	l.finished = true
	if l.total > 0 {
		l.cur = max(l.cur, l.total)
	}
	if l.printed && l.printedAt == l.cur && l.cur > l.base {
		return // the last line already says it
	}
	l.print(l.now())
}

// print writes one line: description, done/total, rate, elapsed, ETA and
// the detail.
func (l *logger) print(t time.Time) {
	l.last, l.printed, l.printedAt = t, true, l.cur
	elapsed := t.Sub(l.start)
	var sb strings.Builder
	if l.desc != "" {
		sb.WriteString(l.desc + ": ")
	}
	fmt.Fprintf(&sb, "%s %d", l.unit, l.cur)
	if l.total > 0 {
		fmt.Fprintf(&sb, "/%d (%d%%)", l.total, int(100*float64(l.cur)/float64(l.total)))
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(l.cur-l.base) / s
	}
	if rate > 0 {
		fmt.Fprintf(&sb, " · %s %s/s", formatRate(rate), l.unit)
	}
	fmt.Fprintf(&sb, " · elapsed %s", formatDuration(elapsed))
	if l.total > 0 && rate > 0 {
		left := time.Duration(float64(max(0, l.total-l.cur)) / rate * float64(time.Second))
		fmt.Fprintf(&sb, " · ETA %s", formatDuration(left))
	}
	if l.detail != "" {
		sb.WriteString(" · " + l.detail)
	}
	sb.WriteByte('\n')
	io.WriteString(l.w, sb.String())
}

// formatRate keeps three significant digits or so.
func formatRate(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0f", r)
	case r >= 10:
		return fmt.Sprintf("%.1f", r)
	default:
		return fmt.Sprintf("%.2f", r)
	}
}

// formatDuration rounds to the second ("6m14s", "1h2m3s", "0s").
func formatDuration(d time.Duration) string {
	return d.Round(time.Second).String()
}
