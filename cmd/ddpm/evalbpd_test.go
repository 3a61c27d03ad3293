package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/ddpm-go/ddpm"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/checkpoint"
	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/pretrained"
)

// trainTinyRun trains the tiny1 U-Net (MNIST padded to 32×32) for two steps
// with T = 20 and returns its run directory.
func trainTinyRun(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	if code := run([]string{"train", "--data", "mnist", "--config", "tiny1", "--steps", "2", "--batch", "2",
		"--T", "20", "--quiet", "--out", dir}); code != 0 {
		t.Fatalf("ddpm train exited %d", code)
	}
	return dir
}

func TestEvalBPDEndToEnd(t *testing.T) {
	dir := trainTinyRun(t)
	plot := filepath.Join(t.TempDir(), "bpd.png")
	var out bytes.Buffer
	if err := evalBPD([]string{"--model", dir, "--n", "2", "--batch", "7", "--json", "--quiet", "--plot", plot}, &out); err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, out.String())
	}
	for _, k := range []string{"n", "total_bpd", "total_bpd_stderr", "prior_bpd", "decoder_bpd", "terms_bpd", "per_t_bpd", "dims", "data_dims", "decoder_bpd_at_data"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	var r bpdReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.N != 2 || r.T != 20 || len(r.PerTBPD) != 20 {
		t.Fatalf("n %d, T %d, %d per-t values; want 2, 20, 20", r.N, r.T, len(r.PerTBPD))
	}
	if r.Data != "mnist" || r.Split != "test" || r.Dims != 32*32 || r.DataDims != 28*28 {
		t.Errorf("data %s/%s, dims %d/%d", r.Data, r.Split, r.Dims, r.DataDims)
	}
	if sum := r.PriorBPD + r.TermsBPD + r.DecoderBPD; math.Abs(sum-r.TotalBPD) > 1e-9*r.TotalBPD {
		t.Errorf("prior + terms + decoder = %v, total %v", sum, r.TotalBPD)
	}
	sumT := r.PriorBPD
	for _, v := range r.PerTBPD {
		sumT += v
	}
	if math.Abs(sumT-r.TotalBPD) > 1e-9*r.TotalBPD {
		t.Errorf("prior + Σ per_t = %v, total %v", sumT, r.TotalBPD)
	}
	if r.PerTBPD[0] != r.DecoderBPD {
		t.Errorf("per_t_bpd[0] = %v, decoder %v", r.PerTBPD[0], r.DecoderBPD)
	}
	// An untrained network's x̂0 at t = 1 is far from exact.
	if !(r.DecoderAtData > 0 && r.DecoderAtData < r.DecoderBPD) {
		t.Errorf("decoder with μ = x0 %v, measured decoder %v", r.DecoderAtData, r.DecoderBPD)
	}
	// A two-step model is a poor one, so its bound can be anything large:
	// check only that it is positive and finite. (With T = 20 the prior is
	// not small: ᾱ_T ≈ 0.8.)
	if !(r.TotalBPD > 0) || math.IsInf(r.TotalBPD, 0) || !(r.TotalBPDStderr >= 0) {
		t.Errorf("total %v ± %v", r.TotalBPD, r.TotalBPDStderr)
	}
	if !(r.PriorBPD > 0 && r.PriorBPD < r.TotalBPD) {
		t.Errorf("prior %v bits/dim", r.PriorBPD)
	}
	decodePNG(t, plot) // the plot is a PNG

	// The same seed gives the same x_t draws whatever the batch, so the
	// text report (another batching) shows the same total.
	out.Reset()
	if err := evalBPD([]string{"--model", dir, "--n", "2", "--batch", "40", "--quiet"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "padded from 28×28 to 32×32") {
		t.Errorf("text report does not explain the padding:\n%s", out.String())
	}
	var total float64
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "total L"); ok {
			fmt.Sscan(rest, &total)
		}
	}
	if math.Abs(total-r.TotalBPD) > 1e-4*r.TotalBPD {
		t.Errorf("text report total %v, JSON %v:\n%s", total, r.TotalBPD, out.String())
	}

	for _, c := range []struct {
		name  string
		args  []string
		usage bool
	}{
		{"empty model", []string{"--model", "", "--n", "2"}, true},
		{"shipped model, n beyond split", []string{"--n", "10001"}, true},
		{"negative n", []string{"--model", dir, "--n", "-1"}, true},
		{"zero batch", []string{"--model", dir, "--batch", "0"}, true},
		{"bad split", []string{"--model", dir, "--split", "val"}, true},
		{"n beyond split", []string{"--model", dir, "--n", "10001"}, true},
		{"missing model", []string{"--model", filepath.Join(dir, "nope")}, false},
		{"bad data", []string{"--model", dir, "--data", "nosuch"}, false},
	} {
		err := evalBPD(append(c.args, "--quiet"), &out)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if errors.Is(err, errUsage) != c.usage || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q (usage error: %v)", c.name, err, errors.Is(err, errUsage))
		}
	}
}

