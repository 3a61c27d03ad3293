package interop

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/diffusion"
	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// googleCIFAR10 is google/ddpm-cifar10-32's unet/config.json (FACTS.md §1).
const googleCIFAR10 = `{
  "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4",
  "act_fn": "silu", "attention_head_dim": null,
  "block_out_channels": [128, 256, 256, 256],
  "center_input_sample": false,
  "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
  "downsample_padding": 0, "flip_sin_to_cos": false, "freq_shift": 1,
  "in_channels": 3, "layers_per_block": 2, "mid_block_scale_factor": 1,
  "norm_eps": 1e-06, "norm_num_groups": 32, "out_channels": 3, "sample_size": 32,
  "time_embedding_type": "positional",
  "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
}`

// TestUNetConfigGoogle: google/ddpm-cifar10-32's config is the paper's
// CIFAR-10 network (no dropout at inference) with asymmetric
// downsampling, and google/ddpm-cat-256's the LSUN network.
func TestUNetConfigGoogle(t *testing.T) {
	cfg, err := UNetConfig("config.json", []byte(googleCIFAR10))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := unet.ConfigByName("cifar")
	want.Dropout, want.AsymmetricDownsample = 0, true
	if !sameConfig(cfg, want) {
		t.Errorf("cifar10: %s, want %s", jsonOf(cfg), jsonOf(want))
	}
	if n := unet.NumParams(cfg); n != 35746307 {
		t.Errorf("cifar10: %d parameters, FACTS.md says 35,746,307", n)
	}
	cat := strings.NewReplacer(`[128, 256, 256, 256]`, `[128, 128, 256, 256, 512, 512]`,
		`["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"]`, `["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"]`,
		`["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]`, `["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"]`,
		`"sample_size": 32`, `"sample_size": 256`).Replace(googleCIFAR10)
	cfg, err = UNetConfig("config.json", []byte(cat))
	if err != nil {
		t.Fatal(err)
	}
	if lsun := PesserConfigs()["lsun_cat"].UNet; !sameConfig(cfg, lsun) {
		t.Errorf("cat-256: %s, want pesser's %s", jsonOf(cfg), jsonOf(lsun))
	}
	if n := unet.NumParams(cfg); n != 113673219 {
		t.Errorf("cat-256: %d parameters, FACTS.md says 113,673,219", n)
	}
}

// TestUNetConfigDefaults: absent keys take UNet2DModel's defaults, which
// are not DDPM's (FACTS.md §1, unet_2d.py's signature).
func TestUNetConfigDefaults(t *testing.T) {
	cfg, err := UNetConfig("config.json", []byte(`{"sample_size": 32}`))
	if err != nil {
		t.Fatal(err)
	}
	want := unet.Config{InCh: 3, OutCh: 3, Res: 32, Ch: 224, ChMult: []int{1, 2, 3, 4}, NumResBlocks: 2,
		AttnRes: []int{16, 8, 4}, Groups: 32, AttentionHeadDim: 8, FlipSinToCos: true, FreqShift: unet.IntPtr(0), NormEps: 1e-5}
	if !sameConfig(cfg, want) {
		t.Errorf("defaults: %s, want %s", jsonOf(cfg), jsonOf(want))
	}
	// null is None, not the default: one head; a head dimension equal to
	// every block's channels is one head too.
	for _, v := range []string{`null`, `32`} {
		cfg, err = UNetConfig("config.json", []byte(`{"sample_size": 16, "block_out_channels": [32, 32], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "attention_head_dim": `+v+`}`))
		if err != nil || cfg.AttentionHeadDim != 0 || cfg.Heads(32) != 1 {
			t.Errorf("attention_head_dim %s: %s, %v", v, jsonOf(cfg), err)
		}
	}
}

