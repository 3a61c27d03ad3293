package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/pretrained"
	"github.com/ddpm-go/ddpm/train"
)

func init() {
	register("train", "train a model (Algorithm 1) and write checkpoints", runTrain)
}

// runTrain prepares the run the flags describe (train.Prepare: new,
// resumed or from --init), trains it with a progress display, and sums up.
func runTrain(args []string) error {
	f := newTrainFlags()
	setup, err := f.parse(args)
	if err != nil {
		return err
	}
	s, err := train.Prepare(setup)
	if err != nil {
		return trainErr(err)
	}
	defer s.Close()
	fmt.Fprintf(os.Stderr, "training %s\n", s.Describe())

	// The first SIGINT/SIGTERM cancels ctx and Train writes a checkpoint;
	// stop then restores the default action, so a second signal ends the
	// process at once (safe: checkpoint writes are atomic).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	bar := progress.New(s.Opt.Steps, "", "step", f.quiet)
	bar.Begin(s.Step)
	// Messages start on a fresh line when a bar is drawn in place.
	nl := ""
	if !f.quiet && bar.Terminal() {
		nl = "\n"
	}
	s.OnSkip = func(step int, loss, gn float64) {
		fmt.Fprintf(os.Stderr, "%swarning: step %d skipped: loss %g, grad norm %g (--skip-nan)\n", nl, step, loss, gn)
		bar.Add(1)
	}
	err = s.Train(ctx, showSteps(bar, s))
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "%sinterrupted: checkpoint at step %d written to %s; continue with --resume\n", nl, s.Step, checkpoint.Path(s.Dir))
		return nil
	}
	if err != nil {
		fmt.Fprint(os.Stderr, nl)
		return err
	}
	bar.Finish()
	printSummary(s.Finish(ctx))
	return nil
}

// showSteps shows each step on bar: a running mean of the loss and the
// images per second since the session began.
func showSteps(bar *progress.Bar, s *train.Session) train.Progress {
	start, startStep := time.Now(), s.Step
	var mean float64
	return func(step int, loss, gn float64) {
		if step == startStep+1 {
			mean = loss
		}
		mean = 0.98*mean + 0.02*loss
		ips := float64((step-startStep)*s.Opt.Batch) / time.Since(start).Seconds()
		bar.Describe(fmt.Sprintf("loss %.4f · %.1f img/s", mean, ips))
		bar.Add(1)
	}
}

// printSummary prints the last lines of a run that reached its steps.
func printSummary(sum train.Summary) {
	if sum.Warning != nil {
		// The checkpoint is safe; the side files are not worth failing
		// the run for after the fact, but the user should know.
		fmt.Fprintf(os.Stderr, "warning: %v\n", oneLine(sum.Warning.Error()))
	}
	skipped, wrote := "", ""
	if sum.Skipped > 0 {
		skipped = fmt.Sprintf(" (%d skipped as non-finite)", sum.Skipped)
	}
	if sum.Preview != "" {
		wrote = ", preview " + sum.Preview
	}
	fmt.Fprintf(os.Stderr, "done: %s%s in %s, checkpoint %s%s\n", plural(sum.Steps, "step"), skipped,
		sum.Elapsed.Round(time.Second), sum.Checkpoint, wrote)
}

// trainFlags are ddpm train's flags, bound to the run's options.
type trainFlags struct {
	fs      *flag.FlagSet
	o       train.Options
	dc      diffusion.Config
	dropout float64
	out     string
	resume  bool
	quiet   bool
}

// newTrainFlags registers ddpm train's flags at their defaults.
func newTrainFlags() *trainFlags {
	f := &trainFlags{o: train.DefaultOptions(), dc: diffusion.DefaultConfig(), dropout: -1}
	fs := newFlags("train", "--data mnist|fashion-mnist|cifar10:DIR|folder:DIR --config NAME --steps N --out DIR [flags]")
	settingFlags(fs, &f.o, &f.dc, &f.dropout)
	fs.IntVar(&f.o.Steps, "steps", f.o.Steps, "total optimizer steps")
	fs.IntVar(&f.o.CkptEvery, "ckpt-every", f.o.CkptEvery, "write a checkpoint every N steps (0: only at the end)")
	fs.IntVar(&f.o.LogEvery, "log-every", train.DefaultLogEvery, "append a line to DIR/"+train.LossLogName+" every `N` steps (mean loss, learning rate, gradient norm, images/s, elapsed time)")
	fs.Var(previewFlag{&f.o.PreviewEvery}, "preview-every", "write DIR/"+train.PreviewName+" (16 DDIM-20 samples of the EMA weights, fixed seed) every `N` steps, and at the end; 0: never (default: with each checkpoint)")
	fs.BoolVar(&f.o.SkipNaN, "skip-nan", false, fmt.Sprintf("skip steps with a non-finite loss or gradient instead of stopping (at most %d in a row)", train.MaxConsecutiveSkips))
	fs.StringVar(&f.out, "out", "", "run directory for checkpoints, "+train.LossLogName+" and "+train.PreviewName+" (required)")
	fs.BoolVar(&f.resume, "resume", false, "continue the run in --out from its newest good checkpoint (--steps may extend it)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress display")
	f.fs = fs
	return f
}

// parse parses args into train.Prepare's setup, with the flags given
// explicitly, so that --init carries the rest and --resume refuses changes.
func (f *trainFlags) parse(args []string) (train.Setup, error) {
	if err := parseFlags(f.fs, args); err != nil {
		return train.Setup{}, err
	}
	if f.out == "" {
		return train.Setup{}, usageErr("--out DIR is required")
	}
	if f.o.LogEvery < 1 {
		return train.Setup{}, usageErr("--log-every must be ≥ 1, got %d", f.o.LogEvery)
	}
	given := train.Given{}
	f.fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	s := train.Setup{Dir: f.out, Options: f.o, Diffusion: f.dc, Resume: f.resume, Given: given,
		LoadInit: openInit, Log: func(line string) { fmt.Fprintln(os.Stderr, line) }}
	if f.dropout != -1 {
		s.Dropout = &f.dropout
	}
	return s, nil
}

// settingFlags registers the flags that define a run (train.Settings,
// stored in its checkpoint).
func settingFlags(fs *flag.FlagSet, o *train.Options, dc *diffusion.Config, dropout *float64) {
	fs.StringVar(&o.Data, "data", o.Data, "data set: mnist, fashion-mnist, emoji, emoji:PATH, cifar10:DIR, folder:DIR (PNG/JPEG files; see --resize, --channels)")
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

// trainErr makes a setting the run cannot take (train.ErrInvalidOption,
// a refused batch included) a usage error: exit status 2.
func trainErr(err error) error {
	if errors.Is(err, train.ErrInvalidOption) {
		return usageErr("%v", err)
	}
	return err
}

// openInit reads the model --init names as every command reads a model
// (shipped, run directory, file, …), with the metadata its file records.
func openInit(name string) (*train.Init, error) {
	p, err := loadFixed(name)
	if err != nil {
		return nil, err
	}
	init := &train.Init{Net: p.Net, Process: p.ProcessConfig()}
	switch p.Source.Kind {
	case ddpm.Shipped:
		init.Metadata, _ = pretrained.Metadata(p.Source.Name)
	case ddpm.RunDir, ddpm.File:
		init.Metadata, _ = train.FileMetadata(p.Source.Path)
	}
	return init, nil
}
