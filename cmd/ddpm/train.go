package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register("train", "train a model (Algorithm 1) and write checkpoints", runTrain)
}

// settingFlags registers the flags that define a run (stored in its
// checkpoint). It is called twice on resume: once for the command line and
// once over the saved settings, so the two can be compared flag by flag.
func settingFlags(fs *flag.FlagSet, o *train.Options, dc *diffusion.Config, dropout *float64) {
	fs.StringVar(&o.Data, "data", o.Data, "data set: mnist, fashion-mnist, cifar10:DIR, folder:DIR")
	fs.StringVar(&o.Config, "config", o.Config, "U-Net config: "+joinNames(unet.ConfigNames()))
	fs.StringVar(&o.Init, "init", o.Init, "start from this model's weights instead of a random init ("+modelHelp+"; its network must be --config's)")
	fs.IntVar(&o.Batch, "batch", o.Batch, "images per step")
	fs.Float64Var(&o.LR, "lr", o.LR, "Adam learning rate (after warm-up)")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "linear learning-rate warm-up steps")
	fs.StringVar(&o.Decay, "lr-decay", o.Decay, "learning rate after warm-up: constant (paper), cosine or linear (to 0 at --steps)")
	fs.Float64Var(&o.GradClip, "grad-clip", o.GradClip, "clip the global gradient norm to this (0: off)")
	fs.Float64Var(&o.EMADecay, "ema", o.EMADecay, "EMA decay of the weights used for sampling (paper: 0.9999 over 800k steps)")
	fs.BoolVar(&o.Flip, "flip", o.Flip, "random horizontal flips (off for digits)")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed (the run is deterministic given it)")
	fs.Float64Var(dropout, "dropout", *dropout, "dropout rate (-1: the config's)")
	diffusionFlags(fs, dc)
}

// resumableFlags may differ from the saved run on --resume: they change
// neither the model nor the sequence of updates.
var resumableFlags = map[string]bool{"steps": true, "ckpt-every": true, "skip-nan": true, "out": true, "resume": true, "quiet": true}

func runTrain(args []string) error {
	fs := newFlags("train", "--data mnist --config small --steps N --out DIR [flags]")
	o := train.DefaultOptions()
	dc := diffusion.DefaultConfig()
	dropout := -1.0
	settingFlags(fs, &o, &dc, &dropout)
	fs.IntVar(&o.Steps, "steps", o.Steps, "total optimizer steps")
	fs.IntVar(&o.CkptEvery, "ckpt-every", o.CkptEvery, "write a checkpoint every N steps (0: only at the end)")
	fs.BoolVar(&o.SkipNaN, "skip-nan", false, fmt.Sprintf("skip steps with a non-finite loss or gradient instead of stopping (at most %d in a row)", train.MaxConsecutiveSkips))
	out := fs.String("out", "", "run directory for checkpoints (required)")
	resume := fs.Bool("resume", false, "continue the run in --out from its newest good checkpoint (--steps may extend it)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out DIR is required")
	}
	if err := o.Validate(); err != nil {
		return usageErr("%v", err)
	}
	// Before checkDiffusion, which builds the T-step schedule.
	if dc.T > checkpoint.MaxT {
		return usageErr("--T %d is more than the supported %d", dc.T, checkpoint.MaxT)
	}
	if err := checkDiffusion(dc); err != nil {
		return err
	}
	if !(dropout == -1 || (dropout >= 0 && dropout < 1)) {
		return usageErr("--dropout must be in [0, 1), got %g", dropout)
	}

	var tr *train.Trainer
	if *resume {
		s, err := train.Open(*out)
		if err != nil {
			return err
		}
		if s.Fallback != nil {
			fmt.Fprintf(os.Stderr, "warning: %s; resuming from the previous checkpoint %s (step %d) instead\n",
				oneLine(s.Fallback.Error()), s.Path, s.Checkpoint.Step)
		}
		if err := sameSettings(fs, s); err != nil {
			return err
		}
		steps := 0
		if flagSet(fs, "steps") {
			if o.Steps < s.Checkpoint.Step {
				return usageErr("--steps %d is below the run's step %d", o.Steps, s.Checkpoint.Step)
			}
			steps = o.Steps
		}
		if flagSet(fs, "ckpt-every") {
			s.Opt.CkptEvery = o.CkptEvery
		}
		if flagSet(fs, "skip-nan") {
			s.Opt.SkipNaN = o.SkipNaN
		}
		ucfg := s.Checkpoint.UNet
		ds, err := data.Load(s.Opt.Data, "train", data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh))
		if err != nil {
			return err
		}
		if tr, err = s.Resume(ds, steps); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "resuming %s at step %d of %d\n", *out, tr.Step, tr.Opt.Steps)
	} else {
		if dirHasCheckpoint(*out) {
			return fmt.Errorf("%s already holds a checkpoint: pass --resume to continue it or choose another --out", *out)
		}
		ucfg, err := unet.ConfigByName(o.Config)
		if err != nil {
			return usageErr("%v", err)
		}
		if dropout >= 0 {
			ucfg.Dropout = float32(dropout)
		}
		ds, err := data.Load(o.Data, "train", data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh))
		if err != nil {
			return err
		}
		if tr, err = train.New(o, ucfg, dc, ds); err != nil {
			return err
		}
		if o.Init != "" {
			if err := initFrom(tr, o.Init); err != nil {
				return err
			}
		}
	}
	// Fail now, not at the first checkpoint an hour from now.
	if err := checkWritable(*out); err != nil {
		return err
	}
	release, err := train.LockDir(*out)
	if err != nil {
		return err
	}
	defer release()
	fmt.Fprintf(os.Stderr, "training %s (%d params) on %s (%d images), batch %d, %s/%s/%s, T=%d, %s schedule\n",
		tr.Opt.Config, tr.Model.NumParams(), tr.Data.Name, tr.Data.N, tr.Opt.Batch,
		tr.DCfg.Mean, tr.DCfg.Var, tr.DCfg.Loss, tr.DCfg.T, tr.DCfg.Schedule)

	// The first SIGINT/SIGTERM cancels ctx and Run writes a checkpoint;
	// stop then restores the default action, so a second signal ends the
	// process at once (safe: checkpoint writes are atomic).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	bar := progress.New(tr.Opt.Steps, "", "step", *quiet)
	bar.Set(tr.Step)
	// Messages start on a fresh line when the bar is drawn.
	nl := "\n"
	if *quiet {
		nl = ""
	}
	tr.OnSkip = func(step int, loss, gn float64) {
		fmt.Fprintf(os.Stderr, "%swarning: step %d skipped: loss %g, grad norm %g (--skip-nan)\n", nl, step, loss, gn)
		bar.Add(1)
	}
	start, startStep := time.Now(), tr.Step
	var mean float64
	err = tr.Run(ctx, *out, func(step int, loss, gn float64) {
		if step == startStep+1 {
			mean = loss
		}
		mean = 0.98*mean + 0.02*loss
		ips := float64((step-startStep)*tr.Opt.Batch) / time.Since(start).Seconds()
		bar.Describe(fmt.Sprintf("loss %.4f · %.1f img/s", mean, ips))
		bar.Add(1)
	})
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "%sinterrupted: checkpoint at step %d written to %s; continue with --resume\n", nl, tr.Step, checkpoint.Path(*out))
		return nil
	}
	if err != nil {
		fmt.Fprint(os.Stderr, nl)
		return err
	}
	bar.Finish()
	skipped := ""
	if tr.Skipped > 0 {
		skipped = fmt.Sprintf(" (%d skipped as non-finite)", tr.Skipped)
	}
	fmt.Fprintf(os.Stderr, "done: %d steps%s in %s, checkpoint %s\n", tr.Step-startStep, skipped,
		time.Since(start).Round(time.Second), checkpoint.Path(*out))
	return nil
}

