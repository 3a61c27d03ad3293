package autoregressive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

// TestRun: the experiment of `ddpm autoregressive` for both predictors:
// the two forms agree, the report's JSON and table say what was run, and
// settings that do not fit are errors.
func TestRun(t *testing.T) {
	c := diffusion.DefaultConfig()
	c.T, c.BetaEnd = 50, 0.3
	for _, pred := range []string{PredictorExact, PredictorMismatched} {
		steps := 0
		r, err := Run(c, Experiment{Levels: []int{10, 128, 250}, Weights: []float64{1, 2, 1}, Predictor: pred,
			Options: Options{Grid: 241, Nodes: 16, Progress: func(done, _ int) { steps = done }}})
		if err != nil {
			t.Fatal(err)
		}
		if steps != 50 || r.T != 50 || r.Predictor != pred || r.Var != "fixedlarge" || r.Weights[1] != 0.5 {
			t.Errorf("%s: %d steps, report %+v", pred, steps, r)
		}
		if math.Abs(r.Difference) > 1e-5 || r.Difference != r.Eq5Total-r.Eq16Total {
			t.Errorf("%s: eq. 5 %v, eq. 16 %v, difference %v", pred, r.Eq5Total, r.Eq16Total, r.Difference)
		}
		b, _ := json.Marshal(r)
		for _, k := range []string{`"points"`, `"weights"`, `"predictor"`, `"var"`, `"Eq5Terms"`, `"Entropy"`, `"difference"`} {
			if !bytes.Contains(b, []byte(k)) {
				t.Errorf("%s: JSON lacks %s", pred, k)
			}
		}
		var table bytes.Buffer
		r.WriteTable(&table)
		for _, want := range []string{"T = 50 (linear), σ_t² fixedlarge, predictor " + pred, "{-0.9216, 0.003922, 0.9608}", "H(x0)", "total L (bits)", "only the totals agree"} {
			if !strings.Contains(table.String(), want) {
				t.Errorf("%s: table lacks %q:\n%s", pred, want, table.String())
			}
		}
	}
	exact, _ := Run(c, Experiment{Levels: []int{10, 250}, Weights: []float64{1, 1}, Predictor: PredictorExact, Options: Options{Grid: 61, Nodes: 8}})
	wrong, _ := Run(c, Experiment{Levels: []int{10, 250}, Weights: []float64{1, 1}, Predictor: PredictorMismatched, Options: Options{Grid: 61, Nodes: 8}})
	if !(wrong.Eq16Total > exact.Eq16Total) {
		t.Errorf("the mismatched model's bound %v is not above the exact one's %v", wrong.Eq16Total, exact.Eq16Total)
	}
	path := filepath.Join(t.TempDir(), "ar.png")
	if err := exact.SavePlot(path); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("plot: %v", err)
	}

	learned := c
	learned.Var, learned.Loss = diffusion.Learned, diffusion.Hybrid
	for name, bad := range map[string]struct {
		c diffusion.Config
		e Experiment
	}{
		"level 300":     {c, Experiment{Levels: []int{300}, Weights: []float64{1}, Predictor: PredictorExact}},
		"a level twice": {c, Experiment{Levels: []int{1, 1}, Weights: []float64{1, 1}, Predictor: PredictorExact}},
		"oracle":        {c, Experiment{Levels: []int{1}, Weights: []float64{1}, Predictor: "oracle"}},
		"even grid":     {c, Experiment{Levels: []int{1}, Weights: []float64{1}, Predictor: PredictorExact, Options: Options{Grid: 100}}},
		"learned":       {learned, Experiment{Levels: []int{1}, Weights: []float64{1}, Predictor: PredictorExact}},
	} {
		if _, err := Run(bad.c, bad.e); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Eq. 5 and eq. 16 on three pixel levels under a 100-step process: the
// per-t terms differ, the totals agree, and L − H(x0) is the reverse
// model's total error (positive even for the exact E[x0 | x_t]: its
// reverse conditionals are Gaussians, q's are mixtures).
func ExampleRun() {
	c := diffusion.DefaultConfig()
	c.T, c.BetaEnd = 100, 0.2
	r, err := Run(c, Experiment{Levels: []int{51, 153, 217}, Weights: []float64{0.5, 0.3, 0.2}, Predictor: PredictorExact})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("eq. 5 %.6f nats, eq. 16 %.6f nats, H(x0) %.6f nats\n", r.Eq5Total, r.Eq16Total, r.Entropy)
	fmt.Printf("t = 50: eq. 5 term %.3g nats, eq. 16 term %.3g nats\n", r.Eq5Terms[49], r.Eq16Terms[49])
	fmt.Printf("L − H(x0) = %.4f nats\n", r.Eq16Total-r.Entropy)
	// Output:
	// eq. 5 3.730080 nats, eq. 16 3.730080 nats, H(x0) 1.029653 nats
	// t = 50: eq. 5 term 0.00138 nats, eq. 16 term 1.04e-05 nats
	// L − H(x0) = 2.7004 nats
}
