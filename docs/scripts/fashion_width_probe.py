#!/usr/bin/env python3
"""Probe for docs/quality.md ("Width or training length"): the project's U-Net in PyTorch, trained on a GPU.

Trains the U-Net of ../shared/peers/torch_unet_bench.py, with per-level block counts as in mnist-deeper and
mnist-wide (its parameter names and counts are the Go engine's), on Fashion-MNIST with the shipped model's recipe
(eps, L_simple, cosine beta schedule, Adam 4e-4 with 200 warm-up steps and cosine decay to 0, gradient clipping at
1, EMA 0.9995 warmed up) for as many steps as --train-seconds allows, then draws --n samples with the respaced
sampler (--k even steps, beta-tilde variance, x0 clipped) and saves them as uint8, with the EMA weights in float16,
in OUT/NAME.npz. On a GPU the whole training step is captured once as a CUDA graph and replayed (--graphs 0:
eager steps): these small networks are bound by kernel launches. Write the samples out as PNGs with --unpack NPZ
DIR (needs Pillow), then score them in Go: ddpm eval quality --ref DIR --data fashion-mnist --n 10000.
--init FILE starts from a ddpm export (fresh Adam and EMA); after training, the EMA weights are also written as
OUT/NAME.safetensors, which ddpm loads (`ddpm export --model OUT/NAME.safetensors --half` adds the checksum).

  python3 fashion_width_probe.py --name wide --ch 32 --batch 64 --steps 20000 --train-seconds 270 \
      --data train-images-idx3-ubyte.gz --out /tmp
  python3 fashion_width_probe.py --name shipped --ch 32 --steps 0 --init fashion-mnist.safetensors  # sample only
  python3 fashion_width_probe.py --name ft128b --ch 32 --batch 128 --init fashion-wide20k.safetensors --lr 2e-4 \
      --steps 10055 --train-seconds 600 --data train-images-idx3-ubyte.gz  # the shipped model's first fine-tune
  python3 fashion_width_probe.py --name ft2 --ch 32 --batch 256 --init fashion-ft1.safetensors --lr 2e-4 \
      --steps 17818 --train-seconds 600 --data train-images-idx3-ubyte.gz  # and its second
"""
import argparse, gzip, json, math, os, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GN_EPS = 1e-6
T = 1000


def temb_sin(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1))
    a = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, tch, g):
        super().__init__()
        self.norm1 = nn.GroupNorm(g, cin, eps=GN_EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb_proj = nn.Linear(tch, cout)
        self.norm2 = nn.GroupNorm(g, cout, eps=GN_EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, ch, g):
        super().__init__()
        self.norm = nn.GroupNorm(g, ch, eps=GN_EPS)
        self.q = nn.Conv2d(ch, ch, 1)
        self.k = nn.Conv2d(ch, ch, 1)
        self.v = nn.Conv2d(ch, ch, 1)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x)
        q = self.q(h).reshape(B, C, H * W).transpose(1, 2)
        k = self.k(h).reshape(B, C, H * W)
        v = self.v(h).reshape(B, C, H * W)
        w = torch.softmax(torch.bmm(q, k) * (C ** -0.5), dim=2)  # [B, HW(q), HW(k)]
        h = torch.bmm(v, w.transpose(1, 2)).reshape(B, C, H, W)
        return x + self.proj_out(h)


