package unet

import (
	"github.com/ddpm-go/ddpm/engine/nn"
	"github.com/ddpm-go/ddpm/engine/parallel"
)

// Memory is what running a network on a batch costs in memory, in bytes,
// split into what the batch size multiplies and what it does not. Callers
// compare it with the memory available before they allocate anything, so
// that an impossible batch is a one-line error and not the runtime's
// "fatal error: out of memory".
type Memory struct {
	// Fixed is independent of the batch: the weights and gradients, and
	// the per-worker scratch of every layer (lowered convolution inputs,
	// per-worker weight gradients).
	Fixed float64
	// PerImage is what each image of the batch adds: every activation the
	// forward pass keeps for the backward pass, and the backward pass's
	// gradient buffers (Forward sizes those too, so sampling holds them).
	PerImage float64
}

// Bytes is the estimate for a batch of n images.
func (m Memory) Bytes(n int) float64 { return m.Fixed + float64(n)*m.PerImage }

// EstimateMemory estimates what the network of cfg holds while it runs a
// batch: Predict (training false: sampling) or a training step's Forward
// and Backward (training true: every activation kept for the backward
// pass, the attention layers' backward buffers, dropout masks and
// per-worker weight gradients). It mirrors the buffers New, Predict,
// Forward and Backward allocate and use, in float32s, and is an estimate
// (small per-layer buffers such as GroupNorm statistics are rounded in):
// the training test holds it within 15 % of the measured heap, and the
// celebahq256 sampling step measured 1.29 GB of peak RSS at batch 1 against
// an estimate of about 1.2 GB (docs/performance.md). An optimizer's state
// and the caller's own input and output tensors are not included; nor is
// the gradient buffer in sampling, which stays untouched (unmapped).
func EstimateMemory(cfg Config, training bool) Memory {
	cfg = cfg.Normalized()
	workers := float64(parallel.Workers())
	params := float64(NumParams(cfg))
	// per: floats per image a training step keeps; fixedF: besides the
	// weights; scratch: the largest conv scratch set (the engine lends one
	// per running worker); perWorker: training's per-layer, per-worker
	// buffers; kernelCopy: the largest borrowed row-tap kernel.
	var per, fixedF, scratch, perWorker, kernelCopy float64
	temb := 4 * cfg.Ch
	maxPer := max(cfg.InCh, cfg.OutCh, cfg.Ch) * cfg.Res * cfg.Res // maxPerImage
	maxC := 0
	skips := []int{cfg.Ch * cfg.Res * cfg.Res}

	// Predict's arena, replayed: the floats per image lent at once.
	var live, peak, kept float64
	take := func(f int) int { live += float64(f); peak = max(peak, live); return f }
	give := func(f int) { live -= float64(f) }

	// conv tallies a convolution's own buffers beyond its activations. A
	// Winograd layer (nn.Conv2d.WinogradTile) keeps its transformed kernel,
	// (tile+2)² values per 3×3 filter, and the weights it was made from;
	// its scratch is the transformed tiles of a few images, or of bands of
	// tile rows, bounded at 768 KiB unless one band needs more. Other
	// layers lower blocks of at most 1024 output pixels (or about 512
	// columns of small images), and the row-tap forward borrows a copy of
	// its kernel. A training step transforms the flipped kernel for the
	// input gradient too, keeps per-worker kernel gradients in the
	// transformed domain, and transforms whole images for them.
	conv := func(cout, cin, k, hOut int, stride1 bool) {
		hw := hOut * hOut
		tile := 0
		if k == 3 && stride1 {
			tile = nn.NewConv2d(cin, cout, 3, 1, 1).WinogradTile(hOut, hOut)
		}
		if tile == 0 {
			scratch = max(scratch, float64(cin*k*k*max(min(hw, 1024), min(512, 4*hw))))
			if k > 1 && stride1 && cin*k >= 64 {
				kernelCopy = max(kernelCopy, float64(cout*cin*k*k))
			}
			return
		}
		p, t := (tile+2)*(tile+2), (hOut+tile-1)/tile
		rows := 1 // tile rows per band, at least
		if tile == 4 {
			rows = max(1, 16/t)
		}
		band := float64(p * rows * t * (cin + cout))
		scratch = max(scratch, min(float64(p*t*t*(cin+cout)), max(768<<10/4, band)))
		fixedF += float64(p*cout*cin + 9*cout*cin)
		if training {
			fixedF += float64(p*cout*cin + 9*cout*cin)
			perWorker += float64(p * cout * cin)
			scratch = max(scratch, float64(p*t*t*(cin+cout)))
		}
	}
	gn := func(int) { per += float64(2 * cfg.Groups) } // mean, rstd
	// res is a residual block; x is its input's floats per image in the
	// arena, which the caller gives back.
	res := func(cin, cout, h int) int {
		hw := h * h
		gn(cin)
		conv(cout, cin, 3, h, true)
		gn(cout)
		conv(cout, cout, 3, h, true)
		if cin != cout {
			conv(cout, cin, 1, h, true)
		}
		per += float64(3*cout*hw + cout) // h1, a2, out; temb_proj output
		if training && cfg.Dropout > 0 {
			per += float64(cout * hw) // the dropout mask
		}
		maxC = max(maxC, cout)
		a1, tp, h1 := take(cin*hw), take(cout), take(cout*hw)
		give(tp)
		give(a1)
		a2 := take(cout * hw)
		give(h1)
		out := take(cout * hw)
		give(a2)
		if cin != cout {
			give(take(cout * hw)) // the shortcut's output
		}
		return out
	}
	attn := func(c, h, x int) int {
		hw := h * h
		gn(c)
		for range 4 {
			conv(c, c, 1, h, true)
		}
		// The block keeps its normed input, q, k, v, a and the attention
		// matrices in either mode; a training step the block's output too.
		kept += float64(5*c*hw + cfg.Heads(c)*hw*hw)
		per += float64(5*c*hw + cfg.Heads(c)*hw*hw + c*hw)
		if training {
			per += float64(5 * c * hw) // dA, dq, dk, dv, d(normed input)
			perWorker += float64(hw * hw)
		}
		o := take(c * hw)
		give(x)
		return o
	}

	per += float64(cfg.InCh*cfg.Res*cfg.Res + cfg.Ch + 7*temb) // x; the embeddings and their gradients
	per += float64(cfg.Ch * cfg.Res * cfg.Res)                 // conv_in's output
	conv(cfg.Ch, cfg.InCh, 3, cfg.Res, true)
	lent := []int{take(cfg.Ch * cfg.Res * cfg.Res)} // the skips in the arena
	cur, r := cfg.Ch, cfg.Res
	h := 0
	for i, m := range cfg.ChMult {
		for range cfg.Blocks(i) {
			cout := cfg.Ch * m
			h = res(cur, cout, r)
			maxPer = max(maxPer, cur*r*r, cout*r*r)
			cur = cout
			if cfg.hasAttn(r) {
				h = attn(cur, r, h)
			}
			skips = append(skips, cur*r*r)
			lent = append(lent, h)
		}
		if i != len(cfg.ChMult)-1 {
			maxPer = max(maxPer, cur*r*r)
			r /= 2
			conv(cur, cur, 3, r, false)
			per += float64(cur * r * r) // the Downsample's output
			skips = append(skips, cur*r*r)
			lent = append(lent, take(cur*r*r))
		}
	}
	m1 := res(cur, cur, r)
	ma := attn(cur, r, m1)
	h = res(cur, cur, r)
	give(ma)
	for i := len(cfg.ChMult) - 1; i >= 0; i-- {
		for range cfg.Blocks(i) + 1 {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			per += float64(skip) // the skip's gradient (dSkip)
			cin := cur + skip/(r*r)
			cout := cfg.Ch * cfg.ChMult[i]
			per += float64(cin * r * r) // the concatenation
			cat := 0
			if cin == cout {
				cat = take(cin * r * r)
			}
			o := res(cin, cout, r)
			give(cat)
			give(h)
			give(lent[len(lent)-1])
			lent = lent[:len(lent)-1]
			h = o
			maxPer = max(maxPer, cin*r*r, cout*r*r)
			cur = cout
			if cfg.hasAttn(r) {
				h = attn(cur, r, h)
			}
		}
		if i != 0 {
			maxPer = max(maxPer, cur*4*r*r)
			r *= 2
			conv(cur, cur, 3, r, true)
			per += float64(2 * cur * r * r) // the upsampled input, the conv's output
			up := take(cur * r * r)
			give(h)
			h = take(cur * r * r)
			give(up)
		}
	}
	gn(cur)
	conv(cfg.OutCh, cur, 3, cfg.Res, true)
	per += float64(cur * cfg.Res * cfg.Res) // conv_out's input
	per += float64(5*maxPer + maxC)         // Backward's ping-pong gradients and scratch
	take(cur * cfg.Res * cfg.Res)           // conv_out's input, beside the last block's output

	if !training {
		// The weights, the transformed kernels, a scratch set per worker
		// and a borrowed kernel; per image the arena's peak, what the
		// attention blocks keep and the embeddings.
		fixed := params + fixedF + workers*scratch + kernelCopy
		return Memory{Fixed: 4 * fixed, PerImage: 4 * (peak + kept + float64(cfg.Ch+4*temb))}
	}
	// The weights, their gradients and per-worker copies, the transformed
	// kernels, and the per-worker buffers.
	fixed := 3*params + fixedF + workers*(scratch+perWorker+params) + kernelCopy
	return Memory{Fixed: 4 * fixed, PerImage: 4 * per}
}