// TestUNetConfigRefusals: what the project's network cannot compute is
// refused in one line naming the key.
func TestUNetConfigRefusals(t *testing.T) {
	base := map[string]any{}
	if err := json.Unmarshal([]byte(googleCIFAR10), &base); err != nil {
		t.Fatal(err)
	}
	for key, v := range map[string]any{
		"down_block_types":        []string{"DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"},
		"up_block_types":          []string{"UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"}, // attention on the way down only
		"resnet_time_scale_shift": "scale_shift",
		"act_fn":                  "gelu",
		"class_embed_type":        "timestep",
		"num_class_embeds":        10,
		"center_input_sample":     true,
		"time_embedding_type":     "fourier",
		"time_embedding_dim":      256,
		"mid_block_scale_factor":  1.414,
		"downsample_type":         "resnet",
		"upsample_type":           "resnet",
		"add_attention":           false,
		"attn_norm_num_groups":    16,
		"attention_head_dim":      48, // 128 channels do not split into heads of 48
		"block_out_channels":      []int{128, 192, 256, 256},
		"downsample_padding":      2,
		"norm_num_groups":         nil,
		"sample_size":             []int{32, 64},
		"layers_per_block":        []int{2, 2, 2, 2},
		"_class_name":             "UNet2DConditionModel",
		"brand_new_key":           "on",
	} {
		c := map[string]any{}
		for k, x := range base {
			c[k] = x
		}
		c[key] = v
		b, _ := json.Marshal(c)
		_, err := UNetConfig("unet/config.json", b)
		if err == nil {
			t.Errorf("%s = %v: accepted", key, v)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, `"`+key+`"`) || !strings.HasPrefix(msg, "unet/config.json: ") {
			t.Errorf("%s = %v: %q does not name the key on one line", key, v, msg)
		}
	}
	if _, err := UNetConfig("config.json", []byte(`{"in_channels": 3}`)); err == nil || !strings.Contains(err.Error(), "sample_size") {
		t.Errorf("no sample_size: %v", err)
	}
}

