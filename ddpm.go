// Package ddpm is the entry point to Denoising Diffusion Probabilistic
// Models (Ho, Jain & Abbeel 2020) in Go: load a trained model and sample
// from it, or measure its likelihood, in a few lines.
//
//	p, err := ddpm.Load("mnist") // a shipped name, a run directory, a checkpoint or a weights file
//	imgs, err := p.Sample(ctx, 16, ddpm.SampleOptions{Sampler: ddpm.DDIM(20), Seed: 1})
//	err = ddpm.SaveGrid("samples.png", imgs, 0)
//
// A [Pipeline] pairs a network (package model/unet) with its diffusion
// process (package diffusion, the paper's mathematics). The zero
// [SampleOptions] runs the paper's Algorithm 2 over all T steps; the
// samplers [Ancestral], [DDIM], [Respaced] and [Langevin] share the one
// [diffusion.Sampler] interface. Every command of cmd/ddpm loads its model
// through [Load].
package ddpm

import (
	"fmt"
	"math"
	"strings"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// Pipeline is a trained network and the diffusion process it reverses.
// Its methods may be called from several goroutines, but each call uses
// every core: the engine parallelises one network evaluation.
type Pipeline struct {
	// Net is the U-Net ε_θ (or x̂0_θ, μ_θ, by the process's parameterisation).
	Net *unet.UNet
	// Process is the diffusion: schedule, parameterisation, reverse variance, clipping.
	Process *diffusion.Diffusion
	// Source says where the model came from.
	Source Source
	// Spacing and StepsOffset are the timestep spacing of the DDIM and
	// Respaced samplers that leave it to the model (diffusion.SpacingAuto):
	// a diffusers model's scheduler config (timestep_spacing, steps_offset;
	// DDPMScheduler's "leading" without one), else SpacingAuto, which
	// spaces evenly (diffusion.SpacedIndices).
	Spacing     diffusion.Spacing
	StepsOffset int

	config  diffusion.Config     // the process's settings, as saved with the model and overridden by options
	eval    diffusion.Model      // Through: where network evaluations go instead of Net (nil: Net)
	fixed   *diffusion.Diffusion // the process before a fitted variance replaced its own
	fitFrom string               // where the fitted variance came from
}

// New makes a pipeline of a network and the settings of its diffusion
// process, e.g. a network trained in the same program (package train).
func New(net *unet.UNet, c diffusion.Config) (*Pipeline, error) {
	d, err := diffusion.New(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	if want, have := d.OutChannels(net.Config().InCh), net.Config().OutCh; want != have {
		return nil, fmt.Errorf("%w: variance %s needs a network with %d output channels, this one has %d", ErrInvalidOption, c.Var, want, have)
	}
	return &Pipeline{Net: net, Process: d, Source: Source{Kind: InMemory}, config: c}, nil
}

// Through returns a copy of p whose network evaluations in Sample,
// BitsPerDim, RateDistortion, Interpolate, Progressive and SharedLatents go
// through m instead of calling Net: e.g. a server's batching scheduler,
// which evaluates them together with other requests' images. m must
// compute Net's function (a batch-invariant Net gives the same results).
func (p *Pipeline) Through(m diffusion.Model) *Pipeline {
	q := *p
	q.eval = m
	return &q
}

// net is where p's network evaluations go: Through's model, or Net.
func (p *Pipeline) net() diffusion.Model {
	if p.eval != nil {
		return p.eval
	}
	return p.Net
}

// ProcessConfig is the diffusion process's settings (schedule, T,
// parameterisation, variance, clipping), e.g. to train on with --init.
func (p *Pipeline) ProcessConfig() diffusion.Config { return p.config }

// Channels is the number of colour channels of the images (1 grey, 3 RGB).
func (p *Pipeline) Channels() int { return p.Net.Config().InCh }

// Resolution is the side of the square images, in pixels.
func (p *Pipeline) Resolution() int { return p.Net.Config().Res }

// T is the number of diffusion steps the network was trained with.
func (p *Pipeline) T() int { return p.Process.T }

// dims is the number of values per image.
func (p *Pipeline) dims() int {
	c := p.Net.Config()
	return c.InCh * c.Res * c.Res
}

// DescribeFit says in one line what a fitted variance changed against the
// fixed one — the decoder's σ_1 and a few steps' σ_t — and where it came
// from; empty when the variance is not fitted.
func (p *Pipeline) DescribeFit() string {
	fit, d, fd := p.Process.Fit, p.fixed, p.Process
	if fit == nil || d == nil {
		return ""
	}
	sigma := func(dd *diffusion.Diffusion, i int) float64 { return math.Exp(0.5 * dd.FixedLogVariance(i)) }
	last := len(fit.DecoderLogScale) - 1
	var b strings.Builder
	fmt.Fprintf(&b, "fitted variance (%s): decoder σ_1 %.4g (was %.4g; %.3g where x̂0 ≈ −1, %.3g where ≈ +1)",
		p.fitFrom, sigma(fd, 0), sigma(d, 0), math.Exp(fit.DecoderLogScale[0]), math.Exp(fit.DecoderLogScale[last]))
	for _, t := range []int{2, 10, 100} {
		if t <= d.T {
			fmt.Fprintf(&b, "; σ_%d %.3g (√β̃ %.3g, √β %.3g)", t, sigma(fd, t-1), math.Sqrt(d.PosteriorVariance[t-1]), math.Sqrt(d.Betas[t-1]))
		}
	}
	return b.String()
}
