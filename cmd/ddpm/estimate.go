package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
)

// Commands whose work is long say so before starting it: one line on
// stderr with what they will do and roughly how long it takes, measured on
// this machine, so that nobody waits half an hour for a default they did
// not know was slow.

// longWork is the estimated duration from which a command announces its
// work; below it, the progress bar is enough.
const longWork = time.Minute

// measureFrom is the number of network passes from which the time of one
// is measured at all: the measurement costs three passes, which a short
// job should not pay for.
const measureFrom = 300

// estimateStderr is where the announcement goes (a variable for tests).
var estimateStderr io.Writer = os.Stderr

// passTime measures one network evaluation of batch inputs of dim values
// (outDim outputs each) on m: three evaluations of noise at timestep index
// t, the fastest of the last two counted (the first also allocates the
// network's buffers for the batch, as the first step of the real work
// would).
func passTime(m diffusion.Model, batch, dim, outDim, t int) time.Duration {
	x := make([]float32, batch*dim)
	for i := range x {
		x[i] = float32(math.Sin(float64(i))) // any values: the cost does not depend on them
	}
	out := make([]float32, batch*outDim)
	ts := make([]int, batch)
	for i := range ts {
		ts[i] = t
	}
	best := time.Duration(math.MaxInt64)
	for k := range 3 {
		start := time.Now()
		m.Predict(out, x, ts)
		if el := time.Since(start); k > 0 && el < best {
			best = el
		}
	}
	return best
}

// approx writes a duration as a person would estimate it: "≈ 40 s",
// "≈ 25 min", "≈ 3.8 h".
func approx(d time.Duration) string {
	switch {
	case d < 90*time.Second:
		return fmt.Sprintf("≈ %d s", max(1, int(d.Round(time.Second)/time.Second)))
	case d < 90*time.Minute:
		return fmt.Sprintf("≈ %d min", int(d.Round(time.Minute)/time.Minute))
	}
	return fmt.Sprintf("≈ %.1f h", d.Hours())
}

// cores is how the announcement names the machine: the threads Go runs on.
func cores() string {
	if n := runtime.GOMAXPROCS(0); n != 1 {
		return fmt.Sprintf("%d cores", n)
	}
	return "1 core"
}

// workEstimate is a count of network passes of one batch size and the
// measured time of one.
type workEstimate struct {
	passes  int
	perPass time.Duration
}

// total is the estimated duration of all passes.
func (e workEstimate) total() time.Duration { return time.Duration(e.passes) * e.perPass }

// scaled is the estimated duration of another number of passes.
func (e workEstimate) scaled(passes int) time.Duration { return time.Duration(passes) * e.perPass }

// estimatePasses measures the time per pass when there are enough passes
// for it to matter (see measureFrom); ok is false otherwise.
func estimatePasses(m diffusion.Model, passes, batch, dim, outDim, t int) (e workEstimate, ok bool) {
	if passes < measureFrom {
		return workEstimate{}, false
	}
	return workEstimate{passes: passes, perPass: passTime(m, batch, dim, outDim, t)}, true
}

// announce prints "what: ≈ time on N cores[; hint]" on stderr when the
// estimate is long (see longWork), and reports whether it did.
func announce(what string, e workEstimate, hint string) bool {
	if e.total() < longWork {
		return false
	}
	line := fmt.Sprintf("%s: %s on %s", what, approx(e.total()), cores())
	if hint != "" {
		line += "; " + hint
	}
	fmt.Fprintln(estimateStderr, line)
	return true
}
