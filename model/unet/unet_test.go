package unet

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ddpm-go/ddpm/engine/nn"
	"github.com/ddpm-go/ddpm/engine/optim"
	"github.com/ddpm-go/ddpm/weights"
)

// relErr is ‖a−b‖/‖b‖ (accumulated in float64) and the max |a−b|.
func relErr(a, b []float32) (rel, maxAbs float64) {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
		maxAbs = max(maxAbs, math.Abs(d))
	}
	if den == 0 {
		return math.Sqrt(num), maxAbs
	}
	return math.Sqrt(num / den), maxAbs
}

// goldenConfig rebuilds the config from the golden file's __metadata__ and
// checks it agrees with the named config it claims to be.
func goldenConfig(t *testing.T, meta map[string]string) Config {
	cfg, err := ConfigByName(meta["config"])
	if err != nil {
		t.Fatal(err)
	}
	atoi := func(k string) int {
		v, err := strconv.Atoi(meta[k])
		if err != nil {
			t.Fatalf("metadata %s=%q: %v", k, meta[k], err)
		}
		return v
	}
	ints := func(k string) []int {
		var v []int
		if err := json.Unmarshal([]byte(meta[k]), &v); err != nil {
			t.Fatalf("metadata %s=%q: %v", k, meta[k], err)
		}
		return v
	}
	fromMeta := Config{InCh: atoi("in_ch"), Res: atoi("res"), Ch: atoi("ch"), ChMult: ints("ch_mult"),
		NumResBlocks: atoi("num_res_blocks"), AttnRes: ints("attn_res"), Groups: atoi("groups")}
	d, _ := strconv.ParseFloat(meta["dropout"], 32)
	fromMeta.Dropout = float32(d)
	a, _ := json.Marshal(fromMeta)
	b, _ := json.Marshal(cfg)
	if string(a) != string(b) {
		t.Fatalf("golden metadata %s disagrees with config %q %s", a, meta["config"], b)
	}
	if eps, _ := strconv.ParseFloat(meta["gn_eps"], 64); eps != GNEps {
		t.Fatalf("golden gn_eps %v, ours %v", eps, GNEps)
	}
	return cfg
}

// TestGolden checks forward output, loss, every parameter gradient and the
// input gradient against PyTorch on the tiny config.
func TestGolden(t *testing.T) {
	ts, meta, err := weights.Load("testdata/golden_tiny.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	cfg := goldenConfig(t, meta)
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := strconv.Atoi(meta["params"]); u.NumParams() != want {
		t.Fatalf("NumParams %d, golden %d", u.NumParams(), want)
	}
	sd := map[string]weights.Tensor{}
	for name, tt := range ts {
		if p, ok := strings.CutPrefix(name, "param/"); ok {
			sd[p] = tt
		}
	}
	if err := u.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(meta["batch"])
	x := ts["input/x"].F32
	tt := make([]int, n)
	for i, v := range ts["input/t"].I64 {
		tt[i] = int(v)
	}
	out := make([]float32, len(ts["output/eps"].F32))
	u.Forward(out, x, tt, n, false, nil)
	const tol = 1e-4
	worst := 0.0
	check := func(name string, got, want []float32) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, golden %d", name, len(got), len(want))
		}
		rel, mx := relErr(got, want)
		if norm(want) < 1e-8 {
			// Analytically zero (k's bias: softmax is invariant to adding
			// qᵀb_k to a whole row), so both sides hold only rounding
			// noise and a relative error is meaningless: bound it absolutely.
			if mx > 1e-8 {
				t.Errorf("%s: zero gradient, max abs error %.3g", name, mx)
			}
			if testing.Verbose() {
				t.Logf("%-36s zero: max abs %.2e", name, mx)
			}
			return
		}
		worst = max(worst, rel)
		if rel > tol || math.IsNaN(rel) {
			t.Errorf("%s: relative error %.3g (max abs %.3g) > %g", name, rel, mx, tol)
		}
		if testing.Verbose() {
			t.Logf("%-36s rel %.2e  max abs %.2e", name, rel, mx)
		}
	}
	check("output/eps", out, ts["output/eps"].F32)

	dOut := make([]float32, len(out))
	loss := nn.MSELoss(dOut, out, ts["input/target"].F32)
	check("output/loss", []float32{float32(loss)}, ts["output/loss"].F32)

	u.ZeroGrads()
	dX := make([]float32, len(x))
	u.Backward(dOut, dX)
	check("grad_input/x", dX, ts["grad_input/x"].F32)
	var worstParam string
	worstRel := 0.0
	for _, p := range u.Params() {
		g, ok := ts["grad/"+p.Name]
		if !ok {
			t.Fatalf("golden has no grad/%s", p.Name)
		}
		check("grad/"+p.Name, p.G, g.F32)
		if rel, _ := relErr(p.G, g.F32); rel > worstRel && norm(g.F32) >= 1e-8 {
			worstRel, worstParam = rel, p.Name
		}
	}
	_, mxAll := relErr(u.Grads(), flatGolden(ts, u))
	t.Logf("golden: loss %.7f (torch %.7f); worst relative error %.2e; worst param grad %s %.2e; max abs param-grad error %.2e",
		loss, ts["output/loss"].F32[0], worst, worstParam, worstRel, mxAll)
}

