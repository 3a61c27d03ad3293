package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

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
