package unet

import (
	"fmt"
	"slices"
	"sort"

	"github.com/ddpm-go/ddpm/internal/text"
)

// Config describes a DDPM U-Net. The field names and JSON keys mirror the
// keyword arguments of the PyTorch reference (torch_unet_bench.py), so a
// config stored in a checkpoint reads the same on both sides.
type Config struct {
	InCh         int   `json:"in_ch"`          // image channels
	OutCh        int   `json:"out_ch"`         // output channels; 0 means InCh (2·InCh for learned variances)
	Res          int   `json:"res"`            // image height = width
	Ch           int   `json:"ch"`             // base channel count (timestep embedding is 4·Ch wide)
	ChMult       []int `json:"ch_mult"`        // channel multiplier per resolution level
	NumResBlocks int   `json:"num_res_blocks"` // residual blocks per level on the way down (one more on the way up)
	// LevelBlocks, when set, overrides NumResBlocks level by level (one
	// count per ChMult entry): depth where the network needs it, e.g. more
	// blocks at the low resolutions that carry a digit's global shape. Not
	// in the PyTorch reference, whose configs leave it unset.
	LevelBlocks []int   `json:"level_blocks,omitempty"`
	AttnRes     []int   `json:"attn_res"` // resolutions at which blocks are followed by self-attention
	Groups      int     `json:"groups"`   // GroupNorm groups
	Dropout     float32 `json:"dropout"`  // dropout inside residual blocks (training only)

	// Variants of the architecture, for networks made elsewhere (Hugging
	// Face diffusers' UNet2DModel: see package interop). Their zero
	// values are the DDPM network, and they are left out of the JSON
	// then, so the project's own files read and write as before.

	// AsymmetricDownsample pads each Downsample's input by one zero row
	// below and one zero column right and convolves without padding
	// (TensorFlow's "SAME" for stride 2; diffusers' downsample_padding 0,
	// as in the official TF code and every google/ddpm-* model), instead
	// of padding 1 all round (PyTorch; downsample_padding 1).
	AsymmetricDownsample bool `json:"asymmetric_downsample,omitempty"`
	// AttentionHeadDim is the channels per attention head (diffusers'
	// attention_head_dim): a block of C channels has C/AttentionHeadDim
	// heads. 0 is one head of all the channels.
	AttentionHeadDim int `json:"attention_head_dim,omitempty"`
	// FlipSinToCos puts the cosines first in the timestep embedding
	// (diffusers' flip_sin_to_cos).
	FlipSinToCos bool `json:"flip_sin_to_cos,omitempty"`
	// FreqShift is diffusers' freq_shift: the embedding's frequencies are
	// 10000^(−i/(Ch/2 − FreqShift)). nil is 1, the DDPM embedding.
	FreqShift *int `json:"freq_shift,omitempty"`
	// NormEps is every GroupNorm's epsilon; 0 is GNEps.
	NormEps float64 `json:"norm_eps,omitempty"`
}

// GNEps is the GroupNorm epsilon of the official DDPM code and the PyTorch
// reference (not PyTorch's default 1e-5), used unless Config.NormEps says
// otherwise.
const GNEps = 1e-6

// GroupNormEps is the network's GroupNorm epsilon: NormEps, or GNEps when
// it is unset.
func (c Config) GroupNormEps() float64 {
	if c.NormEps == 0 {
		return GNEps
	}
	return c.NormEps
}

// TimeFreqShift is the timestep embedding's frequency shift: FreqShift,
// or 1 when it is unset.
func (c Config) TimeFreqShift() int {
	if c.FreqShift == nil {
		return 1
	}
	return *c.FreqShift
}

// Heads is the number of attention heads of a block of ch channels.
func (c Config) Heads(ch int) int {
	if c.AttentionHeadDim <= 0 {
		return 1
	}
	return ch / c.AttentionHeadDim
}

// IntPtr returns a pointer to v, for Config.FreqShift.
func IntPtr(v int) *int { return &v }

