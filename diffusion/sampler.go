package diffusion

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
)

// Sampler is a way of running the reverse process: Algorithm 2
// ([Ancestral]), DDIM ([DDIM]), improved-diffusion's respacing
// ([Respaced]) or annealed Langevin dynamics ([Langevin]). Every sampler
// plugs into [Generate], the pipeline and the commands through this one
// interface.
type Sampler interface {
	// Sample overwrites x, which holds x_T for n images (fill it with
	// [FillNormal]), with samples x_0 of the process d under the network
	// m. It checks ctx between network evaluations and returns ctx.Err()
	// once it is cancelled. Its draws from rng are deterministic.
	Sample(ctx context.Context, d *Diffusion, m Model, x []float32, n int, rng *rand.Rand, h Hooks) error
	// Validate reports why the sampler cannot run on a T-step process.
	Validate(T int) error
	// Evaluations is the number of network evaluations per image on a
	// T-step process: the total that Hooks.Progress counts to.
	Evaluations(T int) int
	// String describes the sampler for a log line, e.g. "ddim, 50 steps, η = 0".
	String() string
}

// Hooks watch a sampler at work; the zero value watches nothing.
type Hooks struct {
	// Progress is called after each network evaluation with done = 1..total.
	Progress func(done, total int)
	// Observe sees x_t and the network's x̂0 at each reverse step before x
	// is updated, with the step's timestep index in the network's process.
	Observe Observer
}

func (h Hooks) progress(done, total int) {
	if h.Progress != nil {
		h.Progress(done, total)
	}
}

// Ancestral is Algorithm 2: all T steps of p_θ(x_{t−1} | x_t), with the
// process's variance and clipping.
type Ancestral struct{}

func (Ancestral) Sample(ctx context.Context, d *Diffusion, m Model, x []float32, n int, rng *rand.Rand, h Hooks) error {
	return d.SampleFrom(ctx, m, x, n, d.T-1, rng, h)
}
func (Ancestral) Validate(T int) error  { return nil }
func (Ancestral) Evaluations(T int) int { return T }
func (Ancestral) String() string        { return "ancestral" }

// DDIM is the sampler of Song, Meng & Ermon (2021) over Steps timesteps
// picked by Spacing (the zero value: evenly, [SpacedIndices]); Eta = 0 is
// deterministic, 1 the DDPM posterior variance ([Diffusion.SampleDDIM]).
// Each step goes to the next visited timestep, and the last to ᾱ = 1.
// diffusers' DDIMScheduler steps to t − T div K instead, which is the next
// visited timestep for "leading" (any steps_offset) and for "trailing" when
// K divides T, but not for "linspace" or other K (its open issue #12633).
type DDIM struct {
	Steps int
	Eta   float64
	// Spacing picks the timesteps; StepsOffset is diffusers' steps_offset,
	// which SpacingLeading adds to each (see [Spacing.Indices]).
	Spacing     Spacing
	StepsOffset int
}

func (s DDIM) Sample(ctx context.Context, d *Diffusion, m Model, x []float32, n int, rng *rand.Rand, h Hooks) error {
	if err := s.Validate(d.T); err != nil {
		return err
	}
	keep, err := s.Spacing.indices(d.T, s.Steps, s.StepsOffset)
	if err != nil {
		return err
	}
	return d.SampleDDIM(ctx, m, x, n, keep, s.Eta, rng, h)
}

func (s DDIM) Validate(T int) error {
	if s.Steps < 1 || s.Steps > T {
		return fmt.Errorf("ddim: %d steps out of range 1..%d (T)", s.Steps, T)
	}
	if !(s.Eta >= 0) || math.IsInf(s.Eta, 0) {
		return fmt.Errorf("ddim: η must be ≥ 0, got %g", s.Eta)
	}
	if _, err := s.Spacing.indices(T, s.Steps, s.StepsOffset); err != nil {
		return fmt.Errorf("ddim: %w", err)
	}
	return nil
}
func (s DDIM) Evaluations(T int) int { return s.Steps }
func (s DDIM) String() string {
	return fmt.Sprintf("ddim, %d steps%s, η = %g", s.Steps, spacingNote(s.Spacing, s.StepsOffset), s.Eta)
}

// spacingNote describes a spacing other than the default for a log line.
func spacingNote(s Spacing, offset int) string {
	switch {
	case s == SpacingAuto:
		return ""
	case s == SpacingLeading && offset != 0:
		return fmt.Sprintf(" (%v spacing, offset %d)", s, offset)
	}
	return fmt.Sprintf(" (%v spacing)", s)
}

