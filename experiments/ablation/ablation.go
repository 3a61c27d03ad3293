package ablation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/train"
)

// Quality is the hook for a sample-quality metric (e.g. FID against the test
// set): Measure is called once per stable row with its trained model (EMA
// weights) and process. Name heads the table column.
type Quality struct {
	Name    string
	Measure func(ctx context.Context, m *unet.UNet, d *diffusion.Diffusion) (float64, error)
}

// Options describe the experiment. Every row trains with Train and
// Diffusion, except that the row sets Diffusion's Mean, Var and Loss.
type Options struct {
	Out       string           // directory: one run directory per row, table.md, results.json
	Train     train.Options    // data, config, steps, batch, lr, … shared by all rows
	Diffusion diffusion.Config // schedule, T, clip; Mean/Var/Loss come from the row
	Rows      []Row            // nil: Table2()

	EvalN     int    // test images whose bound is measured (the first EvalN of the split)
	EvalBatch int    // network inputs per forward pass while measuring
	EvalSeed  uint64 // seed of the x_t draws of the bound

	Quality *Quality // nil: the quality column is "–"

	Quiet bool      // no progress bars
	Log   io.Writer // one line per row event; nil discards
}

// Status values of a [Result].
const (
	StatusOK       = "ok"
	StatusUnstable = "unstable"
)

// Result is one row's outcome; it is also stored as result.json in the
// row's run directory, which is how a rerun knows the row is done.
type Result struct {
	Row       string `json:"row"`
	Predicts  string `json:"predicts"`
	Objective string `json:"objective"`
	Status    string `json:"status"`           // StatusOK or StatusUnstable
	Reason    string `json:"reason,omitempty"` // why the run is unstable

	Steps        int      `json:"steps"`                // steps taken (where it stopped, if unstable)
	FinalLoss    *float64 `json:"final_loss,omitempty"` // mean loss of the last steps, in the row's own objective
	TrainSeconds float64  `json:"train_seconds"`        // this invocation's training time (0 if trained earlier)

	// The test-set bound of a stable row, in bits per data dimension.
	BPD         *diffusion.BoundSummary `json:"bpd,omitempty"`
	EvalSeconds float64                 `json:"eval_seconds,omitempty"`

	QualityName  string   `json:"quality_name,omitempty"`
	Quality      *float64 `json:"quality,omitempty"`
	QualityError string   `json:"quality_error,omitempty"` // why Quality could not be measured

	PaperIS  string `json:"paper_is"`
	PaperFID string `json:"paper_fid"`

	// The settings the row ran with: a rerun reuses the result only if
	// they are unchanged.
	Train     train.Options    `json:"train"`
	Diffusion diffusion.Config `json:"diffusion"`
	EvalN     int              `json:"eval_n"`
	EvalSeed  uint64           `json:"eval_seed"`
}

// ResultFile is the name of a row's result inside its run directory.
const ResultFile = "result.json"

// Validate reports the first unusable option.
func (o Options) Validate() error {
	if o.Out == "" {
		return errors.New("no output directory")
	}
	if err := o.Train.Validate(); err != nil {
		return err
	}
	if o.EvalN <= 0 || o.EvalBatch <= 0 {
		return fmt.Errorf("eval-n and eval-batch must be positive, got %d and %d", o.EvalN, o.EvalBatch)
	}
	for _, r := range o.rows() {
		if _, err := diffusion.New(r.Config(o.Diffusion)); err != nil {
			return fmt.Errorf("row %s: %w", r.Name(), err)
		}
	}
	return nil
}

func (o Options) rows() []Row {
	if o.Rows == nil {
		return Table2()
	}
	return o.Rows
}

// Run trains and evaluates every row in turn, skipping rows whose result
// is already stored with the same settings and resuming rows whose run
// directory holds an unfinished checkpoint. After each row it rewrites
// table.md and results.json, so an interrupted experiment still leaves a
// table of the rows done. ctx cancels between steps; the row in progress
// is checkpointed first.
func Run(ctx context.Context, opt Options) ([]Result, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("ablation: %w", err)
	}
	log := opt.Log
	if log == nil {
		log = io.Discard
	}
	ucfg, err := unet.ConfigByName(opt.Train.Config)
	if err != nil {
		return nil, fmt.Errorf("ablation: %w", err)
	}
	trainSet, err := data.Load(opt.Train.Data, "train", data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh))
	if err != nil {
		return nil, fmt.Errorf("ablation: %w", err)
	}
	testSet, err := data.Load(opt.Train.Data, "test", data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh), data.WithLimit(opt.EvalN))
	if err != nil {
		return nil, fmt.Errorf("ablation: %w", err)
	}
	if testSet.N < opt.EvalN {
		return nil, fmt.Errorf("ablation: eval-n %d exceeds the %d test images of %s", opt.EvalN, testSet.N, opt.Train.Data)
	}
	if err := testSet.CheckSize(ucfg.Res); err != nil {
		return nil, fmt.Errorf("ablation: %w", err)
	}
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return nil, fmt.Errorf("ablation: %w", err)
	}
	rows := opt.rows()
	var results []Result
	for k, row := range rows {
		r, err := runRow(ctx, opt, ucfg, row, fmt.Sprintf("[%d/%d] %s", k+1, len(rows), row.Name()), trainSet, testSet, log)
		if err != nil {
			return results, fmt.Errorf("ablation: row %s: %w", row.Name(), err)
		}
		results = append(results, *r)
		if err := WriteReport(opt, results); err != nil {
			return results, err
		}
	}
	if err := plotRows(opt, results); err != nil {
		return results, err
	}
	return results, nil
}

