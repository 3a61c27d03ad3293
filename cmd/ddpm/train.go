package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/internal/text"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/pretrained"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register("train", "train a model (Algorithm 1) and write checkpoints", runTrain)
}

// settingFlags registers the flags that define a run (stored in its
// checkpoint). It is called twice on resume: once for the command line and
// once over the saved settings, so the two can be compared flag by flag.
func settingFlags(fs *flag.FlagSet, o *train.Options, dc *diffusion.Config, dropout *float64) {
	fs.StringVar(&o.Data, "data", o.Data, "data set: mnist, fashion-mnist, cifar10:DIR, folder:DIR (PNG/JPEG files; see --resize, --channels)")
	fs.StringVar(&o.Config, "config", o.Config, configHelp("U-Net config; it fixes the size and colour of the images (see --resize, --channels)"))
	fs.StringVar(&o.Init, "init", o.Init, "start from this model's weights instead of a random init ("+modelHelp+"); it brings its network (unless --config names it) and diffusion process (unless --T, --schedule, --beta-start, --beta-end, --mean, --var, --loss or --clip are given), and its training data when --data is not given")
	fs.BoolVar(&o.Resize, "resize", o.Resize, "folder:DIR: scale every image to the config's resolution (centre-cropped to a square first, area filter); without it every image must already have that size")
	fs.IntVar(&o.Channels, "channels", o.Channels, "folder:DIR: convert every image to 1 (grey, by luminance) or 3 (RGB) channels, which must be the config's; without it every image must already be grey or RGB as the config wants")
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

// processFlags are the flags of the diffusion process, which --init
// carries over from its model unless they are given.
var processFlags = []string{"T", "beta-start", "beta-end", "schedule", "mean", "var", "loss", "clip"}

// resumableFlags may differ from the saved run on --resume: they change
// neither the model nor the sequence of updates.
var resumableFlags = map[string]bool{"steps": true, "ckpt-every": true, "skip-nan": true, "out": true, "resume": true,
	"quiet": true, "log-every": true, "preview-every": true}

// previewFlag is --preview-every: N steps, 0 for never, stored in
// train.Options.PreviewEvery (whose 0 means with each checkpoint, the
// default, and train.PreviewNever never).
type previewFlag struct{ p *int }

func (f previewFlag) String() string {
	switch {
	case f.p == nil || *f.p == 0:
		return "" // the default: with each checkpoint
	case *f.p == train.PreviewNever:
		return "0"
	}
	return fmt.Sprint(*f.p)
}

func (f previewFlag) Set(s string) error {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 || fmt.Sprint(n) != strings.TrimSpace(s) {
		return fmt.Errorf("want a number of steps ≥ 0")
	}
	if n == 0 {
		n = train.PreviewNever
	}
	*f.p = n
	return nil
}

func runTrain(args []string) error {
	fs := newFlags("train", "--data mnist|fashion-mnist|cifar10:DIR|folder:DIR --config NAME --steps N --out DIR [flags]")
	o := train.DefaultOptions()
	dc := diffusion.DefaultConfig()
	dropout := -1.0
	settingFlags(fs, &o, &dc, &dropout)
	fs.IntVar(&o.Steps, "steps", o.Steps, "total optimizer steps")
	fs.IntVar(&o.CkptEvery, "ckpt-every", o.CkptEvery, "write a checkpoint every N steps (0: only at the end)")
	fs.IntVar(&o.LogEvery, "log-every", train.DefaultLogEvery, "append a line to DIR/"+train.LossLogName+" every `N` steps (mean loss, learning rate, gradient norm, images/s, elapsed time)")
	fs.Var(previewFlag{&o.PreviewEvery}, "preview-every", "write DIR/"+train.PreviewName+" (16 DDIM-20 samples of the EMA weights, fixed seed) every `N` steps, and at the end; 0: never (default: with each checkpoint)")
	fs.BoolVar(&o.SkipNaN, "skip-nan", false, fmt.Sprintf("skip steps with a non-finite loss or gradient instead of stopping (at most %d in a row)", train.MaxConsecutiveSkips))
	out := fs.String("out", "", "run directory for checkpoints, "+train.LossLogName+" and "+train.PreviewName+" (required)")
	resume := fs.Bool("resume", false, "continue the run in --out from its newest good checkpoint (--steps may extend it)")
	quiet := fs.Bool("quiet", false, "no progress display")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("--out DIR is required")
	}
	if o.LogEvery < 1 {
		return usageErr("--log-every must be ≥ 1, got %d", o.LogEvery)
	}
	if err := o.Validate(); err != nil {
		return usageErr("%v", err)
	}
	if !(dropout == -1 || (dropout >= 0 && dropout < 1)) {
		return usageErr("--dropout must be in [0, 1), got %g", dropout)
	}

	var tr *train.Trainer
	var err error
	if *resume {
		if tr, err = resumeRun(fs, *out, o); err != nil {
			return err
		}
	} else if tr, err = newRun(fs, *out, o, dc, dropout); err != nil {
		return err
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
	lossLog, err := train.OpenLossLog(*out, tr.Step, tr.Opt.LogInterval(), tr.Opt.Batch)
	if err != nil {
		return err
	}
	defer lossLog.Close()
	fmt.Fprintf(os.Stderr, "training %s (%s parameters) on %s, batch %d, %s/%s/%s, T=%d, %s schedule\n",
		configLabel(tr.Opt), text.Count(tr.Model.NumParams()), describeData(tr), tr.Opt.Batch,
		tr.DCfg.Mean, tr.DCfg.Var, tr.DCfg.Loss, tr.DCfg.T, tr.DCfg.Schedule)

	// The first SIGINT/SIGTERM cancels ctx and Run writes a checkpoint;
	// stop then restores the default action, so a second signal ends the
	// process at once (safe: checkpoint writes are atomic).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	bar := progress.New(tr.Opt.Steps, "", "step", *quiet)
	bar.Begin(tr.Step)
	// Messages start on a fresh line when a bar is drawn in place.
	nl := ""
	if !*quiet && bar.Terminal() {
		nl = "\n"
	}
	tr.OnSkip = func(step int, loss, gn float64) {
		fmt.Fprintf(os.Stderr, "%swarning: step %d skipped: loss %g, grad norm %g (--skip-nan)\n", nl, step, loss, gn)
		lossLog.Skip(step)
		bar.Add(1)
	}
	previewPath := filepath.Join(*out, train.PreviewName)
	previewEvery := tr.Opt.PreviewInterval()
	var stepErr error // the first failure to write the loss log or a preview
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
		if err := lossLog.Step(step, loss, gn, tr.Adam.LR); err != nil && stepErr == nil {
			stepErr = err
		}
		if previewEvery > 0 && step%previewEvery == 0 && step < tr.Opt.Steps {
			t := time.Now()
			if err := tr.Preview(ctx, previewPath); err != nil && stepErr == nil && ctx.Err() == nil {
				stepErr = err
			}
			lossLog.Exclude(time.Since(t))
		}
	})
	if ferr := lossLog.Flush(); stepErr == nil {
		stepErr = ferr
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "%sinterrupted: checkpoint at step %d written to %s; continue with --resume\n", nl, tr.Step, checkpoint.Path(*out))
		return nil
	}
	if err != nil {
		fmt.Fprint(os.Stderr, nl)
		return err
	}
	bar.Finish()
	wrote := ""
	if tr.Opt.PreviewEvery != train.PreviewNever && stepErr == nil {
		if stepErr = tr.Preview(ctx, previewPath); stepErr == nil {
			wrote = ", preview " + previewPath
		}
	}
	if stepErr != nil {
		// The checkpoint is safe; the side files are not worth failing
		// the run for after the fact, but the user should know.
		fmt.Fprintf(os.Stderr, "warning: %v\n", oneLine(stepErr.Error()))
	}
	skipped := ""
	if tr.Skipped > 0 {
		skipped = fmt.Sprintf(" (%d skipped as non-finite)", tr.Skipped)
	}
	fmt.Fprintf(os.Stderr, "done: %s%s in %s, checkpoint %s%s\n", plural(tr.Step-startStep, "step"), skipped,
		time.Since(start).Round(time.Second), checkpoint.Path(*out), wrote)
	return nil
}

