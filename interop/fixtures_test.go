package interop

// Checks against the diffusers peer fixtures (shared/peers/diffusers, see
// its README.md and FACTS.md): UNet2DModels and DDPMScheduler traces made
// with diffusers' own code, with random weights so that any wrong mapping
// shows.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// fixtures is the folder of the diffusers fixtures; tests that need them
// skip when it is absent.
func fixtures(t *testing.T, sub ...string) string {
	t.Helper()
	dir := filepath.Join(append([]string{"..", "..", "shared", "peers", "diffusers"}, sub...)...)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("diffusers fixtures absent: %v", err)
	}
	return dir
}

// relErr is ‖a−b‖₂/‖b‖₂, accumulated in float64.
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// tinyConfig is the fixtures' network (fixture.json's project_config plus
// the asymmetric downsampling of downsample_padding 0).
var tinyConfig = unet.Config{InCh: 3, OutCh: 3, Res: 16, Ch: 16, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
	AttnRes: []int{8}, Groups: 8, AsymmetricDownsample: true}

// forwardCases runs net on expected.safetensors' x at each of its cases of
// timesteps and returns each case's relative error against diffusers' eps.
func forwardCases(t *testing.T, net *unet.UNet, expected string) []float64 {
	t.Helper()
	ts, _, err := weights.Load(expected)
	if err != nil {
		t.Fatal(err)
	}
	x, tt, eps := ts["x"], ts["t"], ts["eps"]
	k, b := tt.Shape[0], tt.Shape[1]
	per := len(x.F32) / b
	var errs []float64
	out := make([]float32, len(x.F32))
	for c := range k {
		steps := make([]int, b)
		for i := range steps {
			steps[i] = int(tt.I64[c*b+i])
		}
		net.Forward(out, x.F32, steps, b, false, nil)
		errs = append(errs, relErr(out, eps.F32[c*b*per:(c+1)*b*per]))
	}
	return errs
}

