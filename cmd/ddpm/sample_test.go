package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/imgio"
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

// TestSampleResume: a draw into --out-dir stopped by SIGINT keeps its
// finished batches, refuses to be overwritten or resumed with other flags,
// and --resume completes it to the files (and grid) of an uninterrupted
// draw; bad --resume uses are one line each.
func TestSampleResume(t *testing.T) {
	model := expModel(t, diffusion.FixedLarge)
	tmp := t.TempDir()
	whole, part := filepath.Join(tmp, "whole"), filepath.Join(tmp, "part")
	const n = 60
	args := func(dir string, extra ...string) []string {
		return append([]string{"sample", "--model", model, "--n", strconv.Itoa(n), "--batch", "1", "--seed", "3", "--quiet", "--out-dir", dir}, extra...)
	}
	mustSucceed(t, runBin(t, nil, args(whole, "--out", filepath.Join(tmp, "whole.png"))...), "uninterrupted draw")

	cmd := exec.Command(ddpmBin(t), args(part)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Millisecond) {
		if st, found, _ := readDrawState(part); found && st.Done >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(stderr.String(), "continue with --resume") {
		t.Fatalf("interrupted draw: %v\n%s", err, stderr.String())
	}
	st, found, err := readDrawState(part)
	if err != nil || !found || st.Done < 2 || st.Done >= n {
		t.Fatalf("state after the interrupt: %+v, found %v, %v (want 2 ≤ done < %d)", st, found, err, n)
	}

	checkCleanFailure(t, runBin(t, nil, args(part)...), 1, "holds an unfinished draw ("+strconv.Itoa(st.Done)+" images written): continue it with --resume")
	checkCleanFailure(t, runBin(t, nil, "sample", "--out-dir", part, "--resume", "--seed", "4"), 2, "--seed 4 differs from the draw's --seed 3")
	checkCleanFailure(t, runBin(t, nil, "sample", "--out-dir", part, "--resume", "--raw"), 2, "--raw true was not given to the draw")
	checkCleanFailure(t, runBin(t, nil, "sample", "--resume"), 2, "--resume continues a draw into --out-dir")
	other := st
	other.Weights = "00000000"
	if err := other.write(part); err != nil {
		t.Fatal(err)
	}
	checkCleanFailure(t, runBin(t, nil, "sample", "--out-dir", part, "--resume"), 1, "the draw's network had other weights (CRC-32 00000000, now "+st.Weights+")")
	if err := st.write(part); err != nil {
		t.Fatal(err)
	}
	r := runBin(t, nil, "sample", "--out-dir", part, "--resume", "--quiet", "--out", filepath.Join(tmp, "part.png"))
	mustSucceed(t, r, "resume")
	if want := "resumed at image " + strconv.Itoa(st.Done+1); !strings.Contains(r.stderr, want) {
		t.Errorf("resume says %q, want %q", r.stderr, want)
	}
	for i := range n {
		name := imgio.EachName("sample-", i, n)
		if !bytes.Equal(readFile(t, filepath.Join(whole, name)), readFile(t, filepath.Join(part, name))) {
			t.Fatalf("%s differs between the resumed and the uninterrupted draw", name)
		}
	}
	if !bytes.Equal(readFile(t, filepath.Join(tmp, "whole.png")), readFile(t, filepath.Join(tmp, "part.png"))) {
		t.Error("the resumed draw's grid differs from the uninterrupted one's")
	}
	if _, err := os.Stat(filepath.Join(part, drawStateName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a finished draw keeps its state file: %v", err)
	}
	checkCleanFailure(t, runBin(t, nil, "sample", "--out-dir", part, "--resume"), 1, "holds no unfinished draw to resume")
	if err := os.WriteFile(filepath.Join(part, drawStateName), []byte(`{"flags":`), 0o644); err != nil {
		t.Fatal(err)
	}
	checkCleanFailure(t, runBin(t, nil, "sample", "--out-dir", part, "--resume"), 1, "not the state of a draw")
}
