package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fig.png") // the directory must exist (imgio creates none)
	x := []float64{1, 2, 3, 4}
	panels := []Panel{
		{Title: "a", XLabel: "x", YLabel: "y", Series: []Series{{Name: "one", X: x, Y: []float64{1, 4, 9, 16}}, {Name: "two", X: x, Y: x, Dots: true}}},
		{Title: "b", LogY: true, Series: []Series{{X: x, Y: []float64{0, 1e-3, 1e-1, 10}}}},
		{Title: "c", Series: []Series{{X: x, Y: []float64{3, 2, 1, 0}}}},
	}
	if err := Save(path, 2, panels...); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	// Two columns, two rows of panels at 110 dpi.
	wantW, wantH := int(2*PanelWidth.Dots(dpi)+0.5), int(2*PanelHeight.Dots(dpi)+0.5)
	if abs(cfg.Width-wantW) > 1 || abs(cfg.Height-wantH) > 1 {
		t.Errorf("image %d×%d, want %d×%d", cfg.Width, cfg.Height, wantW, wantH)
	}

	for name, bad := range map[string][]Panel{
		"none":        nil,
		"ragged":      {{Series: []Series{{X: x, Y: x[:2]}}}},
		"empty":       {{Series: []Series{{X: nil, Y: nil}}}},
		"all ≤ 0 log": {{LogY: true, Series: []Series{{X: x, Y: []float64{0, -1, 0, 0}}}}},
	} {
		if err := Save(filepath.Join(dir, name+".png"), 0, bad...); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
