package train

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// ErrInvalidOption marks errors of settings that cannot make a run: a
// value out of range, or one that contradicts another, the --init model or
// the run being resumed. Commands report them as usage errors.
var ErrInvalidOption = errors.New("invalid option")

// invalid is an ErrInvalidOption whose message is its error's alone.
type invalid struct{ err error }

func (e *invalid) Error() string        { return e.err.Error() }
func (e *invalid) Unwrap() error        { return e.err }
func (e *invalid) Is(target error) bool { return target == ErrInvalidOption }

func invalidf(format string, a ...any) error { return &invalid{fmt.Errorf(format, a...)} }

// Given names the settings given explicitly, by their command-line names
// ("lr", "T", "beta-start", …; see Settings): a run from --init carries the
// others from its model, and a resumed run refuses those that differ from
// its own and takes the few that may change (Setup.Options).
type Given map[string]bool

// Setup is what Prepare needs to set up a run.
type Setup struct {
	Dir string // the run directory: checkpoints, loss log, previews

	// Options are a new run's. A resumed run keeps its own, except Steps,
	// CkptEvery, SkipNaN, LogEvery and PreviewEvery when Given.
	Options Options
	// Diffusion is a new run's process (diffusion.DefaultConfig() is the
	// paper's); with --init, only its Given settings override the model's.
	Diffusion diffusion.Config
	Dropout   *float64 // a new run's dropout rate; nil: the config's
	Resume    bool     // continue the run in Dir instead of starting one
	Given     Given

	// LoadInit reads the model Options.Init names, for a new run (it is
	// required then): the caller resolves model names as it does elsewhere.
	LoadInit func(name string) (*Init, error)
	// Log, if set, receives the lines to show on the way: a warning when a
	// resume falls back to the previous checkpoint, and where a resumed run
	// continues.
	Log func(line string)
}

// Prepare sets up the run in s.Dir: a new one (from a random init or the
// --init model) or, with s.Resume, the one there, with its data loaded and
// checked against the network. The directory is then locked for this
// process and the loss log open: Close the session when done.
func Prepare(s Setup) (*Session, error) {
	if s.Dir == "" {
		return nil, invalidf("no run directory")
	}
	if err := s.Options.Validate(); err != nil {
		return nil, &invalid{err}
	}
	if d := s.Dropout; d != nil && !(*d >= 0 && *d < 1) {
		return nil, invalidf("--dropout must be in [0, 1), got %g", *d)
	}
	build := s.fresh
	if s.Resume {
		build = s.resume
	}
	tr, err := build()
	if err != nil {
		return nil, err
	}
	return begin(tr, s.Dir)
}

// fresh builds a new run: the network of Options.Config or of the --init
// model, the process of s.Diffusion or of the --init model, and the data
// fitted to the network as far as Resize and Channels allow.
func (s Setup) fresh() (*Trainer, error) {
	o, dc := s.Options, s.Diffusion
	if HasCheckpoint(s.Dir) {
		return nil, fmt.Errorf("%s already holds a checkpoint: pass --resume to continue it or choose another --out", s.Dir)
	}
	var init *Init
	if o.Init != "" {
		if s.LoadInit == nil {
			return nil, invalidf("--init %s: no Setup.LoadInit to read it with", o.Init)
		}
		var err error
		if init, err = s.LoadInit(o.Init); err != nil {
			return nil, err
		}
		init.name = o.Init
		init.carry(s.Given, &o, &dc)
	}
	ucfg, err := s.network(init, &o, dc)
	if err != nil {
		return nil, err
	}
	// Before the data set is read: an impossible batch fails at once.
	if err := CheckMemory(ucfg, o.Batch); err != nil {
		return nil, err
	}
	o.StrictFit = true
	ds, err := loadData(o, ucfg)
	if err != nil {
		return nil, err
	}
	tr, err := New(o, ucfg, dc, ds)
	if err == nil && init != nil {
		err = tr.InitFrom(init.Net.Weights())
	}
	return tr, err
}

// network is a new run's network: Options.Config's, or the init model's
// when Config is not Given (o.Config then names it), with its dropout and
// the output channels dc's variance needs.
func (s Setup) network(init *Init, o *Options, dc diffusion.Config) (unet.Config, error) {
	// Before the schedule of T steps is built.
	if dc.T > checkpoint.MaxT {
		return unet.Config{}, invalidf("--T %d is more than the supported %d", dc.T, checkpoint.MaxT)
	}
	if dc.Var == diffusion.Fitted {
		return unet.Config{}, invalidf("--var %v is measured on a trained network, not trained with: train with fixedlarge or fixedsmall, then pass --var %v to eval, sample, rd, …", dc.Var, dc.Var)
	}
	d, err := diffusion.New(dc)
	if err != nil {
		return unet.Config{}, &invalid{err}
	}
	var ucfg unet.Config
	if init != nil && !s.Given["config"] {
		ucfg, o.Config = init.Net.Config(), init.configName()
	} else if ucfg, err = unet.ConfigByName(o.Config); err != nil {
		return unet.Config{}, &invalid{err}
	}
	if s.Dropout != nil {
		ucfg.Dropout = float32(*s.Dropout)
	}
	ucfg.OutCh = d.OutChannels(ucfg.InCh)
	if init != nil {
		return ucfg, init.matches(s.Given, o.Config, ucfg, dc)
	}
	return ucfg, nil
}

