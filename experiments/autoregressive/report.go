package autoregressive

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/plot"
)

// The reverse models [NamedPredictor] knows.
const (
	PredictorExact      = "exact"      // E[x0 | x_t] of the data: a perfectly trained network
	PredictorMismatched = "mismatched" // E[x0 | x_t] of other data: a network that learned the wrong points
)

// mismatch is how far the mismatched predictor's points lie from the data's.
const mismatch = 0.05

// NamedPredictor is the reverse model name stands for on the data mix:
// [PredictorExact], its own E[x0 | x_t], or [PredictorMismatched],
// E[x0 | x_t] of the points shifted by +0.05 with equal weights (the
// identity holds for any model, which this shows).
func NamedPredictor(name string, mix Mixture, s *diffusion.Schedule) (Predictor, error) {
	switch name {
	case PredictorExact:
		return mix.Exact(s), nil
	case PredictorMismatched:
		wrong := Mixture{Points: make([]float64, len(mix.Points)), Weights: make([]float64, len(mix.Points))}
		for k, a := range mix.Points {
			wrong.Points[k], wrong.Weights[k] = a+mismatch, 1
		}
		return wrong.Exact(s), nil
	}
	return nil, fmt.Errorf("autoregressive: predictor must be %s or %s, got %q", PredictorExact, PredictorMismatched, name)
}

// Experiment is what `ddpm autoregressive` computes: data on pixel levels,
// a named reverse model, and the integration's resolution.
type Experiment struct {
	Levels    []int     // the data points as pixel levels 0..255 (x = p/127.5 − 1)
	Weights   []float64 // their probabilities (normalised)
	Predictor string    // PredictorExact or PredictorMismatched
	Options             // the integration's grid, nodes and progress
}

// Report is both forms of the bound with the data and the reverse model
// they were computed for, in nats: what `ddpm autoregressive --json` prints.
type Report struct {
	Points    []float64 `json:"points"`
	Weights   []float64 `json:"weights"`
	Predictor string    `json:"predictor"`
	Var       string    `json:"var"`
	*Result
	Difference float64 `json:"difference"` // Eq5Total − Eq16Total: the integration error

	schedule string // the β schedule's name, for WriteTable
}

// Run evaluates eq. 5 and eq. 16 ([Bound]) for the experiment under the
// diffusion process c. Every error is a setting that does not fit: bad
// levels or weights, an unknown predictor, a learned variance, a bad grid.
func Run(c diffusion.Config, e Experiment) (*Report, error) {
	mix, err := FromLevels(e.Levels, e.Weights)
	if err != nil {
		return nil, err
	}
	d, err := diffusion.New(c)
	if err != nil {
		return nil, err
	}
	pred, err := NamedPredictor(e.Predictor, mix, d.Schedule)
	if err != nil {
		return nil, err
	}
	r, err := Bound(d, mix, pred, e.Options)
	if err != nil {
		return nil, err
	}
	return &Report{Points: mix.Points, Weights: mix.Weights, Predictor: e.Predictor, Var: c.Var.String(), Result: r,
		Difference: r.Eq5Total - r.Eq16Total, schedule: c.Schedule.String()}, nil
}

