package main

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
)

// expModel writes a freshly initialised small (MNIST-sized) U-Net with a
// T = 20 process of variance v to a weights file and returns its path.
// Weights files record no data set, so commands need --data mnist.
func expModel(t *testing.T, v diffusion.ModelVar) string {
	t.Helper()
	cfg, _ := unet.ConfigByName("small")
	dc := diffusion.DefaultConfig()
	dc.T, dc.Var = 20, v
	d, err := diffusion.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OutCh = d.OutChannels(cfg.InCh)
	m := testUNet(t, cfg, 1)
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := checkpoint.SaveWeights(path, m, dc, false, nil); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRDCommand: one row per reverse step, a rate that never falls, and a
// final rate + decoder that is the bound `ddpm eval bpd` reports for the
// same images and seed.
func TestRDCommand(t *testing.T) {
	model := expModel(t, diffusion.FixedLarge)
	fig := filepath.Join(t.TempDir(), "rd.png")
	var out bytes.Buffer
	if err := rdCommand([]string{"--model", model, "--data", "mnist", "--n", "2", "--batch", "7", "--seed", "3",
		"--json", "--quiet", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	var rep rdReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	var raw map[string]json.RawMessage
	_ = json.Unmarshal(out.Bytes(), &raw)
	for _, k := range []string{"rows", "decoder_bpd", "total_bpd"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if len(rep.Rows) != 20 || rep.T != 20 || rep.N != 2 {
		t.Fatalf("%d rows, T %d, n %d", len(rep.Rows), rep.T, rep.N)
	}
	for k, r := range rep.Rows {
		if r.ReverseStep != k+1 || !(r.RMSE >= 0) || (k > 0 && r.RateBPD < rep.Rows[k-1].RateBPD) {
			t.Fatalf("row %d: %+v (previous %+v)", k, r, rep.Rows[max(k-1, 0)])
		}
	}
	last := rep.Rows[19].RateBPD + rep.DecoderBPD
	if math.Abs(last-rep.TotalBPD) > 1e-9*rep.TotalBPD {
		t.Errorf("final rate + decoder %g, total %g", last, rep.TotalBPD)
	}
	evalOut := captureStdout(t, func() {
		if code := run([]string{"eval", "bpd", "--model", model, "--data", "mnist", "--n", "2", "--seed", "3", "--json", "--quiet"}); code != 0 {
			t.Errorf("eval bpd exited %d", code)
		}
	})
	var ev struct {
		Total float64 `json:"total_bpd"`
	}
	if err := json.Unmarshal([]byte(evalOut), &ev); err != nil {
		t.Fatalf("eval bpd output: %v\n%s", err, evalOut)
	}
	if math.Abs(ev.Total-rep.TotalBPD) > 1e-9*ev.Total {
		t.Errorf("rd total %.12g, eval bpd %.12g", rep.TotalBPD, ev.Total)
	}
	if w, h := pngSize(t, fig); w < 3*h {
		t.Errorf("figure %d×%d is not three panels wide", w, h)
	}

	// A learned variance, as a table.
	out.Reset()
	if err := rdCommand([]string{"--model", expModel(t, diffusion.Learned), "--data", "mnist", "--n", "1", "--quiet", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "reverse step") || strings.Count(s, "\n") < 13 {
		t.Errorf("table:\n%s", s)
	}
}

func TestExperimentUsageErrors(t *testing.T) {
	model := expModel(t, diffusion.FixedLarge)
	dir := t.TempDir()
	png := filepath.Join(dir, "x.png")
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"rd", "--model", ""}, 2},
		{[]string{"rd", "--n", "0"}, 2}, // the shipped default model
		{[]string{"rd", "--model", model, "--data", "mnist", "--n", "0"}, 2},
		{[]string{"rd", "--model", model, "--data", "mnist", "--n", "100000", "--out", png}, 2},
		{[]string{"rd", "--model", model, "--data", "mnist", "--split", "val", "--out", png}, 2},
		{[]string{"rd", "--model", model, "--out", png}, 2}, // weights file: --data needed
		{[]string{"rd", "--model", filepath.Join(dir, "missing"), "--data", "mnist"}, 1},
		{[]string{"rd", "--model", model, "--data", "mnist", "--var", "learned", "--out", png}, 2},
		{[]string{"progressive", "--model", ""}, 2},
		{[]string{"progressive", "--model", "fashion-mnist", "--cols", "0"}, 2},
		{[]string{"progressive", "--model", model, "--cols", "0"}, 2},
		{[]string{"progressive", "--model", model, "--cols", "21"}, 2},
		{[]string{"progressive", "--model", model, "--shared", "--n", "3"}, 2},
		{[]string{"progressive", "--model", model, "--per", "3"}, 2},
		{[]string{"progressive", "--model", model, "--shared", "--t", "0"}, 2},
		{[]string{"progressive", "--model", model, "--shared", "--t", "5,x"}, 2},
		{[]string{"progressive", "--model", model, "--shared", "--image", "-1", "--data", "mnist"}, 2},
		{[]string{"interpolate", "--model", model, "--data", "mnist", "--t", "21"}, 2},
		{[]string{"interpolate", "--model", model, "--data", "mnist", "--lambdas", "0"}, 2},
		{[]string{"interpolate", "--model", model, "--png-a", png}, 2},
		{[]string{"interpolate", "--model", model, "--png-a", png, "--png-b", png, "--a", "3"}, 2},
		{[]string{"interpolate", "--model", model, "--png-a", filepath.Join(dir, "no.png"), "--png-b", png, "--out", png}, 1},
		{[]string{"interpolate", "--model", model, "--data", "mnist", "--a", "99999", "--out", png}, 2},
		{[]string{"schedule", "--T", "1"}, 2},
		{[]string{"schedule", "--beta-end", "1.5"}, 2},
		{[]string{"schedule", "--every", "-3"}, 2},
		{[]string{"schedule", "--model", model, "--T", "10"}, 2},
		{[]string{"autoregressive", "--var", "learned"}, 2},
		{[]string{"autoregressive", "--levels", "1,1", "--weights", "1,1"}, 2},
		{[]string{"autoregressive", "--levels", "300", "--weights", "1"}, 2},
		{[]string{"autoregressive", "--levels", "1,2", "--weights", "1"}, 2},
		{[]string{"autoregressive", "--predictor", "oracle"}, 2},
		{[]string{"autoregressive", "--grid", "100"}, 2},
		{[]string{"autoregressive", "--mean", "xstart"}, 2},
		{[]string{"sample", "--model", model, "--eta", "1"}, 2},
		{[]string{"sample", "--model", model, "--steps", "5"}, 2},
		{[]string{"sample", "--model", model, "--sampler", "ddim", "--steps", "21"}, 2},
		{[]string{"sample", "--model", model, "--sampler", "ddim", "--eta", "-1"}, 2},
		{[]string{"sample", "--model", model, "--sampler", "respaced", "--steps", "1"}, 2},
		{[]string{"sample", "--model", model, "--sampler", "langevin", "--langevin-step", "4"}, 2},
		{[]string{"sample", "--model", model, "--sampler", "langevin", "--langevin-steps", "0"}, 2},
		{[]string{"sample", "--model", model, "--sampler", "ddim", "--langevin-steps", "3"}, 2},
		{[]string{"sample", "--model", model, "--sampler", "euler"}, 2},
		{[]string{"sample", "--raw"}, 2}, // the shipped model has EMA weights only
		{[]string{"sample", "--model", "no-such-model"}, 1},
	} {
		var code int
		stderr := captureStderr(t, func() { code = run(tc.args) })
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, tc.code, strings.TrimSpace(stderr))
			continue
		}
		if lines := strings.Count(strings.TrimSpace(stderr), "\n"); lines != 0 || !strings.HasPrefix(stderr, "ddpm "+tc.args[0]+": ") {
			t.Errorf("%v: error is not one line: %q", tc.args, stderr)
		}
	}
}
