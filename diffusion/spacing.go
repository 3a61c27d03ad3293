package diffusion

import (
	"fmt"
	"math"
	"strings"
)

// Spacing is how a fast sampler ([DDIM], [Respaced]) picks the K timesteps
// it visits out of T. Besides the project's own even spacing it has
// diffusers' three timestep_spacing rules (DDPMScheduler.set_timesteps and
// DDIMScheduler.set_timesteps, schedulers/scheduling_ddpm.py and
// scheduling_ddim.py), which visit exactly the timesteps that
// DDPMPipeline(num_inference_steps=K) and DDIMPipeline do. The indices are
// 0-based, as diffusers' timesteps are.
type Spacing int

const (
	// SpacingAuto leaves the choice to the model: a pipeline loaded from a
	// diffusers folder uses its scheduler config's timestep_spacing and
	// steps_offset, anything else SpacingEven. On its own (a sampler run
	// directly on a process) it is SpacingEven.
	SpacingAuto Spacing = iota
	// SpacingEven is [SpacedIndices]: round(s·(T−1)/(K−1)), halves away from
	// zero (improved-diffusion's space_timesteps with one section); it
	// always visits T−1 and 0.
	SpacingEven
	// SpacingLeading is diffusers' "leading" (DDPMScheduler's and
	// DDIMScheduler's default): k·(T div K) + offset for k = 0..K−1, e.g.
	// 0, 20, …, 980 for T = 1000, K = 50 (never T−1 unless K = T). offset is
	// the scheduler config's steps_offset.
	SpacingLeading
	// SpacingTrailing is diffusers' "trailing": round(T − k·T/K) − 1 for
	// k = 0..K−1 (numpy's arange(T, 0, −T/K), halves to even), e.g. 999,
	// 979, …, 19 for T = 1000, K = 50: it starts at T−1 and ends above 0
	// when K < T.
	SpacingTrailing
	// SpacingLinspace is diffusers' "linspace": numpy's
	// linspace(0, T−1, K) rounded half to even. It differs from SpacingEven
	// only where s·(T−1)/(K−1) ends in exactly one half, and for K = 1
	// (timestep 0, where SpacingEven gives T−1).
	SpacingLinspace
)

var spacingNames = []string{SpacingAuto: "auto", SpacingEven: "even", SpacingLeading: "leading", SpacingTrailing: "trailing", SpacingLinspace: "linspace"}

func (s Spacing) String() string { return enumString(spacingNames, int(s), "Spacing") }

// MarshalText writes the spacing's name.
func (s Spacing) MarshalText() ([]byte, error) {
	return marshalEnum(s >= 0 && int(s) < len(spacingNames), s.String())
}

// UnmarshalText parses a spacing name: auto, even, leading, trailing or
// linspace (diffusers' timestep_spacing values are the last three).
func (s *Spacing) UnmarshalText(b []byte) (err error) {
	*s, err = ParseSpacing(string(b))
	return err
}

// ParseSpacing parses "auto", "even", "leading", "trailing" or "linspace".
func ParseSpacing(s string) (Spacing, error) {
	v, err := enumParse(spacingNames, s, "timestep spacing")
	return Spacing(v), err
}

// Indices returns the K timestep indices of [0, T) the spacing visits, in
// increasing order (diffusers lists them decreasing: the same set).
// offset is diffusers' steps_offset, added by SpacingLeading alone (as
// set_timesteps does; the other rules ignore it). It fails, in one line,
// on K outside 1..T, an offset that pushes a timestep past T−1, and the K
// for which numpy's float arange gives diffusers' trailing rule K+1
// timesteps, the last −1 (e.g. T = 1000, K = 61): DDPMPipeline would
// evaluate the network at t = −1 there, which nothing can reproduce.
func (s Spacing) Indices(T, K, offset int) ([]int, error) {
	keep, err := s.indices(T, K, offset)
	if err != nil {
		return nil, fmt.Errorf("diffusion: %w", err)
	}
	return keep, nil
}

// indices is Indices with errors that do not name the package.
func (s Spacing) indices(T, K, offset int) ([]int, error) {
	if T < 1 {
		return nil, fmt.Errorf("cannot space %d timesteps", T)
	}
	if K < 1 || K > T {
		return nil, fmt.Errorf("%d steps out of range 1..%d (T)", K, T)
	}
	if offset < 0 {
		return nil, fmt.Errorf("steps offset must be ≥ 0, got %d", offset)
	}
	keep := make([]int, K)
	switch s {
	case SpacingAuto, SpacingEven:
		if K == 1 {
			return []int{T - 1}, nil
		}
		stride := float64(T-1) / float64(K-1)
		for k := range keep {
			keep[k] = int(math.Round(float64(k) * stride))
		}
		return keep, nil
	case SpacingLeading:
		// scheduling_ddpm.py 329-334 (diffusers 58eb52c0; scheduling_ddim.py
		// 365-370 is the same), "leading": step_ratio =
		// T // K; timesteps = arange(0, K) * step_ratio, reversed, +=
		// steps_offset (all integer arithmetic).
		ratio := T / K
		for k := range keep {
			keep[k] = k*ratio + offset
		}
		if top := keep[K-1]; top >= T {
			return nil, fmt.Errorf("leading spacing of %d steps with offset %d reaches timestep %d, past T−1 = %d", K, offset, top, T-1)
		}
	case SpacingTrailing:
		// scheduling_ddpm.py 335-340 (scheduling_ddim.py 371-376),
		// "trailing": step_ratio = T / K
		// (a float); timesteps = round(arange(T, 0, −step_ratio)) − 1.
		ts := numpyArange(float64(T), 0, -float64(T)/float64(K))
		if len(ts) != K {
			return nil, fmt.Errorf("diffusers' trailing spacing of T = %d into %d steps makes %d timesteps, the last %d (numpy's float arange): choose another step count or spacing",
				T, K, len(ts), int(math.RoundToEven(ts[len(ts)-1]))-1)
		}
		for k, v := range ts {
			keep[K-1-k] = int(math.RoundToEven(v)) - 1
		}
	case SpacingLinspace:
		// scheduling_ddpm.py 322-328 (scheduling_ddim.py 358-364),
		// "linspace": timesteps =
		// linspace(0, T − 1, K).round(), reversed.
		for k, v := range numpyLinspace(0, float64(T-1), K) {
			keep[k] = int(math.RoundToEven(v))
		}
	default:
		return nil, fmt.Errorf("unknown timestep spacing %v", s)
	}
	if err := checkKeep(keep, T); err != nil {
		return nil, fmt.Errorf("%v spacing of %d steps: %s", s, K, strings.TrimPrefix(err.Error(), "diffusion: "))
	}
	return keep, nil
}

// numpyArange is numpy's arange(start, stop, step) for floats, value for
// value: its length is ceil((stop − start)/step), its second value
// start + step, and every later one start + i·(second − start) (the
// float64 fill function), so that rounding lands where numpy's does.
func numpyArange(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	out[0] = start
	if n > 1 {
		out[1] = start + step
	}
	delta := out[min(1, n-1)] - start
	for i := 2; i < n; i++ {
		out[i] = start + float64(i)*delta
	}
	return out
}

// numpyLinspace is numpy's linspace(start, stop, num) with the endpoint,
// value for value: i·((stop − start)/(num − 1)) + start, the last value
// stop itself; num = 1 gives start.
func numpyLinspace(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	if num == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(num-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[num-1] = stop
	return out
}
