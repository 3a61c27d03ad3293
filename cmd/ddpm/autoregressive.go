package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/experiments/autoregressive"
	"github.com/ddpm-go/ddpm/internal/plot"
	"github.com/ddpm-go/ddpm/internal/progress"
)

func init() {
	register("autoregressive", "eq. 16 numerically: the bound as KLs of q(x_{t−1}|x_t) + H(x0) on 1-D data equals eq. 5", runAutoregressive)
}

// arReport is what `ddpm autoregressive --json` prints (nats).
type arReport struct {
	Points    []float64 `json:"points"`
	Weights   []float64 `json:"weights"`
	Predictor string    `json:"predictor"`
	Var       string    `json:"var"`
	*autoregressive.Result
	Difference float64 `json:"difference"` // Eq5Total − Eq16Total
}

func runAutoregressive(args []string) error { return autoregressiveCommand(args, os.Stdout) }

func autoregressiveCommand(args []string, w io.Writer) error {
	fs := newFlags("autoregressive", "[--levels 51,153,217] [--weights 0.5,0.3,0.2] [--predictor exact|mismatched] [--var fixedlarge|fixedsmall] [--T 1000] [--out autoregressive.png] [--json]")
	levels := fs.String("levels", "51,153,217", "the data points, as pixel levels 0..255 (x = p/127.5 − 1)")
	weights := fs.String("weights", "0.5,0.3,0.2", "their probabilities (normalised)")
	predictor := fs.String("predictor", "exact", "the reverse model's x̂0: exact (E[x0 | x_t] of the data, a perfectly trained network) or mismatched (E[x0 | x_t] of the points shifted by +0.05 with equal weights)")
	grid := fs.Int("grid", 241, "Simpson points per mixture component for the integrals over x_t (odd)")
	nodes := fs.Int("nodes", 16, "Gauss–Hermite nodes for the entropies of q(x_{t−1} | x_t)")
	out := fs.String("out", "autoregressive.png", "PNG of the per-t terms and the accumulated bound of both forms (.png)")
	asJSON := fs.Bool("json", false, "print one JSON object with every t instead of the table")
	quiet := fs.Bool("quiet", false, "no progress bar")
	dc := diffusion.DefaultConfig()
	diffusionFlags(fs, &dc)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for _, f := range []string{"mean", "loss"} {
		if flagSet(fs, f) {
			return usageErr("--%s does not apply: the reverse model here is given by --predictor", f)
		}
	}
	if dc.Var == diffusion.Learned {
		return usageErr("--var learned has no network to learn it here: use fixedlarge or fixedsmall")
	}
	if *out == "" {
		return usageErr("--out must name a PNG file")
	}
	if err := checkImageOut("out", *out, ".png"); err != nil {
		return err
	}
	lv, err := parseInts(*levels, "levels")
	if err != nil {
		return err
	}
	wt, err := parseFloats(*weights, "weights")
	if err != nil {
		return err
	}
	mix, err := autoregressive.FromLevels(lv, wt)
	if err != nil {
		return usageErr("%v", err)
	}
	if err := checkDiffusion(dc); err != nil {
		return err
	}
	d, _ := diffusion.New(dc)
	var pred autoregressive.Predictor
	switch *predictor {
	case "exact":
		pred = mix.Exact(d.Schedule)
	case "mismatched":
		wrong := autoregressive.Mixture{Points: make([]float64, len(mix.Points)), Weights: make([]float64, len(mix.Points))}
		for k, a := range mix.Points {
			wrong.Points[k], wrong.Weights[k] = a+0.05, 1
		}
		pred = wrong.Exact(d.Schedule)
	default:
		return usageErr("--predictor must be exact or mismatched, got %q", *predictor)
	}
	start := time.Now()
	bar := progress.New(d.T, "integrating both forms of the bound", "t", *quiet)
	r, err := autoregressive.Bound(d, mix, pred, autoregressive.Options{Grid: *grid, Nodes: *nodes,
		Progress: func(done, _ int) { bar.Set(done) }})
	if err != nil {
		return usageErr("%v", err)
	}
	bar.Finish()
	rep := arReport{Points: mix.Points, Weights: mix.Weights, Predictor: *predictor, Var: dc.Var.String(), Result: r,
		Difference: r.Eq5Total - r.Eq16Total}
	if err := plotAR(*out, r); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(w, rep)
	}
	fmt.Fprintf(w, "1-D data x0 ∈ %s with probabilities %s; T = %d (%s), σ_t² %s, predictor %s\n",
		fmtFloats(mix.Points), fmtFloats(mix.Weights), d.T, dc.Schedule, dc.Var, *predictor)
	fmt.Fprintf(w, "eq. 5:  L = L_T + Σ_{t>1} E KL(q(x_{t−1}|x_t,x0) ‖ p_θ) + E[−log p_θ(x0|x1)]\n")
	fmt.Fprintf(w, "eq. 16: L = KL(q(x_T) ‖ p(x_T)) + Σ_{t≥1} E KL(q(x_{t−1}|x_t) ‖ p_θ) + H(x0)\n\n")
	sum5, sum16 := 0.0, 0.0
	for i := 1; i < d.T; i++ {
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
		rep.Difference, r.Eq16Total-r.Entropy)
	fmt.Fprintf(w, "%8s %16s %16s %18s\n", "t", "eq. 5 term", "eq. 16 term", "difference")
	for _, t := range []int{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
		if t > d.T {
			break
		}
		i := t - 1
		fmt.Fprintf(w, "%8d %16.8f %16.8f %18.8f\n", t, r.Eq5Terms[i], r.Eq16Terms[i], r.Eq5Terms[i]-r.Eq16Terms[i])
	}
	fmt.Fprintf(w, "(the per-t terms differ — by how much x0 tells about x_{t−1} beyond x_t — and only the totals agree)\nfigure: %s (%s)\n",
		*out, time.Since(start).Round(time.Millisecond))
	return nil
}

func fmtFloats(v []float64) string {
	s := "{"
	for k, x := range v {
		if k > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.4g", x)
	}
	return s + "}"
}

// plotAR draws the per-t terms of both forms and the bound accumulated from
// t = T down: the two curves start apart and end at the same total.
func plotAR(path string, r *autoregressive.Result) error {
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