class UNet(nn.Module):
    def __init__(self, in_ch, res, ch, ch_mult, level_blocks, attn_res, groups):
        super().__init__()
        self.ch = ch
        tch = 4 * ch
        self.temb_dense0 = nn.Linear(ch, tch)
        self.temb_dense1 = nn.Linear(tch, tch)
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down = nn.ModuleList()
        chans, cur, r = [ch], ch, res
        for i, mult in enumerate(ch_mult):
            for _ in range(level_blocks[i]):
                blk = nn.ModuleList([ResBlock(cur, ch * mult, tch, groups)])
                cur = ch * mult
                if r in attn_res:
                    blk.append(AttnBlock(cur, groups))
                self.down.append(blk)
                chans.append(cur)
            if i != len(ch_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(cur, cur, 3, stride=2, padding=1)]))
                chans.append(cur)
                r = (r + 1) // 2
        self.mid1 = ResBlock(cur, cur, tch, groups)
        self.mid_attn = AttnBlock(cur, groups)
        self.mid2 = ResBlock(cur, cur, tch, groups)
        self.up = nn.ModuleList()
        sizes = [res]
        for _ in ch_mult[1:]:
            sizes.append((sizes[-1] + 1) // 2)
        for i, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(level_blocks[i] + 1):
                blk = nn.ModuleList([ResBlock(cur + chans.pop(), ch * mult, tch, groups)])
                cur = ch * mult
                if sizes[i] in attn_res:
                    blk.append(AttnBlock(cur, groups))
                self.up.append(blk)
            if i != 0:
                self.up.append(nn.ModuleList([nn.Conv2d(cur, cur, 3, padding=1)]))
        assert not chans
        self.norm_out = nn.GroupNorm(groups, cur, eps=GN_EPS)
        self.conv_out = nn.Conv2d(cur, in_ch, 3, padding=1)
        self.sizes = sizes

    def forward(self, x, t):
        temb = self.temb_dense1(F.silu(self.temb_dense0(temb_sin(t, self.ch))))
        h = self.conv_in(x)
        hs = [h]
        for blk in self.down:
            if isinstance(blk[0], ResBlock):
                h = blk[0](h, temb)
                for m in blk[1:]:
                    h = m(h)
            else:
                h = blk[0](h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for blk in self.up:
            if isinstance(blk[0], ResBlock):
                skip = hs.pop()
                h = blk[0](torch.cat([h, skip], dim=1), temb)
                for m in blk[1:]:
                    h = m(h)
            else:
                h = blk[0](F.interpolate(h, size=hs[-1].shape[-1], mode="nearest"))
        assert not hs
        return self.conv_out(F.silu(self.norm_out(h)))


def init_official(net):
    # variance_scaling(1, fan_avg, uniform) = Xavier uniform; 1e-10 scale for each block's last conv,
    # attention's proj_out and conv_out (the official code's init, as the Go engine does); biases 0.
    small = set()
    for m in net.modules():
        if isinstance(m, ResBlock):
            small.add(m.conv2.weight)
        if isinstance(m, AttnBlock):
            small.add(m.proj_out.weight)
    small.add(net.conv_out.weight)
    for n, p in net.named_parameters():
        if n.endswith("bias"):
            nn.init.zeros_(p)
        elif p.dim() >= 2:
            nn.init.xavier_uniform_(p, gain=1e-5 if p in small else 1.0)  # gain² = 1e-10 scale


def cosine_betas():
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - f(i + 1) / f(i), 0.999) for i in range(T)], dtype=np.float64)


def load_images(path):
    with gzip.open(path, "rb") as fh:
        b = fh.read()
    n, h, w = int.from_bytes(b[4:8], "big"), int.from_bytes(b[8:12], "big"), int.from_bytes(b[12:16], "big")
    return np.frombuffer(b, np.uint8, offset=16).reshape(n, 1, h, w)


def load_safetensors(path):
    # The engine's files (ddpm export, training checkpoint): a little-endian header length, a JSON header, raw
    # tensors. Returns the tensors and the metadata.
    with open(path, "rb") as fh:
        b = fh.read()
    n = int.from_bytes(b[:8], "little")
    out, meta = {}, {}
    for k, v in json.loads(b[8:8 + n]).items():
        if k == "__metadata__":
            meta = v
            continue
        lo, hi = v["data_offsets"]
        dt = {"F16": np.float16, "F32": np.float32}[v["dtype"]]
        out[k] = torch.from_numpy(np.frombuffer(b, dt, count=(hi - lo) // np.dtype(dt).itemsize,
                                                offset=8 + n + lo).astype(np.float32).reshape(v["shape"]))
    return out, meta


