package interop

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/ddpm-go/ddpm/model/unet"
	"github.com/ddpm-go/ddpm/weights"
)

// Naming is a scheme of tensor names for the U-Net's weights. All four
// name the same tensors with the same values; the diffusers schemes store
// the attention projections as Linear weights [C, C], the others as 1×1
// convolutions [C, C, 1, 1].
type Naming int

const (
	// Project: this project's names, those of its PyTorch reference
	// (torch_unet_bench.py): temb_dense0, down.K.0.conv1, down.K.1.q,
	// mid1, mid_attn, up.K.0.nin_shortcut, norm_out, … with K a flat
	// index over each path's entries.
	Project Naming = iota
	// Diffusers: diffusers' UNet2DModel as saved since its Attention
	// rewrite: time_embedding.linear_1, down_blocks.i.resnets.j.conv1,
	// down_blocks.i.attentions.j.to_q / to_k / to_v / to_out.0, …
	Diffusers
	// DiffusersOld: diffusers' earlier AttentionBlock names, which the
	// google/ddpm-* hub files hold: …attentions.j.query / key / value /
	// proj_attn (diffusers renames them on load).
	DiffusersOld
	// Pesser: pesser/pytorch_diffusion's Model (the original TF
	// checkpoints converted): temb.dense.0, down.i.block.j, down.i.attn.j,
	// down.i.downsample.conv, mid.block_1, mid.attn_1, up.i… by level.
	Pesser
)

func (n Naming) String() string {
	switch n {
	case Project:
		return "the project's"
	case Diffusers:
		return "diffusers'"
	case DiffusersOld:
		return "old diffusers' (query/key/value/proj_attn)"
	case Pesser:
		return "pesser/pytorch_diffusion's"
	}
	return fmt.Sprintf("Naming(%d)", int(n))
}

// module kinds.
const (
	plainMod = iota // a conv, linear or norm: weight and bias
	resMod          // a residual block
	attnMod         // an attention block
)

// module is one module of the network under every naming: prefixes
// ending in ".", and its tensors.
type module struct {
	kind                       int
	project, diffusers, pesser string
	params                     []param // in state-dict order, project-local names
}

// param is one tensor of a module: its project-local name and shape.
type param struct {
	local string
	shape []int
}

func (m module) prefix(n Naming) string {
	switch n {
	case Project:
		return m.project
	case Pesser:
		return m.pesser
	}
	return m.diffusers
}

// wb are the weight and bias of a layer whose weight has shape w and
// whose bias has w[0] values.
func wb(prefix string, w ...int) []param {
	return []param{{prefix + "weight", w}, {prefix + "bias", []int{w[0]}}}
}

// resParams are a residual block's tensors (cin → cout channels, time
// embedding temb wide).
func resParams(cin, cout, temb int) []param {
	ps := slices.Concat(wb("norm1.", cin), wb("conv1.", cout, cin, 3, 3), wb("temb_proj.", cout, temb),
		wb("norm2.", cout), wb("conv2.", cout, cout, 3, 3))
	if cin != cout {
		ps = append(ps, wb("nin_shortcut.", cout, cin, 1, 1)...)
	}
	return ps
}

// attnParams are an attention block's tensors over c channels.
func attnParams(c int) []param {
	return slices.Concat(wb("norm.", c), wb("q.", c, c, 1, 1), wb("k.", c, c, 1, 1), wb("v.", c, c, 1, 1), wb("proj_out.", c, c, 1, 1))
}

// localRenames are the project-local sub-module names that a naming calls
// otherwise (pesser's agree with the project's).
var localRenames = map[Naming]map[string]string{
	Diffusers: {"temb_proj.": "time_emb_proj.", "nin_shortcut.": "conv_shortcut.",
		"norm.": "group_norm.", "q.": "to_q.", "k.": "to_k.", "v.": "to_v.", "proj_out.": "to_out.0."},
	DiffusersOld: {"temb_proj.": "time_emb_proj.", "nin_shortcut.": "conv_shortcut.",
		"norm.": "group_norm.", "q.": "query.", "k.": "key.", "v.": "value.", "proj_out.": "proj_attn."},
}

// foreignLocal renames a project-local tensor name under naming n.
func foreignLocal(local string, n Naming) string {
	if i := strings.IndexByte(local, '.'); i >= 0 {
		if r, ok := localRenames[n][local[:i+1]]; ok {
			return r + local[i+1:]
		}
	}
	return local
}

// isLinearAttn reports whether the project tensor local of module m is an
// attention projection's weight, a [C, C] Linear in diffusers' files.
func (m module) isLinearAttn(local string) bool {
	return m.kind == attnMod && slices.Contains([]string{"q.weight", "k.weight", "v.weight", "proj_out.weight"}, local)
}

