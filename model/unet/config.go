package unet

import (
	"fmt"
	"slices"
	"sort"
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
}

// GNEps is the GroupNorm epsilon of the official DDPM code and the PyTorch
// reference (not PyTorch's default 1e-5).
const GNEps = 1e-6

// Configs are the named configurations. tiny, small and cifar are exactly the
// reference script's CONFIGS (tiny exists for the golden test vectors; cifar
// is the paper's 35.7M-parameter CIFAR-10 network); mnist is a 28×28
// variant (28→14→7 with stride-2 convs) with attention at 14×14.
var Configs = map[string]Config{
	"tiny": {InCh: 3, Res: 16, Ch: 16, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{8}, Groups: 4, Dropout: 0},
	"small": {InCh: 1, Res: 32, Ch: 32, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{16}, Groups: 8, Dropout: 0},
	"cifar": {InCh: 3, Res: 32, Ch: 128, ChMult: []int{1, 2, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{16}, Groups: 32, Dropout: 0.1},
	"mnist": {InCh: 1, Res: 28, Ch: 32, ChMult: []int{1, 2, 2}, NumResBlocks: 2,
		AttnRes: []int{14}, Groups: 8, Dropout: 0.1},
	// mnist-small is small at MNIST's own 28×28 (no padding): a quarter less
	// work per image, and bits/dim over the data's real dimensions; the
	// Table 2 ablation's default.
	"mnist-small": {InCh: 1, Res: 28, Ch: 32, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{14}, Groups: 8, Dropout: 0},
	// mnist-fast is the embedded Fashion-MNIST model's network (and was the
	// MNIST model's until mnist-deep): 24/48/48 channels, one block per
	// level and attention only at 7×7, 0.21 GFLOP per image — about half of
	// mnist-small — so that the full 1000-step chain for a 64-image grid
	// takes about a minute and a half on two cores. Also the scaled-down
	// Table 2 ablation's network.
	"mnist-fast": {InCh: 1, Res: 28, Ch: 24, ChMult: []int{1, 2, 2}, NumResBlocks: 1,
		AttnRes: []int{7}, Groups: 8, Dropout: 0},

	// mnist-fast2 moves mnist-fast's capacity down the resolutions: 16/48/64
	// channels, so fewer at 28×28 and more at 7×7 (with the attention),
	// 812k parameters (1.3×) for 0.20 GFLOP per image (0.94×). A candidate
	// to replace the shipped MNIST network: the shipped one's samples are
	// limited by ambiguous digits (classifier doubt), a matter of global
	// shape, which the low resolutions carry.
	"mnist-fast2": {InCh: 1, Res: 28, Ch: 16, ChMult: []int{1, 3, 4}, NumResBlocks: 1,
		AttnRes: []int{7}, Groups: 8, Dropout: 0},

	// mnist-deep tries depth where mnist-fast2 tried width: 16/32/64
	// channels with two residual blocks per level (three on the way up), so
	// twice the layers between the pixels and the 7×7 attention, 0.99M
	// parameters for 0.21 GFLOP per image (mnist-fast's work).
	// mnist-fast2's samples the classifier doubted as often as mnist-fast's;
	// mnist-deep's (20 000 steps) less (doubt 0.050 on 10 000 respaced-100
	// samples; mnist-fast 0.058 on 2000), so it is the embedded MNIST
	// model's network. It samples 1.2–1.3× slower than mnist-fast: more,
	// thinner layers.
	"mnist-deep": {InCh: 1, Res: 28, Ch: 16, ChMult: []int{1, 2, 4}, NumResBlocks: 2,
		AttnRes: []int{7}, Groups: 8, Dropout: 0},

	// mnist-deeper is mnist-deep with a third residual block (and its
	// attention) at 7×7 on each path, where global shape is decided:
	// 1.12× mnist-deep's sampling time. A candidate for the shipped MNIST
	// model, whose IS is limited by digits the classifier doubts.
	"mnist-deeper": {InCh: 1, Res: 28, Ch: 16, ChMult: []int{1, 2, 4}, NumResBlocks: 2,
		LevelBlocks: []int{2, 2, 3}, AttnRes: []int{7}, Groups: 8, Dropout: 0},

	// Test-sized networks for the data sets tiny (3×16×16) cannot take:
	// tiny1 for MNIST-style grey images (28×28 padded to 32×32) and tiny32
	// for CIFAR-10 (3×32×32). Used by the reliability tests, which train
	// them for a handful of steps in child processes.
	"tiny1": {InCh: 1, Res: 32, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1,
		AttnRes: []int{16}, Groups: 4, Dropout: 0},
	"tiny32": {InCh: 3, Res: 32, Ch: 8, ChMult: []int{1, 2}, NumResBlocks: 1,
		AttnRes: []int{16}, Groups: 4, Dropout: 0},
}

// ConfigNames lists the named configurations in sorted order (for help text).
func ConfigNames() []string {
	names := make([]string, 0, len(Configs))
	for n := range Configs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ConfigByName returns a copy of a named configuration (the slices are
// copied too, so the caller may modify the result freely).
func ConfigByName(name string) (Config, error) {
	c, ok := Configs[name]
	if !ok {
		return Config{}, fmt.Errorf("unet: unknown config %q (have %v)", name, ConfigNames())
	}
	c.ChMult = slices.Clone(c.ChMult)
	c.AttnRes = slices.Clone(c.AttnRes)
	c.LevelBlocks = slices.Clone(c.LevelBlocks)
	return c, nil
}

// Normalized returns the config with defaults filled in (OutCh = InCh when
// unset) and its slices copied.
func (c Config) Normalized() Config {
	if c.OutCh == 0 {
		c.OutCh = c.InCh
	}
	c.ChMult = slices.Clone(c.ChMult)
	c.AttnRes = slices.Clone(c.AttnRes)
	c.LevelBlocks = slices.Clone(c.LevelBlocks)
	return c
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
