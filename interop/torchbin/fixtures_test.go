package torchbin

// The diffusers peer fixtures (../shared/peers/diffusers, see its README and
// FACTS.md): tiny-old-bin holds a tiny UNet2DModel as diffusers' own code
// saved it (zip + pickle, old attention names query/key/value/proj_attn), at
// the root and in unet/, and the same weights under pesser/pytorch_diffusion's
// names in pesser/model.ckpt.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ddpm-go/ddpm/weights"
)

func peerDir(t *testing.T, sub ...string) string {
	t.Helper()
	dir := filepath.Join(append([]string{"..", "..", "..", "shared", "peers", "diffusers"}, sub...)...)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("diffusers fixtures absent: %v", err)
	}
	return dir
}

// unetConfig is the part of diffusers' UNet2DModel config.json that fixes
// the tensor names and shapes.
type unetConfig struct {
	InChannels        int      `json:"in_channels"`
	OutChannels       int      `json:"out_channels"`
	BlockOutChannels  []int    `json:"block_out_channels"`
	DownBlockTypes    []string `json:"down_block_types"`
	UpBlockTypes      []string `json:"up_block_types"`
	LayersPerBlock    int      `json:"layers_per_block"`
	AttentionHeadDim  *int     `json:"attention_head_dim"`
	TimeEmbeddingType string   `json:"time_embedding_type"`
}

