package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/weights"
)

func init() {
	register("predict", "evaluate a model's network on given x_t and timesteps: ε̂ and x̂0 as safetensors (compare with diffusers)", runPredict)
}

// runPredict is `ddpm predict`: the network's ε̂(x_t, t) and the x̂0 it
// implies for the x [B, C, H, W] and t [B] or [K, B] of a safetensors file
// (diffusers' 0-based timesteps, int64, int32 or whole floats), written as
// eps and x0 ([B, …] or [K, B, …]): the fixtures' expected.safetensors
// reads as it is, and the output compares with diffusers' UNet2DModel.
func runPredict(args []string) error {
	fs := newFlags("predict", "--model M --in FILE --out FILE")
	mf := addModelFlags(fs, "")
	in := fs.String("in", "", "safetensors file with x [B, C, H, W] and t [B] or [K, B] (0-based timesteps, as diffusers counts) (required)")
	out := fs.String("out", "", "safetensors file to write eps and x0 to (required)")
	if err := mf.parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return usageErr("--in and --out are required")
	}
	if err := checkFileOut("out", *out); err != nil {
		return err
	}
	ts, _, err := weights.Load(*in)
	if err != nil {
		return fmt.Errorf("--in %w", err)
	}
	p, err := mf.load(true)
	if err != nil {
		return err
	}
	res, err := p.PredictTensors(ts)
	if errors.Is(err, ddpm.ErrInvalidOption) {
		return usageErr("--in %s: %s", *in, strings.TrimPrefix(err.Error(), ddpm.ErrInvalidOption.Error()+": "))
	}
	if err != nil {
		return err
	}
	if err := weights.Save(*out, res, map[string]string{"model": p.Source.String()}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s: eps and x0 %v of %s\n", *out, res["eps"].Shape, p.Source)
	return nil
}
