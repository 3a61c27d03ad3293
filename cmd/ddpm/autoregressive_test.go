package main

import (
	"bytes"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestAutoregressiveCommand(t *testing.T) {
	fig := filepath.Join(t.TempDir(), "ar.png")
	for _, pred := range []string{"exact", "mismatched"} {
		var out bytes.Buffer
		if err := autoregressiveCommand([]string{"--T", "100", "--beta-end", "0.2", "--grid", "241", "--nodes", "16",
			"--predictor", pred, "--levels", "10,128,250", "--weights", "1,2,1", "--json", "--quiet", "--out", fig}, &out); err != nil {
			t.Fatal(err)
		}
		var r struct {
			Eq5Total, Eq16Total, Entropy, Difference float64
			Eq5Terms                                 []float64
			Weights                                  []float64 `json:"weights"`
		}
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if math.Abs(r.Eq5Total-r.Eq16Total) > 1e-6 || r.Difference != r.Eq5Total-r.Eq16Total {
			t.Errorf("%s: eq. 5 %.9f, eq. 16 %.9f, difference %g", pred, r.Eq5Total, r.Eq16Total, r.Difference)
		}
		if want := -(0.25*math.Log(0.25)*2 + 0.5*math.Log(0.5)); math.Abs(r.Entropy-want) > 1e-12 {
			t.Errorf("H(x0) = %g, want %g", r.Entropy, want)
		}
		if len(r.Eq5Terms) != 100 || len(r.Weights) != 3 || r.Weights[1] != 0.5 {
			t.Errorf("%d terms, weights %v", len(r.Eq5Terms), r.Weights)
		}
	}
	var out bytes.Buffer
	if err := autoregressiveCommand([]string{"--T", "50", "--beta-end", "0.3", "--grid", "61", "--nodes", "8", "--quiet", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"eq. 5", "eq. 16", "H(x0)", "total L"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if w, h := pngSize(t, fig); w < h {
		t.Errorf("figure %d×%d", w, h)
	}
}