// sameSettings refuses a resume whose command line changes a setting of
// the run: silently ignoring it would train something other than what the
// user asked for, and honouring it would break exact resume. Repeating
// the original command line with --resume is fine.
func sameSettings(fs *flag.FlagSet, s *train.Saved) error {
	o, dc := s.Opt, s.Checkpoint.Diffusion
	dropout := float64(s.Checkpoint.UNet.Dropout)
	saved := flag.NewFlagSet("saved", flag.ContinueOnError)
	settingFlags(saved, &o, &dc, &dropout)
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil || resumableFlags[f.Name] {
			return
		}
		want := saved.Lookup(f.Name)
		if want == nil {
			return
		}
		got := f.Value.String()
		if f.Name == "dropout" {
			// Stored as float32; -1 means "the config's", i.e. no change.
			d := f.Value.(flag.Getter).Get().(float64)
			if d == -1 || float32(d) == s.Checkpoint.UNet.Dropout {
				return
			}
		} else if got == want.Value.String() {
			return
		}
		err = usageErr("--%s %s differs from the run's %s: a resumed run keeps its settings (only --steps, --ckpt-every and --skip-nan may change; use another --out for a new run)",
			f.Name, got, want.Value.String())
	})
	return err
}

// dirHasCheckpoint reports whether dir holds either generation of a
// checkpoint, so a new run never overwrites one.
func dirHasCheckpoint(dir string) bool {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return false
	}
	for _, name := range []string{checkpoint.FileName, checkpoint.PrevFileName} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true
		}
	}
	return false
}

// checkWritable makes sure checkpoints can be written into dir, creating
// it if needed.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("run directory %s is not writable: %w", dir, unwrapPath(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// unwrapPath drops the operation and path that *os.PathError repeats when
// the message already names the path.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// initFrom starts a fresh run from the weights of the model --init names,
// which must be the same network (dropout aside) as the run's.
func initFrom(tr *train.Trainer, name string) error {
	p, err := loadFixed(name)
	if err != nil {
		return err
	}
	m := p.Net
	want, have := tr.Model.Config(), m.Config()
	want.Dropout, have.Dropout = 0, 0
	if !reflect.DeepEqual(want.Normalized(), have.Normalized()) {
		return usageErr("--init %s is another network (%+v) than --config %s with these settings (%+v)", name, have, tr.Opt.Config, want)
	}
	return tr.InitFrom(m.Weights())
}