// modules lists the network's modules in state-dict order, mirroring the
// construction in model/unet (New).
func modules(cfg unet.Config) []module {
	cfg = cfg.Normalized()
	var ms []module
	temb := 4 * cfg.Ch
	plain := func(p, d, s string, w ...int) {
		ms = append(ms, module{kind: plainMod, project: p, diffusers: d, pesser: s, params: wb("", w...)})
	}
	res := func(p, d, s string, cin, cout int) {
		ms = append(ms, module{kind: resMod, project: p, diffusers: d, pesser: s, params: resParams(cin, cout, temb)})
	}
	attn := func(p, d, s string, c int) {
		ms = append(ms, module{kind: attnMod, project: p, diffusers: d, pesser: s, params: attnParams(c)})
	}
	f := fmt.Sprintf
	plain("temb_dense0.", "time_embedding.linear_1.", "temb.dense.0.", temb, cfg.Ch)
	plain("temb_dense1.", "time_embedding.linear_2.", "temb.dense.1.", temb, temb)
	plain("conv_in.", "conv_in.", "conv_in.", cfg.Ch, cfg.InCh, 3, 3)
	n := len(cfg.ChMult)
	chans := []int{cfg.Ch}
	cur, r, k := cfg.Ch, cfg.Res, 0
	for i, m := range cfg.ChMult {
		for j := range cfg.Blocks(i) {
			cout := cfg.Ch * m
			res(f("down.%d.0.", k), f("down_blocks.%d.resnets.%d.", i, j), f("down.%d.block.%d.", i, j), cur, cout)
			if slices.Contains(cfg.AttnRes, r) {
				attn(f("down.%d.1.", k), f("down_blocks.%d.attentions.%d.", i, j), f("down.%d.attn.%d.", i, j), cout)
			}
			cur = cout
			chans = append(chans, cur)
			k++
		}
		if i != n-1 {
			plain(f("down.%d.0.", k), f("down_blocks.%d.downsamplers.0.conv.", i), f("down.%d.downsample.conv.", i), cur, cur, 3, 3)
			chans = append(chans, cur)
			k++
			r /= 2
		}
	}
	res("mid1.", "mid_block.resnets.0.", "mid.block_1.", cur, cur)
	attn("mid_attn.", "mid_block.attentions.0.", "mid.attn_1.", cur)
	res("mid2.", "mid_block.resnets.1.", "mid.block_2.", cur, cur)
	k = 0
	for i := n - 1; i >= 0; i-- {
		u := n - 1 - i // diffusers' up_blocks run from the lowest resolution; pesser's up is by level
		for j := range cfg.Blocks(i) + 1 {
			skip := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			cout := cfg.Ch * cfg.ChMult[i]
			res(f("up.%d.0.", k), f("up_blocks.%d.resnets.%d.", u, j), f("up.%d.block.%d.", i, j), cur+skip, cout)
			if slices.Contains(cfg.AttnRes, r) {
				attn(f("up.%d.1.", k), f("up_blocks.%d.attentions.%d.", u, j), f("up.%d.attn.%d.", i, j), cout)
			}
			cur = cout
			k++
		}
		if i != 0 {
			plain(f("up.%d.0.", k), f("up_blocks.%d.upsamplers.0.conv.", u), f("up.%d.upsample.conv.", i), cur, cur, 3, 3)
			k++
			r *= 2
		}
	}
	plain("norm_out.", "conv_norm_out.", "norm_out.", cur)
	plain("conv_out.", "conv_out.", "conv_out.", cfg.OutCh, cur, 3, 3)
	return ms
}

// tensorName is one tensor under the project's and a foreign naming.
type tensorName struct {
	project, foreign string
	shape            []int // the project's shape
	linear           bool  // an attention projection weight, [C, C] under diffusers' namings
}

// names lists every tensor of the network of cfg in state-dict order.
func names(cfg unet.Config, n Naming) []tensorName {
	var out []tensorName
	for _, m := range modules(cfg) {
		for _, p := range m.params {
			out = append(out, tensorName{project: m.project + p.local, foreign: m.prefix(n) + foreignLocal(p.local, n),
				shape: p.shape, linear: m.isLinearAttn(p.local) && (n == Diffusers || n == DiffusersOld)})
		}
	}
	return out
}

// ParamNames lists the parameter names of the project's network for cfg in
// state-dict order, as unet.New(cfg).Params() names them, without building
// it.
func ParamNames(cfg unet.Config) []string {
	var out []string
	for _, t := range names(cfg, Project) {
		out = append(out, t.project)
	}
	return out
}

// NameMap maps each of the project's parameter names for cfg to its name
// under naming n.
func NameMap(cfg unet.Config, n Naming) map[string]string {
	m := map[string]string{}
	for _, t := range names(cfg, n) {
		m[t.project] = t.foreign
	}
	return m
}

// DetectNaming tells which naming a state dict's tensor names follow, from
// the time embedding's first layer and (for diffusers) the middle block's
// attention query.
func DetectNaming(sd map[string]weights.Tensor) (Naming, error) {
	return detectNaming(func(name string) bool { return has(sd, name) })
}