// --var fitted: the bound with the variance fitted on training images, the
// same draws as fixedsmall, and the ways to ask for it wrongly.
func TestEvalBPDFittedVariance(t *testing.T) {
	dir := trainTinyRun(t)
	eval := func(args ...string) bpdReport {
		t.Helper()
		var out bytes.Buffer
		if err := evalBPD(append([]string{"--model", dir, "--n", "2", "--json", "--quiet"}, args...), &out); err != nil {
			t.Fatal(err)
		}
		var r bpdReport
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	small, fitted := eval("--var", "fixedsmall"), eval("--var", "fitted", "--fit-n", "3")
	if small.Var != "fixedsmall" || fitted.Var != "fitted" || fitted.FitN != 3 || small.FitN != 0 {
		t.Errorf("reports say var %q (fit %d) and %q (fit %d)", small.Var, small.FitN, fitted.Var, fitted.FitN)
	}
	if sum := fitted.PriorBPD + fitted.TermsBPD + fitted.DecoderBPD; !(fitted.TotalBPD > 0) || math.Abs(sum-fitted.TotalBPD) > 1e-9*fitted.TotalBPD {
		t.Errorf("fitted: prior + terms + decoder = %v, total %v", sum, fitted.TotalBPD)
	}
	// The prior term does not depend on the reverse variance.
	if fitted.PriorBPD != small.PriorBPD || fitted.TotalBPD == small.TotalBPD {
		t.Errorf("prior %v vs %v, total %v vs %v", fitted.PriorBPD, small.PriorBPD, fitted.TotalBPD, small.TotalBPD)
	}
	// Sampling takes it too.
	png := filepath.Join(t.TempDir(), "s.png")
	if code := run([]string{"sample", "--model", dir, "--var", "fitted", "--fit-n", "2", "--n", "2", "--quiet", "--out", png}); code != 0 {
		t.Fatalf("sample --var fitted exited %d", code)
	}
	decodePNG(t, png)

	learned := filepath.Join(t.TempDir(), "learned")
	if code := run([]string{"train", "--data", "mnist", "--config", "tiny1", "--steps", "1", "--batch", "2",
		"--T", "20", "--var", "learned", "--loss", "hybrid", "--quiet", "--out", learned}); code != 0 {
		t.Fatalf("ddpm train --var learned exited %d", code)
	}
	for _, c := range []struct{ name, want string }{
		{"--fit-n 0", "must be in 1..60000"},
		{"--fit-n 60001", "must be in 1..60000"},
		{"--model " + learned, "learns its own"},
	} {
		args := append([]string{"--model", dir, "--n", "1", "--var", "fitted", "--quiet"}, strings.Fields(c.name)...)
		err := evalBPD(args, &bytes.Buffer{})
		if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want a one-line usage error containing %q", c.name, err, c.want)
		}
	}
	code, _ := runCaptured(t, "train", "--data", "mnist", "--config", "tiny1", "--steps", "1", "--var", "fitted", "--out", filepath.Join(t.TempDir(), "x"))
	if code != 2 {
		t.Errorf("train --var fitted exited %d, want 2 (usage)", code)
	}
}

// ddpm fit-variance saves a fit that --fit reads back: the same bound as
// measuring it in place (to float32 rounding), refused for other weights
// or clipping, and the ways to ask for it wrongly.
func TestFitVarianceFile(t *testing.T) {
	dir := trainTinyRun(t)
	file := filepath.Join(t.TempDir(), "fit.safetensors")
	if code, out := runCaptured(t, "fit-variance", "--model", dir, "--fit-n", "3", "--out", file, "--quiet"); code != 0 {
		t.Fatalf("fit-variance exited %d: %s", code, out)
	}
	eval := func(args ...string) (bpdReport, error) {
		var out bytes.Buffer
		err := evalBPD(append([]string{"--model", dir, "--n", "2", "--json", "--quiet", "--var", "fitted"}, args...), &out)
		var r bpdReport
		if err == nil {
			err = json.Unmarshal(out.Bytes(), &r)
		}
		return r, err
	}
	measured, err := eval("--fit-n", "3")
	if err != nil {
		t.Fatal(err)
	}
	read, err := eval("--fit", file)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(read.TotalBPD-measured.TotalBPD) > 1e-6*measured.TotalBPD || read.FitN != 3 {
		t.Errorf("from the file %v bits/dim (fit of %d images), measured %v", read.TotalBPD, read.FitN, measured.TotalBPD)
	}
	for _, c := range []struct {
		args  []string
		usage bool
		want  string
	}{
		{[]string{"--fit", file, "--fit-n", "3"}, true, "pass one of them"},
		{[]string{"--fit", file, "--raw"}, false, "another network"},
		{[]string{"--fit", file, "--clip=false"}, false, "clipping"},
		{[]string{"--fit", filepath.Join(dir, "nope")}, false, "nope"},
		{[]string{"--fit", checkpoint.Path(dir)}, false, "not a variance fit"},
	} {
		_, err := eval(c.args...)
		if err == nil || errors.Is(err, errUsage) != c.usage || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want a one-line error (usage %v) containing %q", c.args, err, c.usage, c.want)
		}
	}
	if err := evalBPD([]string{"--model", dir, "--n", "1", "--quiet", "--fit", file}, &bytes.Buffer{}); err == nil || !errors.Is(err, errUsage) {
		t.Errorf("--fit without --var fitted: %v, want a usage error", err)
	}
	if code, _ := runCaptured(t, "fit-variance", "--model", dir); code != 2 {
		t.Errorf("fit-variance without --out exited %d, want 2", code)
	}
}

// --var fitted on a shipped model takes the fit shipped beside it instead of
// measuring one (which would take minutes and differ in the last digits).
func TestShippedFitIsUsed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	mf := addModelFlags(fs, ddpm.DefaultModel)
	if err := mf.parse([]string{"--var", "fitted"}); err != nil {
		t.Fatal(err)
	}
	p, err := mf.load(true)
	if err != nil {
		t.Fatal(err)
	}
	d := p.Process
	want, _, ok, err := pretrained.Fit(pretrained.Default)
	if err != nil || !ok {
		t.Fatalf("no shipped fit: %v", err)
	}
	if d.Var != diffusion.Fitted || d.Fit == nil || !slices.Equal(d.Fit.PooledMSE, want.PooledMSE) ||
		!slices.Equal(d.Fit.DecoderLogScale, want.DecoderLogScale) {
		t.Errorf("the process does not hold the shipped fit (var %v)", d.Var)
	}
}
