package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
)

func TestProgressiveCommand(t *testing.T) {
	model := expModel(t, diffusion.Learned)
	dir := t.TempDir()
	fig := filepath.Join(dir, "p.png")
	var out bytes.Buffer
	if err := progressiveCommand([]string{"--model", model, "--n", "2", "--cols", "5", "--xt", "--json", "--quiet", "--out", fig}, &out); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Columns []progressiveColumn `json:"columns"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := []int{4, 8, 12, 16, 20}
	if len(r.Columns) != len(want) {
		t.Fatalf("%d columns", len(r.Columns))
	}
	for c, col := range r.Columns {
		if col.ReverseStep != want[c] || col.T != 21-want[c] {
			t.Errorf("column %d: %+v", c, col)
		}
	}
	// x̂0 at the last step is the sample itself.
	if r.Columns[4].RMSE > 1e-3 {
		t.Errorf("last column differs from the sample by %g", r.Columns[4].RMSE)
	}
	// 5 columns × 4 rows (x_t and x̂0 for two chains) of 32-pixel images
	// enlarged twice, with 2-pixel gaps.
	if w, h := pngSize(t, fig); w != 2*(5*32+4*2) || h != 2*(4*32+3*2) {
		t.Errorf("grid %d×%d", w, h)
	}

	for _, args := range [][]string{
		{"--shared", "--per", "3", "--t", "20,10,5"},
		{"--shared", "--per", "2", "--image", "4", "--data", "mnist"},
	} {
		out.Reset()
		if err := progressiveCommand(append([]string{"--model", model, "--json", "--quiet", "--out", fig}, args...), &out); err != nil {
			t.Fatal(err)
		}
		var s struct {
			Rows   []sharedRow `json:"rows"`
			Source string      `json:"source"`
		}
		if err := json.Unmarshal(out.Bytes(), &s); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if args[2] == "3" {
			if len(s.Rows) != 3 || s.Rows[0].T != 20 || s.Rows[2].T != 5 {
				t.Errorf("rows %+v", s.Rows)
			}
			if w, h := pngSize(t, fig); w != 2*(4*32+3*2) || h != 2*(3*32+2*2) {
				t.Errorf("shared grid %d×%d", w, h)
			}
		} else if len(s.Rows) != 4 || s.Rows[0].T != 20 || s.Rows[3].T != 5 || s.Source == "" {
			t.Errorf("default rows %+v from %q", s.Rows, s.Source)
		}
		for _, row := range s.Rows {
			if !(row.PixelStd >= 0) || !(row.RMSE >= 0) {
				t.Errorf("row %+v", row)
			}
		}
	}
}
