package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/ddpm-go/ddpm/model/unet"
)

// DiffusersVersion is the _diffusers_version written into exported
// configs: the diffusers whose UNet2DModel and DDPMScheduler this package
// was checked against (FACTS.md of the fixtures; any release since 0.21
// reads the files).
const DiffusersVersion = "0.40.0.dev0"

// Block types of UNet2DModel that the project's network expresses: plain
// residual blocks and residual blocks each followed by self-attention.
const (
	downBlock     = "DownBlock2D"
	attnDownBlock = "AttnDownBlock2D"
	upBlock       = "UpBlock2D"
	attnUpBlock   = "AttnUpBlock2D"
)

// UNet2DModel's defaults (diffusers' models/unets/unet_2d.py): what an
// absent key means. They are not DDPM's: an absent attention_head_dim is 8
// channels per head, an absent freq_shift 0 with flip_sin_to_cos true, an
// absent norm_eps 1e-5, an absent downsample_padding 1.
var (
	defaultDownBlocks    = []string{downBlock, attnDownBlock, attnDownBlock, attnDownBlock}
	defaultUpBlocks      = []string{attnUpBlock, attnUpBlock, attnUpBlock, upBlock}
	defaultBlockChannels = []int{224, 448, 672, 896}
)

const (
	defaultLayersPerBlock   = 2
	defaultAttentionHeadDim = 8
	defaultNormGroups       = 32
	defaultNormEps          = 1e-5
	defaultFreqShift        = 0
	defaultFlipSinToCos     = true
	defaultDownsamplePad    = 1
)

// ReadUNetConfig is UNetConfig on the file at path.
func ReadUNetConfig(path string) (unet.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return unet.Config{}, err
	}
	return UNetConfig(path, data)
}

// UNetConfig maps a diffusers UNet2DModel config.json (file names it in
// errors) to the project's network. Absent keys take UNet2DModel's
// defaults; a JSON null is Python's None (attention_head_dim null is one
// head per block). Whatever the network cannot compute is refused in one
// line naming the key: block types other than DownBlock2D/AttnDownBlock2D/
// UpBlock2D/AttnUpBlock2D, attention on one path only, channel counts that
// are not multiples of the first, resnet_time_scale_shift other than
// "default", act_fn other than silu, class embeddings, center_input_sample,
// time embeddings other than positional (or another width than 4×
// block_out_channels[0]), mid_block_scale_factor ≠ 1, downsample/upsample
// types other than conv, no mid-block attention, another group count for
// the attention norms, attention heads that do not divide the channels, and
// any key this package does not know.
func UNetConfig(file string, data []byte) (unet.Config, error) {
	c, err := parseConf(file, data)
	if err != nil {
		return unet.Config{}, err
	}
	cfg, err := unetConfig(c)
	if err != nil {
		return unet.Config{}, err
	}
	return cfg, nil
}