// TestSchedulerConfig maps DDPMScheduler configs and refuses what the
// diffusion package cannot express.
func TestSchedulerConfig(t *testing.T) {
	read := func(s string) (diffusion.Config, error) { return SchedulerConfig("scheduler_config.json", []byte(s)) }
	dc, err := read(`{}`)
	want := diffusion.DefaultConfig()
	want.Var = diffusion.FixedSmall // DDPMScheduler's default
	if err != nil || dc != want || DefaultSchedulerConfig() != want {
		t.Errorf("defaults: %+v, %v", dc, err)
	}
	for _, c := range []struct {
		json  string
		check func(diffusion.Config) bool
	}{
		{`{"variance_type": "fixed_large", "clip_sample": false}`, func(c diffusion.Config) bool { return c.Var == diffusion.FixedLarge && !c.Clip }},
		{`{"variance_type": "fixed_small_log"}`, func(c diffusion.Config) bool { return c.Var == diffusion.FixedSmall }},
		{`{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}`, func(c diffusion.Config) bool {
			return c.Schedule == diffusion.ScaledLinearBeta && c.BetaStart == 0.00085
		}},
		{`{"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 4000}`, func(c diffusion.Config) bool { return c.Schedule == diffusion.CosineBeta && c.T == 4000 }},
		{`{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2, 0.3]}`, func(c diffusion.Config) bool {
			return c.Schedule == diffusion.GivenBeta && c.Betas != nil && slices.Equal(*c.Betas, []float64{0.1, 0.2, 0.3})
		}},
		{`{"prediction_type": "sample"}`, func(c diffusion.Config) bool { return c.Mean == diffusion.XStart }},
		{`{"prediction_type": "v_prediction"}`, func(c diffusion.Config) bool { return c.Mean == diffusion.V }},
		{`{"predict_epsilon": false}`, func(c diffusion.Config) bool { return c.Mean == diffusion.XStart }},
		{`{"timestep_spacing": "trailing", "steps_offset": 1}`, func(c diffusion.Config) bool { return c == want }},
		{`{"_class_name": "DDIMScheduler", "set_alpha_to_one": false}`, func(c diffusion.Config) bool { return c.T == 1000 }},
	} {
		dc, err := read(c.json)
		if err != nil || !c.check(dc) {
			t.Errorf("%s: %+v, %v", c.json, dc, err)
		}
	}
	for key, s := range map[string]string{
		"variance_type":          `{"variance_type": "learned"}`,
		"beta_schedule":          `{"beta_schedule": "sigmoid"}`,
		"clip_sample_range":      `{"clip_sample_range": 2.0}`,
		"prediction_type":        `{"prediction_type": "flow"}`,
		"thresholding":           `{"thresholding": true}`,
		"rescale_betas_zero_snr": `{"rescale_betas_zero_snr": true}`,
		"trained_betas":          `{"num_train_timesteps": 4, "trained_betas": [0.1, 0.2]}`,
		"_class_name":            `{"_class_name": "EulerDiscreteScheduler"}`,
		"mystery":                `{"mystery": 1}`,
	} {
		_, err := read(s)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `"`+key+`"`) {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := read(`{"variance_type": "learned_range"}`); err == nil {
		t.Error("learned_range accepted")
	}
}

// TestNamesMatchNetwork: the name maps cover exactly the network's
// parameters, with their shapes, in state-dict order, for configs with
// and without attention, shortcuts, per-level depth and a learned
// variance's output.
func TestNamesMatchNetwork(t *testing.T) {
	cfgs := []unet.Config{tinyConfig}
	for _, name := range []string{"mnist-deeper", "small", "tiny32"} {
		c, _ := unet.ConfigByName(name)
		cfgs = append(cfgs, c)
	}
	learned, _ := unet.ConfigByName("tiny1")
	learned.OutCh = 2
	cfgs = append(cfgs, learned)
	for _, cfg := range cfgs {
		u, err := unet.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ns := names(cfg, Diffusers)
		if len(ns) != len(u.Params()) {
			t.Fatalf("%s: %d names for %d parameters", jsonOf(cfg), len(ns), len(u.Params()))
		}
		for i, p := range u.Params() {
			if ns[i].project != p.Name || !slices.Equal(ns[i].shape, p.Shape) {
				t.Fatalf("%s: parameter %d is %s%v, the map says %s%v", jsonOf(cfg), i, p.Name, p.Shape, ns[i].project, ns[i].shape)
			}
		}
		// Every naming maps one to one.
		for _, n := range []Naming{Project, Diffusers, DiffusersOld, Pesser} {
			seen := map[string]bool{}
			for _, f := range NameMap(cfg, n) {
				if seen[f] {
					t.Fatalf("%v: %s named twice", n, f)
				}
				seen[f] = true
			}
		}
	}
	// Spot checks against FACTS.md §3 on the tiny network: up_blocks run
	// from the lowest resolution, pesser's up by level.
	for project, want := range map[string][3]string{
		"temb_dense0.weight":         {"time_embedding.linear_1.weight", "time_embedding.linear_1.weight", "temb.dense.0.weight"},
		"down.1.0.weight":            {"down_blocks.0.downsamplers.0.conv.weight", "down_blocks.0.downsamplers.0.conv.weight", "down.0.downsample.conv.weight"},
		"down.2.0.nin_shortcut.bias": {"down_blocks.1.resnets.0.conv_shortcut.bias", "down_blocks.1.resnets.0.conv_shortcut.bias", "down.1.block.0.nin_shortcut.bias"},
		"down.2.1.proj_out.weight":   {"down_blocks.1.attentions.0.to_out.0.weight", "down_blocks.1.attentions.0.proj_attn.weight", "down.1.attn.0.proj_out.weight"},
		"mid_attn.norm.weight":       {"mid_block.attentions.0.group_norm.weight", "mid_block.attentions.0.group_norm.weight", "mid.attn_1.norm.weight"},
		"mid2.temb_proj.weight":      {"mid_block.resnets.1.time_emb_proj.weight", "mid_block.resnets.1.time_emb_proj.weight", "mid.block_2.temb_proj.weight"},
		"up.1.0.conv1.weight":        {"up_blocks.0.resnets.1.conv1.weight", "up_blocks.0.resnets.1.conv1.weight", "up.2.block.1.conv1.weight"},
		"up.2.0.weight":              {"up_blocks.0.upsamplers.0.conv.weight", "up_blocks.0.upsamplers.0.conv.weight", "up.2.upsample.conv.weight"},
		"up.3.1.q.bias":              {"up_blocks.1.attentions.0.to_q.bias", "up_blocks.1.attentions.0.query.bias", "up.1.attn.0.q.bias"},
		"up.7.0.conv2.bias":          {"up_blocks.2.resnets.1.conv2.bias", "up_blocks.2.resnets.1.conv2.bias", "up.0.block.1.conv2.bias"},
		"norm_out.bias":              {"conv_norm_out.bias", "conv_norm_out.bias", "norm_out.bias"},
	} {
		for i, n := range []Naming{Diffusers, DiffusersOld, Pesser} {
			if got := NameMap(tinyConfig, n)[project]; got != want[i] {
				t.Errorf("%s under %v: %s, want %s", project, n, got, want[i])
			}
		}
	}
}

// TestNamingsRoundTrip: a network's state dict under every naming maps
// back to the same tensors, and a state dict that misses a tensor, has
// one too many or a wrong shape is refused naming it.
func TestNamingsRoundTrip(t *testing.T) {
	u := randomNet(t, tinyConfig, 1)
	want := u.StateDict()
	for _, n := range []Naming{Project, Diffusers, DiffusersOld, Pesser} {
		sd := FromProject(u, n)
		if got, _ := DetectNaming(sd); got != n {
			t.Errorf("%v detected as %v", n, got)
		}
		back, got, err := ToProject(u.Config(), sd)
		if err != nil || got != n {
			t.Fatalf("%v: %v", n, err)
		}
		for name, v := range want {
			if !slices.Equal(back[name].F32, v.F32) || !slices.Equal(back[name].Shape, v.Shape) {
				t.Fatalf("%v: %s differs", n, name)
			}
		}
		if n == Diffusers {
			if s := sd["mid_block.attentions.0.to_k.weight"].Shape; len(s) != 2 {
				t.Errorf("diffusers' attention projections are Linear weights, got shape %v", s)
			}
		}
	}
	sd := FromProject(u, Diffusers)
	delete(sd, "up_blocks.1.attentions.1.to_v.bias")
	if _, _, err := ToProject(u.Config(), sd); err == nil || !strings.Contains(err.Error(), "up_blocks.1.attentions.1.to_v.bias") {
		t.Errorf("missing tensor: %v", err)
	}
	sd = FromProject(u, Diffusers)
	sd["up_blocks.1.attentions.9.to_v.bias"] = sd["conv_out.bias"]
	if _, _, err := ToProject(u.Config(), sd); err == nil || !strings.Contains(err.Error(), "attentions.9") {
		t.Errorf("extra tensor: %v", err)
	}
	sd = FromProject(u, Diffusers)
	sd["conv_in.weight"] = weights.F32Tensor(make([]float32, 16*3*9), 16, 3, 9)
	if _, _, err := ToProject(u.Config(), sd); err == nil || !strings.Contains(err.Error(), "conv_in.weight") {
		t.Errorf("wrong shape: %v", err)
	}
}

// randomNet is a network of cfg with random weights (GroupNorm scales near
// 1), as the fixtures' are.
func randomNet(t *testing.T, cfg unet.Config, seed uint64) *unet.UNet {
	t.Helper()
	u, err := unet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, p := range u.Params() {
		for i := range p.W {
			p.W[i] = float32(0.05 * rng.NormFloat64())
			if len(p.Shape) == 1 && strings.HasSuffix(p.Name, "norm.weight") || strings.Contains(p.Name, "norm1.weight") || strings.Contains(p.Name, "norm2.weight") || p.Name == "norm_out.weight" {
				p.W[i] += 1
			}
		}
	}
	return u
}

// TestExportRoundTrip: import(export(m)) is m — bit-identical outputs on
// random inputs — for a tiny DDPM network (downsample_padding 1) and one
// with every variant diffusers adds; what UNet2DModel and DDPMScheduler
// cannot express is refused before anything is written.
func TestExportRoundTrip(t *testing.T) {
	plain := unet.Config{InCh: 3, Res: 16, Ch: 16, ChMult: []int{1, 2, 2}, NumResBlocks: 2, AttnRes: []int{8}, Groups: 4}
	variants := plain
	variants.ChMult, variants.AttnRes = []int{1, 2}, []int{16, 8}
	variants.AsymmetricDownsample, variants.AttentionHeadDim, variants.FlipSinToCos, variants.FreqShift, variants.NormEps = true, 8, true, unet.IntPtr(0), 1e-5
	v := diffusion.DefaultConfig()
	v.Mean, v.Schedule, v.Clip = diffusion.V, diffusion.CosineBeta, false
	for i, c := range []struct {
		cfg unet.Config
		dc  diffusion.Config
	}{{plain, diffusion.DefaultConfig()}, {variants, v}} {
		u := randomNet(t, c.cfg, uint64(i))
		dir := filepath.Join(t.TempDir(), "pipe")
		if err := ExportDiffusers(u, c.dc, dir); err != nil {
			t.Fatal(err)
		}
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !sameConfig(m.Net.Config(), c.cfg) || m.Process != c.dc || m.Naming != Diffusers {
			t.Errorf("case %d: read back %s, %+v", i, jsonOf(m.Net.Config()), m.Process)
		}
		rng := rand.New(rand.NewPCG(5, uint64(i)))
		x := make([]float32, 3*3*16*16)
		for k := range x {
			x[k] = float32(rng.NormFloat64())
		}
		ts := []int{0, 412, 999}
		a, b := make([]float32, len(x)), make([]float32, len(x))
		u.Forward(a, x, ts, 3, false, nil)
		m.Net.Forward(b, x, ts, 3, false, nil)
		if !slices.Equal(a, b) {
			t.Errorf("case %d: outputs differ (relative %.3g)", i, relErr(b, a))
		}
		// Complete configs: every key UNet2DModel's signature has.
		var keys map[string]any
		data, _ := os.ReadFile(filepath.Join(dir, "unet", ConfigFile))
		json.Unmarshal(data, &keys)
		for _, k := range []string{"sample_size", "in_channels", "out_channels", "center_input_sample", "time_embedding_type", "freq_shift",
			"flip_sin_to_cos", "down_block_types", "up_block_types", "block_out_channels", "layers_per_block", "mid_block_scale_factor",
			"downsample_padding", "downsample_type", "upsample_type", "dropout", "act_fn", "attention_head_dim", "norm_num_groups",
			"attn_norm_num_groups", "norm_eps", "resnet_time_scale_shift", "add_attention", "class_embed_type", "num_class_embeds"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("exported config.json lacks %s", k)
			}
		}
		if pad := keys["downsample_padding"]; pad != float64(map[bool]int{true: 0, false: 1}[c.cfg.AsymmetricDownsample]) {
			t.Errorf("downsample_padding %v", pad)
		}
	}
	deeper, _ := unet.ConfigByName("mnist-deeper")
	learned := plain
	learned.OutCh = 6
	ld := diffusion.DefaultConfig()
	ld.Var = diffusion.Learned
	xprev := diffusion.DefaultConfig()
	xprev.Mean = diffusion.XPrev
	for name, c := range map[string]struct {
		cfg  unet.Config
		dc   diffusion.Config
		word string
	}{
		"level_blocks": {deeper, diffusion.DefaultConfig(), "level_blocks"},
		"learned":      {learned, ld, "variance"},
		"xprev":        {plain, xprev, "mean"},
	} {
		u, err := unet.New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "pipe")
		err = ExportDiffusers(u, c.dc, dir)
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.word) {
			t.Errorf("%s: %v", name, err)
		}
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("%s: a refused export wrote %s", name, dir)
		}
	}
}

// TestPickleRefused: without a pickle reader, .bin and .ckpt files are one
// clear line (how to convert them); with one plugged in, they are read
// through it.
func TestPickleRefused(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, PickleWeights)
	os.WriteFile(p, []byte("PK\x03\x04 not really"), 0o644)
	saved := ReadPickle
	defer func() { ReadPickle = saved }()
	ReadPickle = nil
	_, err := ReadTensors(p)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "safetensors") {
		t.Errorf("no reader: %v", err)
	}
	u := randomNet(t, tinyConfig, 3)
	ReadPickle = func(string) (map[string]weights.Tensor, error) { return FromProject(u, Pesser), nil }
	ckpt := filepath.Join(dir, "model.ckpt")
	os.WriteFile(ckpt, []byte{0x80, 2}, 0o644)
	cfg, _ := json.Marshal(must(DiffusersUNetConfig(tinyConfig)))
	os.WriteFile(filepath.Join(dir, ConfigFile), cfg, 0o644)
	m, err := Load(ckpt)
	if err != nil || m.Naming != Pesser || !slices.Equal(m.Net.Weights(), u.Weights()) {
		t.Fatalf("pesser checkpoint through a plugged-in reader: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