// settingsMatch reports whether a stored result was produced with the
// current settings.
func settingsMatch(r *Result, opt Options, row Row) bool {
	return r.Train == opt.Train && r.Diffusion == row.Config(opt.Diffusion) &&
		(r.Status == StatusUnstable || (r.EvalN == opt.EvalN && r.EvalSeed == opt.EvalSeed &&
			(opt.Quality == nil || (r.Quality != nil && r.QualityName == opt.Quality.Name))))
}

func runRow(ctx context.Context, opt Options, ucfg unet.Config, row Row, label string, trainSet, testSet *data.Dataset, log io.Writer) (*Result, error) {
	dir := filepath.Join(opt.Out, row.Name())
	dc := row.Config(opt.Diffusion)
	prev, err := readResult(dir)
	if err != nil {
		return nil, err
	}
	if prev != nil && settingsMatch(prev, opt, row) {
		fmt.Fprintf(log, "%s: done earlier (%s), skipped\n", label, prev.Status)
		prev.TrainSeconds, prev.EvalSeconds = 0, 0
		return prev, nil
	}
	res := &Result{
		Row: row.Name(), Predicts: row.Predicts(), Objective: row.Objective(), Status: StatusOK,
		PaperIS: row.PaperIS, PaperFID: row.PaperFID,
		Train: opt.Train, Diffusion: dc, EvalN: opt.EvalN, EvalSeed: opt.EvalSeed,
	}

	tr, mon, err := startRow(dir, opt, ucfg, dc, trainSet, log, label)
	if err != nil {
		return nil, err
	}
	if tr.Step < opt.Train.Steps {
		start := time.Now()
		bar := progress.New(opt.Train.Steps, label, "step", opt.Quiet)
		bar.Set(tr.Step)
		reason, err := trainLoop(ctx, tr.Step, opt.Train.Steps, opt.Train.CkptEvery, tr.TrainStep,
			func() error { return saveRow(tr, dir, mon) }, mon,
			func(step int, loss float64) {
				bar.Describe(fmt.Sprintf("loss %.4g", mon.Smoothed()))
				bar.Add(1)
			})
		res.TrainSeconds = time.Since(start).Seconds()
		if err != nil {
			return nil, err
		}
		bar.Finish()
		if reason != "" {
			res.Status, res.Reason = StatusUnstable, reason
			// Keep the losses up to the divergence for diagnosis; a
			// resume reads only those up to its checkpoint's step.
			if err := writeLosses(dir, mon.History()); err != nil {
				return nil, err
			}
		}
	}
	res.Steps = tr.Step
	if l := mon.Smoothed(); !math.IsNaN(l) && !math.IsInf(l, 0) {
		res.FinalLoss = &l
	}

	if res.Status == StatusOK {
		if err := evaluateRow(ctx, dir, opt, label, testSet, res); err != nil {
			return nil, err
		}
	}
	switch {
	case res.BPD != nil:
		fmt.Fprintf(log, "%s: test bound %.4f ± %.4f bits/dim\n", label, res.BPD.TotalBPD, res.BPD.TotalBPDStderr)
	case res.Status == StatusUnstable:
		fmt.Fprintf(log, "%s: unstable: %s\n", label, res.Reason)
	}
	if err := writeJSON(filepath.Join(dir, ResultFile), res); err != nil {
		return nil, err
	}
	return res, nil
}