func norm(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func flatGolden(ts map[string]weights.Tensor, u *UNet) []float32 {
	var g []float32
	for _, p := range u.Params() {
		g = append(g, ts["grad/"+p.Name].F32...)
	}
	return g
}

// TestParamNames checks names, order and shapes against the golden file
// (which holds every PyTorch state_dict entry as param/<name>).
func TestParamNames(t *testing.T) {
	ts, _, err := weights.Load("testdata/golden_tiny.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := New(configs["tiny"].cfg)
	seen := map[string]bool{}
	for _, p := range u.Params() {
		g, ok := ts["param/"+p.Name]
		if !ok {
			t.Errorf("PyTorch has no parameter %q", p.Name)
			continue
		}
		if !slices.Equal(g.Shape, p.Shape) {
			t.Errorf("%s: shape %v, PyTorch %v", p.Name, p.Shape, g.Shape)
		}
		seen[p.Name] = true
	}
	for name := range ts {
		if p, ok := strings.CutPrefix(name, "param/"); ok && !seen[p] {
			t.Errorf("missing PyTorch parameter %q", p)
		}
	}
	// state_dict order follows module registration.
	first := []string{"temb_dense0.weight", "temb_dense0.bias", "temb_dense1.weight", "temb_dense1.bias",
		"conv_in.weight", "conv_in.bias", "down.0.0.norm1.weight", "down.0.0.norm1.bias",
		"down.0.0.conv1.weight", "down.0.0.conv1.bias", "down.0.0.temb_proj.weight"}
	for i, name := range first {
		if u.Params()[i].Name != name {
			t.Fatalf("param %d is %q, PyTorch order has %q", i, u.Params()[i].Name, name)
		}
	}
	last := u.Params()[len(u.Params())-1]
	if last.Name != "conv_out.bias" {
		t.Fatalf("last param %q", last.Name)
	}
}

func TestParamCountsAndFLOPs(t *testing.T) {
	// Counts and FLOPs from torch_unet_bench.py (UNet(**cfg) and
	// count_forward_flops); mnist from the same script with its config.
	want := map[string]struct {
		params int
		flops  float64
	}{
		"tiny":  {280755, 34013184},
		"small": {1112801, 563412992},
		"cifar": {35746307, 12443713536},
		"mnist": {1623169, 624580864},
	}
	for name, w := range want {
		cfg, err := ConfigByName(name)
		if err != nil {
			t.Fatal(err)
		}
		u, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if u.NumParams() != w.params {
			t.Errorf("%s: %d params, want %d", name, u.NumParams(), w.params)
		}
		if f := ForwardFLOPs(cfg); f != w.flops {
			t.Errorf("%s: ForwardFLOPs %v, want %v", name, f, w.flops)
		}
	}
}

// TestConfigDescriptions checks the named configs: each builds, has the
// parameter count its description gives, and the retired ones are
// loadable by name but not listed.
func TestConfigDescriptions(t *testing.T) {
	listed := ConfigNames()
	if !slices.IsSorted(listed) {
		t.Errorf("ConfigNames not sorted: %v", listed)
	}
	for name, c := range configs {
		if slices.Contains(listed, name) == c.retired {
			t.Errorf("%s: retired %v, listed %v", name, c.retired, !c.retired)
		}
		cfg, err := ConfigByName(name)
		if err != nil {
			t.Fatal(err)
		}
		u, err := New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if u.NumParams() != c.params {
			t.Errorf("%s: %d parameters, its entry says %d", name, u.NumParams(), c.params)
		}
		d := ConfigDescription(name)
		want := fmt.Sprintf("%d×%d, %d channel", cfg.Res, cfg.Res, cfg.InCh)
		if !strings.HasPrefix(d, want) || strings.Contains(d, "\n") || c.note == "" {
			t.Errorf("%s: description %q, want it to start %q and be one line", name, d, want)
		}
	}
	if ConfigDescription("nope") != "" {
		t.Error("a description for an unknown name")
	}
	if d := ConfigDescription("mnist-deeper"); d != "28×28, 1 channel, 1.22M parameters: the shipped MNIST model's network (with the cosine schedule)" {
		t.Errorf("mnist-deeper: %q", d)
	}
	// rgb32 sits between tiny32 and cifar.
	if p := configs["rgb32"].params; p < 3e6 || p > 8e6 {
		t.Errorf("rgb32 has %d parameters", p)
	}
}

func TestConfigValidation(t *testing.T) {
	good := configs["small"].cfg
	bad := map[string]func(c *Config){
		"res":        func(c *Config) { c.Res = 30 },
		"groups":     func(c *Config) { c.Groups = 5 },
		"attn":       func(c *Config) { c.AttnRes = []int{12} },
		"ch odd":     func(c *Config) { c.Ch = 33 },
		"no levels":  func(c *Config) { c.ChMult = nil },
		"dropout":    func(c *Config) { c.Dropout = 1 },
		"in_ch":      func(c *Config) { c.InCh = 0 },
		"res blocks": func(c *Config) { c.NumResBlocks = 0 },
		"level len":  func(c *Config) { c.LevelBlocks = []int{1, 1} },
		"level zero": func(c *Config) { c.LevelBlocks = []int{1, 0, 1} },
		"head dim":   func(c *Config) { c.AttentionHeadDim = 24 }, // 64 channels at 16×16
		"mid heads":  func(c *Config) { c.AttnRes = nil; c.AttentionHeadDim = 48 },
		"neg heads":  func(c *Config) { c.AttentionHeadDim = -1 },
		"norm eps":   func(c *Config) { c.NormEps = -1e-5 },
		"freq shift": func(c *Config) { c.FreqShift = IntPtr(16) },
		"freq neg":   func(c *Config) { c.FreqShift = IntPtr(-1) },
	}
	for name, f := range bad {
		c := good.Normalized()
		f(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: config accepted", name)
		} else if !strings.HasPrefix(err.Error(), "unet: config: ") {
			t.Errorf("%s: unclear error %v", name, err)
		}
	}
	if _, err := ConfigByName("nope"); err == nil {
		t.Error("unknown name accepted")
	}
	// JSON round trip (configs are stored in checkpoints), OutCh default.
	c, _ := ConfigByName("mnist")
	b, _ := json.Marshal(c)
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || !slices.Equal(back.ChMult, c.ChMult) || back.Dropout != c.Dropout {
		t.Fatalf("JSON round trip: %s -> %+v (%v)", b, back, err)
	}
	u, _ := New(c)
	if u.Config().OutCh != 1 {
		t.Fatalf("OutCh default %d", u.Config().OutCh)
	}
	c.OutCh = 2
	u, _ = New(c)
	if got := u.Params()[len(u.Params())-1].Shape; got[0] != 2 {
		t.Fatalf("learned-variance head: conv_out.bias shape %v", got)
	}
	// ConfigByName copies: editing the result leaves the registry alone.
	c.ChMult[0] = 99
	if configs["mnist"].cfg.ChMult[0] != 1 {
		t.Fatal("ConfigByName aliases the registry")
	}
	// level_blocks: copied by ConfigByName, kept by JSON, and absent from
	// the JSON of configs without it (checkpoints written before it read
	// and write the same).
	d, _ := ConfigByName("mnist-deeper")
	if b, _ := json.Marshal(d); json.Unmarshal(b, &back) != nil || !slices.Equal(back.LevelBlocks, d.LevelBlocks) {
		t.Fatalf("JSON round trip of level_blocks: %s -> %v", b, back.LevelBlocks)
	}
	d.LevelBlocks[0] = 99
	if configs["mnist-deeper"].cfg.LevelBlocks[0] != 2 {
		t.Fatal("ConfigByName aliases the registry's level_blocks")
	}
	if strings.Contains(string(b), "level_blocks") {
		t.Fatalf("a config without level_blocks writes it: %s", b)
	}
	// The architecture variants: absent from the JSON of the project's
	// own configs (so every file written before them reads and writes
	// the same), kept when set, freq_shift 0 included.
	if b, _ := json.Marshal(configs["cifar"].cfg); string(b) != `{"in_ch":3,"out_ch":0,"res":32,"ch":128,"ch_mult":[1,2,2,2],"num_res_blocks":2,"attn_res":[16],"groups":32,"dropout":0.1}` {
		t.Fatalf("cifar's JSON changed: %s", b)
	}
	v := good.Normalized()
	v.AsymmetricDownsample, v.AttentionHeadDim, v.FlipSinToCos, v.FreqShift, v.NormEps = true, 8, true, IntPtr(0), 1e-5
	b, _ = json.Marshal(v)
	var vb Config
	if err := json.Unmarshal(b, &vb); err != nil || !vb.AsymmetricDownsample || vb.AttentionHeadDim != 8 || !vb.FlipSinToCos ||
		vb.FreqShift == nil || *vb.FreqShift != 0 || vb.NormEps != 1e-5 || vb.TimeFreqShift() != 0 || vb.GroupNormEps() != 1e-5 {
		t.Fatalf("variants' JSON round trip: %s -> %+v (%v)", b, vb, err)
	}
	if good.TimeFreqShift() != 1 || good.GroupNormEps() != GNEps || good.Heads(64) != 1 || vb.Heads(64) != 8 {
		t.Fatal("defaults of the variants")
	}
	vc := v.clone()
	*vc.FreqShift = 5
	if *v.FreqShift != 0 {
		t.Fatal("clone aliases FreqShift")
	}
}

// TestLevelBlocks checks that level_blocks only generalizes
// num_res_blocks: the same count at every level builds the same network
// (names, shapes, FLOPs, outputs), and a deeper level adds exactly its
// blocks' parameters.
func TestLevelBlocks(t *testing.T) {
	base := configs["tiny"].cfg
	same := base.Normalized()
	same.LevelBlocks = []int{1, 1, 1}
	a, _ := New(base)
	b, err := New(same)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Params()) != len(b.Params()) || ForwardFLOPs(base) != ForwardFLOPs(same) {
		t.Fatalf("level_blocks [1 1 1]: %d params, %v FLOPs; num_res_blocks 1: %d, %v",
			len(b.Params()), ForwardFLOPs(same), len(a.Params()), ForwardFLOPs(base))
	}
	for i, p := range a.Params() {
		if q := b.Params()[i]; q.Name != p.Name || !slices.Equal(q.Shape, p.Shape) {
			t.Fatalf("param %d: %s %v against %s %v", i, q.Name, q.Shape, p.Name, p.Shape)
		}
	}
	a.Init(rand.New(rand.NewPCG(1, 2)))
	copy(b.Weights(), a.Weights())
	const n = 2
	x := make([]float32, n*3*16*16)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	ya, yb := make([]float32, len(x)), make([]float32, len(x))
	a.Forward(ya, x, []int{5, 700}, n, false, nil)
	b.Forward(yb, x, []int{5, 700}, n, false, nil)
	if !slices.Equal(ya, yb) {
		t.Fatal("level_blocks [1 1 1] computes another function than num_res_blocks 1")
	}

	// One more block at the middle level (8×8, 32 channels, with attention):
	// one residual block and one attention block more on each path, the
	// up path's new block taking 32+32 channels in.
	deeper := base.Normalized()
	deeper.LevelBlocks = []int{1, 2, 1}
	d, err := New(deeper)
	if err != nil {
		t.Fatal(err)
	}
	c, tc := 32, 4*base.Ch
	res := func(cin, cout int) int {
		n := 2*cin + cin*cout*9 + cout + tc*cout + cout + 2*cout + cout*cout*9 + cout
		if cin != cout {
			n += cin*cout + cout
		}
		return n
	}
	attn := 2*c + 4*(c*c+c)
	if got, want := d.NumParams()-a.NumParams(), res(c, c)+res(2*c, c)+2*attn; got != want {
		t.Fatalf("level_blocks [1 2 1] adds %d parameters, want %d", got, want)
	}
}

func TestInit(t *testing.T) {
	u, _ := New(configs["tiny"].cfg)
	u.Init(rand.New(rand.NewPCG(1, 1)))
	for _, p := range u.Params() {
		switch {
		case isNormWeight(p):
			if p.W[0] != 1 || p.W[len(p.W)-1] != 1 {
				t.Errorf("%s not 1", p.Name)
			}
		case len(p.Shape) == 1:
			if slices.ContainsFunc(p.W, func(v float32) bool { return v != 0 }) {
				t.Errorf("%s not 0", p.Name)
			}
		default:
			fanIn, fanOut := p.Shape[1], p.Shape[0]
			for _, k := range p.Shape[2:] {
				fanIn, fanOut = fanIn*k, fanOut*k
			}
			limit := math.Sqrt(6 / float64(fanIn+fanOut))
			zero := strings.HasSuffix(p.Name, "conv2.weight") || strings.HasSuffix(p.Name, "proj_out.weight") || p.Name == "conv_out.weight"
			if zero {
				limit *= 1e-5
			}
			var mx, s2 float64
			for _, v := range p.W {
				mx = max(mx, math.Abs(float64(v)))
				s2 += float64(v) * float64(v)
			}
			std := math.Sqrt(s2 / float64(len(p.W)))
			// Uniform(−a, a) has std a/√3.
			if mx > limit || (len(p.W) > 500 && math.Abs(std*math.Sqrt(3)/limit-1) > 0.1) {
				t.Errorf("%s: max %g std %g, limit %g", p.Name, mx, std, limit)
			}
		}
	}
	// The network starts as (almost) zero.
	x := make([]float32, 2*3*16*16)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	out := make([]float32, len(x))
	u.Forward(out, x, []int{0, 999}, 2, false, nil)
	for _, v := range out {
		if math.Abs(float64(v)) > 1e-4 { // conv_out weights are ~1e-5 of a normal init
			t.Fatalf("initial output %g, want ≈ 0", v)
		}
	}
}

// TestStateDictRoundTrip saves a state dict with package weights and loads
// it into a fresh model.
func TestStateDictRoundTrip(t *testing.T) {
	cfg := configs["tiny"].cfg
	u, _ := New(cfg)
	u.Init(rand.New(rand.NewPCG(7, 7)))
	// Give the zero-initialised tensors real values too.
	for i := range u.Weights() {
		u.Weights()[i] += float32(i%13) * 1e-3
	}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	cj, _ := json.Marshal(u.Config())
	if err := weights.Save(path, u.StateDict(), map[string]string{"config": string(cj)}); err != nil {
		t.Fatal(err)
	}
	sd, meta, err := weights.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var c2 Config
	if err := json.Unmarshal([]byte(meta["config"]), &c2); err != nil {
		t.Fatal(err)
	}
	v, err := New(c2)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(u.Weights(), v.Weights()) {
		t.Fatal("weights differ after round trip")
	}
	x := make([]float32, 3*3*16*16)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	o1, o2 := make([]float32, len(x)), make([]float32, len(x))
	u.Forward(o1, x, []int{1, 500, 999}, 3, false, nil)
	v.Forward(o2, x, []int{1, 500, 999}, 3, false, nil)
	if !slices.Equal(o1, o2) {
		t.Fatal("outputs differ after round trip")
	}

	// Mismatches are reported by name, and leave the model untouched.
	before := slices.Clone(v.Weights())
	bad := map[string]weights.Tensor{}
	for k, t := range sd {
		bad[k] = t
	}
	bad["down.2.1.q.weight"] = weights.F32Tensor(make([]float32, 32*32), 32, 32)
	if err := v.LoadStateDict(bad); err == nil || !strings.Contains(err.Error(), `"down.2.1.q.weight"`) {
		t.Fatalf("shape mismatch: %v", err)
	}
	delete(bad, "down.2.1.q.weight")
	if err := v.LoadStateDict(bad); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing: %v", err)
	}
	bad["down.2.1.q.weight"] = sd["down.2.1.q.weight"]
	bad["extra.weight"] = weights.F32Tensor([]float32{1}, 1)
	if err := v.LoadStateDict(bad); err == nil || !strings.Contains(err.Error(), `"extra.weight"`) {
		t.Fatalf("extra: %v", err)
	}
	if !slices.Equal(before, v.Weights()) {
		t.Fatal("failed loads modified the model")
	}
}

