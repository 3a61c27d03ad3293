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

// givenEnum is an enum flag that overrides a default only when given: it
// prints its value once set and nothing before, so its help shows no
// default of its own and a draw's saved flags hold what was given.
type givenEnum struct {
	v   textEnum
	set bool
}

func (e *givenEnum) String() string {
	if e == nil || !e.set {
		return ""
	}
	return e.v.String()
}

func (e *givenEnum) Set(s string) error {
	e.set = true
	return e.v.UnmarshalText([]byte(s))
}

// diffusionFlags registers the flags of the diffusion process a network is
// trained with on fs.
func diffusionFlags(fs *flag.FlagSet, dc *diffusion.Config) {
	const varHelp = "reverse-process variance: fixedlarge, fixedsmall, learned"
	const clipHelp = "clip the predicted x0 to [-1, 1] while sampling, as the official code does"
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
