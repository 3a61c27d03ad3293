package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// LossLogName is the loss log's file name in a run directory.
const LossLogName = "loss.jsonl"

// LossRecord is one line of the loss log: the steps since the previous
// line, summarised.
type LossRecord struct {
	Step int `json:"step"` // the last step it covers
	// Loss is the mean training loss over the steps it covers (the
	// objective's value: L_simple for the paper's setting).
	Loss float64 `json:"loss"`
	// LR is the learning rate of its last step (after warm-up and decay).
	LR float64 `json:"lr"`
	// GradNorm is the mean global gradient norm over its steps, before
	// clipping.
	GradNorm float64 `json:"grad_norm"`
	// ImgPerSec is the training throughput over its steps.
	ImgPerSec float64 `json:"img_per_s"`
	// Elapsed is the run's training time at its last step, in seconds,
	// counted across resumes.
	Elapsed float64 `json:"elapsed_s"`
	// Skipped counts its steps skipped as non-finite (--skip-nan).
	Skipped int `json:"skipped,omitempty"`
}

// LossLog appends a LossRecord to a run's loss.jsonl every Every steps.
// Lines are written whole with one write each, so a log read while the
// run goes on (tail -f, a plotting script) never shows half a line.
type LossLog struct {
	f     *os.File
	every int
	batch int
	now   func() time.Time

	start   time.Time // when this process's part of the run began
	base    float64   // elapsed seconds before it (from the kept lines)
	last    time.Time // when the previous line was written
	n, skip int       // steps (finite, skipped) since the previous line
	sumLoss float64
	sumGN   float64
	step    int
	lr      float64
}

// OpenLossLog opens the loss log of the run in dir, which is at step
// (0 for a new run), to write a line every `every` steps of batch images.
// Lines of steps after step are dropped first: they were written by a run
// that went on past its newest checkpoint and are about to be trained
// again, so a resumed run never logs a step twice, and a new run starts an
// empty log. A damaged last line (a process killed mid-write) is dropped
// too.
func OpenLossLog(dir string, step, every, batch int) (*LossLog, error) {
	if every < 1 {
		return nil, fmt.Errorf("loss log: interval %d, need ≥ 1", every)
	}
	path := filepath.Join(dir, LossLogName)
	if stale, _ := filepath.Glob(filepath.Join(dir, "."+LossLogName+".tmp*")); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f) // left by a process killed while rewriting the log
		}
	}
	kept, rewrite, base, err := keptLines(path, step)
	if err != nil {
		return nil, err
	}
	if rewrite {
		if err := writeFileAtomic(path, kept); err != nil {
			return nil, fmt.Errorf("loss log: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("loss log: %w", err)
	}
	l := &LossLog{f: f, every: every, batch: batch, now: time.Now, base: base}
	l.start = l.now()
	l.last = l.start
	return l, nil
}

// keptLines reads the log at path and returns its lines up to step,
// whether the file must be rewritten to hold only those (some must go),
// and the elapsed seconds of the last line kept.
func keptLines(path string, step int) (kept []byte, rewrite bool, base float64, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, 0, nil
	}
	if err != nil {
		return nil, false, 0, fmt.Errorf("loss log: %w", err)
	}
	var out bytes.Buffer
	dropped := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r LossRecord
		line := sc.Bytes()
		if json.Unmarshal(line, &r) != nil || r.Step > step {
			dropped = true
			continue
		}
		out.Write(line)
		out.WriteByte('\n')
		base = r.Elapsed
	}
	if sc.Err() != nil {
		return nil, false, 0, fmt.Errorf("loss log %s: %w", path, sc.Err())
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		dropped = true // a line cut short
	}
	return out.Bytes(), dropped, base, nil
}

// writeFileAtomic replaces path with b through a temporary file.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Step records a finished step's loss, gradient norm (before clipping) and
// learning rate, writing a line when step is a multiple of the interval.
func (l *LossLog) Step(step int, loss, gradNorm, lr float64) error {
	l.n++
	l.sumLoss += loss
	l.sumGN += gradNorm
	l.step, l.lr = step, lr
	if step%l.every != 0 {
		return nil
	}
	return l.Flush()
}

// Skip records a step skipped as non-finite.
func (l *LossLog) Skip(step int) {
	l.skip++
	l.step = step
}

// Exclude leaves d, time spent on something else than training (a
// preview), out of the throughput of the next line.
func (l *LossLog) Exclude(d time.Duration) { l.last = l.last.Add(d) }

// Flush writes a line for the steps recorded since the previous one, if
// any finished: at the end of a run or when it is interrupted.
func (l *LossLog) Flush() error {
	if l.n == 0 {
		return nil
	}
	t := l.now()
	r := LossRecord{Step: l.step, Loss: l.sumLoss / float64(l.n), LR: l.lr, GradNorm: l.sumGN / float64(l.n),
		Elapsed: l.base + t.Sub(l.start).Seconds(), Skipped: l.skip}
	if s := t.Sub(l.last).Seconds(); s > 0 {
		r.ImgPerSec = float64((l.n+l.skip)*l.batch) / s
	}
	l.n, l.skip, l.sumLoss, l.sumGN, l.last = 0, 0, 0, 0, t
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("loss log: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("loss log: %w", err)
	}
	return nil
}

// Close flushes and closes the log.
func (l *LossLog) Close() error {
	err := l.Flush()
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("loss log: %w", cerr)
	}
	return err
}

// ReadLossLog reads the loss log of the run in dir.
func ReadLossLog(dir string) ([]LossRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, LossLogName))
	if err != nil {
		return nil, fmt.Errorf("loss log: %w", err)
	}
	var rs []LossRecord
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r LossRecord
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("loss log %s line %d: %w", filepath.Join(dir, LossLogName), i+1, err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}