// expectedShapes lists every tensor of a UNet2DModel by FACTS.md §3, with
// the old attention names (query/key/value/proj_attn) the google hub files
// and this fixture use.
func expectedShapes(c unetConfig) map[string][]int {
	C := c.BlockOutChannels
	n, L, T := len(C), c.LayersPerBlock, 4*C[0]
	m := map[string][]int{}
	lin := func(p string, out, in int) { m[p+".weight"] = []int{out, in}; m[p+".bias"] = []int{out} }
	conv := func(p string, out, in, k int) { m[p+".weight"] = []int{out, in, k, k}; m[p+".bias"] = []int{out} }
	norm := func(p string, c int) { m[p+".weight"] = []int{c}; m[p+".bias"] = []int{c} }
	resnet := func(p string, cin, cout int) {
		norm(p+".norm1", cin)
		conv(p+".conv1", cout, cin, 3)
		lin(p+".time_emb_proj", cout, T)
		norm(p+".norm2", cout)
		conv(p+".conv2", cout, cout, 3)
		if cin != cout {
			conv(p+".conv_shortcut", cout, cin, 1)
		}
	}
	attn := func(p string, c int) {
		norm(p+".group_norm", c)
		for _, q := range []string{"query", "key", "value", "proj_attn"} {
			lin(p+"."+q, c, c)
		}
	}
	lin("time_embedding.linear_1", T, C[0])
	lin("time_embedding.linear_2", T, T)
	conv("conv_in", C[0], c.InChannels, 3)
	for i := range n {
		for j := range L {
			cin := C[i]
			if j == 0 {
				cin = C[max(i-1, 0)]
			}
			p := fmt.Sprintf("down_blocks.%d", i)
			resnet(fmt.Sprintf("%s.resnets.%d", p, j), cin, C[i])
			if strings.HasPrefix(c.DownBlockTypes[i], "Attn") {
				attn(fmt.Sprintf("%s.attentions.%d", p, j), C[i])
			}
		}
		if i < n-1 {
			conv(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i), C[i], C[i], 3)
		}
	}
	resnet("mid_block.resnets.0", C[n-1], C[n-1])
	attn("mid_block.attentions.0", C[n-1])
	resnet("mid_block.resnets.1", C[n-1], C[n-1])
	for u := range n {
		i := n - 1 - u
		for j := 0; j <= L; j++ {
			h := C[i]
			if j == 0 {
				h = C[min(i+1, n-1)]
			}
			skip := C[i]
			if j == L {
				skip = C[max(i-1, 0)]
			}
			p := fmt.Sprintf("up_blocks.%d", u)
			resnet(fmt.Sprintf("%s.resnets.%d", p, j), h+skip, C[i])
			if strings.HasPrefix(c.UpBlockTypes[u], "Attn") {
				attn(fmt.Sprintf("%s.attentions.%d", p, j), C[i])
			}
		}
		if u < n-1 {
			conv(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", u), C[i], C[i], 3)
		}
	}
	norm("conv_norm_out", C[0])
	conv("conv_out", c.OutChannels, C[0], 3)
	return m
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDiffusersBinMatchesConfig(t *testing.T) {
	dir := peerDir(t, "tiny-old-bin")
	var cfg unetConfig
	readJSON(t, filepath.Join(dir, "unet", "config.json"), &cfg)
	var fixture struct{ Params int }
	readJSON(t, filepath.Join(dir, "fixture.json"), &fixture)

	c, err := LoadCheckpoint(filepath.Join(dir, "diffusion_pytorch_model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != "zip" || len(c.Unwrapped) != 0 || len(c.Skipped) != 0 {
		t.Errorf("format %q, unwrapped %v, skipped %v; want a bare zip state dict", c.Format, c.Unwrapped, c.Skipped)
	}
	want := expectedShapes(cfg)
	if len(c.Tensors) != len(want) {
		t.Errorf("%d tensors, the config implies %d", len(c.Tensors), len(want))
	}
	params := 0
	for name, w := range c.Tensors {
		shape, ok := want[name]
		if !ok {
			t.Errorf("unexpected tensor %s %v", name, w.Shape)
			continue
		}
		if !slices.Equal(w.Shape, shape) {
			t.Errorf("%s: shape %v, want %v", name, w.Shape, shape)
		}
		if w.DType != "F32" || len(w.F32) != w.NumElements() {
			t.Errorf("%s: dtype %s with %d values for %v", name, w.DType, len(w.F32), w.Shape)
		}
		params += w.NumElements()
	}
	for name := range want {
		if _, ok := c.Tensors[name]; !ok {
			t.Errorf("missing tensor %s", name)
		}
	}
	if params != fixture.Params {
		t.Errorf("%d parameters, fixture.json says %d", params, fixture.Params)
	}

	// unet/ holds the same file as the root (the google repos carry both).
	sub, err := Load(filepath.Join(dir, "unet", "diffusion_pytorch_model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sub) != len(c.Tensors) {
		t.Fatalf("unet/: %d tensors, root: %d", len(sub), len(c.Tensors))
	}
	for name, w := range c.Tensors {
		if !slices.Equal(sub[name].F32, w.F32) || !slices.Equal(sub[name].Shape, w.Shape) {
			t.Errorf("%s differs between the root and unet/", name)
		}
	}
}

// TestDiffusersBinValues checks decoded values against what diffusers
// computed with them: conv_in's output (activations.safetensors) and the time
// MLP's (expected.safetensors: emb from t_emb).
func TestDiffusersBinValues(t *testing.T) {
	dir := peerDir(t, "tiny-old-bin")
	ts, err := Load(filepath.Join(dir, "diffusion_pytorch_model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	exp, _, err := weights.Load(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	act, _, err := weights.Load(filepath.Join(dir, "activations.safetensors"))
	if err != nil {
		t.Fatal(err)
	}

	// conv_in: 3×3, padding 1, on x [B, 3, H, W].
	x, w, b, y := exp["x"], ts["conv_in.weight"], ts["conv_in.bias"], act["conv_in"]
	B, Ci, H, W := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	Co := w.Shape[0]
	got := make([]float32, B*Co*H*W)
	for n := range B {
		for o := range Co {
			for r := range H {
				for s := range W {
					sum := float64(b.F32[o])
					for c := range Ci {
						for kr := range 3 {
							for ks := range 3 {
								rr, ss := r+kr-1, s+ks-1
								if rr < 0 || rr >= H || ss < 0 || ss >= W {
									continue
								}
								sum += float64(w.F32[((o*Ci+c)*3+kr)*3+ks]) * float64(x.F32[((n*Ci+c)*H+rr)*W+ss])
							}
						}
					}
					got[((n*Co+o)*H+r)*W+s] = float32(sum)
				}
			}
		}
	}
	e := relErr(got, y.F32)
	t.Logf("conv_in output: relative error %.2g", e)
	if e > 1e-5 {
		t.Errorf("conv_in output: relative error %.2g against diffusers' activation", e)
	}

	// time_embedding: linear_2(silu(linear_1(t_emb))).
	temb, emb := exp["t_emb"], exp["emb"]
	l1w, l1b, l2w, l2b := ts["time_embedding.linear_1.weight"], ts["time_embedding.linear_1.bias"], ts["time_embedding.linear_2.weight"], ts["time_embedding.linear_2.bias"]
	in, mid, out := temb.Shape[len(temb.Shape)-1], l1w.Shape[0], l2w.Shape[0]
	rows := len(temb.F32) / in
	var gotEmb []float32
	for r := range rows {
		h := make([]float64, mid)
		for o := range mid {
			s := float64(l1b.F32[o])
			for i := range in {
				s += float64(l1w.F32[o*in+i]) * float64(temb.F32[r*in+i])
			}
			h[o] = s / (1 + math.Exp(-s))
		}
		for o := range out {
			s := float64(l2b.F32[o])
			for i := range mid {
				s += float64(l2w.F32[o*mid+i]) * h[i]
			}
			gotEmb = append(gotEmb, float32(s))
		}
	}
	e = relErr(gotEmb, emb.F32)
	t.Logf("time embedding: relative error %.2g", e)
	if e > 1e-5 {
		t.Errorf("time embedding: relative error %.2g against diffusers' emb", e)
	}
}

func relErr(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// pesserToDiffusers maps a pesser/pytorch_diffusion name to diffusers' (old
// attention names) by FACTS.md §3; n is the number of levels (pesser's up.i
// is diffusers' up_blocks.n-1-i).
func pesserToDiffusers(name string, n int) (string, bool) {
	p := strings.Split(name, ".")
	leaf := p[len(p)-1] // weight or bias
	resnet := map[string]string{"norm1": "norm1", "conv1": "conv1", "temb_proj": "time_emb_proj", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
	attn := map[string]string{"norm": "group_norm", "q": "query", "k": "key", "v": "value", "proj_out": "proj_attn"}
	sub := func(m map[string]string, k string) (string, bool) { v, ok := m[k]; return v, ok }
	switch {
	case len(p) == 4 && p[0] == "temb" && p[1] == "dense":
		return fmt.Sprintf("time_embedding.linear_%d.%s", atoi(p[2])+1, leaf), p[2] == "0" || p[2] == "1"
	case len(p) == 2 && (p[0] == "conv_in" || p[0] == "conv_out"):
		return name, true
	case len(p) == 2 && p[0] == "norm_out":
		return "conv_norm_out." + leaf, true
	case len(p) == 4 && p[0] == "mid":
		m := map[string]string{"block_1": "resnets.0", "attn_1": "attentions.0", "block_2": "resnets.1"}[p[1]]
		s, ok := sub(resnet, p[2])
		if strings.HasPrefix(p[1], "attn") {
			s, ok = sub(attn, p[2])
		}
		return "mid_block." + m + "." + s + "." + leaf, ok && m != ""
	case len(p) == 5 && (p[0] == "down" || p[0] == "up") && (p[2] == "downsample" || p[2] == "upsample"):
		i := atoi(p[1])
		if p[0] == "up" {
			return fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.%s", n-1-i, leaf), true
		}
		return fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", i, leaf), true
	case len(p) == 6 && (p[0] == "down" || p[0] == "up"):
		i, block := atoi(p[1]), "down_blocks"
		if p[0] == "up" {
			i, block = n-1-i, "up_blocks"
		}
		kind, s, ok := "resnets", "", false
		switch p[2] {
		case "block":
			s, ok = sub(resnet, p[4])
		case "attn":
			kind = "attentions"
			s, ok = sub(attn, p[4])
		}
		return fmt.Sprintf("%s.%d.%s.%s.%s.%s", block, i, kind, p[3], s, leaf), ok
	}
	return "", false
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func TestPesserCkptMatchesBin(t *testing.T) {
	dir := peerDir(t, "tiny-old-bin")
	var cfg unetConfig
	readJSON(t, filepath.Join(dir, "unet", "config.json"), &cfg)
	bin, err := Load(filepath.Join(dir, "diffusion_pytorch_model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCheckpoint(filepath.Join(dir, "pesser", "model.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Format != "zip" || len(c.Unwrapped) != 0 || len(c.Skipped) != 0 {
		t.Errorf("format %q, unwrapped %v, skipped %v; want a bare zip state dict", c.Format, c.Unwrapped, c.Skipped)
	}
	if len(c.Tensors) != len(bin) {
		t.Errorf("pesser: %d tensors, diffusers: %d", len(c.Tensors), len(bin))
	}
	seen := map[string]bool{}
	for name, w := range c.Tensors {
		dn, ok := pesserToDiffusers(name, len(cfg.BlockOutChannels))
		d, found := bin[dn]
		if !ok || !found {
			t.Errorf("pesser %s: no diffusers counterpart (mapped to %q)", name, dn)
			continue
		}
		seen[dn] = true
		// pesser's attention projections are 1×1 convs, diffusers' Linear.
		shape := w.Shape
		if len(shape) == 4 && shape[2] == 1 && shape[3] == 1 && len(d.Shape) == 2 {
			shape = shape[:2]
		}
		if !slices.Equal(shape, d.Shape) || !slices.Equal(w.F32, d.F32) {
			t.Errorf("pesser %s %v differs from diffusers %s %v", name, w.Shape, dn, d.Shape)
		}
	}
	if len(seen) != len(bin) {
		t.Errorf("pesser's tensors cover %d of diffusers' %d", len(seen), len(bin))
	}
}
