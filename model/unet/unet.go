// Package unet is the DDPM noise-prediction network (Ho et al. 2020): the
// U-Net of the official code and of the PyTorch reference
// (torch_unet_bench.py), built from the engine's explicit-backward layers.
//
// The network is the same module tree as the reference, and every parameter
// carries its full PyTorch state_dict name (temb_dense0.weight,
// down.2.1.q.bias, up.4.0.nin_shortcut.weight, ...) with PyTorch's layout, so
// weights move between the two by name. All parameters live in one flat
// buffer and all gradients in another (bound with nn.Bind), which lets the
// optimiser, the EMA, gradient clipping and checkpointing treat the model as
// a single []float32.
//
// Forward keeps every activation Backward needs; the buffers are sized for
// the largest batch seen and reused, so a training step allocates nothing
// once warmed up.
package unet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/ddpm-go/ddpm/engine/nn"
)

// resBlock is the reference's ResBlock:
//
//	h = conv1(swish(norm1(x))) + temb_proj(swish(temb))[:, :, None, None]
//	h = conv2(dropout(swish(norm2(h))))
//	out = (nin_shortcut(x) if cin != cout else x) + h
type resBlock struct {
	cin, cout int
	norm1     *nn.GroupNorm
	conv1     *nn.Conv2d
	tembProj  *nn.Linear
	norm2     *nn.GroupNorm
	drop      *nn.Dropout
	conv2     *nn.Conv2d
	nin       *nn.Conv2d // nil when cin == cout

	// Saved by forward for backward. The norms are fused with the swish
	// after them (nn.GroupNorm.Swish), so the norm outputs are never
	// stored, and swish(norm1(x)) is not kept either: backward recomputes
	// it from x and norm1's statistics into scratch (norm1.Reapply), one
	// elementwise pass instead of a whole activation of memory per block.
	h1  []float32 // conv1(...) + temb   [n, cout, hw]
	a2  []float32 // dropout(swish(norm2(h1))): conv2's input
	tp  []float32 // temb_proj output    [n, cout]
	out []float32 // block output        [n, cout, hw]
}

func newResBlock(cin, cout, tembCh, groups int, dropout, eps float32) *resBlock {
	b := &resBlock{cin: cin, cout: cout,
		norm1:    nn.NewGroupNormSwish(groups, cin, eps),
		conv1:    nn.NewConv2d(cin, cout, 3, 1, 1),
		tembProj: nn.NewLinear(tembCh, cout),
		norm2:    nn.NewGroupNormSwish(groups, cout, eps),
		drop:     nn.NewDropout(dropout),
		conv2:    nn.NewConv2d(cout, cout, 3, 1, 1),
	}
	if cin != cout {
		b.nin = nn.NewConv2d(cin, cout, 1, 1, 0)
	}
	return b
}

// params lists the block's parameters in PyTorch's registration order
// (norm1, conv1, temb_proj, norm2, conv2, nin_shortcut) with local prefixes.
func (b *resBlock) params() []named {
	ps := []named{{"norm1.", b.norm1.Params()}, {"conv1.", b.conv1.Params()},
		{"temb_proj.", b.tembProj.Params()}, {"norm2.", b.norm2.Params()}, {"conv2.", b.conv2.Params()}}
	if b.nin != nil {
		ps = append(ps, named{"nin_shortcut.", b.nin.Params()})
	}
	return ps
}

// named is a group of parameters under one module prefix.
type named struct {
	prefix string
	ps     []*nn.Param
}

// entry is one element of the reference's down or up ModuleList: either a
// residual block optionally followed by attention, or a resampling conv
// (Downsample: stride 2; Upsample: nearest ×2 then conv).
type entry struct {
	res  *resBlock
	attn *nn.AttnBlock
	conv *nn.Conv2d // resampling conv when res == nil

	h    int // input resolution (height = width)
	cin  int // input channels (for up blocks: h's channels + the skip's)
	cout int
	skip int // up blocks: index into the skip stack

	cat     []float32 // up blocks: concat(h, skip), the residual block's input
	attnOut []float32 // output of attn when present
	upIn    []float32 // Upsample: the nearest-upsampled input, the conv's input
	convOut []float32 // resampling conv output
	out     []float32 // what the entry hands on (res.out, attnOut or convOut)
}

