package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/pretrained"
	"github.com/ddpm-go/ddpm/weights"
)

// modelFlags are the flags of a command that reads a trained model: --model,
// --raw and the sampling settings (--var, --clip) that override the
// checkpoint's.
type modelFlags struct {
	fs   *flag.FlagSet
	path *string
	raw  *bool
	dc   diffusion.Config
}

// addModelFlags registers the model flags on fs.
func addModelFlags(fs *flag.FlagSet) *modelFlags {
	mf := &modelFlags{fs: fs}
	mf.path = fs.String("model", pretrained.Default, modelHelp)
	mf.raw = fs.Bool("raw", false, "use the raw weights instead of the EMA weights")
	diffusionFlags(fs, &mf.dc, false)
	return mf
}

// modelHelp is the help text of every --model flag.
var modelHelp = "a shipped model (" + strings.Join(pretrained.Names(), ", ") + "), a run directory or a checkpoint/weights file"

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

// isShipped reports whether a --model value names a model embedded in the
// binary. A file or directory of the same name wins, as a local folder does
// in diffusers' from_pretrained, so a run trained with --out mnist stays
// reachable as --model mnist.
func isShipped(path string) bool {
	if !pretrained.Has(path) {
		return false
	}
	_, err := os.Stat(path)
	return err != nil
}

// openModel reads the model a --model value names: a shipped model, a run
// directory, a checkpoint or a weights file.
func openModel(path string, raw bool) (*unet.UNet, diffusion.Config, error) {
	if isShipped(path) {
		if raw {
			return nil, diffusion.Config{}, usageErr("--raw: the shipped model %s holds only its EMA weights", path)
		}
		return pretrained.Load(path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, diffusion.Config{}, fmt.Errorf("model %s: %w (shipped models: %s)", path, err, strings.Join(pretrained.Names(), ", "))
	}
	return checkpoint.LoadModel(path, raw, nil)
}

// modelDataSpec reads the data set a model was trained on from the
// training options in its metadata (checkpoints, and weights files written
// by ddpm export, record them).
func modelDataSpec(path string) (string, error) {
	if isShipped(path) {
		return pretrained.TrainingData(path)
	}
	_, meta, err := weights.Load(checkpoint.Path(path))
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	spec, err := checkpoint.TrainingData(meta)
	if err != nil {
		return "", fmt.Errorf("model %s: %w", path, err)
	}
	if spec == "" {
		return "", usageErr("model %s does not record its training data; pass --data", path)
	}
	return spec, nil
}

// load reads the model the flags name.
func (mf *modelFlags) load() (*unet.UNet, *diffusion.Diffusion, error) {
	return loadModel(*mf.path, *mf.raw, mf.fs, mf.dc)
}

// loadModel is how every command reads a trained model: path is a shipped
// model's name, a run directory, a checkpoint or a weights file. The
// sampling flags the user set on fs (--var, --clip) override the model's
// diffusion settings.
func loadModel(path string, raw bool, fs *flag.FlagSet, over diffusion.Config) (*unet.UNet, *diffusion.Diffusion, error) {
	m, dc, err := openModel(path, raw)
	if err != nil {
		return nil, nil, err
	}
	fitted := false
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "var" && over.Var == diffusion.Fitted:
			fitted = true // fitted below, to the network under its own variance
		case f.Name == "var":
			dc.Var = over.Var
		case f.Name == "clip":
			dc.Clip = over.Clip
		}
	})
	if !fitted && flagSet(fs, "fit") {
		return nil, nil, usageErr("--fit gives the variance of --var %v; pass --var %v too", diffusion.Fitted, diffusion.Fitted)
	}
	if fitted && dc.Var == diffusion.Learned {
		return nil, nil, usageErr("--var %v replaces a fixed variance; %s learns its own", diffusion.Fitted, path)
	}
	d, err := diffusion.New(dc)
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	if want, have := d.OutChannels(m.Config().InCh), m.Config().OutCh; want != have {
		return nil, nil, usageErr("--var %s needs a network with %d output channels, this one has %d (trained with another variance choice)", dc.Var, want, have)
	}
	if fitted {
		if d, err = fittedDiffusion(path, m, d, fs); err != nil {
			return nil, nil, err
		}
	}
	return m, d, nil
}

// flagValue is the value of fs's flag name, or def when fs has no such flag.
func flagValue[V any](fs *flag.FlagSet, name string, def V) V {
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if v, ok := g.Get().(V); ok {
				return v
			}
		}
	}
	return def
}