def save_safetensors(path, tensors, meta):
    # A float16 weights-only file that ddpm loads (`ddpm export --half --model FILE` adds a checksum).
    header, off, blobs = {"__metadata__": meta}, 0, []
    for k in sorted(tensors):
        b = tensors[k].detach().half().cpu().numpy().astype("<f2").tobytes()
        header[k] = {"dtype": "F16", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(len(h).to_bytes(8, "little") + h)
        for b in blobs:
            fh.write(b)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--unpack":
        from PIL import Image
        os.makedirs(sys.argv[3], exist_ok=True)
        for i, im in enumerate(np.load(sys.argv[2])["samples"][:, 0]):
            Image.fromarray(im).save(os.path.join(sys.argv[3], f"{i:05d}.png"))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    ap.add_argument("--ch", type=int, default=16)
    ap.add_argument("--mult", default="1,2,4")
    ap.add_argument("--blocks", default="2,2,3")
    ap.add_argument("--attn", default="7")
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20000, help="most training steps")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--train-seconds", type=float, default=300, help="the horizon shrinks to fit this")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--k", type=int, default=250)
    ap.add_argument("--sample-batch", type=int, default=2500)
    ap.add_argument("--probe", type=int, default=300)
    ap.add_argument("--probe2", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    ap.add_argument("--graphs", type=int, default=1, help="on a GPU, replay the training step as a CUDA graph")
    ap.add_argument("--init", help="start from these weights (a ddpm export); with --steps 0, only sample")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    t0 = time.time()
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(a.seed)
    log = lambda *s: print(f"[{a.name} {time.time() - t0:6.1f}s]", *s, flush=True)

    if a.steps > 0:
        x_all = torch.from_numpy(load_images(a.data).copy()).to(dev).float() / 127.5 - 1
        N = x_all.shape[0]
    else:
        N = 0
    mult = [int(v) for v in a.mult.split(",")]
    blocks = [int(v) for v in a.blocks.split(",")]
    attn = [int(v) for v in a.attn.split(",") if v]
    net = UNet(1, 28, a.ch, mult, blocks, attn, a.groups).to(dev)
    init_official(net)
    names = [n for n, _ in net.named_parameters()]
    meta = {}
    if a.init:
        w, meta = load_safetensors(a.init)
        net.load_state_dict(w)  # strict: names and shapes are the engine's
    params = sum(p.numel() for p in net.parameters())
    ema = [p.detach().clone() for p in net.parameters()]
    graphs = a.graphs and dev.type == "cuda"
    plist = list(net.parameters())
    # A captured step reads the rate and the EMA weight from device tensors that are refilled before each replay.
    lr_t = torch.tensor(a.lr, device=dev) if graphs else a.lr
    kw = {"fused": True, "capturable": graphs} if dev.type == "cuda" else {}
    opt = torch.optim.Adam(plist, lr=lr_t, betas=(0.9, 0.999), eps=1e-8, **kw)
    ema_w = torch.zeros((), device=dev)
    loss_sum = torch.zeros((), device=dev)
    betas = cosine_betas()
    ab = torch.tensor(np.cumprod(1 - betas), dtype=torch.float32, device=dev)
    log(f"{params} params, ch {a.ch} mult {mult} blocks {blocks} attn {attn}, batch {a.batch}, {N} images")

    def train_step(w):
        # One step of Algorithm 1 with Adam, clipping and the EMA (w = 1 - decay), all on the device.
        idx = torch.randint(0, N, (a.batch,), device=dev)
        x0 = x_all[idx]
        t = torch.randint(0, T, (a.batch,), device=dev)
        eps = torch.randn_like(x0)
        abt = ab[t][:, None, None, None]
        xt = abt.sqrt() * x0 + (1 - abt).sqrt() * eps
        loss = F.mse_loss(net(xt, t), eps)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plist, 1.0)
        opt.step()
        with torch.no_grad():
            if torch.is_tensor(w):
                diff = torch._foreach_sub([p.detach() for p in plist], ema)
                torch._foreach_mul_(diff, w)
                torch._foreach_add_(ema, diff)
            elif hasattr(torch, "_foreach_lerp_"):
                torch._foreach_lerp_(ema, [p.detach() for p in plist], w)
            else:  # old CPU torch, for testing the script
                for e, p in zip(ema, plist):
                    e.lerp_(p.detach(), w)
            loss_sum.add_(loss.detach())

    def rate_at(step, horizon):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        return a.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - a.warmup) / max(1, horizon - a.warmup))))

    horizon, step, graph, logged = a.steps, 0, None, 0
    side = torch.cuda.Stream() if graphs else None
    probe, probe2 = min(a.probe, a.steps), a.probe2
    net.train()
    tstart = time.time()
    while step < horizon:
        lr = rate_at(step, horizon)
        d = min(0.9995, (2 + step) / (11 + step))
        if graphs:
            lr_t.fill_(lr)
            ema_w.fill_(1 - d)
        else:
            for g in opt.param_groups:
                g["lr"] = lr
        if graph is not None:
            graph.replay()
        elif graphs:  # PyTorch's whole-network capture recipe: the warm-up steps run on a side stream
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                opt.zero_grad(set_to_none=True)
                train_step(ema_w)
            torch.cuda.current_stream().wait_stream(side)
        else:
            opt.zero_grad(set_to_none=True)
            train_step(1 - d)
        step += 1
        if graphs and graph is None and step == 3:
            # Capture one whole step after three eager ones; the RNG advances on each replay.
            try:
                torch.cuda.synchronize()
                opt.zero_grad(set_to_none=True)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    train_step(ema_w)
                graph = g
                log("captured the training step in a CUDA graph")
            except Exception as e:  # fall back to eager steps
                log(f"no CUDA graph ({type(e).__name__}: {e}); eager steps")
                graphs = False  # the same optimiser (and its moments) steps eagerly
        if step == 3:  # the rate probes time steady steps, after the warm-up and the capture
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t3 = time.time()
        if step in (probe, probe2) and 3 < step < horizon:
            # Fit the horizon to the time budget: from the first steps, then again at steady state.
            if dev.type == "cuda":
                torch.cuda.synchronize()
            now = time.time()
            if step == probe:
                rate, tprobe = (probe - 3) / (now - t3), now
            else:
                rate = (probe2 - probe) / (now - tprobe)
            left = a.train_seconds * 0.97 - (now - tstart)
            horizon = max(step + 1, min(a.steps, step + int(rate * left)))
            log(f"{rate:.1f} steps/s at step {step}: horizon {horizon} steps")
        if time.time() - tstart > a.train_seconds * 1.2:
            log(f"out of time at step {step}: stopping before the horizon {horizon}")
            break
        if step % 2000 == 0 or step == horizon:
            l = loss_sum.item() / (step - logged)
            loss_sum.zero_()
            logged = step
            log(f"step {step}/{horizon} loss {l:.4f} lr {lr:.2e}")
    train_s = time.time() - tstart
    fine_tuned = bool(a.init) and step > 0
    if fine_tuned:  # the EMA weights as a ddpm weights file with the configs of the one it started from, written
        # before sampling so that a run cut short while sampling keeps them
        kept = {k: meta[k] for k in ("unet", "diffusion", "train") if k in meta}
        save_safetensors(os.path.join(a.out, a.name + ".safetensors"), dict(zip(names, ema)),
                         dict(kept, step=str(int(meta.get("step", 0)) + step), weights="ema"))
        log(f"wrote {a.name}.safetensors")

    # Respaced sampler: K evenly spaced steps round(s(T-1)/(K-1)), beta-tilde variance, x0 clipped.
    keep = [round(s * (T - 1) / (a.k - 1)) for s in range(a.k)]
    abk = np.cumprod(1 - betas)[keep]
    prev = np.concatenate([[1.0], abk[:-1]])
    bk = 1 - abk / prev
    var = bk * (1 - prev) / (1 - abk)
    c0 = bk * np.sqrt(prev) / (1 - abk)
    ct = (1 - prev) * np.sqrt(1 - bk) / (1 - abk)
    with torch.no_grad():
        for p, e in zip(net.parameters(), ema):
            p.copy_(e)
    net.eval()
    gen = torch.Generator(device=dev).manual_seed(1000 + a.seed)
    out = []
    ts = time.time()
    with torch.no_grad():
        for b0 in range(0, a.n, a.sample_batch):
            B = min(a.sample_batch, a.n - b0)
            x = torch.randn(B, 1, 28, 28, device=dev, generator=gen)
            for s in reversed(range(a.k)):
                tt = torch.full((B,), keep[s], device=dev, dtype=torch.long)
                e = net(x, tt)
                x0 = ((x - math.sqrt(1 - abk[s]) * e) / math.sqrt(abk[s])).clamp(-1, 1)
                mean = c0[s] * x0 + ct[s] * x
                if s > 0:
                    x = mean + math.sqrt(var[s]) * torch.randn(x.shape, device=dev, generator=gen)
                else:
                    x = mean
            out.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu())
            log(f"sampled {b0 + B}/{a.n}")
    samples = torch.cat(out).numpy()
    info = dict(name=a.name, params=params, ch=a.ch, mult=mult, blocks=blocks, attn=attn, batch=a.batch,
                steps=step, train_seconds=round(train_s, 1), sample_seconds=round(time.time() - ts, 1),
                k=a.k, n=a.n, lr=a.lr, device=str(torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"))
    arrays = {"samples": samples, "meta": np.frombuffer(json.dumps(info).encode(), np.uint8)}
    if not fine_tuned:
        for n, e in zip(names, ema):
            arrays["w/" + n] = e.half().cpu().numpy()
    np.savez_compressed(os.path.join(a.out, a.name + ".npz"), **arrays)
    log("done", json.dumps(info))


if __name__ == "__main__":
    main()