func unetConfig(c *jsonConf) (unet.Config, error) {
	var cfg unet.Config
	if cls, err := c.str("_class_name", "UNet2DModel"); err != nil {
		return cfg, err
	} else if cls != "UNet2DModel" {
		return cfg, c.errf("_class_name", "only UNet2DModel (the DDPM U-Net) can be expressed")
	}
	// Keys that must hold one value.
	for _, k := range []struct{ key, want, why string }{
		{"time_embedding_type", "positional", "only the sinusoidal (positional) timestep embedding can be expressed"},
		{"resnet_time_scale_shift", "default", `the residual blocks add the time embedding ("default"); scale-shift conditioning cannot be expressed`},
		{"downsample_type", "conv", "only the strided-conv Downsample can be expressed"},
		{"upsample_type", "conv", "only the nearest-neighbour + conv Upsample can be expressed"},
		{"mid_block_type", "UNetMidBlock2D", "only UNetMidBlock2D (resnet, attention, resnet) can be expressed"},
	} {
		if v, err := c.str(k.key, k.want); err != nil {
			return cfg, err
		} else if v != k.want {
			return cfg, c.errf(k.key, "%s", k.why)
		}
	}
	if act, err := c.str("act_fn", "silu"); err != nil {
		return cfg, err
	} else if act != "silu" && act != "swish" {
		return cfg, c.errf("act_fn", "only silu (swish) can be expressed")
	}
	for _, k := range []struct {
		key  string
		def  bool
		why  string
		want bool
	}{
		{"center_input_sample", false, "inputs rescaled from [0, 1] cannot be expressed", false},
		{"add_attention", true, "a middle block without attention cannot be expressed", true},
		{"attention_legacy_order", false, "the legacy head order cannot be expressed", false},
	} {
		if v, err := c.boolean(k.key, k.def); err != nil {
			return cfg, err
		} else if v != k.want {
			return cfg, c.errf(k.key, "%s", k.why)
		}
	}
	for _, key := range []string{"class_embed_type", "num_class_embeds"} {
		if _, present, null := c.get(key); present && !null {
			return cfg, c.errf(key, "class-conditional models cannot be expressed")
		}
	}
	c.get("num_train_timesteps") // the learned embedding's table size: unused by positional

	// Sizes.
	res, err := sampleSize(c)
	if err != nil {
		return cfg, err
	}
	in, _, err := c.integer("in_channels", 3)
	if err != nil {
		return cfg, err
	}
	out, _, err := c.integer("out_channels", 3)
	if err != nil {
		return cfg, err
	}
	chans, err := c.ints("block_out_channels", defaultBlockChannels)
	if err != nil {
		return cfg, err
	}
	if len(chans) == 0 || chans[0] < 1 {
		return cfg, c.errf("block_out_channels", "need at least one positive channel count")
	}
	ch := chans[0]
	mult := make([]int, len(chans))
	for i, v := range chans {
		if v < 1 || v%ch != 0 {
			return cfg, c.errf("block_out_channels", "level %d's %d channels are not a multiple of the first level's %d (the project's levels are ch × ch_mult)", i, v, ch)
		}
		mult[i] = v / ch
	}
	if v, null, err := c.integer("time_embedding_dim", 4*ch); err != nil {
		return cfg, err
	} else if !null && v != 4*ch {
		return cfg, c.errf("time_embedding_dim", "the time embedding is 4 × block_out_channels[0] = %d wide in the project's network", 4*ch)
	}
	layers, _, err := c.integer("layers_per_block", defaultLayersPerBlock)
	if err != nil {
		return cfg, c.errf("layers_per_block", "one count for every level is needed")
	}
	if layers < 1 {
		return cfg, c.errf("layers_per_block", "need at least 1")
	}
	if v, _, err := c.number("mid_block_scale_factor", 1); err != nil {
		return cfg, err
	} else if v != 1 {
		return cfg, c.errf("mid_block_scale_factor", "only 1 (no rescaling of the middle block's residuals) can be expressed")
	}

	// Attention placement: by level, the same on both paths.
	down, err := c.strs("down_block_types", defaultDownBlocks)
	if err != nil {
		return cfg, err
	}
	up, err := c.strs("up_block_types", defaultUpBlocks)
	if err != nil {
		return cfg, err
	}
	n := len(chans)
	if len(down) != n {
		return cfg, c.errf("down_block_types", "%d block types for %d entries of block_out_channels", len(down), n)
	}
	if len(up) != n {
		return cfg, c.errf("up_block_types", "%d block types for %d entries of block_out_channels", len(up), n)
	}
	var attnRes []int
	for i := range n {
		a, ok := map[string]bool{downBlock: false, attnDownBlock: true}[down[i]]
		if !ok {
			return cfg, c.errf("down_block_types", "block %d is %s; only %s and %s can be expressed", i, down[i], downBlock, attnDownBlock)
		}
		u := n - 1 - i // up_blocks run from the lowest resolution
		b, ok := map[string]bool{upBlock: false, attnUpBlock: true}[up[u]]
		if !ok {
			return cfg, c.errf("up_block_types", "block %d is %s; only %s and %s can be expressed", u, up[u], upBlock, attnUpBlock)
		}
		if a != b {
			return cfg, c.errf("up_block_types", "block %d is %s but its level's down block %d is %s: the project's network has attention on both paths of a level or on neither", u, up[u], i, down[i])
		}
		if a {
			attnRes = append(attnRes, res>>i)
		}
	}

	// Norms, attention heads, embedding, downsampling.
	groups, null, err := c.integer("norm_num_groups", defaultNormGroups)
	if err != nil {
		return cfg, err
	} else if null || groups < 1 {
		return cfg, c.errf("norm_num_groups", "a group count is needed")
	}
	if v, null, err := c.integer("attn_norm_num_groups", groups); err != nil {
		return cfg, err
	} else if !null && v != groups {
		return cfg, c.errf("attn_norm_num_groups", "the attention norms have norm_num_groups = %d groups in the project's network", groups)
	}
	eps, _, err := c.number("norm_eps", defaultNormEps)
	if err != nil {
		return cfg, err
	} else if !(eps > 0 && eps < 1) {
		return cfg, c.errf("norm_eps", "need 0 < eps < 1")
	}
	headDim, null, err := c.integer("attention_head_dim", defaultAttentionHeadDim)
	if err != nil {
		return cfg, err
	}
	if null {
		headDim = 0 // None: one head of all the channels, in every block
	} else if headDim < 1 {
		return cfg, c.errf("attention_head_dim", "need a positive channel count (or null: one head)")
	}
	if headDim > 0 {
		for i := range n {
			if (slices.Contains(attnRes, res>>i) || i == n-1) && chans[i]%headDim != 0 {
				return cfg, c.errf("attention_head_dim", "level %d's %d channels do not split into heads of %d (diffusers would project to %d channels)", i, chans[i], headDim, chans[i]/headDim*headDim)
			}
		}
	}
	shift, _, err := c.integer("freq_shift", defaultFreqShift)
	if err != nil {
		return cfg, err
	}
	flip, err := c.boolean("flip_sin_to_cos", defaultFlipSinToCos)
	if err != nil {
		return cfg, err
	}
	pad, _, err := c.integer("downsample_padding", defaultDownsamplePad)
	if err != nil {
		return cfg, err
	} else if pad != 0 && pad != 1 {
		return cfg, c.errf("downsample_padding", "only 1 (padding all round) and 0 (one row and column after the image, TensorFlow's SAME) can be expressed")
	}
	dropout, _, err := c.number("dropout", 0)
	if err != nil {
		return cfg, err
	}
	if err := c.unknown(); err != nil {
		return cfg, err
	}

	cfg = unet.Config{InCh: in, OutCh: out, Res: res, Ch: ch, ChMult: mult, NumResBlocks: layers,
		AttnRes: attnRes, Groups: groups, Dropout: float32(dropout),
		AsymmetricDownsample: pad == 0, AttentionHeadDim: headDim, FlipSinToCos: flip}
	if cfg.AttnRes == nil {
		cfg.AttnRes = []int{}
	}
	// The DDPM values stay unset, so that a google/ddpm-* config reads as
	// the DDPM network plus its asymmetric downsampling.
	if shift != 1 {
		cfg.FreqShift = unet.IntPtr(shift)
	}
	if eps != unet.GNEps {
		cfg.NormEps = eps
	}
	if headDim > 0 && allOneHead(cfg) {
		cfg.AttentionHeadDim = 0
	}
	if err := cfg.Validate(); err != nil {
		return unet.Config{}, fmt.Errorf("%s: %v", c.file, err)
	}
	return cfg, nil
}

