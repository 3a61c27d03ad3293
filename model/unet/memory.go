package unet

import "github.com/ddpm-go/ddpm/engine/parallel"

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

// EstimateMemory estimates what the network of cfg holds after running a
// batch: Forward alone (training false: sampling, the bound) or a training
// step's Forward and Backward (training true: also the attention layers'
// backward buffers, dropout masks and per-worker weight gradients). It
// mirrors the buffers New, Forward and Backward allocate, in float32s, and
// is an estimate (small per-layer buffers such as GroupNorm statistics are
// rounded in): the training test holds it within 15 % of the measured heap.
// An optimizer's state and the caller's own input and output tensors are
// not included.
func EstimateMemory(cfg Config, training bool) Memory {
	cfg = cfg.Normalized()
	workers := float64(parallel.Workers())
	params := float64(NumParams(cfg))
	var per, scratch, fixedF float64 // floats per image; per worker; besides the weights
	temb := 4 * cfg.Ch
	maxPer := max(cfg.InCh, cfg.OutCh, cfg.Ch) * cfg.Res * cfg.Res // maxPerImage
	maxC := 0
	skips := []int{cfg.Ch * cfg.Res * cfg.Res}

	// conv tallies a convolution's own buffers beyond its activations:
	// per worker, the lowered input of one image (Cin·K·K × output pixels:
	// the direct forward and the backward lower image by image, or a few
	// small images together); for a Winograd layer (3×3, stride 1, ≥ 8
	// channels each way) the transformed kernel (up to 36 values per 3×3
	// filter: F(4×4, 3×3)) and, per worker, the transformed tiles, which
	// the engine bounds at 768 KiB unless one image needs more. A
	// training step transforms the flipped kernel for the input gradient
	// too, and keeps per-worker kernel gradients in the transformed
	// domain.
	conv := func(cout, cin, k, hOut int) {
		hw := hOut * hOut
		scratch += float64(cin * k * k * max(hw, min(512, 4*hw)))
		if k == 3 && cin >= 8 && cout >= 8 {
			fixedF += float64(36 * cout * cin)
			scratch += max(768<<10/4, float64(36*((hOut+3)/4)*((hOut+3)/4)*(cin+cout)))
			if training {
				fixedF += float64(36*cout*cin + 9*cout*cin)
				scratch += float64(36 * cout * cin)
			}
		}
	}
	gn := func(int) { per += float64(2 * cfg.Groups) } // mean, rstd
	res := func(cin, cout, h int) {
		hw := h * h
		gn(cin)
		conv(cout, cin, 3, h)
		gn(cout)
		conv(cout, cout, 3, h)
		if cin != cout {
			conv(cout, cin, 1, h)
		}
		per += float64(3*cout*hw + cout) // h1, a2, out; temb_proj output
		if training && cfg.Dropout > 0 {
			per += float64(cout * hw) // the dropout mask
		}
		maxC = max(maxC, cout)
	}
	attn := func(c, h int) {
		hw := h * h
		gn(c)
		for range 4 {
			conv(c, c, 1, h)
		}
		per += float64(5*c*hw + cfg.Heads(c)*hw*hw + c*hw) // normed input, q, k, v, a; the attention matrices; the block's output
		if training {
			per += float64(5 * c * hw) // dA, dq, dk, dv, d(normed input)
			scratch += float64(hw * hw)
		}
	}

	per += float64(cfg.InCh*cfg.Res*cfg.Res + cfg.Ch + 7*temb) // x; the embeddings and their gradients
	per += float64(cfg.Ch * cfg.Res * cfg.Res)                 // conv_in's output
	conv(cfg.Ch, cfg.InCh, 3, cfg.Res)
	cur, r := cfg.Ch, cfg.Res
	for i, m := range cfg.ChMult {
		for range cfg.Blocks(i) {
			cout := cfg.Ch * m
			res(cur, cout, r)
			maxPer = max(maxPer, cur*r*r, cout*r*r)
			cur = cout
			if cfg.hasAttn(r) {
				attn(cur, r)
			}
			skips = append(skips, cur*r*r)
		}
		if i != len(cfg.ChMult)-1 {
			maxPer = max(maxPer, cur*r*r)
			r /= 2
			conv(cur, cur, 3, r)
			per += float64(cur * r * r) // the Downsample's output
			skips = append(skips, cur*r*r)
		}
	}
	res(cur, cur, r)
	attn(cur, r)
	res(cur, cur, r)
	for i := len(cfg.ChMult) - 1; i >= 0; i-- {
		for range cfg.Blocks(i) + 1 {
			skip := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			per += float64(skip) // the skip's gradient (dSkip)
			cin := cur + skip/(r*r)
			cout := cfg.Ch * cfg.ChMult[i]
			per += float64(cin * r * r) // the concatenation
			res(cin, cout, r)
			maxPer = max(maxPer, cin*r*r, cout*r*r)
			cur = cout
			if cfg.hasAttn(r) {
				attn(cur, r)
			}
		}
		if i != 0 {
			maxPer = max(maxPer, cur*4*r*r)
			r *= 2
			conv(cur, cur, 3, r)
			per += float64(2 * cur * r * r) // the upsampled input, the conv's output
		}
	}
	gn(cur)
	conv(cfg.OutCh, cur, 3, cfg.Res)
	per += float64(cur * cfg.Res * cfg.Res) // conv_out's input
	per += float64(5*maxPer + maxC)         // Backward's ping-pong gradients and scratch

	// The weights, their gradients and the convolutions' row-major copy
	// of their kernels; every layer's per-worker scratch.
	fixed := 3*params + fixedF + workers*scratch
	if training {
		fixed += workers * params // per-worker weight gradients, summed after each layer
	}
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