// WithSpacing returns s with the timestep spacing sp and steps offset
// filled in when s is a [DDIM] or [Respaced] sampler that leaves its
// spacing to the model (SpacingAuto); any other sampler is returned as it
// is. A pipeline uses it to apply its model's default spacing.
func WithSpacing(s Sampler, sp Spacing, offset int) Sampler {
	switch v := s.(type) {
	case DDIM:
		if v.Spacing == SpacingAuto {
			v.Spacing, v.StepsOffset = sp, offset
		}
		return v
	case *DDIM:
		if v != nil && v.Spacing == SpacingAuto {
			c := *v
			c.Spacing, c.StepsOffset = sp, offset
			return c
		}
	case Respaced:
		if v.Spacing == SpacingAuto {
			v.Spacing, v.StepsOffset = sp, offset
		}
		return v
	case *Respaced:
		if v != nil && v.Spacing == SpacingAuto {
			c := *v
			c.Spacing, c.StepsOffset = sp, offset
			return c
		}
	}
	return s
}

// Respaced runs Algorithm 2 on the process respaced to Steps timesteps
// picked by Spacing (the zero value: evenly, [SpacedIndices];
// improved-diffusion's respacing, [Diffusion.Respace]), feeding the
// network its original timesteps. Each step goes to the next visited
// timestep and the last to ᾱ = 1, as diffusers' DDPMScheduler.step does
// with num_inference_steps (previous_timestep), so that with diffusers'
// spacing it is DDPMPipeline(num_inference_steps=Steps). One difference
// remains: DDPMScheduler adds noise at the last step whenever its timestep
// is above 0 ("trailing", or "leading" with a steps_offset), with the
// fixed_large variance 1 − ᾱ_t; Respaced returns the mean there, as
// Algorithm 2 does.
type Respaced struct {
	Steps int
	// Spacing picks the timesteps; StepsOffset is diffusers' steps_offset,
	// which SpacingLeading adds to each (see [Spacing.Indices]).
	Spacing     Spacing
	StepsOffset int
}

func (s Respaced) Sample(ctx context.Context, d *Diffusion, m Model, x []float32, n int, rng *rand.Rand, h Hooks) error {
	if err := s.Validate(d.T); err != nil {
		return err
	}
	keep, err := s.Spacing.indices(d.T, s.Steps, s.StepsOffset)
	if err != nil {
		return err
	}
	r, err := d.Respace(keep)
	if err != nil {
		return err
	}
	if obs := h.Observe; obs != nil {
		h.Observe = func(i int, xt, xStart []float32) { obs(keep[i], xt, xStart) }
	}
	return r.SampleFrom(ctx, r.Model(m), x, n, r.T-1, rng, h)
}

func (s Respaced) Validate(T int) error {
	if s.Steps < 2 || s.Steps > T {
		return fmt.Errorf("respaced: %d steps out of range 2..%d (T)", s.Steps, T)
	}
	if _, err := s.Spacing.indices(T, s.Steps, s.StepsOffset); err != nil {
		return fmt.Errorf("respaced: %w", err)
	}
	return nil
}
func (s Respaced) Evaluations(T int) int { return s.Steps }
func (s Respaced) String() string {
	return fmt.Sprintf("respaced, %d steps%s", s.Steps, spacingNote(s.Spacing, s.StepsOffset))
}

// Sample runs annealed Langevin dynamics with these settings
// ([Diffusion.SampleLangevin]).
func (l Langevin) Sample(ctx context.Context, d *Diffusion, m Model, x []float32, n int, rng *rand.Rand, h Hooks) error {
	return d.SampleLangevin(ctx, m, x, n, l, rng, h)
}

func (l Langevin) String() string {
	return fmt.Sprintf("langevin, %d levels × %d steps, r = %g", l.Levels, l.Steps, l.StepScale)
}

// Generate draws n images of dim values each with the sampler s, batch
// images at a time: for each batch x_T is drawn from rng ([FillNormal]),
// then s runs on it with the same rng. It is the one batched sampling loop
// of the pipeline, the commands and the experiments. h.Progress counts the
// network evaluations of all batches; h.Observe sees each batch's x_t.
// On cancellation it returns ctx.Err() and no images.
func Generate(ctx context.Context, d *Diffusion, m Model, s Sampler, n, dim, batch int, rng *rand.Rand, h Hooks) ([]float32, error) {
	if n < 1 || dim < 1 || batch < 1 {
		return nil, fmt.Errorf("diffusion: generate needs n, dim and batch ≥ 1, got %d, %d, %d", n, dim, batch)
	}
	if err := s.Validate(d.T); err != nil {
		return nil, err
	}
	per := s.Evaluations(d.T)
	chunks := (n + batch - 1) / batch
	total := chunks * per
	out := make([]float32, n*dim)
	for c := range chunks {
		lo, hi := c*batch, min((c+1)*batch, n)
		x := out[lo*dim : hi*dim]
		FillNormal(x, rng)
		hc := Hooks{Observe: h.Observe}
		if h.Progress != nil {
			base := c * per
			hc.Progress = func(done, _ int) { h.Progress(base+done, total) }
		}
		if err := s.Sample(ctx, d, m, x, hi-lo, rng, hc); err != nil {
			return nil, err
		}
	}
	return out, nil
}
