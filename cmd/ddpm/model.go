package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/data"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/internal/progress"
)

// modelFlags are the flags of a command that reads a trained model:
// --model, --raw, and the sampling settings that override the model's
// (--var, --clip, --fit, --fit-n).
type modelFlags struct {
	fs      *flag.FlagSet
	path    *string
	raw     *bool
	varType diffusion.ModelVar
	clip    *bool
	fitN    *int
	fitFile *string
}

// modelHelp is the help text of every --model flag.
var modelHelp = "a shipped model (" + strings.Join(ddpm.ShippedModels(), ", ") + "), a run directory, a checkpoint/weights file (.safetensors, .bin, .ckpt), a diffusers folder, or hf:org/name[@revision]"

// addModelFlags registers the model flags on fs; def is --model's default
// (empty: the command checks whether one was given).
func addModelFlags(fs *flag.FlagSet, def string) *modelFlags {
	mf := &modelFlags{fs: fs}
	mf.path = fs.String("model", def, modelHelp)
	mf.raw = fs.Bool("raw", false, "use the raw weights instead of the EMA weights")
	// givenEnum and the help texts' "(default: the checkpoint's)" stand for
	// a flag that overrides the model only when given.
	fs.Var(&givenEnum{v: &mf.varType}, "var", "reverse-process variance: fixedlarge, fixedsmall, or fitted: σ_t² = β̃_t + the network's measured x̂0 error (see --fit, --fit-n) (default: the checkpoint's)")
	mf.clip = fs.Bool("clip", false, "clip the predicted x0 to [-1, 1] while sampling, as the official code does (default: the checkpoint's)")
	mf.fitN = fs.Int("fit-n", ddpm.DefaultFitImages, "with --var fitted: measure the fit on the last N images of the model's training split")
	mf.fitFile = fs.String("fit", "", "with --var fitted: read the fit from this file (made by ddpm fit-variance) instead of measuring it; shipped models use the one shipped beside them")
	return mf
}

// parse parses args and checks --model is not empty.
func (mf *modelFlags) parse(args []string) error {
	if err := parseFlags(mf.fs, args); err != nil {
		return err
	}
	if *mf.path == "" {
		return usageErr("--model must not be empty: %s", modelHelp)
	}
	return nil
}

// options turns the flags the user set into load options.
func (mf *modelFlags) options() ([]ddpm.Option, error) {
	var opts []ddpm.Option
	if *mf.raw {
		opts = append(opts, ddpm.RawWeights())
	}
	if flagSet(mf.fs, "clip") {
		opts = append(opts, ddpm.WithClip(*mf.clip))
	}
	fitted := flagSet(mf.fs, "var") && mf.varType == diffusion.Fitted
	switch {
	case flagSet(mf.fs, "var") && !fitted:
		opts = append(opts, ddpm.WithVariance(mf.varType))
	case (flagSet(mf.fs, "fit") || flagSet(mf.fs, "fit-n")) && !fitted:
		return nil, usageErr("--fit and --fit-n give the variance of --var %v; pass --var %v too", diffusion.Fitted, diffusion.Fitted)
	case flagSet(mf.fs, "fit") && flagSet(mf.fs, "fit-n"):
		return nil, usageErr("--fit reads a saved fit and --fit-n makes a new one: pass one of them")
	case flagSet(mf.fs, "fit"):
		opts = append(opts, ddpm.WithFitFile(*mf.fitFile))
	case flagSet(mf.fs, "fit-n"):
		opts = append(opts, ddpm.WithFitImages(*mf.fitN))
	case fitted:
		opts = append(opts, ddpm.WithVariance(diffusion.Fitted))
	}
	return opts, nil
}

// load reads the model the flags name.
func (mf *modelFlags) load(quiet bool) (*ddpm.Pipeline, error) {
	opts, err := mf.options()
	if err != nil {
		return nil, err
	}
	return loadPipeline(*mf.path, quiet, opts...)
}

// loadPipeline is how every command reads a trained model. It shows the
// progress of a variance fit measured on the way, warns when a local path
// shadows a shipped model, and says which fit it uses.
func loadPipeline(path string, quiet bool, opts ...ddpm.Option) (*ddpm.Pipeline, error) {
	var bar *progress.Bar
	start := time.Now()
	opts = append(opts, ddpm.WithProgress(func(done, total int) {
		if bar == nil {
			bar = progress.New(total, "fitting σ_t² on the model's training images", "eval", quiet)
		}
		bar.Set(done)
	}))
	p, err := ddpm.Load(path, opts...)
	if bar != nil {
		bar.Finish()
		if err == nil && !quiet {
			fmt.Fprintf(os.Stderr, "measured in %s\n", time.Since(start).Round(time.Second))
		}
	}
	if errors.Is(err, ddpm.ErrInvalidOption) {
		return nil, usageErr("%v", strings.TrimPrefix(err.Error(), ddpm.ErrInvalidOption.Error()+": "))
	}
	if err != nil {
		return nil, err
	}
	if p.Source.ShadowsShipped {
		fmt.Fprintf(os.Stderr, "warning: --model %s reads the local %s, not the shipped model of that name (pass ./%s to silence this)\n", path, p.Source.Path, path)
	}
	if s := p.DescribeFit(); s != "" && !quiet {
		fmt.Fprintln(os.Stderr, s)
	}
	return p, nil
}

// loadFixed reads a model with its own settings, for commands that need
// only its network or schedule.
func loadFixed(path string) (*ddpm.Pipeline, error) { return loadPipeline(path, true) }

// loadData reads a split of the data set spec (empty: the model's
// training data) for the model p; a missing or bad choice is a usage error.
func loadData(p *ddpm.Pipeline, spec, split string) (*data.Dataset, string, error) {
	ds, spec, err := p.LoadData(spec, split)
	switch {
	case errors.Is(err, ddpm.ErrNoTrainingData):
		return nil, "", usageErr("--data is required: %v", err)
	case errors.Is(err, ddpm.ErrInvalidOption):
		return nil, "", usageErr("%v", strings.TrimPrefix(err.Error(), ddpm.ErrInvalidOption.Error()+": "))
	}
	return ds, spec, err
}
