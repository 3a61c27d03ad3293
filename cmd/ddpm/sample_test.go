package main

import (
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