// UNet is the DDPM noise predictor ε̂(x_t, t).
type UNet struct {
	cfg    Config
	tembCh int

	dense0, dense1 *nn.Linear
	convIn         *nn.Conv2d
	down           []*entry
	mid1           *resBlock
	midAttn        *nn.AttnBlock
	mid2           *resBlock
	up             []*entry
	normOut        *nn.GroupNorm
	convOut        *nn.Conv2d

	params    []*nn.Param
	zeroInit  map[*nn.Param]bool // weights the official code initialises at scale 1e-10
	w, g      []float32
	skipShape [][2]int // channels and resolution of each skip tensor, in push order

	act activations

	lean  bool        // in Predict: activations from arena, nothing kept
	arena arena       // Predict's activations
	skips [][]float32 // forward's skip tensors, reused
}

// activations are the buffers Forward fills for Backward plus Backward's
// scratch; all are sized for capN images.
type activations struct {
	capN, n int
	t       []int
	x       []float32 // copy of the input
	temb0   []float32 // sinusoidal embedding [n, ch]
	temb1   []float32 // dense0 output        [n, 4ch]
	temb1s  []float32 // swish(temb1)
	temb    []float32 // dense1 output
	tembS   []float32 // swish(temb): the input of every temb_proj
	hIn     []float32 // conv_in output (skip 0)
	mid1Out []float32
	midAttn []float32
	mid2Out []float32
	aOut    []float32 // swish(norm_out(h)): conv_out's input

	// backward
	gA, gB, s1, s2, s3 []float32   // largest activation each
	dSkip              [][]float32 // gradient reaching each skip tensor from the up path
	dTembS, dTemb      []float32
	dTmp, dTp          []float32 // [n, 4ch] and [n, maxC] small scratch
}

// New builds the network for cfg with all parameters zero (call Init or
// LoadStateDict before use).
func New(cfg Config) (*UNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.Normalized()
	u := &UNet{cfg: cfg, tembCh: 4 * cfg.Ch, zeroInit: map[*nn.Param]bool{}}
	u.dense0 = nn.NewLinear(cfg.Ch, u.tembCh)
	u.dense1 = nn.NewLinear(u.tembCh, u.tembCh)
	u.convIn = nn.NewConv2d(cfg.InCh, cfg.Ch, 3, 1, 1)

	var groups []named
	add := func(prefix string, ps []*nn.Param) { groups = append(groups, named{prefix, ps}) }
	addRes := func(prefix string, b *resBlock) {
		for _, g := range b.params() {
			add(prefix+g.prefix, g.ps)
		}
		u.zeroInit[b.conv2.Params()[0]] = true
	}
	addAttn := func(prefix string, a *nn.AttnBlock) {
		add(prefix, a.Params()) // AttnBlock's names already carry norm./q./k./v./proj_out.
		u.zeroInit[a.ProjOut.Params()[0]] = true
	}
	eps := float32(cfg.GroupNormEps())
	newRes := func(cin, cout int) *resBlock {
		return newResBlock(cin, cout, u.tembCh, cfg.Groups, cfg.Dropout, eps)
	}
	newAttn := func(c int) *nn.AttnBlock { return nn.NewAttnBlockHeads(c, cfg.Heads(c), cfg.Groups, eps) }
	add("temb_dense0.", u.dense0.Params())
	add("temb_dense1.", u.dense1.Params())
	add("conv_in.", u.convIn.Params())

	chans := []int{cfg.Ch}
	u.skipShape = [][2]int{{cfg.Ch, cfg.Res}}
	cur, r := cfg.Ch, cfg.Res
	for i, mult := range cfg.ChMult {
		for range cfg.Blocks(i) {
			e := &entry{h: r, cin: cur, cout: cfg.Ch * mult}
			e.res = newRes(cur, e.cout)
			prefix := fmt.Sprintf("down.%d.", len(u.down))
			addRes(prefix+"0.", e.res)
			if cfg.hasAttn(r) {
				e.attn = newAttn(e.cout)
				addAttn(prefix+"1.", e.attn)
			}
			cur = e.cout
			u.down = append(u.down, e)
			chans = append(chans, cur)
			u.skipShape = append(u.skipShape, [2]int{cur, r})
		}
		if i != len(cfg.ChMult)-1 {
			// Downsample: conv3x3 stride 2, padded 1 all round, or (0, 1)
			// for TensorFlow's "SAME".
			conv := nn.NewConv2d(cur, cur, 3, 2, 1)
			if cfg.AsymmetricDownsample {
				conv = nn.NewConv2dPadded(cur, cur, 3, 2, 0, 1)
			}
			e := &entry{h: r, cin: cur, cout: cur, conv: conv}
			add(fmt.Sprintf("down.%d.0.", len(u.down)), e.conv.Params())
			u.down = append(u.down, e)
			r /= 2
			chans = append(chans, cur)
			u.skipShape = append(u.skipShape, [2]int{cur, r})
		}
	}
	u.mid1 = newRes(cur, cur)
	addRes("mid1.", u.mid1)
	u.midAttn = newAttn(cur)
	addAttn("mid_attn.", u.midAttn)
	u.mid2 = newRes(cur, cur)
	addRes("mid2.", u.mid2)

	for i := len(cfg.ChMult) - 1; i >= 0; i-- {
		mult := cfg.ChMult[i]
		for range cfg.Blocks(i) + 1 {
			skip := len(chans) - 1
			e := &entry{h: r, cin: cur + chans[skip], cout: cfg.Ch * mult, skip: skip}
			chans = chans[:skip]
			e.res = newRes(e.cin, e.cout)
			prefix := fmt.Sprintf("up.%d.", len(u.up))
			addRes(prefix+"0.", e.res)
			if cfg.hasAttn(r) {
				e.attn = newAttn(e.cout)
				addAttn(prefix+"1.", e.attn)
			}
			cur = e.cout
			u.up = append(u.up, e)
		}
		if i != 0 {
			e := &entry{h: r, cin: cur, cout: cur, conv: nn.NewConv2d(cur, cur, 3, 1, 1)}
			add(fmt.Sprintf("up.%d.0.", len(u.up)), e.conv.Params())
			u.up = append(u.up, e)
			r *= 2
		}
	}
	if len(chans) != 0 || r != cfg.Res {
		panic("unet: internal error: skip stack not consumed") // the loops above mirror the reference
	}
	u.normOut = nn.NewGroupNormSwish(cfg.Groups, cur, eps)
	add("norm_out.", u.normOut.Params())
	u.convOut = nn.NewConv2d(cur, cfg.OutCh, 3, 1, 1)
	add("conv_out.", u.convOut.Params())
	u.zeroInit[u.convOut.Params()[0]] = true

	for _, g := range groups {
		for _, p := range g.ps {
			p.Name = g.prefix + p.Name
			u.params = append(u.params, p)
		}
	}
	total := 0
	for _, p := range u.params {
		total += p.Size()
	}
	u.w = make([]float32, total)
	u.g = make([]float32, total)
	if nn.Bind(u.params, u.w, u.g) != total {
		panic("unet: internal error: Bind size mismatch")
	}
	return u, nil
}