// startRow builds the row's trainer: a fresh one, or the one in dir's
// checkpoint when it was trained with the same settings (its loss log
// restores the monitor).
func startRow(dir string, opt Options, ucfg unet.Config, dc diffusion.Config, ds *data.Dataset, log io.Writer, label string) (*train.Trainer, *Monitor, error) {
	mon := NewMonitor(opt.Train.Steps)
	if _, err := os.Stat(checkpoint.Path(dir)); errors.Is(err, fs.ErrNotExist) {
		tr, err := train.New(opt.Train, ucfg, dc, ds)
		return tr, mon, err
	}
	saved, err := train.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	same := saved.Opt
	same.Steps = opt.Train.Steps
	if same != opt.Train || saved.Checkpoint.Diffusion != dc {
		return nil, nil, fmt.Errorf("%s holds a run with other settings (%+v, %+v); choose another output directory", dir, saved.Opt, saved.Checkpoint.Diffusion)
	}
	if saved.Checkpoint.Step > opt.Train.Steps {
		return nil, nil, fmt.Errorf("%s was trained for %d steps, more than the %d asked for; choose another output directory", dir, saved.Checkpoint.Step, opt.Train.Steps)
	}
	tr, err := saved.Resume(ds, opt.Train.Steps)
	if err != nil {
		return nil, nil, err
	}
	losses, err := readLosses(dir, tr.Step)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range losses {
		mon.Observe(l)
	}
	if tr.Step < opt.Train.Steps {
		fmt.Fprintf(log, "%s: resuming at step %d\n", label, tr.Step)
	}
	return tr, mon, nil
}

// trainLoop takes steps from start to steps, saving every ckptEvery steps
// and at the end, and watches the loss with mon. A non-finite loss,
// gradient or weight, or a loss explosion, ends it early with the reason
// (the diverged state is not saved: the last checkpoint stays the last good
// one). A cancelled ctx saves and returns ctx's error.
func trainLoop(ctx context.Context, start, steps, ckptEvery int, step func() (float64, float64, error),
	save func() error, mon *Monitor, onStep func(step int, loss float64)) (reason string, err error) {
	for s := start + 1; s <= steps; s++ {
		if ctx.Err() != nil {
			if err := save(); err != nil {
				return "", err
			}
			return "", ctx.Err()
		}
		loss, gn, err := step()
		if errors.Is(err, train.ErrNonFinite) || errors.Is(err, train.ErrDiverged) {
			return fmt.Sprintf("step %d: %v (loss %g, grad norm %g)", s, err, loss, gn), nil
		}
		if err != nil {
			return "", err
		}
		if r := mon.Observe(loss); r != "" {
			return fmt.Sprintf("step %d: %s", s, r), nil
		}
		if onStep != nil {
			onStep(s, loss)
		}
		if ckptEvery > 0 && s%ckptEvery == 0 && s < steps {
			if err := save(); err != nil {
				return "", err
			}
		}
	}
	return "", save()
}

// saveRow checkpoints the row and its loss log.
func saveRow(tr *train.Trainer, dir string, mon *Monitor) error {
	if err := tr.Save(dir); err != nil {
		return err
	}
	return writeLosses(dir, mon.History())
}

// evaluateRow measures the bound (and quality) of the row's EMA weights.
func evaluateRow(ctx context.Context, dir string, opt Options, label string, testSet *data.Dataset, res *Result) error {
	m, dc, err := checkpoint.LoadModel(dir, false, nil)
	if err != nil {
		return err
	}
	d, err := diffusion.New(dc)
	if err != nil {
		return err
	}
	cfg := m.Config()
	n, D := opt.EvalN, cfg.InCh*cfg.Res*cfg.Res
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	x0 := make([]float32, n*D)
	testSet.ToFloat(x0, idx, cfg.Res)
	start := time.Now()
	bar := progress.New(n*d.T, label+" bits/dim", "eval", opt.Quiet)
	r, err := d.EvaluateBound(ctx, m, x0, n, diffusion.BoundOptions{
		Batch: opt.EvalBatch, Rng: rand.New(rand.NewPCG(opt.EvalSeed, 0x627064)),
		Progress: func(done, total int) { bar.Set(done) },
	})
	if err != nil {
		return err
	}
	bar.Finish()
	s := r.Summary(float64(D) / float64(testSet.ImageSize()))
	if math.IsNaN(s.TotalBPD) || math.IsInf(s.TotalBPD, 0) {
		res.Status, res.Reason = StatusUnstable, fmt.Sprintf("the trained model's bound is %g", s.TotalBPD)
		return nil
	}
	res.BPD = &s
	if opt.Quality != nil {
		res.QualityName = opt.Quality.Name
		q, err := opt.Quality.Measure(ctx, m, d)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			// A model that trains but samples garbage (non-finite images)
			// is a finding for the table, not a reason to stop.
			res.QualityError = err.Error()
		default:
			res.Quality = &q
		}
	}
	res.EvalSeconds = time.Since(start).Seconds()
	return nil
}

// readResult reads dir's result.json; nil, nil when there is none.
func readResult(dir string) (*Result, error) {
	b, err := os.ReadFile(filepath.Join(dir, ResultFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w (delete it to redo the row)", filepath.Join(dir, ResultFile), err)
	}
	return &r, nil
}

// writeJSON writes v indented to path atomically (temp file and rename).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