// NumParams is the number of parameters of the network of cfg, computed
// from the config without building it (New(cfg).NumParams() allocates the
// weights and gradients).
func NumParams(cfg Config) int {
	cfg = cfg.Normalized()
	temb := 4 * cfg.Ch
	n := 0
	conv := func(cout, cin, k int) { n += cout*cin*k*k + cout }
	dense := func(out, in int) { n += out*in + out }
	gn := func(c int) { n += 2 * c }
	res := func(cin, cout int) {
		gn(cin)
		conv(cout, cin, 3)
		dense(cout, temb)
		gn(cout)
		conv(cout, cout, 3)
		if cin != cout {
			conv(cout, cin, 1)
		}
	}
	attn := func(c int) {
		gn(c)
		for range 4 {
			conv(c, c, 1)
		}
	}
	dense(temb, cfg.Ch)
	dense(temb, temb)
	conv(cfg.Ch, cfg.InCh, 3)
	chans := []int{cfg.Ch}
	cur, r := cfg.Ch, cfg.Res
	for i, m := range cfg.ChMult {
		for range cfg.Blocks(i) {
			res(cur, cfg.Ch*m)
			cur = cfg.Ch * m
			if cfg.hasAttn(r) {
				attn(cur)
			}
			chans = append(chans, cur)
		}
		if i != len(cfg.ChMult)-1 {
			conv(cur, cur, 3)
			r /= 2
			chans = append(chans, cur)
		}
	}
	res(cur, cur)
	attn(cur)
	res(cur, cur)
	for i := len(cfg.ChMult) - 1; i >= 0; i-- {
		for range cfg.Blocks(i) + 1 {
			skip := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			res(cur+skip, cfg.Ch*cfg.ChMult[i])
			cur = cfg.Ch * cfg.ChMult[i]
			if cfg.hasAttn(r) {
				attn(cur)
			}
		}
		if i != 0 {
			conv(cur, cur, 3)
			r *= 2
		}
	}
	gn(cur)
	conv(cfg.OutCh, cur, 3)
	return n
}
