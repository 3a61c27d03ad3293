package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ddpm-go/ddpm"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
	"github.com/ddpm-go/ddpm/internal/progress"
	"github.com/ddpm-go/ddpm/internal/text"
)

func init() {
	register("sample", "draw images from a model (Algorithm 2, DDIM, respaced or Langevin) into a PNG grid", runSample)
}

// Samplers `ddpm sample --sampler` knows.
const samplerNames = "ancestral, ddim, respaced, langevin"

// samplerFlags are the reverse-process choices of `ddpm sample`.
type samplerFlags struct {
	name    string
	steps   int
	eta     float64
	spacing diffusion.Spacing
	offset  int
	lSteps  int
	lScale  float64
}

func addSamplerFlags(fs *flag.FlagSet) *samplerFlags {
	s := &samplerFlags{}
	def := diffusion.DefaultLangevin()
	fs.StringVar(&s.name, "sampler", "ancestral", "sampler: ancestral (Algorithm 2, T steps), ddim (Song et al.), respaced (improved-diffusion's K-step schedule), langevin (annealed Langevin dynamics with the model's score)")
	fs.IntVar(&s.steps, "steps", 0, "ddim, respaced: timesteps visited (default 50), spread over T by --spacing; langevin: noise levels (default 100), spread evenly")
	fs.Float64Var(&s.eta, "eta", 0, "ddim: η, 0 deterministic, 1 the DDPM posterior variance")
	fs.Var(enumFlag{&s.spacing}, "spacing", "ddim, respaced: which timesteps the steps visit: auto (the model's: a diffusers model's scheduler config, DDPMScheduler's leading without one; else even), even (round(s·(T−1)/(K−1))), or diffusers' leading (k·(T div K) + offset), trailing (round(T − k·T/K) − 1), linspace")
	fs.IntVar(&s.offset, "steps-offset", 0, "ddim, respaced with leading spacing: diffusers' steps_offset, added to each timestep (default: the model's)")
	fs.IntVar(&s.lSteps, "langevin-steps", def.Steps, "langevin: updates per noise level")
	fs.Float64Var(&s.lScale, "langevin-step", def.StepScale, "langevin: step α_i = r·σ_i² at a level of noise variance σ_i² (NCSN's ε = r·σ_L²), 0 < r < 4")
	return s
}

// build checks the flags against the pipeline's process and returns the
// sampler, with the model's timestep spacing where --spacing leaves it to
// the model (Pipeline.SamplerFor).
func (s *samplerFlags) build(fs *flag.FlagSet, p *ddpm.Pipeline) (diffusion.Sampler, error) {
	d := p.Process
	for _, only := range []struct{ flag, samplers string }{
		{"eta", "ddim"}, {"langevin-steps", "langevin"}, {"langevin-step", "langevin"},
	} {
		if flagSet(fs, only.flag) && s.name != only.samplers {
			return nil, usageErr("--%s applies to --sampler %s only", only.flag, only.samplers)
		}
	}
	for _, f := range []string{"spacing", "steps-offset"} {
		if flagSet(fs, f) && s.name != "ddim" && s.name != "respaced" {
			return nil, usageErr("--%s applies to --sampler ddim and respaced only", f)
		}
	}
	spacing, offset := s.spacing, s.offset
	if flagSet(fs, "steps-offset") {
		if spacing == diffusion.SpacingAuto {
			spacing = p.Spacing
		}
		if spacing != diffusion.SpacingLeading {
			name := spacing.String()
			if spacing == diffusion.SpacingAuto {
				name = "the model's, even"
			}
			return nil, usageErr("--steps-offset applies to leading spacing only (diffusers' trailing and linspace ignore steps_offset); the spacing here is %s", name)
		}
	} else if spacing == diffusion.SpacingLeading && p.Spacing == diffusion.SpacingLeading {
		offset = p.StepsOffset // the model's steps_offset goes with its spacing
	}
	if flagSet(fs, "steps") && s.name == "ancestral" {
		return nil, usageErr("--steps applies to ddim, respaced and langevin; ancestral sampling takes all T = %d steps", d.T)
	}
	steps := s.steps
	if !flagSet(fs, "steps") {
		steps = min(50, d.T)
		if s.name == "langevin" {
			steps = min(diffusion.DefaultLangevin().Levels, d.T)
		}
	}
	var sm diffusion.Sampler
	switch s.name {
	case "ancestral":
		sm = diffusion.Ancestral{}
	case "ddim":
		sm = diffusion.DDIM{Steps: steps, Eta: s.eta, Spacing: spacing, StepsOffset: offset}
	case "respaced":
		sm = diffusion.Respaced{Steps: steps, Spacing: spacing, StepsOffset: offset}
	case "langevin":
		sm = diffusion.Langevin{Levels: steps, Steps: s.lSteps, StepScale: s.lScale}
	default:
		return nil, usageErr("unknown --sampler %q (have %s)", s.name, samplerNames)
	}
	sm = p.SamplerFor(sm)
	if err := sm.Validate(d.T); err != nil {
		return nil, usageErr("%v", err)
	}
	return sm, nil
}