// WriteTable writes the report as `ddpm autoregressive` prints it: both
// forms term by term, their totals, and the per-t terms at a few t.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "1-D data x0 ∈ %s with probabilities %s; T = %d (%s), σ_t² %s, predictor %s\n",
		fmtFloats(r.Points), fmtFloats(r.Weights), r.T, r.schedule, r.Var, r.Predictor)
	fmt.Fprintf(w, "eq. 5:  L = L_T + Σ_{t>1} E KL(q(x_{t−1}|x_t,x0) ‖ p_θ) + E[−log p_θ(x0|x1)]\n")
	fmt.Fprintf(w, "eq. 16: L = KL(q(x_T) ‖ p(x_T)) + Σ_{t≥1} E KL(q(x_{t−1}|x_t) ‖ p_θ) + H(x0)\n\n")
	sum5, sum16 := 0.0, 0.0
	for i := 1; i < r.T; i++ {
		sum5 += r.Eq5Terms[i]
		sum16 += r.Eq16Terms[i]
	}
	fmt.Fprintf(w, "%-34s %16s %16s\n", "term (nats)", "eq. 5", "eq. 16")
	fmt.Fprintf(w, "%-34s %16.10f %16.10f\n", "prior (t = T)", r.Eq5Prior, r.Eq16Prior)
	fmt.Fprintf(w, "%-34s %16.10f %16.10f\n", "Σ over t = 2..T", sum5, sum16)
	fmt.Fprintf(w, "%-34s %16.10f %16.10f\n", "t = 1 (decoder / discrete KL)", r.Eq5Terms[0], r.Eq16Terms[0])
	fmt.Fprintf(w, "%-34s %16s %16.10f\n", "H(x0)", "", r.Entropy)
	fmt.Fprintf(w, "%-34s %16.10f %16.10f\n", "total L", r.Eq5Total, r.Eq16Total)
	fmt.Fprintf(w, "%-34s %16.10f %16.10f\n", "total L (bits)", r.Eq5Total/math.Ln2, r.Eq16Total/math.Ln2)
	fmt.Fprintf(w, "eq. 5 − eq. 16 = %.3g nats (integration error); L − H(x0) = %.6f nats is the model's total KL error\n\n",
		r.Difference, r.Eq16Total-r.Entropy)
	fmt.Fprintf(w, "%8s %16s %16s %18s\n", "t", "eq. 5 term", "eq. 16 term", "difference")
	for _, t := range []int{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
		if t > r.T {
			break
		}
		i := t - 1
		fmt.Fprintf(w, "%8d %16.8f %16.8f %18.8f\n", t, r.Eq5Terms[i], r.Eq16Terms[i], r.Eq5Terms[i]-r.Eq16Terms[i])
	}
	fmt.Fprintf(w, "(the per-t terms differ — by how much x0 tells about x_{t−1} beyond x_t — and only the totals agree)\n")
}

// fmtFloats writes v as a set, {a, b, c}, to four digits.
func fmtFloats(v []float64) string {
	s := make([]string, len(v))
	for k, x := range v {
		s[k] = fmt.Sprintf("%.4g", x)
	}
	return "{" + strings.Join(s, ", ") + "}"
}

// SavePlot writes a PNG of the per-t terms of both forms and of the bound
// accumulated from t = T down: the two curves start apart and end at the
// same total.
func (r *Result) SavePlot(path string) error {
	T := r.T
	t := make([]float64, T)
	acc5, acc16 := make([]float64, T), make([]float64, T)
	a5, a16 := r.Eq5Prior, r.Eq16Prior+r.Entropy
	for i := T - 1; i >= 0; i-- {
		t[i] = float64(i + 1)
		a5 += r.Eq5Terms[i]
		a16 += r.Eq16Terms[i]
		acc5[i], acc16[i] = a5, a16
	}
	return plot.Save(path, 2,
		plot.Panel{Title: "terms per t", XLabel: "t", YLabel: "nats", LogX: true, LogY: true, LegendBottom: true, Series: []plot.Series{
			{Name: "eq. 5: E KL(q(x_{t−1}|x_t,x0) ‖ p)", X: t, Y: r.Eq5Terms}, {Name: "eq. 16: E KL(q(x_{t−1}|x_t) ‖ p)", X: t, Y: r.Eq16Terms}}},
		plot.Panel{Title: "bound accumulated from t = T down", XLabel: "t", YLabel: "nats", LogX: true, ZeroY: true, Series: []plot.Series{
			{Name: "eq. 5 (from L_T)", X: t, Y: acc5}, {Name: "eq. 16 (from KL(q(x_T)‖p) + H(x0))", X: t, Y: acc16}}},
	)
}