// newRun builds a fresh run from the command line: the network of
// --config or of --init's model, the diffusion process of the flags or of
// --init's model, and the data fitted to the network as far as --resize
// and --channels allow.
func newRun(fs *flag.FlagSet, out string, o train.Options, dc diffusion.Config, dropout float64) (*train.Trainer, error) {
	if dirHasCheckpoint(out) {
		return nil, fmt.Errorf("%s already holds a checkpoint: pass --resume to continue it or choose another --out", out)
	}
	var init *initModel
	if o.Init != "" {
		var err error
		if init, err = openInit(o.Init); err != nil {
			return nil, err
		}
		init.carry(fs, &o, &dc)
	}
	// Before checkDiffusion, which builds the T-step schedule.
	if dc.T > checkpoint.MaxT {
		return nil, usageErr("--T %d is more than the supported %d", dc.T, checkpoint.MaxT)
	}
	if err := checkDiffusion(dc); err != nil {
		return nil, err
	}
	var ucfg unet.Config
	if init != nil && !flagSet(fs, "config") {
		ucfg = init.net.Config()
		o.Config = init.configName()
	} else {
		var err error
		if ucfg, err = unet.ConfigByName(o.Config); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	if dropout >= 0 {
		ucfg.Dropout = float32(dropout)
	}
	d, err := diffusion.New(dc)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	ucfg.OutCh = d.OutChannels(ucfg.InCh)
	if init != nil {
		if err := init.matches(fs, o.Config, ucfg, dc); err != nil {
			return nil, err
		}
	}
	// Before the data set is read: an impossible batch fails at once.
	if err := train.CheckMemory(ucfg, o.Batch); err != nil {
		return nil, usageErr("%v", err)
	}
	o.StrictFit = true
	ds, err := loadTrainData(o, ucfg)
	if err != nil {
		return nil, err
	}
	tr, err := train.New(o, ucfg, dc, ds)
	if err != nil {
		return nil, trainErr(err)
	}
	if init != nil {
		if err := tr.InitFrom(init.net.Weights()); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

// resumeRun reopens the run in out, refusing a command line that changes
// its settings.
func resumeRun(fs *flag.FlagSet, out string, o train.Options) (*train.Trainer, error) {
	s, err := train.Open(out)
	if err != nil {
		return nil, err
	}
	if s.Fallback != nil {
		fmt.Fprintf(os.Stderr, "warning: %s; resuming from the previous checkpoint %s (step %d) instead\n",
			oneLine(s.Fallback.Error()), s.Path, s.Checkpoint.Step)
	}
	if err := sameSettings(fs, s); err != nil {
		return nil, err
	}
	steps := 0
	if flagSet(fs, "steps") {
		if o.Steps < s.Checkpoint.Step {
			return nil, usageErr("--steps %d is below the run's step %d", o.Steps, s.Checkpoint.Step)
		}
		steps = o.Steps
	}
	if flagSet(fs, "ckpt-every") {
		s.Opt.CkptEvery = o.CkptEvery
	}
	if flagSet(fs, "skip-nan") {
		s.Opt.SkipNaN = o.SkipNaN
	}
	if flagSet(fs, "log-every") {
		s.Opt.LogEvery = o.LogEvery
	}
	if flagSet(fs, "preview-every") {
		s.Opt.PreviewEvery = o.PreviewEvery
	}
	ds, err := loadTrainData(s.Opt, s.Checkpoint.UNet)
	if err != nil {
		return nil, err
	}
	tr, err := s.Resume(ds, steps)
	if err != nil {
		return nil, trainErr(err)
	}
	fmt.Fprintf(os.Stderr, "resuming %s at step %d of %d\n", out, tr.Step, tr.Opt.Steps)
	return tr, nil
}

// trainErr makes a refused batch a usage error (exit status 2).
func trainErr(err error) error {
	var me *train.MemoryError
	if errors.As(err, &me) {
		return usageErr("%v", err)
	}
	return err
}

// loadTrainData reads the run's data set for the network ucfg. Folder
// images are fitted only as --resize and --channels allow (runs from
// before those flags, StrictFit false, had every image fitted); a mismatch
// is one line naming the image, what it is, what the config wants and the
// flag that would fit it.
func loadTrainData(o train.Options, ucfg unet.Config) (*data.Dataset, error) {
	folder := strings.HasPrefix(o.Data, "folder:")
	if (o.Resize || o.Channels != 0) && !folder {
		return nil, usageErr("--resize and --channels fit folder:DIR images to the config; %s has a fixed geometry", o.Data)
	}
	if o.Channels != 0 && o.Channels != ucfg.InCh {
		return nil, usageErr("--channels %d: %s takes %s images; pass --channels %d or pick a config for %s images (%s)",
			o.Channels, configLabel(o), colour(ucfg.InCh), ucfg.InCh, colour(o.Channels), configsFor(0, o.Channels))
	}
	opts := []data.Option{data.WithSize(ucfg.Res), data.WithChannels(ucfg.InCh)}
	if o.StrictFit {
		opts = append(opts, data.Strict(o.Resize, o.Channels != 0))
	}
	ds, err := data.Load(o.Data, "train", opts...)
	var me *data.MismatchError
	if errors.As(err, &me) {
		return nil, mismatchErr(me, o, ucfg)
	}
	return ds, err
}

// mismatchErr words a folder image that does not fit the config, e.g.
// "folder:photos: cat3.png is 64×48 RGB; config small wants 32×32 grey —
// pass --resize to scale, --channels 1 to convert, or pick a config with
// --config".
func mismatchErr(e *data.MismatchError, o train.Options, ucfg unet.Config) error {
	want := fmt.Sprintf("%s wants %s", configLabel(o), data.Shape(ucfg.Res, ucfg.Res, ucfg.InCh))
	if e.Mixed() {
		return fmt.Errorf("folder:%s mixes image sizes (%s is %d×%d, %s is %d×%d); %s — pass --resize to scale them all",
			e.Folder, e.File, e.W, e.H, e.Other, e.OW, e.OH, want)
	}
	var fixes []string
	if e.SizeDiffers() && !o.Resize {
		fixes = append(fixes, "--resize to scale")
	}
	if e.ColourDiffers() && o.Channels == 0 {
		fixes = append(fixes, fmt.Sprintf("--channels %d to convert", ucfg.InCh))
	}
	alt := "pick a config with --config"
	imgCh := 3
	if e.Grey {
		imgCh = 1
	}
	if e.W == e.H {
		if names := configsFor(e.W, imgCh); names != "" {
			alt = "use --config " + names
		}
	}
	fixes = append(fixes, alt)
	hint := strings.Join(fixes, ", ")
	if len(fixes) > 1 {
		hint = strings.Join(fixes[:len(fixes)-1], ", ") + ", or " + fixes[len(fixes)-1]
	}
	return fmt.Errorf("folder:%s: %s is %d×%d %s; %s — pass %s", e.Folder, e.File, e.W, e.H, colour(imgCh), want, hint)
}

// configLabel names the run's network in messages: "config small", or
// the --init model's when it matches no named config.
func configLabel(o train.Options) string {
	if o.Config == "" {
		return "the network of --init " + o.Init
	}
	return "config " + o.Config
}

// colour names a channel count.
func colour(c int) string {
	if c == 1 {
		return "grey"
	}
	return "RGB"
}

// configsFor lists the named configs for side×side images (any side when
// side is 0) of c channels, "" when none.
func configsFor(side, c int) string {
	var names []string
	for _, n := range unet.ConfigNames() {
		cfg, _ := unet.ConfigByName(n)
		if (side == 0 || cfg.Res == side) && cfg.InCh == c {
			names = append(names, n)
		}
	}
	return strings.Join(names, " or ")
}

// describeData says what the run trains on: the image count and, for a
// folder, how its images were fitted: "folder (8 images), resized to
// 32×32, converted to grey".
func describeData(tr *train.Trainer) string {
	s := fmt.Sprintf("%s (%s)", tr.Data.Name, plural(tr.Data.N, "image"))
	if tr.Opt.Resize {
		s += fmt.Sprintf(", resized to %d×%d", tr.UCfg.Res, tr.UCfg.Res)
	}
	if tr.Opt.Channels != 0 {
		s += ", converted to " + colour(tr.Opt.Channels)
	}
	return s
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
		err = usageErr("--%s %s differs from the run's %s: a resumed run keeps its settings (only --steps, --ckpt-every, --skip-nan, --log-every and --preview-every may change; use another --out for a new run)",
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

// initModel is the model --init names: its network (EMA weights), its
// diffusion process and what its file records of its training.
type initModel struct {
	name     string
	net      *unet.UNet
	process  diffusion.Config
	recorded train.Options // zero when the file records no training options
	data     string        // its training data, "" when not recorded
}

// openInit reads the model --init names.
func openInit(name string) (*initModel, error) {
	p, err := loadFixed(name)
	if err != nil {
		return nil, err
	}
	m := &initModel{name: name, net: p.Net, process: p.ProcessConfig()}
	if meta, err := modelMetadata(p); err == nil && meta["train"] != "" {
		_ = json.Unmarshal([]byte(meta["train"]), &m.recorded)
	}
	if spec, err := p.TrainingData(); err == nil {
		m.data = spec
	}
	return m, nil
}

// carry copies the init model's diffusion process into dc, flag by flag,
// except where the command line sets the flag, and its training data into
// o when --data is not given: --init continues a model on its own
// process, so that --init mnist keeps the shipped model's cosine schedule.
func (m *initModel) carry(fs *flag.FlagSet, o *train.Options, dc *diffusion.Config) {
	p := m.process
	for _, name := range processFlags {
		if flagSet(fs, name) {
			continue
		}
		switch name {
		case "T":
			dc.T = p.T
		case "beta-start":
			dc.BetaStart = p.BetaStart
		case "beta-end":
			dc.BetaEnd = p.BetaEnd
		case "schedule":
			dc.Schedule = p.Schedule
		case "mean":
			dc.Mean = p.Mean
		case "var":
			if p.Var != diffusion.Fitted {
				dc.Var = p.Var
			}
		case "loss":
			dc.Loss = p.Loss
		case "clip":
			dc.Clip = p.Clip
		}
	}
	if !flagSet(fs, "data") && m.data != "" {
		o.Data = m.data
	}
}

// configName is the name of the init model's network: the config its file
// records when that is still the same network, else a named config of the
// same shape, else "" (a network of its own).
func (m *initModel) configName() string {
	have := m.net.Config()
	if n := m.recorded.Config; n != "" {
		if cfg, err := unet.ConfigByName(n); err == nil && sameNetwork(cfg, have) {
			return n
		}
	}
	for _, n := range unet.ConfigNames() {
		if cfg, _ := unet.ConfigByName(n); sameNetwork(cfg, have) {
			return n
		}
	}
	return ""
}

// sameNetwork compares two configs' networks, dropout (a training setting)
// and the output channels (set by the variance) aside.
func sameNetwork(a, b unet.Config) bool {
	a, b = a.Normalized(), b.Normalized()
	a.Dropout, b.Dropout = 0, 0
	a.OutCh, b.OutCh = 0, 0
	return reflect.DeepEqual(a.Normalized(), b.Normalized())
}

// matches refuses a run whose network (ucfg, OutCh set by the variance)
// is not the init model's, naming what would match.
func (m *initModel) matches(fs *flag.FlagSet, config string, ucfg unet.Config, dc diffusion.Config) error {
	have := m.net.Config()
	if !sameNetwork(ucfg, have) {
		name := m.configName()
		if name != "" {
			return usageErr("--init %s is a %s network (%s); --config %s is another (%s): pass --config %s, or leave --config out to train the init model's network",
				m.name, name, describeNet(have), config, describeNet(ucfg), name)
		}
		return usageErr("--init %s is a network no named config matches (%s); --config %s is another (%s): leave --config out to train the init model's network",
			m.name, describeNet(have), config, describeNet(ucfg))
	}
	if ucfg.OutCh != have.OutCh {
		how := "--var " + dc.Var.String()
		if !flagSet(fs, "var") {
			how = "the variance " + dc.Var.String()
		}
		return usageErr("--init %s outputs %s (trained with --var %s); %s needs %d: leave --var out to keep the init model's",
			m.name, text.Plural(have.OutCh, "channel"), m.process.Var, how, ucfg.OutCh)
	}
	return nil
}

// describeNet is a network's shape in a line: "28×28 grey, ch 16 × [1 2 4],
// blocks [2 2 3], attention at 7×7, 1.22M parameters".
func describeNet(c unet.Config) string {
	c = c.Normalized()
	blocks := make([]int, len(c.ChMult))
	for i := range blocks {
		blocks[i] = c.Blocks(i)
	}
	attn := make([]string, len(c.AttnRes))
	for i, r := range c.AttnRes {
		attn[i] = fmt.Sprintf("%d×%d", r, r)
	}
	return fmt.Sprintf("%s, ch %d × %v, blocks %v, attention at %s, %s parameters",
		data.Shape(c.Res, c.Res, c.InCh), c.Ch, c.ChMult, blocks, strings.Join(attn, ", "), text.Count(unet.NumParams(c)))
}

// modelMetadata is the metadata of the file a pipeline was loaded from
// (the shipped model's for a shipped one), read from the safetensors
// header alone.
func modelMetadata(p *ddpm.Pipeline) (map[string]string, error) {
	switch p.Source.Kind {
	case ddpm.Shipped:
		return pretrained.Metadata(p.Source.Name)
	case ddpm.RunDir, ddpm.File:
		return headerMetadata(p.Source.Path)
	}
	return nil, fmt.Errorf("%s has no file", p.Source)
}

// headerMetadata reads the __metadata__ of a safetensors file without its
// tensors.
func headerMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if n > 16<<20 {
		return nil, fmt.Errorf("%s: header of %d bytes", path, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var h struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h.Meta, nil
}
