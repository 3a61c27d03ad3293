package ddpm

import "github.com/ddpm-go/ddpm/diffusion"

// SamplerFor is s as the pipeline runs it: a [DDIM] or [Respaced] sampler
// whose Spacing is diffusion.SpacingAuto takes the pipeline's Spacing and
// StepsOffset (a diffusers model's scheduler config, so that it visits the
// timesteps DDPMPipeline and DDIMPipeline do); anything else is returned as
// it is. Sample and SampleTensor apply it; a tool that runs the reverse
// process itself, or describes the sampler, calls it to agree with them.
func (p *Pipeline) SamplerFor(s diffusion.Sampler) diffusion.Sampler {
	return diffusion.WithSpacing(s, p.Spacing, p.StepsOffset)
}

// sampler is o's sampler as the pipeline runs it (SamplerFor).
func (p *Pipeline) sampler(o SampleOptions) diffusion.Sampler { return p.SamplerFor(o.sampler()) }