// TestTinyPipeline loads the tiny DDPMPipeline folder (new attention
// names, safetensors) and checks the network's ε on both cases of
// timesteps against diffusers' within 1e-4 relative, each block's output
// along the way, and the mapped configs.
func TestTinyPipeline(t *testing.T) {
	dir := fixtures(t, "tiny")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Layout != PipelineFolder || m.Naming != Diffusers || filepath.Base(m.Weights) != SafetensorsWeights {
		t.Errorf("layout %v, naming %v, weights %s", m.Layout, m.Naming, m.Weights)
	}
	if got := m.Net.Config(); !sameConfig(got, tinyConfig) {
		t.Errorf("config %+v, want %+v", got, tinyConfig)
	}
	want := diffusion.DefaultConfig() // linear 1e-4…0.02, T 1000, eps, fixed_large, clip
	if m.Process != want {
		t.Errorf("process %+v, want %+v", m.Process, want)
	}
	for c, e := range forwardCases(t, m.Net, filepath.Join(dir, "expected.safetensors")) {
		t.Logf("case %d: eps relative error %.3g", c, e)
		if !(e < 1e-4) {
			t.Errorf("case %d: eps relative error %.3g > 1e-4", c, e)
		}
	}
	// Case 0's stages (its first two images): where a difference starts.
	acts, _, err := weights.Load(filepath.Join(dir, "activations.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	ts, _, _ := weights.Load(filepath.Join(dir, "expected.safetensors"))
	x := ts["x"].F32
	m.Net.Forward(make([]float32, len(x)), x, []int{int(ts["t"].I64[0]), int(ts["t"].I64[1])}, 2, false, nil)
	ours := m.Net.Activations()
	for _, s := range stages(m.Net.Config()) {
		got, want := ours[s.project], acts[s.diffusers].F32
		if len(got) != len(want) {
			t.Errorf("%s (%s): %d values, diffusers %d", s.diffusers, s.project, len(got), len(want))
			continue
		}
		e := relErr(got, want)
		t.Logf("%-14s (%-8s) relative error %.3g", s.diffusers, s.project, e)
		if !(e < 1e-4) {
			t.Errorf("%s (%s): relative error %.3g", s.diffusers, s.project, e)
		}
	}
}

// stage pairs a diffusers module's output with the project's activation
// that equals it.
type stage struct{ diffusers, project string }

// stages lists activations.safetensors' entries for cfg: conv_in, each
// down block (the output of its level's last entry: the Downsample, or the
// last residual block at the bottom), the mid block, each up block (its
// Upsample, or last block at the top) and conv_act.
func stages(cfg unet.Config) []stage {
	s := []stage{{"conv_in", "conv_in"}}
	n, k := len(cfg.ChMult), 0
	for i := range n {
		k += cfg.Blocks(i)
		if i != n-1 {
			k++
		}
		s = append(s, stage{fmt.Sprintf("down_blocks.%d", i), fmt.Sprintf("down.%d", k-1)})
	}
	s = append(s, stage{"mid_block", "mid"})
	k = 0
	for u := range n {
		i := n - 1 - u
		k += cfg.Blocks(i) + 1
		if i != 0 {
			k++
		}
		s = append(s, stage{fmt.Sprintf("up_blocks.%d", u), fmt.Sprintf("up.%d", k-1)})
	}
	return append(s, stage{"conv_act", "norm_out"})
}

// sameConfig compares configs through their JSON.
func sameConfig(a, b unet.Config) bool {
	return fmt.Sprintf("%+v", jsonOf(a.Normalized())) == fmt.Sprintf("%+v", jsonOf(b.Normalized()))
}

// TestTinyWeightsFile loads the tiny pipeline's weights file by name: its
// config.json beside it and the scheduler in ../scheduler.
func TestTinyWeightsFile(t *testing.T) {
	dir := fixtures(t, "tiny")
	w := filepath.Join(dir, "unet", SafetensorsWeights)
	if !IsDiffusers(w) || !IsDiffusers(dir) || IsDiffusers(filepath.Join(dir, "expected.safetensors")) {
		t.Error("IsDiffusers misjudges the fixture's files")
	}
	m, err := Load(w)
	if err != nil {
		t.Fatal(err)
	}
	if m.Layout != WeightsFile || m.Process.Var != diffusion.FixedLarge || !strings.HasSuffix(m.Scheduler, filepath.Join("scheduler", SchedulerConfigFile)) {
		t.Errorf("layout %v, process %+v, scheduler %s", m.Layout, m.Process, m.Scheduler)
	}
	for c, e := range forwardCases(t, m.Net, filepath.Join(dir, "expected.safetensors")) {
		if !(e < 1e-4) {
			t.Errorf("case %d: eps relative error %.3g", c, e)
		}
	}
}

// TestTinyOldNames: the same weights under old diffusers' attention names
// (query/key/value/proj_attn, as the google hub files hold them), written
// by renaming the fixture's tensors here, load to the same network; and a
// bare UNet2DModel folder (config.json and weights, no scheduler) takes
// DDPMScheduler's defaults.
func TestTinyOldNames(t *testing.T) {
	dir := fixtures(t, "tiny")
	sd, _, err := weights.Load(filepath.Join(dir, "unet", SafetensorsWeights))
	if err != nil {
		t.Fatal(err)
	}
	old := map[string]weights.Tensor{}
	r := strings.NewReplacer(".to_q.", ".query.", ".to_k.", ".key.", ".to_v.", ".value.", ".to_out.0.", ".proj_attn.")
	for name, v := range sd {
		old[r.Replace(name)] = v
	}
	bare := t.TempDir()
	if err := weights.Save(filepath.Join(bare, SafetensorsWeights), old, nil); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "unet", ConfigFile))
	os.WriteFile(filepath.Join(bare, ConfigFile), cfg, 0o644)
	m, err := Load(bare)
	if err != nil {
		t.Fatal(err)
	}
	if m.Layout != ModelFolder || m.Naming != DiffusersOld || m.Scheduler != "" || m.Process != DefaultSchedulerConfig() {
		t.Errorf("layout %v, naming %v, scheduler %q, process %+v", m.Layout, m.Naming, m.Scheduler, m.Process)
	}
	if m.Process.Var != diffusion.FixedSmall {
		t.Errorf("DDPMScheduler's default variance is fixed_small, got %v", m.Process.Var)
	}
	for c, e := range forwardCases(t, m.Net, filepath.Join(dir, "expected.safetensors")) {
		if !(e < 1e-4) {
			t.Errorf("case %d: eps relative error %.3g", c, e)
		}
	}
}

