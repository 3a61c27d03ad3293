package train

import (
	"context"
	"path/filepath"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
)

// Session is a prepared run (Prepare): its Trainer, with the run directory
// locked for this process and its loss log open. Train it, Finish it once
// it reaches its steps, and Close it.
type Session struct {
	*Trainer
	Dir string // the run directory

	lossLog   *LossLog
	release   func()
	start     time.Time
	startStep int
	warn      error // the first failure to write the loss log or a preview
}

// begin opens a session on tr in dir: writable, locked, with its loss log.
func begin(tr *Trainer, dir string) (*Session, error) {
	if err := checkWritable(dir); err != nil {
		return nil, err
	}
	release, err := LockDir(dir)
	if err != nil {
		return nil, err
	}
	lossLog, err := OpenLossLog(dir, tr.Step, tr.Opt.LogInterval(), tr.Opt.Batch)
	if err != nil {
		release()
		return nil, err
	}
	return &Session{Trainer: tr, Dir: dir, lossLog: lossLog, release: release, start: time.Now(), startStep: tr.Step}, nil
}

// Train runs the session to Opt.Steps (Trainer.Run: checkpoints, and one
// when ctx is cancelled, whose error it then returns), appending the loss
// log and writing the preview every Opt.PreviewInterval() steps on the
// way. progress, if set, is told of each step taken, and OnSkip, if set, of
// each step skipped. A failure to write the loss log or a preview does not
// stop the run: Finish reports it.
func (s *Session) Train(ctx context.Context, progress Progress) error {
	onSkip := s.OnSkip
	defer func() { s.OnSkip = onSkip }()
	s.OnSkip = func(step int, loss, gradNorm float64) {
		if onSkip != nil {
			onSkip(step, loss, gradNorm)
		}
		s.lossLog.Skip(step)
	}
	every := s.Opt.PreviewInterval()
	s.start, s.startStep = time.Now(), s.Step
	err := s.Run(ctx, s.Dir, func(step int, loss, gradNorm float64) {
		if progress != nil {
			progress(step, loss, gradNorm)
		}
		s.note(s.lossLog.Step(step, loss, gradNorm, s.Adam.LR))
		if every > 0 && step%every == 0 && step < s.Opt.Steps {
			t := time.Now()
			if err := s.Preview(ctx, s.previewPath()); ctx.Err() == nil {
				s.note(err)
			}
			s.lossLog.Exclude(time.Since(t))
		}
	})
	s.note(s.lossLog.Flush())
	return err
}

// note keeps the first failure to write a side file.
func (s *Session) note(err error) {
	if s.warn == nil {
		s.warn = err
	}
}

func (s *Session) previewPath() string { return filepath.Join(s.Dir, PreviewName) }

// Summary sums up a session that reached its steps.
type Summary struct {
	Steps      int           // steps this session took
	Skipped    int           // of which skipped as non-finite (Options.SkipNaN)
	Elapsed    time.Duration // since Train began
	Checkpoint string        // the run's checkpoint file
	Preview    string        // the preview written at the end; "" when none
	// Warning is the first failure to write the loss log or a preview:
	// the checkpoint is safe, so it does not fail the run, but the user
	// should know.
	Warning error
}

// Finish ends a session whose Train returned nil: it writes the final
// preview (unless the run has none, or a side file already failed) and
// sums up.
func (s *Session) Finish(ctx context.Context) Summary {
	sum := Summary{Steps: s.Step - s.startStep, Skipped: s.Skipped, Checkpoint: checkpoint.Path(s.Dir)}
	if s.Opt.PreviewEvery != PreviewNever && s.warn == nil {
		if s.warn = s.Preview(ctx, s.previewPath()); s.warn == nil {
			sum.Preview = s.previewPath()
		}
	}
	sum.Warning, sum.Elapsed = s.warn, time.Since(s.start)
	return sum
}

// Close closes the loss log and unlocks the run directory.
func (s *Session) Close() error {
	err := s.lossLog.Close()
	s.release()
	return err
}