// resume reopens the run in s.Dir, refusing settings that would change it.
func (s Setup) resume() (*Trainer, error) {
	saved, err := Open(s.Dir)
	if err != nil {
		return nil, err
	}
	if saved.Fallback != nil {
		s.log(fmt.Sprintf("warning: %s; resuming from the previous checkpoint %s (step %d) instead",
			strings.Join(strings.Fields(saved.Fallback.Error()), " "), saved.Path, saved.Checkpoint.Step))
	}
	if err := s.sameSettings(saved); err != nil {
		return nil, err
	}
	steps := 0
	if s.Given["steps"] {
		if s.Options.Steps < saved.Checkpoint.Step {
			return nil, invalidf("--steps %d is below the run's step %d", s.Options.Steps, saved.Checkpoint.Step)
		}
		steps = s.Options.Steps
	}
	s.takeResumable(&saved.Opt)
	ds, err := loadData(saved.Opt, saved.Checkpoint.UNet)
	if err != nil {
		return nil, err
	}
	tr, err := saved.Resume(ds, steps)
	if err != nil {
		return nil, err
	}
	s.log(fmt.Sprintf("resuming %s at step %d of %d", s.Dir, tr.Step, tr.Opt.Steps))
	return tr, nil
}

// takeResumable copies into a resumed run's options those Given options
// that change neither the model nor the sequence of updates.
func (s Setup) takeResumable(o *Options) {
	if s.Given["ckpt-every"] {
		o.CkptEvery = s.Options.CkptEvery
	}
	if s.Given["skip-nan"] {
		o.SkipNaN = s.Options.SkipNaN
	}
	if s.Given["log-every"] {
		o.LogEvery = s.Options.LogEvery
	}
	if s.Given["preview-every"] {
		o.PreviewEvery = s.Options.PreviewEvery
	}
}

func (s Setup) log(line string) {
	if s.Log != nil {
		s.Log(line)
	}
}

// Settings are the command-line names of the settings that define a run
// (stored in its checkpoint): a resumed run keeps them all.
func Settings() []string {
	return []string{"data", "config", "init", "resize", "channels", "batch", "lr", "warmup", "lr-decay",
		"grad-clip", "ema", "flip", "seed", "dropout", "T", "beta-start", "beta-end", "schedule", "mean",
		"loss", "var", "clip"}
}

// setting is the named setting's value as its flag prints it (the flag
// package's formatting), false when name is not a setting.
func setting(name string, o Options, dc diffusion.Config, dropout float64) (string, bool) {
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	v, ok := map[string]string{
		"data": o.Data, "config": o.Config, "init": o.Init, "lr-decay": o.Decay,
		"resize": strconv.FormatBool(o.Resize), "flip": strconv.FormatBool(o.Flip), "clip": strconv.FormatBool(dc.Clip),
		"channels": strconv.Itoa(o.Channels), "batch": strconv.Itoa(o.Batch), "warmup": strconv.Itoa(o.Warmup), "T": strconv.Itoa(dc.T),
		"lr": num(o.LR), "grad-clip": num(o.GradClip), "ema": num(o.EMADecay), "dropout": num(dropout),
		"beta-start": num(dc.BetaStart), "beta-end": num(dc.BetaEnd), "seed": strconv.FormatUint(o.Seed, 10),
		"schedule": dc.Schedule.String(), "mean": dc.Mean.String(), "loss": dc.Loss.String(), "var": dc.Var.String(),
	}[name]
	return v, ok
}

// sameSettings refuses a resume whose Given settings change the run:
// silently ignoring one would train something other than what the user
// asked for, and honouring it would break exact resume. Repeating the
// original command line with --resume is fine. The first differing
// setting in name order is named.
func (s Setup) sameSettings(saved *Saved) error {
	dropout := -1.0
	if s.Dropout != nil {
		dropout = *s.Dropout
	}
	for _, name := range slices.Sorted(maps.Keys(s.Given)) {
		want, ok := setting(name, saved.Opt, saved.Checkpoint.Diffusion, float64(saved.Checkpoint.UNet.Dropout))
		if !ok || !s.Given[name] {
			continue // not a setting: --steps, --out, …
		}
		got, _ := setting(name, s.Options, s.Diffusion, dropout)
		if name == "dropout" {
			// Stored as float32; none (the config's) changes nothing.
			if s.Dropout == nil || float32(*s.Dropout) == saved.Checkpoint.UNet.Dropout {
				continue
			}
		} else if got == want {
			continue
		}
		return invalidf("--%s %s differs from the run's %s: a resumed run keeps its settings (only --steps, --ckpt-every, --skip-nan, --log-every and --preview-every may change; use another --out for a new run)",
			name, got, want)
	}
	return nil
}

// HasCheckpoint reports whether dir holds either generation of a
// checkpoint, so that a new run never overwrites one.
func HasCheckpoint(dir string) bool {
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
// it if needed: fail now, not at the first checkpoint an hour from now.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("run directory %s is not writable: %w", dir, pathErr(err))
	}
	f.Close()
	return os.Remove(f.Name())
}