// Config returns the model's configuration (defaults filled in).
func (u *UNet) Config() Config { return u.cfg.Normalized() }

// Params returns every parameter in PyTorch state_dict order, with full names.
func (u *UNet) Params() []*nn.Param { return u.params }

// Weights is the flat parameter buffer (all Params' W are views into it).
func (u *UNet) Weights() []float32 { return u.w }

// Grads is the flat gradient buffer; Backward accumulates into it and the
// caller zeroes it once per step.
func (u *UNet) Grads() []float32 { return u.g }

// ZeroGrads clears the gradient buffer.
func (u *UNet) ZeroGrads() { clear(u.g) }

// NumParams is the number of scalar parameters.
func (u *UNet) NumParams() int { return len(u.w) }

// Init initialises the parameters like the official DDPM code
// (diffusion_tf/nn.py): every conv and dense weight is drawn from
// variance_scaling(scale, mode="fan_avg", distribution="uniform"), i.e.
// U(−a, a) with a = sqrt(3·scale/((fan_in+fan_out)/2)), fan = channels·k·k;
// biases are zero, GroupNorm weights 1 and biases 0. The last conv of each
// residual branch (ResBlock conv2, attention proj_out) and conv_out use
// scale 1e-10, so each block starts as (almost) the identity and the network
// as (almost) zero: the official code relies on this for stable early
// training. Weights are drawn in parameter order, so a seed gives the same
// network every time.
func (u *UNet) Init(rng *rand.Rand) {
	for _, p := range u.params {
		switch {
		case isNormWeight(p):
			for i := range p.W {
				p.W[i] = 1
			}
		case len(p.Shape) == 1:
			clear(p.W)
		default:
			fanIn, fanOut := p.Shape[1], p.Shape[0]
			for _, k := range p.Shape[2:] {
				fanIn *= k
				fanOut *= k
			}
			scale := 1.0
			if u.zeroInit[p] {
				scale = 1e-10
			}
			a := math.Sqrt(3 * scale / (float64(fanIn+fanOut) / 2))
			for i := range p.W {
				p.W[i] = float32((2*rng.Float64() - 1) * a)
			}
		}
	}
}

// isNormWeight reports whether a parameter is a GroupNorm scale, which
// starts at 1: the only 1-D tensors are norm weights and biases (every conv
// and dense weight is at least 2-D).
func isNormWeight(p *nn.Param) bool {
	return len(p.Shape) == 1 && strings.HasSuffix(p.Name, ".weight")
}
