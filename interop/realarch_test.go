package interop

// The real google/ddpm-* architectures against diffusers' own UNet2DModel,
// on random weights too large to commit: testdata/realarch/gen.py writes
// them (see docs/interop.md), and DDPM_REALARCH names its output folder.

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// realArchs are gen.py's architectures: the project's config each hub
// config maps to, and the scheduler's variance.
var realArchs = []struct {
	name string
	cfg  unet.Config
	v    diffusion.ModelVar
}{
	{"cifar10-32", unet.Config{InCh: 3, OutCh: 3, Res: 32, Ch: 128, ChMult: []int{1, 2, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, AsymmetricDownsample: true}, diffusion.FixedLarge},
	{"celebahq-256", unet.Config{InCh: 3, OutCh: 3, Res: 256, Ch: 128, ChMult: []int{1, 1, 2, 2, 4, 4}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, AsymmetricDownsample: true}, diffusion.FixedSmall},
}

// TestRealArch loads each folder gen.py wrote under $DDPM_REALARCH as the
// google hub repositories are laid out (root-level config.json, .bin
// pickle weights with the old attention names, scheduler_config.json),
// checks the mapped config and process, and compares the network's ε on
// both cases of timesteps with diffusers' within 1e-4 relative (logging
// the error against diffusers' float64 forward too, where gen.py saved it).
// The 256² network takes tens of seconds and a few GB.
func TestRealArch(t *testing.T) {
	root := os.Getenv("DDPM_REALARCH")
	if root == "" {
		t.Skip("DDPM_REALARCH unset: generate the folders with interop/testdata/realarch/gen.py (docs/interop.md) and point DDPM_REALARCH at them")
	}
	found := 0
	for _, a := range realArchs {
		t.Run(a.name, func(t *testing.T) {
			dir := filepath.Join(root, a.name)
			if _, err := os.Stat(filepath.Join(dir, "expected.safetensors")); err != nil {
				t.Skipf("%s not generated: %v", a.name, err)
			}
			found++
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.Layout != ModelFolder || m.Naming != DiffusersOld || filepath.Base(m.Weights) != PickleWeights {
				t.Errorf("layout %v, naming %v, weights %s", m.Layout, m.Naming, m.Weights)
			}
			if got := m.Net.Config(); !sameConfig(got, a.cfg) {
				t.Errorf("config %+v, want %+v", got, a.cfg)
			}
			want := diffusion.DefaultConfig()
			want.Var = a.v
			if m.Process != want {
				t.Errorf("process %+v, want %+v", m.Process, want)
			}
			expected := filepath.Join(dir, "expected.safetensors")
			errs := forwardCases(t, m.Net, expected)
			ts, _, err := weights.Load(expected)
			if err != nil {
				t.Fatal(err)
			}
			var f64 []float64
			if e64, ok := ts["eps_f64"]; ok {
				// The same comparison against diffusers' float64 forward.
				ts["eps"] = e64
				tmp := filepath.Join(t.TempDir(), "expected_f64.safetensors")
				if err := weights.Save(tmp, ts, nil); err != nil {
					t.Fatal(err)
				}
				f64 = forwardCases(t, m.Net, tmp)
			}
			for c, e := range errs {
				if f64 != nil {
					t.Logf("%s case %d: eps relative error %.3g (against diffusers' float64 forward: %.3g)", a.name, c, e, f64[c])
				} else {
					t.Logf("%s case %d: eps relative error %.3g", a.name, c, e)
				}
				if !(e < 1e-4) {
					t.Errorf("%s case %d: eps relative error %.3g > 1e-4", a.name, c, e)
				}
			}
		})
	}
	if found == 0 {
		t.Skipf("no architecture generated under DDPM_REALARCH=%s", root)
	}
}