// TestTinyOldBin: tiny-old-bin's configs (root-level copies and the
// pipeline's) read as tiny's; its weights are PyTorch pickles only (old
// attention names in the .bin files, pesser's names in pesser/model.ckpt),
// read through ReadPickle, and its ε is checked against diffusers' for
// the pipeline folder, the unet/ folder and the pesser checkpoint (with
// the config.json it lacks put beside it). With ReadPickle nil they are
// refused with a line saying how to convert them.
func TestTinyOldBin(t *testing.T) {
	dir := fixtures(t, "tiny-old-bin")
	for _, f := range []string{ConfigFile, filepath.Join("unet", ConfigFile)} {
		cfg, err := ReadUNetConfig(filepath.Join(dir, f))
		if err != nil || !sameConfig(cfg, tinyConfig) {
			t.Errorf("%s: %+v, %v", f, cfg, err)
		}
	}
	for _, f := range []string{SchedulerConfigFile, filepath.Join("scheduler", SchedulerConfigFile)} {
		if dc, err := ReadSchedulerConfig(filepath.Join(dir, f)); err != nil || dc != diffusion.DefaultConfig() {
			t.Errorf("%s: %+v, %v", f, dc, err)
		}
	}
	expected := filepath.Join(dir, "expected.safetensors")
	// The tiny pesser model is none of pesser's own configs: alone, its
	// checkpoint is refused; with a config.json beside it, it loads.
	if _, err := Load(filepath.Join(dir, "pesser", "model.ckpt")); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("pesser checkpoint without a config: %v", err)
	}
	pesser := t.TempDir()
	ckpt, _ := os.ReadFile(filepath.Join(dir, "pesser", "model.ckpt"))
	cfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	os.WriteFile(filepath.Join(pesser, "model.ckpt"), ckpt, 0o644)
	os.WriteFile(filepath.Join(pesser, ConfigFile), cfg, 0o644)
	for _, src := range []string{dir, filepath.Join(dir, "unet"), filepath.Join(pesser, "model.ckpt")} {
		m, err := Load(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if want := map[bool]Naming{false: DiffusersOld, true: Pesser}[strings.HasSuffix(src, ".ckpt")]; m.Naming != want {
			t.Errorf("%s: %v names, want %v", src, m.Naming, want)
		}
		for c, e := range forwardCases(t, m.Net, expected) {
			t.Logf("%s case %d: eps relative error %.3g", src, c, e)
			if !(e < 1e-4) {
				t.Errorf("%s case %d: eps relative error %.3g", src, c, e)
			}
		}
	}
	saved := ReadPickle
	defer func() { ReadPickle = saved }()
	ReadPickle = nil
	if _, err := Load(dir); !errors.Is(err, ErrPickle) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "safetensors") {
		t.Errorf("without a pickle reader: %v", err)
	}
}