func runSample(args []string) error {
	fs := newFlags("sample", "[--model mnist|fashion-mnist|DIR|FILE] [--n 64] [--out samples.png] [--out-dir DIR] [--sampler ancestral|ddim|respaced|langevin] [--spacing auto|even|leading|trailing|linspace] [flags]")
	mf := addModelFlags(fs, ddpm.DefaultModel)
	n := fs.Int("n", 64, "number of images")
	batch := fs.Int("batch", ddpm.DefaultBatch, "images denoised together")
	out := fs.String("out", "samples.png", "grid picture to write (.png, .jpg); with --out-dir alone, none")
	outDir := fs.String("out-dir", "", "write one PNG per sample into this directory (sample-001.png, …), a batch at a time: an interrupted draw goes on with --resume")
	resume := fs.Bool("resume", false, "continue the interrupted draw in --out-dir with its own flags (those given must match), to the images one run would give")
	cols := fs.Int("cols", 0, "grid columns (0: square-ish)")
	seed := fs.Uint64("seed", 0, "random seed")
	quiet := fs.Bool("quiet", false, "no progress bar")
	sf := addSamplerFlags(fs)
	if err := mf.parse(args); err != nil {
		return err
	}
	st, err := drawStateFor(fs, *outDir, *resume)
	if err != nil {
		return err
	}
	if *n <= 0 || *batch <= 0 {
		return usageErr("--n and --batch must be positive")
	}
	if *cols < 0 {
		return usageErr("--cols must be ≥ 0")
	}
	grid := *out
	if *outDir != "" && !flagSet(fs, "out") {
		grid = "" // --out-dir alone writes the samples, not also a grid
	}
	if err := checkImageOut("out", grid); err != nil {
		return err
	}
	p, err := mf.load(*quiet)
	if err != nil {
		return err
	}
	sampler, err := sf.build(fs, p)
	if err != nil {
		return err
	}
	o := ddpm.SampleOptions{Sampler: sampler, Seed: *seed, Batch: *batch}
	held := *n // a draw into --out-dir holds one batch at a time
	if *outDir != "" {
		held = min(*n, *batch)
	}
	if err := p.Check(held, o); err != nil {
		return usageErr("--n %d: %v", *n, err)
	}
	bar := progress.New(p.Evaluations(*n, o), fmt.Sprintf("sampling %s from %s (%s)", text.Plural(*n, "image"), p.Source, sampler), "eval", *quiet)
	start := time.Now()
	var imgs []image.Image
	note := ""
	if *outDir == "" {
		o.Progress = func(done, _ int) { bar.Set(done) }
		x, err := p.SampleTensor(context.Background(), *n, o)
		if err != nil {
			return err
		}
		imgs = x.Images()
	} else {
		// The first SIGINT/SIGTERM stops the draw between network
		// evaluations; the batches written so far are kept for --resume.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if !*resume {
			st = newDrawState(fs, p, *seed)
		}
		if st.Done > 0 {
			note = fmt.Sprintf(", resumed at image %d", st.Done+1)
		}
		var done int
		imgs, done, err = drawToDir(ctx, p, *n, *batch, o, *outDir, st, grid != "", bar)
		if errors.Is(err, context.Canceled) {
			nl := "" // a bar drawn in place ends its line first
			if bar.Terminal() {
				nl = "\n"
			}
			fmt.Fprintf(os.Stderr, "%sinterrupted: %d of %s written to %s; continue with --resume\n", nl, done, text.Plural(*n, "image"), *outDir)
			return nil
		}
		if err != nil {
			return err
		}
	}
	bar.Finish()
	var wrote []string
	if grid != "" {
		if err := ddpm.SaveGrid(grid, imgs, *cols); err != nil {
			return err
		}
		wrote = append(wrote, grid)
	}
	if *outDir != "" {
		wrote = append(wrote, fmt.Sprintf("%s/%s … %s", *outDir, imgio.EachName("sample-", 0, *n), imgio.EachName("sample-", *n-1, *n)))
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%s of %s, %s: %s each, %s%s)\n", strings.Join(wrote, " and "),
		text.Plural(*n, "sample"), p.Source, sampler, text.Plural(sampler.Evaluations(p.T()), "network evaluation"), time.Since(start).Round(time.Millisecond), note)
	return nil
}

// drawStateFor checks --out-dir against --resume: a resumed draw must be
// unfinished there, and takes its flags (see resumeFlags); a new one must
// not overwrite an unfinished draw.
func drawStateFor(fs *flag.FlagSet, dir string, resume bool) (drawState, error) {
	if dir == "" {
		if resume {
			return drawState{}, usageErr("--resume continues a draw into --out-dir: give its folder")
		}
		return drawState{}, nil
	}
	if err := checkDirOut("out-dir", dir); err != nil {
		return drawState{}, err
	}
	st, found, err := readDrawState(dir)
	switch {
	case err != nil:
		return drawState{}, err
	case resume && !found:
		return drawState{}, fmt.Errorf("--out-dir %s holds no unfinished draw to resume (no %s)", dir, drawStateName)
	case resume:
		return st, resumeFlags(fs, st, dir)
	case found:
		return drawState{}, fmt.Errorf("--out-dir %s holds an unfinished draw (%d images written): continue it with --resume, or delete %s to start over", dir, st.Done, filepath.Join(dir, drawStateName))
	}
	return drawState{}, nil
}