// TestGradCheckDropout checks Backward against a central finite difference
// along a random direction, in training mode with dropout (the golden file
// runs in eval mode) and a batch that differs from a previous Forward's (the
// buffer-reuse path).
func TestGradCheckDropout(t *testing.T) {
	cfg := Config{InCh: 2, Res: 8, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1, AttnRes: []int{4}, Groups: 4, Dropout: 0.3}
	t.Run("uniform", func(t *testing.T) { gradCheck(t, cfg) })
	// Per-level depth (level_blocks): two blocks and their attention at the
	// low resolution, one at the high.
	cfg.LevelBlocks = []int{1, 2}
	t.Run("level_blocks", func(t *testing.T) { gradCheck(t, cfg) })
	// diffusers' variants: TF "SAME" downsampling (asymmetric padding),
	// four heads of 4 channels in every attention block, the flipped,
	// unshifted embedding and PyTorch's GroupNorm eps.
	cfg.LevelBlocks = nil
	cfg.AsymmetricDownsample, cfg.AttentionHeadDim, cfg.FlipSinToCos, cfg.FreqShift, cfg.NormEps = true, 4, true, IntPtr(0), 1e-5
	t.Run("diffusers", func(t *testing.T) { gradCheck(t, cfg) })
	cfg.LevelBlocks = []int{2, 1}
	cfg.AttentionHeadDim = 8
	t.Run("asymmetric_level_blocks", func(t *testing.T) { gradCheck(t, cfg) })
}