// TestSchedulerTraces feeds the project's posterior step (PMeanVariance,
// then μ + σ·z as Ancestral's step) diffusers' ε, x and noise at each step
// of the DDPMScheduler traces, with the process mapped from the fixture's
// scheduler_config.json, and compares x_{t−1} with the float64 re-derivation
// within 1e-5 relative (and x̂0 too).
func TestSchedulerTraces(t *testing.T) {
	dir := fixtures(t, "tiny")
	dc, err := ReadSchedulerConfig(filepath.Join(dir, "scheduler", SchedulerConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	d, err := diffusion.New(dc)
	if err != nil {
		t.Fatal(err)
	}
	for _, trace := range []string{"ddpm_steps_start", "ddpm_steps_end"} {
		ts, _, err := weights.Load(filepath.Join(dir, trace+".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		steps := ts["timesteps"].I64
		x := ts["x_init"].F32
		D := len(x)
		n := ts["x_init"].Shape[0]
		for i, step := range steps {
			tt := make([]int, n)
			for b := range tt {
				tt[b] = int(step)
			}
			eps, noise := ts["eps"].F32[i*D:(i+1)*D], ts["noise"].F32[i*D:(i+1)*D]
			mean, logVar, x0 := make([]float32, D), make([]float32, D), make([]float32, D)
			d.PMeanVarianceInto(mean, logVar, x0, eps, x, tt)
			prev := make([]float32, D)
			for k := range prev {
				prev[k] = mean[k]
				if step > 0 {
					prev[k] = float32(float64(mean[k]) + math.Exp(0.5*float64(logVar[k]))*float64(noise[k]))
				}
			}
			ref, f32 := ts["x_prev_f64ref"].F32[i*D:(i+1)*D], ts["x_prev"].F32[i*D:(i+1)*D]
			e, e32 := relErr(prev, ref), relErr(prev, f32)
			ex0 := relErr(x0, ts["x0_pred_f64ref"].F32[i*D:(i+1)*D])
			t.Logf("%s t=%d: x_prev relative error %.3g (float64 reference), %.3g (diffusers' float32); x̂0 %.3g", trace, step, e, e32, ex0)
			if !(e < 1e-5) || !(ex0 < 1e-5) {
				t.Errorf("%s t=%d: x_prev relative error %.3g, x̂0 %.3g against the float64 reference", trace, step, e, ex0)
			}
			x = f32
		}
	}
}

// TestExportTinyRoundTrip: the tiny fixture exported and read back is the
// same network (bit-identical weights and config) and process, and the
// export's files name what diffusers' do.
func TestExportTinyRoundTrip(t *testing.T) {
	dir := fixtures(t, "tiny")
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := ExportDiffusers(m.Net, m.Process, out); err != nil {
		t.Fatal(err)
	}
	back, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Net.Weights(), m.Net.Weights()) || !sameConfig(back.Net.Config(), m.Net.Config()) || back.Process != m.Process {
		t.Fatal("the exported fixture reads back differently")
	}
	orig, _, _ := weights.Load(m.Weights)
	mine, meta, err := weights.Load(filepath.Join(out, "unet", SafetensorsWeights))
	if err != nil || meta["format"] != "pt" || len(mine) != len(orig) {
		t.Fatalf("%d tensors (diffusers' file %d), metadata %v, %v", len(mine), len(orig), meta, err)
	}
	for name, v := range orig {
		if w, ok := mine[name]; !ok || !slices.Equal(w.Shape, v.Shape) || !slices.Equal(w.F32, v.F32) {
			t.Fatalf("tensor %s: exported %v %v, diffusers' %v", name, ok, w.Shape, v.Shape)
		}
	}
}

func jsonOf(c unet.Config) string {
	b, _ := json.Marshal(c)
	return string(b)
}

// TestTinyMultiHead checks the multi-head attention against diffusers
// without a fixture of its own: the fixture records (fixture.json,
// cross_checks.multi_head_attention_head_dim_8) how far diffusers' ε moves,
// over both cases, when the same weights run with attention_head_dim 8
// (two and four heads) instead of one head. The project's network with
// AttentionHeadDim 8 must move exactly as far: a different head layout or
// scale would not.
func TestTinyMultiHead(t *testing.T) {
	dir := fixtures(t, "tiny")
	var fx struct {
		CrossChecks map[string]struct{ Rel float64 } `json:"cross_checks"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	want, ok := fx.CrossChecks["multi_head_attention_head_dim_8"]
	if !ok {
		t.Skip("fixture.json has no multi-head cross-check")
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Net.Config()
	cfg.AttentionHeadDim = 8
	u, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	copy(u.Weights(), m.Net.Weights())
	ts, _, _ := weights.Load(filepath.Join(dir, "expected.safetensors"))
	x, n := ts["x"].F32, ts["x"].Shape[0]
	var got []float32
	for k := range ts["t"].Shape[0] {
		out := make([]float32, len(x))
		steps := make([]int, n)
		for i := range steps {
			steps[i] = int(ts["t"].I64[k*n+i])
		}
		u.Forward(out, x, steps, n, false, nil)
		got = append(got, out...)
	}
	rel := relErr(got, ts["eps"].F32)
	t.Logf("attention_head_dim 8 moves ε by %.6g relative; diffusers' by %.6g", rel, want.Rel)
	if math.Abs(rel-want.Rel) > 2e-5 {
		t.Errorf("attention_head_dim 8 moves ε by %.6g relative, diffusers' by %.6g", rel, want.Rel)
	}
}
