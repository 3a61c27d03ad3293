package ablation

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"github.com/ddpm-go/ddpm/internal/plot"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/train"
)

// File names inside Options.Out and the row directories.
const (
	TableFile   = "table.md"
	ResultsFile = "results.json"
	PerTPlot    = "per_t.png"
	LossFile    = "loss.tsv" // per row: step and loss of every step taken
)

// report is results.json.
type report struct {
	Train     train.Options    `json:"train"`
	Diffusion diffusion.Config `json:"diffusion"` // Mean/Var/Loss vary by row
	EvalN     int              `json:"eval_n"`
	EvalSeed  uint64           `json:"eval_seed"`
	Rows      []Result         `json:"rows"`
}

// WriteReport writes table.md and results.json for the rows so far.
func WriteReport(opt Options, results []Result) error {
	if err := writeJSON(filepath.Join(opt.Out, ResultsFile), report{
		Train: opt.Train, Diffusion: opt.Diffusion, EvalN: opt.EvalN, EvalSeed: opt.EvalSeed, Rows: results,
	}); err != nil {
		return fmt.Errorf("ablation: %w", err)
	}
	var b bytes.Buffer
	WriteTable(&b, opt, results)
	if err := writeFile(filepath.Join(opt.Out, TableFile), b.Bytes()); err != nil {
		return fmt.Errorf("ablation: %w", err)
	}
	return nil
}

// WriteTable writes the Markdown table, laid out like the paper's Table 2
// with this experiment's measurements beside the paper's CIFAR-10 numbers.
func WriteTable(w io.Writer, opt Options, results []Result) {
	t, dc := opt.Train, opt.Diffusion
	qname := "sample quality"
	if opt.Quality != nil {
		qname = opt.Quality.Name
	}
	fmt.Fprintf(w, "# Table 2 ablation on %s\n\n", t.Data)
	fmt.Fprintf(w, "Every row: U-Net config %s, %d steps × batch %d, Adam lr %g (warm-up %d), grad clip %g, EMA %g, seed %d; T = %d, %s β schedule.\n",
		t.Config, t.Steps, t.Batch, t.LR, t.Warmup, t.GradClip, t.EMADecay, t.Seed, dc.T, dc.Schedule)
	fmt.Fprintf(w, "Test NLL: the full bound L (eq. 5) of the first %d test images, every t with one x_t each, EMA weights, in bits per data dimension (± standard error over images).\n\n", opt.EvalN)
	fmt.Fprintf(w, "| predicts | objective | status | final loss | test NLL (bits/dim) | %s | paper IS | paper FID |\n", qname)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|\n")
	var notes []string
	for _, r := range results {
		loss, nll, q := "–", "–", "–"
		if r.FinalLoss != nil {
			loss = fmt.Sprintf("%.4g", *r.FinalLoss)
		}
		status := r.Status
		if r.Status == StatusUnstable {
			nll, q = "unstable", "unstable"
			notes = append(notes, fmt.Sprintf("%s (%s, %s) became unstable: %s.", r.Row, r.Predicts, r.Objective, r.Reason))
		}
		if r.BPD != nil {
			nll = fmt.Sprintf("%.4f ± %.4f", r.BPD.TotalBPD, r.BPD.TotalBPDStderr)
		}
		if r.Quality != nil {
			q = fmt.Sprintf("%.4g", *r.Quality)
		}
		if r.QualityError != "" {
			q = "failed"
			notes = append(notes, fmt.Sprintf("%s: %s could not be measured: %s.", r.Row, qname, r.QualityError))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Predicts, r.Objective, status, loss, nll, q, r.PaperIS, r.PaperFID)
	}
	fmt.Fprintf(w, "\n- Final loss: the mean over the last steps of each row's own objective (bits/dim for L, a mean squared error otherwise), so it compares a row with itself, not across rows.\n")
	if opt.Quality == nil {
		fmt.Fprintf(w, "- %s: – means not measured (no sample-quality metric was given to the experiment).\n", qname)
	}
	fmt.Fprintf(w, "- Paper columns: Ho et al. 2020, Table 2 (CIFAR-10, 800k steps), for the trend, not the values.\n")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// plotRows draws the per-t bound of every evaluated row in one PNG.
func plotRows(opt Options, results []Result) error {
	var curves []plot.Curve
	for _, r := range results {
		if r.BPD != nil {
			curves = append(curves, plot.Curve{Name: r.Row, PerT: r.BPD.PerTBPD})
		}
	}
	if len(curves) == 0 {
		return nil
	}
	title := fmt.Sprintf("Table 2 rows on %s: bound term per t (test)", opt.Train.Data)
	if err := plot.PerT(filepath.Join(opt.Out, PerTPlot), title, curves...); err != nil {
		return fmt.Errorf("ablation: %w", err)
	}
	return nil
}

// writeLosses stores the loss of steps 1..len(losses), one "step\tloss"
// line each.
func writeLosses(dir string, losses []float64) error {
	var b bytes.Buffer
	b.WriteString("step\tloss\n")
	for i, l := range losses {
		fmt.Fprintf(&b, "%d\t%s\n", i+1, strconv.FormatFloat(l, 'g', -1, 64))
	}
	return writeFile(filepath.Join(dir, LossFile), b.Bytes())
}

// readLosses reads the losses of steps 1..upTo from dir's loss log (fewer
// if the log is shorter; none if there is no log).
func readLosses(dir string, upTo int) ([]float64, error) {
	path := filepath.Join(dir, LossFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var losses []float64
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		if line == 0 {
			continue // header
		}
		step, loss, ok := strings.Cut(sc.Text(), "\t")
		s, err1 := strconv.Atoi(step)
		l, err2 := strconv.ParseFloat(loss, 64)
		if !ok || err1 != nil || err2 != nil || s != len(losses)+1 {
			return nil, fmt.Errorf("%s: line %d is not the next step and its loss (delete the file to drop the history)", path, line+1)
		}
		if s > upTo {
			break
		}
		losses = append(losses, l)
	}
	return losses, sc.Err()
}
