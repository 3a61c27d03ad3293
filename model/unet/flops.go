package unet

// ForwardFLOPs is the analytic forward cost of one image, counted like the
// reference's count_forward_flops so that GFLOP/s figures compare directly:
// 2·MACs of every conv (2·out_elems·cin·k·k) and dense layer
// (2·out·in), plus the two attention products (2·2·HW·HW·C). Norms,
// activations and the softmax are not counted. A training step is
// conventionally 3× this (forward + backward ≈ 2× forward).
func ForwardFLOPs(cfg Config) float64 {
	cfg = cfg.Normalized()
	var f float64
	conv := func(cout, cin, k, hOut int) { f += 2 * float64(cout*hOut*hOut) * float64(cin*k*k) }
	dense := func(out, in int) { f += 2 * float64(out) * float64(in) }
	attn := func(c, h int) {
		hw := float64(h * h)
		f += 4 * hw * hw * float64(c)
		conv(c, c, 1, h) // q, k, v, proj_out
		conv(c, c, 1, h)
		conv(c, c, 1, h)
		conv(c, c, 1, h)
	}
	temb := 4 * cfg.Ch
	res := func(cin, cout, h int) {
		conv(cout, cin, 3, h)
		dense(cout, temb)
		conv(cout, cout, 3, h)
		if cin != cout {
			conv(cout, cin, 1, h)
		}
	}
	dense(temb, cfg.Ch)
	dense(temb, temb)
	conv(cfg.Ch, cfg.InCh, 3, cfg.Res)
	chans := []int{cfg.Ch}
	cur, r := cfg.Ch, cfg.Res
	for i, m := range cfg.ChMult {
		for range cfg.Blocks(i) {
			res(cur, cfg.Ch*m, r)
			cur = cfg.Ch * m
			if cfg.hasAttn(r) {
				attn(cur, r)
			}
			chans = append(chans, cur)
		}
		if i != len(cfg.ChMult)-1 {
			r /= 2
			conv(cur, cur, 3, r)
			chans = append(chans, cur)
		}
	}
	res(cur, cur, r)
	attn(cur, r)
	res(cur, cur, r)
	for i := len(cfg.ChMult) - 1; i >= 0; i-- {
		for range cfg.Blocks(i) + 1 {
			skip := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			res(cur+skip, cfg.Ch*cfg.ChMult[i], r)
			cur = cfg.Ch * cfg.ChMult[i]
			if cfg.hasAttn(r) {
				attn(cur, r)
			}
		}
		if i != 0 {
			r *= 2
			conv(cur, cur, 3, r)
		}
	}
	conv(cfg.OutCh, cur, 3, cfg.Res)
	return f
}