// detectNaming is DetectNaming over a set of names.
func detectNaming(has func(string) bool) (Naming, error) {
	switch {
	case has("time_embedding.linear_1.weight"):
		if has("mid_block.attentions.0.query.weight") {
			return DiffusersOld, nil
		}
		return Diffusers, nil
	case has("temb.dense.0.weight"):
		return Pesser, nil
	case has("temb_dense0.weight"):
		return Project, nil
	}
	return 0, errors.New("the tensor names are none of diffusers' (time_embedding.linear_1.weight), pesser's (temb.dense.0.weight) or the project's (temb_dense0.weight)")
}

func has(sd map[string]weights.Tensor, name string) bool {
	_, ok := sd[name]
	return ok
}

// IsDiffusersNames reports whether tensor names are a diffusers
// UNet2DModel's (new or old attention names).
func IsDiffusersNames(names []string) bool {
	return slices.Contains(names, "time_embedding.linear_1.weight") && slices.Contains(names, "conv_in.weight")
}

// ToProject renames the state dict sd of the network of cfg, in any
// naming (DetectNaming), to the project's names and layouts, which
// unet.UNet.LoadStateDict takes. It checks that sd holds exactly the
// network's tensors with their shapes; the errors name the tensors as sd
// names them.
func ToProject(cfg unet.Config, sd map[string]weights.Tensor) (map[string]weights.Tensor, Naming, error) {
	meta := make(map[string]tensorMeta, len(sd))
	for name, v := range sd {
		meta[name] = tensorMeta{v.DType, v.Shape, v.F32 != nil}
	}
	pairs, n, err := plan(cfg, meta)
	if err != nil {
		return nil, n, err
	}
	out := make(map[string]weights.Tensor, len(sd))
	for _, p := range pairs {
		out[p.project] = weights.Tensor{DType: sd[p.foreign].DType, Shape: p.shape, F32: sd[p.foreign].F32}
	}
	return out, n, nil
}

// tensorMeta is what plan needs of a tensor: its dtype, shape and whether
// it holds floating-point data.
type tensorMeta struct {
	dtype string
	shape []int
	float bool
}

// lazyMeta is the tensorMeta of lazily read tensors.
func lazyMeta(sd map[string]weights.Lazy) map[string]tensorMeta {
	meta := make(map[string]tensorMeta, len(sd))
	for name, v := range sd {
		meta[name] = tensorMeta{v.DType, v.Shape, v.IsFloat()}
	}
	return meta
}

// plan matches the tensors of sd, in any naming (DetectNaming), to the
// network of cfg: for each of its parameters in state-dict order, the
// tensor of sd that holds it. It checks that sd holds exactly the network's
// tensors with their shapes; the errors name the tensors as sd names them.
func plan(cfg unet.Config, sd map[string]tensorMeta) ([]tensorName, Naming, error) {
	n, err := detectNaming(func(name string) bool { _, ok := sd[name]; return ok })
	if err != nil {
		return nil, 0, err
	}
	want := map[string]bool{}
	ts := names(cfg, n)
	for _, t := range ts {
		want[t.foreign] = true
		v, ok := sd[t.foreign]
		if !ok {
			return nil, n, fmt.Errorf("tensor %s is missing (%s names; a checkpoint of another config?)", t.foreign, n)
		}
		got := v.shape
		if t.linear && len(got) == 2 {
			got = append(slices.Clone(got), 1, 1) // Linear [C, C] → 1×1 conv
		}
		if !slices.Equal(got, t.shape) || !v.float {
			return nil, n, fmt.Errorf("tensor %s is %s%v, the config needs float %v", t.foreign, v.dtype, v.shape, foreignShape(t.shape, t.linear))
		}
	}
	if len(want) != len(sd) {
		var extra []string
		for name := range sd {
			if !want[name] {
				extra = append(extra, name)
			}
		}
		sort.Strings(extra)
		return nil, n, fmt.Errorf("%d unexpected tensors, first %s (%s names; a checkpoint of another config?)", len(extra), extra[0], n)
	}
	return ts, n, nil
}

// foreignShape is a project shape as a Linear holds it when linear.
func foreignShape(shape []int, linear bool) []int {
	if linear {
		return shape[:2]
	}
	return shape
}

// FromProject is the network's state dict under naming n (the attention
// projections as [C, C] Linear weights under diffusers' namings). The
// tensors alias the network's weights.
func FromProject(u *unet.UNet, n Naming) map[string]weights.Tensor {
	sd := u.StateDict()
	out := make(map[string]weights.Tensor, len(sd))
	for _, t := range names(u.Config(), n) {
		v := sd[t.project]
		if t.linear {
			v.Shape = v.Shape[:2]
		}
		out[t.foreign] = v
	}
	return out
}
