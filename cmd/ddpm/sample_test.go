package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

// TestSampleSamplers runs every sampler end to end on a T = 20 model of
// each variance and checks the grid and the evaluation count it reports.
func TestSampleSamplers(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []diffusion.ModelVar{diffusion.FixedLarge, diffusion.Learned} {
		model := expModel(t, v)
		for _, tc := range []struct {
			args  []string
			evals string
		}{
			{nil, "20 network evaluations"},
			{[]string{"--sampler", "ddim", "--steps", "5"}, "5 network evaluations"},
			{[]string{"--sampler", "ddim", "--eta", "1"}, "20 network evaluations"},
			{[]string{"--sampler", "respaced", "--steps", "4"}, "4 network evaluations"},
			{[]string{"--sampler", "langevin", "--steps", "3", "--langevin-steps", "2", "--langevin-step", "0.5"}, "7 network evaluations"},
		} {
			out := filepath.Join(dir, "s.png")
			args := append([]string{"sample", "--model", model, "--n", "3", "--batch", "2", "--quiet", "--out", out}, tc.args...)
			var code int
			stderr := captureStderr(t, func() { code = run(args) })
			if code != 0 || !strings.Contains(stderr, tc.evals) {
				t.Errorf("%v %v: exit %d, %q (want %q)", v, tc.args, code, stderr, tc.evals)
				continue
			}
			// 3 images of 32 pixels, 2 columns, 2 rows, 2-pixel gaps.
			if w, h := pngSize(t, out); w != 2*32+2 || h != 2*32+2 {
				t.Errorf("%v: grid %d×%d", tc.args, w, h)
			}
		}
	}
}

// TestSampleSpacing: --spacing and --steps-offset choose the timesteps of
// ddim and respaced, a diffusers model's scheduler config is the default
// (the tiny fixture has none in its config: DDPMScheduler's leading), and
// misplaced flags are usage errors.
func TestSampleSpacing(t *testing.T) {
	dir := t.TempDir()
	model := expModel(t, diffusion.FixedLarge)
	type spacingCase struct {
		model string
		args  []string
		code  int
		want  string
	}
	cases := []spacingCase{
		{model, []string{"--sampler", "ddim", "--steps", "4"}, 0, "ddim, 4 steps, η = 0:"},
		{model, []string{"--sampler", "ddim", "--steps", "4", "--spacing", "trailing"}, 0, "ddim, 4 steps (trailing spacing)"},
		{model, []string{"--sampler", "respaced", "--steps", "4", "--spacing", "leading", "--steps-offset", "1"}, 0, "respaced, 4 steps (leading spacing, offset 1)"},
		{model, []string{"--sampler", "respaced", "--steps", "3", "--spacing", "linspace"}, 0, "respaced, 3 steps (linspace spacing)"},
		{model, []string{"--spacing", "leading"}, 2, "--spacing applies to --sampler ddim and respaced only"},
		{model, []string{"--sampler", "ddim", "--spacing", "trailing", "--steps-offset", "1"}, 2, "leading spacing only"},
		{model, []string{"--sampler", "ddim", "--steps-offset", "1"}, 2, "the model's, even"},
		{model, []string{"--sampler", "ddim", "--steps", "4", "--spacing", "leading", "--steps-offset", "20"}, 2, "past T−1"},
		{model, []string{"--sampler", "ddim", "--spacing", "sideways"}, 2, "unknown timestep spacing"},
	}
	if _, err := os.Stat(filepath.Join("..", "..", "..", "shared", "peers", "diffusers", "tiny")); err == nil {
		tiny := tinyDiffusers(t)
		cases = append(cases,
			spacingCase{tiny, []string{"--sampler", "ddim", "--steps", "2"}, 0, "ddim, 2 steps (leading spacing)"},
			spacingCase{tiny, []string{"--sampler", "respaced", "--steps", "2", "--spacing", "even"}, 0, "respaced, 2 steps (even spacing)"},
		)
	}
	for _, c := range cases {
		out := filepath.Join(dir, "s.png")
		args := append([]string{"sample", "--model", c.model, "--n", "2", "--quiet", "--out", out}, c.args...)
		var code int
		stderr := captureStderr(t, func() { code = run(args) })
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q (want %d, %q)", c.args, code, stderr, c.code, c.want)
		}
	}
}
