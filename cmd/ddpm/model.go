package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
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
	mf.path = fs.String("model", "", "run directory or checkpoint/weights file (required)")
	mf.raw = fs.Bool("raw", false, "use the raw weights instead of the EMA weights")
	diffusionFlags(fs, &mf.dc, false)
	return mf
}

// parse parses args and requires --model.
func (mf *modelFlags) parse(args []string) error {
	if err := parseFlags(mf.fs, args); err != nil {
		return err
	}
	if *mf.path == "" {
		return usageErr("--model is required (a run directory or a checkpoint file)")
	}
	return nil
}

// load reads the model the flags name.
func (mf *modelFlags) load() (*unet.UNet, *diffusion.Diffusion, error) {
	return loadModel(*mf.path, *mf.raw, mf.fs, mf.dc)
}

// loadModel is how every command reads a trained model: path is a run
// directory, a checkpoint or a weights file. The sampling flags the user set
// on fs (--var, --clip) override the checkpoint's diffusion settings.
func loadModel(path string, raw bool, fs interface{ Visit(func(*flag.Flag)) }, over diffusion.Config) (*unet.UNet, *diffusion.Diffusion, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("model %s: %w", path, err)
	}
	m, dc, err := checkpoint.LoadModel(path, raw, nil)
	if err != nil {
		return nil, nil, err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "var":
			dc.Var = over.Var
		case "clip":
			dc.Clip = over.Clip
		}
	})
	d, err := diffusion.New(dc)
	if err != nil {
		return nil, nil, usageErr("%v", err)
	}
	if want, have := d.OutChannels(m.Config().InCh), m.Config().OutCh; want != have {
		return nil, nil, usageErr("--var %s needs a network with %d output channels, this one has %d (trained with another variance choice)", dc.Var, want, have)
	}
	return m, d, nil
}
