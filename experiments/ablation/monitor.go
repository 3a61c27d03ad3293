package ablation

import (
	"fmt"
	"math"
)

// DivergenceFactor is how many times its early mean the recent loss must
// reach for a run to count as diverged. The per-step loss of the bound
// objectives swings by orders of magnitude with the sampled t, so the
// comparison is between window means, and the factor is large enough that
// only a run that has really left its basin trips it.
const DivergenceFactor = 100

// Monitor decides when a training run has become unstable: a non-finite
// loss, or a mean loss over the last Window steps of at least Factor times
// the mean over the first Window steps. The zero value is not usable; see
// [NewMonitor].
type Monitor struct {
	Window int
	Factor float64

	early      float64   // sum of the first Window losses
	n          int       // losses seen
	recent     []float64 // ring of the last Window losses
	recentSum  float64
	recentNext int
	history    []float64 // every finite loss observed, for the loss log
}

// NewMonitor returns a monitor for a run of the given length: the window is
// a twentieth of the run, between 5 and 100 steps, so a short run is still
// judged on more than a single noisy step and a long one reacts within 100.
func NewMonitor(steps int) *Monitor {
	w := max(5, min(100, steps/20))
	return &Monitor{Window: w, Factor: DivergenceFactor, recent: make([]float64, w)}
}

// Observe takes the loss of the next step and returns why the run is
// unstable, or "" while it is not.
func (m *Monitor) Observe(loss float64) string {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Sprintf("non-finite loss %g", loss)
	}
	m.n++
	m.history = append(m.history, loss)
	if m.n <= m.Window {
		m.early += loss
	}
	m.recentSum += loss - m.recent[m.recentNext]
	m.recent[m.recentNext] = loss
	m.recentNext = (m.recentNext + 1) % m.Window
	if m.n < 2*m.Window { // the windows must not overlap
		return ""
	}
	early, recent := m.early/float64(m.Window), m.recentSum/float64(m.Window)
	if early > 0 && recent >= m.Factor*early {
		return fmt.Sprintf("loss exploded: mean %.4g over the last %d steps is %.0f× the mean %.4g of the first %d",
			recent, m.Window, recent/early, early, m.Window)
	}
	return ""
}

// Smoothed is the mean loss over the last Window steps (fewer if fewer were
// seen); NaN before the first.
func (m *Monitor) Smoothed() float64 {
	k := min(m.n, m.Window)
	if k == 0 {
		return math.NaN()
	}
	return m.recentSum / float64(k)
}

// History is every finite loss observed, in order.
func (m *Monitor) History() []float64 { return m.history }
