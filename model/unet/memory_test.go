package unet

import "testing"

// TestNumParams: the parameter count computed from a config is the built
// network's, for every named config and its learned-variance variant.
func TestNumParams(t *testing.T) {
	for _, name := range ConfigNames() {
		for _, outCh := range []int{0, 2} {
			cfg, err := ConfigByName(name)
			if err != nil {
				t.Fatal(err)
			}
			cfg.OutCh = outCh * cfg.InCh
			u, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := NumParams(cfg), u.NumParams(); got != want {
				t.Errorf("%s (out_ch %d): NumParams %d, the network has %d", name, cfg.OutCh, got, want)
			}
		}
	}
}

// TestEstimateMemory: training needs more than sampling, and both grow
// linearly with the batch.
func TestEstimateMemory(t *testing.T) {
	for _, name := range ConfigNames() {
		cfg, _ := ConfigByName(name)
		fwd, step := EstimateMemory(cfg, false), EstimateMemory(cfg, true)
		if !(fwd.PerImage > 0 && fwd.Fixed > 0 && step.PerImage >= fwd.PerImage && step.Fixed > fwd.Fixed) {
			t.Errorf("%s: forward %+v, training %+v", name, fwd, step)
		}
		if d := step.Bytes(10) - step.Bytes(9); d != step.PerImage {
			t.Errorf("%s: one more image adds %g, want %g", name, d, step.PerImage)
		}
	}
}