// gradCheck is TestGradCheckDropout for one config.
func gradCheck(t *testing.T, cfg Config) {
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	u.Init(rng)
	for i := range u.Weights() { // no near-zero branches: exercise every path
		u.Weights()[i] += float32(rng.NormFloat64() * 0.05)
	}
	// Warm the buffers at a larger batch first.
	big := make([]float32, 5*2*64)
	u.Forward(make([]float32, len(big)), big, make([]int, 5), 5, false, nil)

	const n = 3
	x := make([]float32, n*2*64)
	target := make([]float32, len(x))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		target[i] = float32(rng.NormFloat64())
	}
	ts := []int{3, 400, 998}
	out := make([]float32, len(x))
	dOut := make([]float32, len(x))
	loss := func() float64 {
		u.Forward(out, x, ts, n, true, rand.New(rand.NewPCG(9, 9))) // same masks every call
		return nn.MSELoss(dOut, out, target)
	}
	loss()
	u.ZeroGrads()
	dX := make([]float32, len(x))
	u.Backward(dOut, dX)
	g := slices.Clone(u.Grads())

	dir := make([]float64, len(g))
	var analytic float64
	for i := range dir {
		dir[i] = rng.NormFloat64()
		analytic += dir[i] * float64(g[i])
	}
	w0 := slices.Clone(u.Weights())
	const eps = 1e-3
	eval := func(s float64) float64 {
		for i := range w0 {
			u.Weights()[i] = w0[i] + float32(s*dir[i])
		}
		return loss()
	}
	numeric := (eval(eps) - eval(-eps)) / (2 * eps)
	copy(u.Weights(), w0)
	if math.Abs(numeric-analytic) > 2e-2*math.Abs(analytic) {
		t.Fatalf("directional derivative: analytic %g, numeric %g", analytic, numeric)
	}
	// Input gradient, same way.
	var ax float64
	dx := make([]float64, len(x))
	for i := range dx {
		dx[i] = rng.NormFloat64()
		ax += dx[i] * float64(dX[i])
	}
	x0 := slices.Clone(x)
	evalX := func(s float64) float64 {
		for i := range x0 {
			x[i] = x0[i] + float32(s*dx[i])
		}
		return loss()
	}
	nx := (evalX(eps) - evalX(-eps)) / (2 * eps)
	if math.Abs(nx-ax) > 2e-2*math.Abs(ax) {
		t.Fatalf("input directional derivative: analytic %g, numeric %g", ax, nx)
	}
}

