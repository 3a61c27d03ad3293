package ablation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/train"
)

func TestMonitor(t *testing.T) {
	flat := func(n int, v float64) []float64 {
		s := make([]float64, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	cat := func(parts ...[]float64) []float64 {
		var s []float64
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	for _, c := range []struct {
		name   string
		losses []float64
		want   int // 1-based step at which it reports, 0: never
	}{
		{"falling loss", cat(flat(5, 10), flat(50, 0.1)), 0},
		{"one spike is smoothed away", cat(flat(20, 1), []float64{150}, flat(20, 1)), 0},
		{"sustained ×100", cat(flat(10, 1), flat(20, 101)), 11 + 4}, // the last-5 mean reaches 100 at the 5th bad step
		{"just under ×100", cat(flat(10, 1), flat(20, 99)), 0},
		{"NaN", cat(flat(3, 1), []float64{math.NaN()}), 4},
		{"+Inf", []float64{math.Inf(1)}, 1},
		{"too early to judge", cat(flat(5, 1), flat(4, 1000)), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMonitor(60) // window 5
			if m.Window != 5 {
				t.Fatalf("window %d, want 5", m.Window)
			}
			got := 0
			for i, l := range c.losses {
				if r := m.Observe(l); r != "" {
					got = i + 1
					break
				}
			}
			if got != c.want {
				t.Errorf("reported at step %d, want %d", got, c.want)
			}
		})
	}
	for steps, w := range map[int]int{10: 5, 1000: 50, 100000: 100} {
		if m := NewMonitor(steps); m.Window != w {
			t.Errorf("%d steps: window %d, want %d", steps, m.Window, w)
		}
	}
}

func TestTrainLoop(t *testing.T) {
	run := func(ctx context.Context, losses []float64, fail map[int]error, steps, every int) (string, error, []int, int) {
		s, taken := 0, 0
		var saves []int
		mon := NewMonitor(steps)
		reason, err := trainLoop(ctx, 0, steps, every,
			func() (float64, float64, error) {
				s++
				taken = s
				if e := fail[s]; e != nil {
					return math.NaN(), math.NaN(), e
				}
				return losses[(s-1)%len(losses)], 1, nil
			},
			func() error { saves = append(saves, s); return nil }, mon, nil)
		return reason, err, saves, taken
	}
	bg := context.Background()

	reason, err, saves, taken := run(bg, []float64{1, 0.5}, nil, 7, 3)
	if reason != "" || err != nil || taken != 7 || fmt.Sprint(saves) != "[3 6 7]" {
		t.Errorf("stable run: reason %q err %v, %d steps, saves %v; want 7 steps, saves [3 6 7]", reason, err, taken, saves)
	}
	for _, e := range []error{train.ErrNonFinite, train.ErrDiverged} {
		reason, err, saves, taken = run(bg, []float64{1}, map[int]error{5: e}, 10, 2)
		if err != nil || !strings.Contains(reason, "step 5") || taken != 5 || fmt.Sprint(saves) != "[2 4]" {
			t.Errorf("%v at step 5: reason %q err %v, %d steps, saves %v; want stop at 5 without saving", e, reason, err, taken, saves)
		}
	}
	exploding := make([]float64, 40)
	for i := range exploding {
		exploding[i] = math.Pow(2, float64(i))
	}
	reason, err, _, taken = run(bg, exploding, nil, 40, 0)
	if err != nil || !strings.Contains(reason, "exploded") || taken >= 40 {
		t.Errorf("exploding loss: reason %q err %v after %d steps", reason, err, taken)
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	reason, err, saves, taken = run(ctx, []float64{1}, nil, 10, 0)
	if !errors.Is(err, context.Canceled) || taken != 0 || len(saves) != 1 {
		t.Errorf("cancelled: reason %q err %v, %d steps, saves %v; want a save and context.Canceled", reason, err, taken, saves)
	}
	other := errors.New("disk full")
	if _, err, _, _ = run(bg, []float64{1}, map[int]error{2: other}, 10, 0); !errors.Is(err, other) {
		t.Errorf("other error: got %v", err)
	}
}

func TestRows(t *testing.T) {
	if len(Table2()) != 6 {
		t.Fatalf("%d rows", len(Table2()))
	}
	names := map[string]bool{}
	for _, r := range Table2() {
		if names[r.Name()] {
			t.Errorf("duplicate row %s", r.Name())
		}
		names[r.Name()] = true
		if _, err := diffusion.New(r.Config(diffusion.DefaultConfig())); err != nil {
			t.Errorf("row %s: %v", r.Name(), err)
		}
	}
	want := []string{"xprev-learned-vlb", "xprev-fixedlarge-vlb", "xprev-fixedlarge-mse-mu",
		"eps-learned-vlb", "eps-fixedlarge-vlb", "eps-fixedlarge-simple"}
	for i, w := range want {
		if Table2()[i].Name() != w {
			t.Errorf("row %d is %s, want %s", i+1, Table2()[i].Name(), w)
		}
	}
}

func smokeOptions(out string) Options {
	o := train.DefaultOptions()
	o.Data, o.Config, o.Steps, o.Batch, o.Warmup, o.CkptEvery = "mnist", "tiny1", 3, 2, 1, 2
	dc := diffusion.DefaultConfig()
	dc.T = 8
	return Options{Out: out, Train: o, Diffusion: dc, EvalN: 2, EvalBatch: 5, Quiet: true}
}

// TestRunSmoke runs the whole experiment on a tiny budget, then reruns it
// (everything skipped), extends two rows (resumed from their checkpoints)
// and refuses a directory holding other settings.
func TestRunSmoke(t *testing.T) {
	out := t.TempDir()
	opt := smokeOptions(out)
	var log bytes.Buffer
	opt.Log = &log
	results, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 6 {
		t.Fatalf("%d results", len(results))
	}
	for i, r := range results {
		if r.Row != Table2()[i].Name() || r.Status != StatusOK || r.Steps != 3 || r.BPD == nil || r.FinalLoss == nil {
			t.Fatalf("row %d: %+v", i, r)
		}
		if len(r.BPD.PerTBPD) != 8 || !(r.BPD.TotalBPD > 0) || r.BPD.N != 2 {
			t.Errorf("row %s: bound %+v", r.Row, r.BPD)
		}
		if sum := r.BPD.PriorBPD + r.BPD.DecoderBPD + r.BPD.TermsBPD; math.Abs(sum-r.BPD.TotalBPD) > 1e-9*r.BPD.TotalBPD {
			t.Errorf("row %s: parts sum to %v, total %v", r.Row, sum, r.BPD.TotalBPD)
		}
		dir := filepath.Join(out, r.Row)
		c, _, err := checkpoint.Load(checkpoint.Path(dir))
		if err != nil {
			t.Fatal(err)
		}
		if c.Step != 3 || c.Diffusion != Table2()[i].Config(opt.Diffusion) {
			t.Errorf("row %s: checkpoint at step %d with %+v", r.Row, c.Step, c.Diffusion)
		}
		if l, err := readLosses(dir, 100); err != nil || len(l) != 3 {
			t.Errorf("row %s: loss log %v, %v", r.Row, l, err)
		}
	}
	table, err := os.ReadFile(filepath.Join(out, TableFile))
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(string(table), "\n| "); rows != 7 { // header + 6
		t.Errorf("table has %d rows:\n%s", rows, table)
	}
	for _, s := range []string{"| ε | ‖ε̃ − ε_θ‖² (L_simple) | ok |", "| μ̃ | L, learned diagonal Σ | ok |", "9.46 ± 0.11", "–"} {
		if !strings.Contains(string(table), s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	var rep report
	b, err := os.ReadFile(filepath.Join(out, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Rows) != 6 || rep.Train.Steps != 3 {
		t.Fatalf("results.json: %v, %d rows", err, len(rep.Rows))
	}
	if _, err := os.Stat(filepath.Join(out, PerTPlot)); err != nil {
		t.Error(err)
	}

	// Rerun: every row is done.
	log.Reset()
	again, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), "skipped"); n != 6 {
		t.Errorf("rerun skipped %d rows:\n%s", n, log.String())
	}
	for i := range again {
		if again[i].BPD.TotalBPD != results[i].BPD.TotalBPD {
			t.Errorf("row %s: rerun reports %v, first run %v", again[i].Row, again[i].BPD.TotalBPD, results[i].BPD.TotalBPD)
		}
	}

	// Extend two rows by two steps: they resume at step 3 and keep their
	// loss history.
	ext := opt
	ext.Train.Steps = 5
	ext.Rows = Table2()[4:]
	before, _ := readLosses(filepath.Join(out, ext.Rows[0].Name()), 100)
	log.Reset()
	longer, err := Run(context.Background(), ext)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(log.String(), "resuming at step 3"); n != 2 {
		t.Errorf("%d rows resumed:\n%s", n, log.String())
	}
	after, _ := readLosses(filepath.Join(out, ext.Rows[0].Name()), 100)
	if len(longer) != 2 || longer[0].Steps != 5 || len(after) != 5 || fmt.Sprint(after[:3]) != fmt.Sprint(before) {
		t.Errorf("extended: %d results, %d steps; losses %v then %v", len(longer), longer[0].Steps, before, after)
	}

	other := opt
	other.Train.LR *= 2
	other.Rows = Table2()[:1]
	if _, err := Run(context.Background(), other); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("other settings in the same directory: err %v", err)
	}
}

func TestRunRecordsUnstable(t *testing.T) {
	out := t.TempDir()
	opt := smokeOptions(out)
	opt.Rows = Table2()[5:]
	// An Adam step of 1e40 overflows the weights: train.ErrDiverged on the
	// first step, which must become an "unstable" row, not an error.
	opt.Train.LR, opt.Train.Warmup, opt.Train.GradClip = 1e40, 0, 0
	results, err := Run(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if r := results[0]; r.Status != StatusUnstable || r.BPD != nil || r.Reason == "" {
		t.Fatalf("result %+v", r)
	}
	table, _ := os.ReadFile(filepath.Join(out, TableFile))
	if !strings.Contains(string(table), "| unstable | – | unstable | unstable |") || !strings.Contains(string(table), "became unstable") {
		t.Errorf("table:\n%s", table)
	}
	// The verdict is stored: a rerun does not train again.
	var log bytes.Buffer
	opt.Log = &log
	if _, err := Run(context.Background(), opt); err != nil || !strings.Contains(log.String(), "done earlier (unstable)") {
		t.Errorf("rerun: %v\n%s", err, log.String())
	}
}

func TestValidate(t *testing.T) {
	good := smokeOptions("x")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Options){
		"no out":      func(o *Options) { o.Out = "" },
		"zero steps":  func(o *Options) { o.Train.Steps = 0 },
		"zero eval-n": func(o *Options) { o.EvalN = 0 },
		"zero batch":  func(o *Options) { o.EvalBatch = 0 },
		"T = 1":       func(o *Options) { o.Diffusion.T = 1 },
		"hybrid fixed": func(o *Options) {
			o.Rows = []Row{{Mean: diffusion.Eps, Var: diffusion.FixedLarge, Loss: diffusion.Hybrid}}
		},
	} {
		o := good
		edit(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
