package interop

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/weights"
)

// TestSchedulerSpacing: timestep_spacing and steps_offset map to the fast
// samplers' default spacing, with DDPMScheduler's defaults ("leading", 0)
// for absent keys, and another spacing refused in one line naming the key.
func TestSchedulerSpacing(t *testing.T) {
	cases := []struct {
		json   string
		sp     diffusion.Spacing
		offset int
		err    string
	}{
		{`{}`, diffusion.SpacingLeading, 0, ""},
		{`{"timestep_spacing": "leading", "steps_offset": 1}`, diffusion.SpacingLeading, 1, ""},
		{`{"_class_name": "DDIMScheduler", "timestep_spacing": "trailing", "steps_offset": 1}`, diffusion.SpacingTrailing, 1, ""},
		{`{"timestep_spacing": "linspace"}`, diffusion.SpacingLinspace, 0, ""},
		{`{"steps_offset": null}`, diffusion.SpacingLeading, 0, ""},
		{`{"timestep_spacing": "karras"}`, 0, 0, `"timestep_spacing" = "karras"`},
		{`{"timestep_spacing": 3}`, 0, 0, "not a string"},
		{`{"steps_offset": -1}`, 0, 0, `"steps_offset" = -1`},
	}
	for _, c := range cases {
		sp, off, err := SchedulerSpacing("scheduler_config.json", []byte(c.json))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: %v, want an error with %q", c.json, err, c.err)
			}
			continue
		}
		if err != nil || sp != c.sp || off != c.offset {
			t.Errorf("%s: %v, %d, %v; want %v, %d", c.json, sp, off, err, c.sp, c.offset)
		}
		if _, err := SchedulerConfig("scheduler_config.json", []byte(c.json)); err != nil {
			t.Errorf("%s: the process no longer reads: %v", c.json, err)
		}
	}
}

// TestFixtureSpacing: the fixtures' scheduler configs (no timestep_spacing
// key, as the google/ddpm-* ones) give DDPMScheduler's "leading"; the
// traces, saved from a 1000-step DDPMScheduler, visit what every spacing
// visits at K = T, each step going to the next (prev_timesteps).
func TestFixtureSpacing(t *testing.T) {
	dir := fixtures(t, "tiny")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Spacing != diffusion.SpacingLeading || m.StepsOffset != 0 {
		t.Errorf("tiny: spacing %v offset %d, want leading 0", m.Spacing, m.StepsOffset)
	}
	d, err := diffusion.New(m.Process)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range []diffusion.Spacing{diffusion.SpacingLeading, diffusion.SpacingTrailing, diffusion.SpacingLinspace} {
		keep, err := sp.Indices(d.T, d.T, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := d.Respace(keep)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[int]int{} // timestep → respaced index
		for s, i := range keep {
			pos[i] = s
		}
		for _, trace := range []string{"ddpm_steps_start", "ddpm_steps_end"} {
			ts, _, err := weights.Load(filepath.Join(dir, trace+".safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			for k, step := range ts["timesteps"].I64 {
				s, ok := pos[int(step)]
				prev := ts["prev_timesteps"].I64[k]
				wantPrev := int64(-1)
				if s > 0 {
					wantPrev = int64(keep[s-1])
				}
				if !ok || prev != wantPrev {
					t.Errorf("%v, %s: t=%d visited %v, previous %d; diffusers' %d", sp, trace, step, ok, wantPrev, prev)
					continue
				}
				abPrev := 1.0
				if s > 0 {
					abPrev = r.AlphasCumprod[s-1]
				}
				for _, c := range []struct {
					name      string
					mine, dif float64
				}{
					{"alpha_prod_t", r.AlphasCumprod[s], float64(ts["alpha_prod_t"].F32[k])},
					{"alpha_prod_t_prev", abPrev, float64(ts["alpha_prod_t_prev"].F32[k])},
				} {
					if math.Abs(c.mine-c.dif) > 1e-5*c.dif {
						t.Errorf("%v, %s: t=%d %s %g, diffusers' (float32) %g", sp, trace, step, c.name, c.mine, c.dif)
					}
				}
			}
		}
	}
}