// TestOverfit trains the tiny model on one fixed batch with Adam; the loss
// must fall at least 10×.
func TestOverfit(t *testing.T) {
	u, _ := New(configs["tiny"].cfg)
	rng := rand.New(rand.NewPCG(11, 12))
	u.Init(rng)
	const n = 4
	sz := n * 3 * 16 * 16
	x, target := make([]float32, sz), make([]float32, sz)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		target[i] = float32(rng.NormFloat64())
	}
	ts := []int{10, 250, 600, 900}
	out, dOut := make([]float32, sz), make([]float32, sz)
	opt := optim.NewAdam(u.NumParams(), 2e-3)
	start := time.Now()
	var first, last float64
	for step := 0; step < 300; step++ {
		u.Forward(out, x, ts, n, true, rng)
		last = nn.MSELoss(dOut, out, target)
		if step == 0 {
			first = last
		}
		if last < first/10 {
			break
		}
		u.ZeroGrads()
		u.Backward(dOut, nil)
		optim.ClipGradNorm(u.Grads(), 1)
		opt.Step(u.Weights(), u.Grads())
	}
	t.Logf("overfit: loss %.4f -> %.4f in %d steps, %v", first, last, opt.StepCount, time.Since(start).Round(time.Millisecond))
	if !(last < first/10) {
		t.Fatalf("loss only fell from %.4f to %.4f", first, last)
	}
}