// allOneHead reports whether every attention block of cfg (AttentionHeadDim
// set) has exactly one head: then the head dimension says nothing.
func allOneHead(cfg unet.Config) bool {
	n := len(cfg.ChMult)
	for i, m := range cfg.ChMult {
		if (slices.Contains(cfg.AttnRes, cfg.Res>>i) || i == n-1) && cfg.Heads(cfg.Ch*m) != 1 {
			return false
		}
	}
	return true
}

// sampleSize reads sample_size: an int, or [h, w] with h = w.
func sampleSize(c *jsonConf) (int, error) {
	raw, present, null := c.get("sample_size")
	if !present || null {
		return 0, c.errf("sample_size", "the image size is needed (UNet2DModel's default None does not say it)")
	}
	var v float64
	if json.Unmarshal(raw, &v) == nil && v == float64(int(v)) && v >= 1 {
		return int(v), nil
	}
	var hw []float64
	if json.Unmarshal(raw, &hw) == nil && len(hw) == 2 && hw[0] == hw[1] && hw[0] == float64(int(hw[0])) && hw[0] >= 1 {
		return int(hw[0]), nil
	}
	return 0, c.errf("sample_size", "only square images (one whole number, or [h, w] with h = w) can be expressed")
}

// DiffusersUNetConfig is the UNet2DModel config.json of the network cfg,
// with every key UNet2DModel takes (nothing left to its defaults). It
// refuses, in one line, what UNet2DModel cannot express: per-level block
// counts (level_blocks).
func DiffusersUNetConfig(cfg unet.Config) (map[string]any, error) {
	cfg = cfg.Normalized()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	layers := cfg.NumResBlocks
	for i, b := range cfg.LevelBlocks {
		if b != cfg.LevelBlocks[0] {
			return nil, fmt.Errorf("level_blocks %v: UNet2DModel has one layers_per_block for every level (level %d has %d blocks, level 0 %d)", cfg.LevelBlocks, i, b, cfg.LevelBlocks[0])
		}
		layers = b
	}
	n := len(cfg.ChMult)
	chans := make([]int, n)
	down, up := make([]string, n), make([]string, n)
	for i, m := range cfg.ChMult {
		chans[i] = cfg.Ch * m
		down[i], up[n-1-i] = downBlock, upBlock
		if slices.Contains(cfg.AttnRes, cfg.Res>>i) {
			down[i], up[n-1-i] = attnDownBlock, attnUpBlock
		}
	}
	var headDim any // null: one head of all the channels
	if cfg.AttentionHeadDim > 0 {
		headDim = cfg.AttentionHeadDim
	}
	pad := 1
	if cfg.AsymmetricDownsample {
		pad = 0
	}
	dropout, _ := strconv.ParseFloat(strconv.FormatFloat(float64(cfg.Dropout), 'g', -1, 32), 64)
	return map[string]any{
		"_class_name":             "UNet2DModel",
		"_diffusers_version":      DiffusersVersion,
		"act_fn":                  "silu",
		"add_attention":           true,
		"attention_head_dim":      headDim,
		"attn_norm_num_groups":    nil,
		"block_out_channels":      chans,
		"center_input_sample":     false,
		"class_embed_type":        nil,
		"down_block_types":        down,
		"downsample_padding":      pad,
		"downsample_type":         "conv",
		"dropout":                 dropout,
		"flip_sin_to_cos":         cfg.FlipSinToCos,
		"freq_shift":              cfg.TimeFreqShift(),
		"in_channels":             cfg.InCh,
		"layers_per_block":        layers,
		"mid_block_scale_factor":  1,
		"norm_eps":                cfg.GroupNormEps(),
		"norm_num_groups":         cfg.Groups,
		"num_class_embeds":        nil,
		"num_train_timesteps":     nil,
		"out_channels":            cfg.OutCh,
		"resnet_time_scale_shift": "default",
		"sample_size":             cfg.Res,
		"time_embedding_dim":      nil,
		"time_embedding_type":     "positional",
		"up_block_types":          up,
		"upsample_type":           "conv",
	}, nil
}