// configs are the named configurations, for --config. tiny, small and cifar
// are exactly the reference script's CONFIGS (tiny exists for the golden
// test vectors; cifar is the paper's CIFAR-10 network). The 28×28 ones
// downsample 28→14→7 with stride-2 convs. ConfigNames lists them;
// ConfigByName also finds the retired ones, so that the commands recorded
// with the models trained on them still run.
var configs = map[string]namedConfig{
	"tiny": {cfg: Config{InCh: 3, Res: 16, Ch: 16, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{8}, Groups: 4, Dropout: 0},
		params: 280755, note: "the reference script's golden-test network"},
	"small": {cfg: Config{InCh: 1, Res: 32, Ch: 32, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{16}, Groups: 8, Dropout: 0},
		params: 1112801, note: "the reference script's small network (MNIST padded to 32×32)"},
	"cifar": {cfg: Config{InCh: 3, Res: 32, Ch: 128, ChMult: []int{1, 2, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, Dropout: 0.1},
		params: 35746307, note: "the paper's CIFAR-10 network"},
	// celebahq256 is the paper's 256×256 network (CelebA-HQ, LSUN): too
	// large to train here, listed for timing and for imported weights.
	"celebahq256": {cfg: Config{InCh: 3, Res: 256, Ch: 128, ChMult: []int{1, 1, 2, 2, 4, 4}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, Dropout: 0},
		params: 113673219, note: "the paper's CelebA-HQ and LSUN 256×256 network"},
	// rgb32 is cifar at half the width and one level fewer: a quarter of
	// its work per image, for RGB data sets on a CPU budget.
	"rgb32": {cfg: Config{InCh: 3, Res: 32, Ch: 64, ChMult: []int{1, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, Dropout: 0.1},
		params: 6472195, note: "mid-size RGB network, between tiny32 and cifar"},
	// emoji32 is sized to the colour model's sampling budget (64 images of
	// DDIM-50 in ≤ 15 s, the 1000-step chain in ≤ 5 min on 2 cores): 0.73
	// GFLOP per image, about 3× mnist-deeper (BenchmarkSampleStepMNISTDeeper).
	"emoji32": {cfg: Config{InCh: 3, Res: 32, Ch: 32, ChMult: []int{1, 2, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{8}, Groups: 8, Dropout: 0.1},
		params: 2245763, note: "the emoji model's RGB network"},
	"mnist": {cfg: Config{InCh: 1, Res: 28, Ch: 32, ChMult: []int{1, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{14}, Groups: 8, Dropout: 0.1},
		params: 1623169, note: "small at 28×28 with two blocks per level"},
	// mnist-small is small at MNIST's own 28×28 (no padding): a quarter less
	// work per image, and bits/dim over the data's real dimensions.
	"mnist-small": {cfg: Config{InCh: 1, Res: 28, Ch: 32, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{14}, Groups: 8, Dropout: 0},
		params: 1112801, note: "small at 28×28; the Table 2 ablation's default"},
	// mnist-fast halves mnist-small's work (24/48/48 channels, attention
	// only at 7×7) so that a 64-image, 1000-step chain takes minutes.
	"mnist-fast": {cfg: Config{InCh: 1, Res: 28, Ch: 24, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{7}, Groups: 8, Dropout: 0},
		params: 627433, note: "the first shipped MNIST and Fashion-MNIST models' network"},
	// mnist-deeper spends mnist-fast's work on depth: 16/32/64 channels, two
	// residual blocks per level and three at 7×7, where a digit's global
	// shape is decided.
	"mnist-deeper": {cfg: Config{InCh: 1, Res: 28, Ch: 16, ChMult: []int{1, 2, 4}, NumResBlocks: 2,
		LevelBlocks: []int{2, 2, 3}, AttnRes: []int{7}, Groups: 8, Dropout: 0},
		params: 1224545, note: "the shipped MNIST model's network (with the cosine schedule)"},
	// mnist-wide is mnist-deeper at twice the width (32/64/128 channels),
	// four times the work: for Fashion-MNIST, where width mattered more than
	// training length (docs/quality.md, "Width or training length").
	"mnist-wide": {cfg: Config{InCh: 1, Res: 28, Ch: 32, ChMult: []int{1, 2, 4}, NumResBlocks: 2,
		LevelBlocks: []int{2, 2, 3}, AttnRes: []int{7}, Groups: 8, Dropout: 0},
		params: 4876993, note: "mnist-deeper at twice the width: the shipped Fashion-MNIST model's network (with the cosine schedule)"},
	// Test-sized networks for the data sets tiny (3×16×16) cannot take,
	// which the reliability tests train for a handful of steps.
	"tiny1": {cfg: Config{InCh: 1, Res: 32, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1,
		AttnRes: []int{16}, Groups: 4, Dropout: 0},
		params: 44969, note: "test-sized, for grey images (MNIST padded to 32×32)"},
	"tiny32": {cfg: Config{InCh: 3, Res: 32, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1,
		AttnRes: []int{16}, Groups: 4, Dropout: 0},
		params: 45259, note: "test-sized, for CIFAR-10"},

	// Retired: not listed, loadable by name. Model files record their
	// whole config, so they load without these.
	"mnist-deep": {cfg: Config{InCh: 1, Res: 28, Ch: 16, ChMult: []int{1, 2, 4}, NumResBlocks: 2,
		AttnRes: []int{7}, Groups: 8, Dropout: 0},
		params: 989217, note: "the MNIST network before mnist-deeper", retired: true},
	"mnist-fast2": {cfg: Config{InCh: 1, Res: 28, Ch: 16, ChMult: []int{1, 3, 4}, NumResBlocks: 1,
		AttnRes: []int{7}, Groups: 8, Dropout: 0},
		params: 811921, note: "a wider-at-7×7 mnist-fast, no better", retired: true},
}

// namedConfig is a configs entry.
type namedConfig struct {
	cfg     Config
	params  int    // parameter count (TestConfigDescriptions checks it)
	note    string // what the config is for
	retired bool   // left out of ConfigNames
}

// ConfigNames lists the named configurations a user should pick from, in
// sorted order (for help text). Retired names are left out.
func ConfigNames() []string {
	names := make([]string, 0, len(configs))
	for n, c := range configs {
		if !c.retired {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// ConfigByName returns a copy of a named configuration (the slices are
// copied too, so the caller may modify the result freely). It also finds
// the retired names ConfigNames leaves out.
func ConfigByName(name string) (Config, error) {
	c, ok := configs[name]
	if !ok {
		return Config{}, fmt.Errorf("unet: unknown config %q (have %v)", name, ConfigNames())
	}
	return c.cfg.clone(), nil
}

// ConfigDescription is a one-line description of a named configuration:
// resolution, image channels, parameter count and what it is for, e.g.
// "28×28, 1 channel, 1.22M parameters: …". It is "" for an unknown name.
func ConfigDescription(name string) string {
	c, ok := configs[name]
	if !ok {
		return ""
	}
	note := c.note
	if c.retired {
		note = "retired: " + note
	}
	return fmt.Sprintf("%d×%d, %s, %s parameters: %s", c.cfg.Res, c.cfg.Res,
		text.Plural(c.cfg.InCh, "channel"), text.Count(c.params), note)
}

// clone returns c with its slices (and FreqShift) copied.
func (c Config) clone() Config {
	c.ChMult = slices.Clone(c.ChMult)
	c.AttnRes = slices.Clone(c.AttnRes)
	c.LevelBlocks = slices.Clone(c.LevelBlocks)
	if c.FreqShift != nil {
		c.FreqShift = IntPtr(*c.FreqShift)
	}
	return c
}

// Normalized returns the config with defaults filled in (OutCh = InCh when
// unset) and its slices copied.
func (c Config) Normalized() Config {
	if c.OutCh == 0 {
		c.OutCh = c.InCh
	}
	return c.clone()
}

// Blocks is the number of residual blocks of level i on the way down (the
// way up has one more): LevelBlocks[i] when set, else NumResBlocks.
func (c Config) Blocks(i int) int {
	if c.LevelBlocks != nil {
		return c.LevelBlocks[i]
	}
	return c.NumResBlocks
}

// Validate reports the first reason the network cannot be built. The checks
// are the shapes the layers silently assume: every stride-2 level halves an
// even size exactly (so the upsampled path lines up with the skip
// connections), every GroupNorm's channel count divides into its groups, and
// the sinusoidal embedding has at least two frequencies.
func (c Config) Validate() error {
	c = c.Normalized()
	switch {
	case c.InCh < 1:
		return fmt.Errorf("unet: config: in_ch = %d, need ≥ 1", c.InCh)
	case c.OutCh < 1:
		return fmt.Errorf("unet: config: out_ch = %d, need ≥ 1", c.OutCh)
	case c.Res < 1:
		return fmt.Errorf("unet: config: res = %d, need ≥ 1", c.Res)
	case c.Ch < 4 || c.Ch%2 != 0:
		return fmt.Errorf("unet: config: ch = %d, need an even number ≥ 4 (the timestep embedding is half sin, half cos with half−1 > 0)", c.Ch)
	case len(c.ChMult) == 0:
		return fmt.Errorf("unet: config: ch_mult is empty")
	case c.NumResBlocks < 1:
		return fmt.Errorf("unet: config: num_res_blocks = %d, need ≥ 1", c.NumResBlocks)
	case c.LevelBlocks != nil && len(c.LevelBlocks) != len(c.ChMult):
		return fmt.Errorf("unet: config: level_blocks has %d entries for %d levels", len(c.LevelBlocks), len(c.ChMult))
	case c.Groups < 1:
		return fmt.Errorf("unet: config: groups = %d, need ≥ 1", c.Groups)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("unet: config: dropout = %v, need 0 ≤ p < 1", c.Dropout)
	case !(c.NormEps >= 0 && c.NormEps < 1):
		return fmt.Errorf("unet: config: norm_eps = %v, need 0 ≤ eps < 1 (0: %g)", c.NormEps, GNEps)
	case c.AttentionHeadDim < 0:
		return fmt.Errorf("unet: config: attention_head_dim = %d, need ≥ 0 (0: one head)", c.AttentionHeadDim)
	case c.TimeFreqShift() >= c.Ch/2 || c.TimeFreqShift() < 0:
		return fmt.Errorf("unet: config: freq_shift = %d, need 0 ≤ freq_shift < ch/2 = %d", c.TimeFreqShift(), c.Ch/2)
	}
	if len(c.ChMult) > 30 {
		return fmt.Errorf("unet: config: %d levels is too many", len(c.ChMult))
	}
	if f := 1 << (len(c.ChMult) - 1); c.Res%f != 0 {
		return fmt.Errorf("unet: config: res = %d must be divisible by 2^(levels−1) = %d so every downsampling halves it exactly", c.Res, f)
	}
	if c.Ch%c.Groups != 0 {
		return fmt.Errorf("unet: config: ch = %d is not divisible by groups = %d", c.Ch, c.Groups)
	}
	for i, b := range c.LevelBlocks {
		if b < 1 || b > 64 {
			return fmt.Errorf("unet: config: level_blocks[%d] = %d, need 1…64", i, b)
		}
	}
	for i, m := range c.ChMult {
		if m < 1 {
			return fmt.Errorf("unet: config: ch_mult[%d] = %d, need ≥ 1", i, m)
		}
		if (c.Ch*m)%c.Groups != 0 {
			return fmt.Errorf("unet: config: level %d has %d channels, not divisible by groups = %d", i, c.Ch*m, c.Groups)
		}
		// Attention runs at the levels of AttnRes and in the middle.
		if d := c.AttentionHeadDim; d > 0 && (c.hasAttn(c.Res>>i) || i == len(c.ChMult)-1) && (c.Ch*m)%d != 0 {
			return fmt.Errorf("unet: config: level %d has %d channels, not divisible by attention_head_dim = %d", i, c.Ch*m, d)
		}
	}
	// An attention resolution no level reaches is almost certainly a typo
	// (e.g. 16 for a 28×28 model); refuse it rather than build a network
	// without attention.
	for _, r := range c.AttnRes {
		ok := false
		for i := range c.ChMult {
			if c.Res>>i == r {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("unet: config: attn_res %d is not one of the model's resolutions (%d halved per level)", r, c.Res)
		}
	}
	return nil
}

// hasAttn reports whether blocks at resolution r get self-attention.
func (c Config) hasAttn(r int) bool { return slices.Contains(c.AttnRes, r) }