// TestBatchConsistency: an image's output does not depend on the rest of
// its batch or on the batch size the buffers were sized for.
func TestBatchConsistency(t *testing.T) {
	u, _ := New(configs["tiny"].cfg)
	u.Init(rand.New(rand.NewPCG(1, 2)))
	for i := range u.Weights() {
		u.Weights()[i] += float32(i%5) * 1e-3
	}
	per := 3 * 16 * 16
	x := make([]float32, 3*per)
	for i := range x {
		x[i] = float32(math.Cos(float64(i) * 0.37))
	}
	o3 := make([]float32, 3*per)
	u.Forward(o3, x, []int{5, 6, 7}, 3, false, nil)
	o1 := make([]float32, per)
	u.Forward(o1, x[per:2*per], []int{6}, 1, false, nil)
	if rel, _ := relErr(o1, o3[per:2*per]); rel > 1e-6 {
		t.Fatalf("image 1 alone differs from image 1 in a batch: rel %g", rel)
	}
}

// TestPredictMatchesForward: Predict's lean pass (activations lent by the
// arena, nothing kept) gives Forward's output bit for bit, batch after
// batch of changing size, and leaves Forward and Backward working.
func TestPredictMatchesForward(t *testing.T) {
	for _, name := range []string{"tiny", "mnist-deeper"} {
		cfg, _ := ConfigByName(name)
		u, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(3, 4))
		u.Init(rng)
		for _, p := range u.Params() { // no zero-initialised branches
			for i := range p.W {
				p.W[i] += float32(0.02 * rng.NormFloat64())
			}
		}
		d := cfg.InCh * cfg.Res * cfg.Res
		for _, n := range []int{3, 1, 4, 2} {
			x, ts := make([]float32, n*d), make([]int, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			for i := range ts {
				ts[i] = rng.IntN(1000)
			}
			want, got := make([]float32, n*d), make([]float32, n*d)
			u.Forward(want, x, ts, n, false, nil)
			u.Predict(got, x, ts)
			if !slices.Equal(got, want) {
				t.Fatalf("%s, batch %d: Predict differs from Forward", name, n)
			}
		}
		u.Forward(make([]float32, d), make([]float32, d), []int{5}, 1, false, nil)
		u.Backward(make([]float32, d), make([]float32, d))
	}
}
