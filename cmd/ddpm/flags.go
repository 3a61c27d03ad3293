package main

import (
	"flag"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
)

// textEnum is a diffusion enum behind a pointer: it prints itself and
// parses its name.
type textEnum interface {
	String() string
	UnmarshalText([]byte) error
}

// enumFlag adapts a diffusion enum to flag.Value. The flag package calls
// String on a zero enumFlag to find defaults, so a nil v must be handled.
type enumFlag struct{ v textEnum }

func (e enumFlag) String() string {
	if e.v == nil {
		return ""
	}
	return e.v.String()
}
func (e enumFlag) Set(s string) error { return e.v.UnmarshalText([]byte(s)) }

// diffusionFlags registers the diffusion process's flags on fs. With
// training set it adds the ones fixed at training time; without, --var and
// --clip override the checkpoint's settings only when given (see
// loadModel), so their help names no default of their own.
func diffusionFlags(fs *flag.FlagSet, dc *diffusion.Config, training bool) {
	const varHelp = "reverse-process variance: fixedlarge, fixedsmall, learned"
	const clipHelp = "clip the predicted x0 to [-1, 1] while sampling, as the official code does"
	if !training {
		// A Func flag prints no default.
		fs.Func("var", varHelp+", or fitted: σ_t² = β̃_t + the network's measured x̂0 error, fitted on --fit-n training images (default: the checkpoint's)",
			func(s string) error { return dc.Var.UnmarshalText([]byte(s)) })
		fs.Int("fit-n", defaultFitN, "with --var fitted: fit the variances on the last N images of the model's training split")
		fs.String("fit", "", "with --var fitted: read the fit from this file (made by ddpm fit-variance) instead of measuring it; shipped models use the one shipped beside them")
		fs.BoolVar(&dc.Clip, "clip", false, clipHelp+" (default: the checkpoint's)")
		return
	}
	fs.IntVar(&dc.T, "T", dc.T, "number of diffusion steps")
	fs.Float64Var(&dc.BetaStart, "beta-start", dc.BetaStart, "β_1 of the linear schedule")
	fs.Float64Var(&dc.BetaEnd, "beta-end", dc.BetaEnd, "β_T of the linear schedule")
	fs.Var(enumFlag{&dc.Schedule}, "schedule", "β schedule: linear or cosine")
	fs.Var(enumFlag{&dc.Mean}, "mean", "what the network predicts: eps, xprev, xstart")
	fs.Var(enumFlag{&dc.Loss}, "loss", "objective: simple, vlb, mse-mu, hybrid")
	fs.Var(enumFlag{&dc.Var}, "var", varHelp)
	fs.BoolVar(&dc.Clip, "clip", dc.Clip, clipHelp)
}

func checkDiffusion(dc diffusion.Config) error {
	if dc.Var == diffusion.Fitted {
		return usageErr("--var %v is measured on a trained network, not trained with: train with fixedlarge or fixedsmall, then pass --var %v to eval, sample, rd, …", dc.Var, dc.Var)
	}
	if _, err := diffusion.New(dc); err != nil {
		return usageErr("%v", err)
	}
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func joinNames(n []string) string { return strings.Join(n, ", ") }
