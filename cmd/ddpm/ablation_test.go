package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAblationCLI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "abl")
	args := []string{"ablation", "--data", "mnist", "--config", "tiny1", "--steps", "2", "--batch", "2", "--T", "5",
		"--eval-n", "2", "--eval-batch", "4", "--quality-n", "0", "--quiet", "--out", out}
	if code := run(args); code != 0 {
		t.Fatalf("ddpm ablation exited %d", code)
	}
	table, err := os.ReadFile(filepath.Join(out, "table.md"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(table), "\n| "); n != 7 {
		t.Errorf("table.md has %d rows (want a header and 6):\n%s", n, table)
	}
	var res struct {
		Rows []struct {
			Row    string `json:"row"`
			Status string `json:"status"`
			BPD    *struct {
				Total float64 `json:"total_bpd"`
			} `json:"bpd"`
		} `json:"rows"`
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Rows) != 6 {
		t.Fatalf("results.json: %v, %d rows", err, len(res.Rows))
	}
	for _, r := range res.Rows {
		if r.Status != "ok" || r.BPD == nil || !(r.BPD.Total > 0) {
			t.Errorf("row %s: status %s, bound %v", r.Row, r.Status, r.BPD)
		}
	}

	for name, a := range map[string][]string{
		"no out":              {"ablation", "--steps", "2"},
		"zero steps":          {"ablation", "--steps", "0", "--out", out},
		"quality-n 1":         {"ablation", "--quality-n", "1", "--out", out},
		"unknown config":      {"ablation", "--config", "nope", "--out", out},
		"quality without net": {"ablation", "--data", "folder:" + t.TempDir(), "--quality-n", "20", "--out", out},
	} {
		if code := run(a); code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
	}
}
