package main

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

func TestScheduleCommand(t *testing.T) {
	fig := filepath.Join(t.TempDir(), "s.png")
	var out bytes.Buffer
	if err := scheduleCommand([]string{"--T", "50", "--beta-start", "0.001", "--beta-end", "0.1", "--json", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	// The object mixes arrays and scalars: keep the arrays.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	r := map[string][]float64{}
	for k, v := range raw {
		var a []float64
		if json.Unmarshal(v, &a) == nil {
			r[k] = a
		}
	}
	c := diffusion.DefaultConfig()
	c.T, c.BetaStart, c.BetaEnd, c.Var = 50, 0.001, 0.1, diffusion.FixedSmall
	d, _ := diffusion.New(c)
	for _, k := range []string{"beta", "alpha_bar", "posterior_variance", "weight_fixedlarge", "weight_fixedsmall"} {
		if len(r[k]) != 50 {
			t.Fatalf("%s has %d values", k, len(r[k]))
		}
	}
	for i := range 50 {
		beta := 0.001 + float64(i)*(0.099/49)
		if math.Abs(r["beta"][i]-beta) > 1e-12 || r["alpha_bar"][i] != d.AlphasCumprod[i] ||
			math.Abs(r["weight_fixedsmall"][i]-d.EpsLossWeight(i)) > 1e-12*d.EpsLossWeight(i) {
			t.Fatalf("t = %d: β %g (want %g), ᾱ %g, w %g", i+1, r["beta"][i], beta, r["alpha_bar"][i], r["weight_fixedsmall"][i])
		}
	}
	if w, h := pngSize(t, fig); w < h {
		t.Errorf("figure %d×%d", w, h)
	}
	out.Reset()
	if err := scheduleCommand([]string{"--schedule", "cosine", "--T", "40", "--every", "10", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	// Rows t = 1, 10, 20, 30, 40 under a header.
	if s := out.String(); !strings.Contains(s, "cosine") || strings.Count(s, "\n") != 4+5+2 {
		t.Errorf("table:\n%s", s)
	}
	// The schedule of a model file.
	out.Reset()
	if err := scheduleCommand([]string{"--model", expModel(t, diffusion.FixedLarge), "--json", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"T":20`) {
		t.Errorf("schedule of the T = 20 model: %.100s", out.String())
	}
}
