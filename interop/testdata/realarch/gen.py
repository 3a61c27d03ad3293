#!/usr/bin/env python3
"""Ground truth from diffusers' own UNet2DModel at the real google/ddpm-* architectures.

For the hub configs of google/ddpm-cifar10-32 (35.7M parameters) and google/ddpm-celebahq-256 (113.7M; the
LSUN church/bedroom/cat models share it), this builds diffusers' UNet2DModel with seeded random weights
(std 0.05; GroupNorm weights 1 + 0.05·N, so that any wrong mapping shows) and writes, per architecture, a
folder laid out as the google hub repositories are (root-level files, PyTorch pickle weights, old attention
names):

  OUT/<arch>/config.json                 the hub's unet config (the keys the google repos have)
  OUT/<arch>/diffusion_pytorch_model.bin torch.save of the state dict, attention as query/key/value/proj_attn
  OUT/<arch>/scheduler_config.json       the hub's scheduler config
  OUT/<arch>/expected.safetensors        x [2,C,R,R] f32, t [2,2] i64 (cases [0, 537] and [999, 10]),
                                         eps [2,2,C,R,R] f32 = diffusers' output for each case
                                         eps_f64: the same in float64 (rounded to float32; not with --no-f64)
  OUT/<arch>/fixture.json                configs, provenance, cross-checks

The weights are ~143 MB (cifar10-32) and ~455 MB (celebahq-256): generate them, do not commit them.
interop's TestRealArch (DDPM_REALARCH=OUT go test ./interop -run RealArch) compares the project's eps with these.

Requirements (what it was run with, see docs/interop.md): Debian's PyTorch 1.13 (apt-get install python3-torch
python3-numpy python3-regex python3-filelock python3-requests python3-importlib-metadata python3-httpx),
diffusers' source (src/ of huggingface/diffusers at 58eb52c0) and huggingface_hub's source (pure Python; ee0a4510,
1.29.0.dev0) on PYTHONPATH. The `safetensors` package (a compiled extension) and the parts of torch >= 2 that diffusers'
imports name are shimmed below for importing only; nothing shimmed runs in UNet2DModel's forward (torch 1.13
has no scaled_dot_product_attention, so diffusers uses its classic AttnProcessor).

  PYTHONPATH=/tmp/dsrc/src:/tmp/hfsrc/src /usr/bin/python3 interop/testdata/realarch/gen.py --out /tmp/realarch
  PYTHONPATH=... /usr/bin/python3 interop/testdata/realarch/gen.py --check-tiny ../shared/peers/diffusers/tiny

--check-tiny first reproduces a peer fixture's eps (tiny, safetensors weights) with this setup.
"""
import argparse
import collections
import enum
import hashlib
import importlib.machinery
import json
import os
import struct
import sys
import time
import types


# ---- import shims (importing only) -------------------------------------------------------------------------

SHIMMED = []


def _ns(name, **kw):
    m = types.ModuleType(name)
    m.__dict__.update(kw)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return m


class _Absent:
    def __init__(self, *a, **k):
        raise RuntimeError("absent under this torch (import shim)")


class _MissingDtype:
    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return "torch." + self.n + "(absent)"


def install_shims():
    import torch
    import torch.distributed

    def stubmod(name, **kw):
        parent, _, leaf = name.rpartition(".")
        try:
            __import__(name)
            return
        except Exception:
            pass
        m = _ns(name, **kw)
        sys.modules[name] = m
        if parent:
            setattr(sys.modules[parent], leaf, m)
        SHIMMED.append(name)

    for dev in ("xpu", "mps"):
        if not hasattr(torch, dev):
            setattr(torch, dev, _ns("torch." + dev, empty_cache=lambda: None, is_available=lambda: False,
                                    device_count=lambda: 0, manual_seed=lambda s: None,
                                    reset_peak_memory_stats=lambda *a: None, max_memory_allocated=lambda *a: 0,
                                    synchronize=lambda *a: None))
            SHIMMED.append("torch." + dev)
    for n in ("float8_e4m3fn float8_e4m3fnuz float8_e5m2 float8_e5m2fnuz float8_e8m0fnu uint16 uint32 uint64 "
              "uint1 uint2 uint3 uint4 uint5 uint6 uint7 int1 int2 int3 int4 int5 int6 int7").split():
        if not hasattr(torch, n):
            setattr(torch, n, _MissingDtype(n))
            SHIMMED.append("torch." + n)
    try:
        import safetensors  # noqa: F401
    except ImportError:
        def no(*a, **k):
            raise RuntimeError("safetensors shim: importing only")
        st = _ns("safetensors", safe_open=no, SafetensorError=RuntimeError, __version__="0.0.0")
        st.torch = _ns("safetensors.torch", load_file=no, save_file=no, load=no, save=no, safe_open=no)
        sys.modules["safetensors"], sys.modules["safetensors.torch"] = st, st.torch
        SHIMMED.append("safetensors")
    stubmod("torch.distributed.device_mesh", DeviceMesh=_Absent, init_device_mesh=_Absent)
    stubmod("torch.distributed._functional_collectives")

    def disable(fn=None, *a, **k):
        return fn if callable(fn) else (lambda f: f)
    stubmod("torch.compiler", disable=disable, is_compiling=lambda: False, allow_in_graph=lambda f: f)
    stubmod("torch.nn.attention", sdpa_kernel=_Absent,
            SDPBackend=enum.Enum("SDPBackend", "MATH FLASH_ATTENTION EFFICIENT_ATTENTION CUDNN_ATTENTION"))
    stubmod("torch.nn.attention.flex_attention", BlockMask=_Absent, create_block_mask=_Absent,
            flex_attention=_Absent)


# ---- safetensors, by hand ----------------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    """Writes tensors (name -> torch tensor, float32 or int64) as a safetensors file."""
    import torch
    codes = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}
    head, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        b = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        head[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        head["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    import numpy as np
    import torch
    dt = {"F32": np.float32, "I64": np.int64, "F64": np.float64}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=np.dtype(dt[v["dtype"]]).newbyteorder("<")).reshape(v["shape"])
        out[k] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="))).clone()
    return out


# ---- the architectures -------------------------------------------------------------------------------------

COMMON = {
    "_class_name": "UNet2DModel", "_diffusers_version": "0.0.4", "act_fn": "silu", "attention_head_dim": None,
    "center_input_sample": False, "downsample_padding": 0, "flip_sin_to_cos": False, "freq_shift": 1,
    "in_channels": 3, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-06,
    "norm_num_groups": 32, "out_channels": 3, "time_embedding_type": "positional",
}
SCHEDULER = {
    "_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "beta_end": 0.02, "beta_schedule": "linear",
    "beta_start": 0.0001, "clip_sample": True, "num_train_timesteps": 1000, "trained_betas": None,
}
ARCHS = {
    # google/ddpm-cifar10-32 (FACTS.md §1)
    "cifar10-32": dict(
        unet=dict(COMMON, sample_size=32, block_out_channels=[128, 256, 256, 256],
                  down_block_types=["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
                  up_block_types=["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]),
        scheduler=dict(SCHEDULER, variance_type="fixed_large"), params=35746307, tensors=328),
    # google/ddpm-celebahq-256 (and -church/-bedroom/-cat-256)
    "celebahq-256": dict(
        unet=dict(COMMON, sample_size=256, block_out_channels=[128, 128, 256, 256, 512, 512],
                  down_block_types=["DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D",
                                    "DownBlock2D"],
                  up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D",
                                  "UpBlock2D"]),
        scheduler=dict(SCHEDULER, variance_type="fixed_small"), params=113673219, tensors=450),
}
CASES = [[0, 537], [999, 10]]
NEW_TO_OLD = [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")]


def build(unet_cfg):
    from diffusers.models.unets.unet_2d import UNet2DModel
    return UNet2DModel(**{k: v for k, v in unet_cfg.items() if not k.startswith("_")}).eval()


def randomize(model, gen):
    """std 0.05 normals everywhere; GroupNorm weights 1 + 0.05·N."""
    import torch
    norms = {n for n, m in model.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen) * 0.05
            if name.rpartition(".")[0] in norms and name.endswith(".weight"):
                r += 1
            p.copy_(r)


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def forward_cases(model, x, cases, dtype):
    import torch
    m = model.double() if dtype == torch.float64 else model.float()
    eps = []
    with torch.no_grad():
        for ts in cases:
            eps.append(m(x.to(dtype), torch.tensor(ts, dtype=torch.int64)).sample.float())
    model.float()
    return torch.stack(eps)


def src_sha256():
    import diffusers
    root = os.path.dirname(diffusers.__file__)
    h = hashlib.sha256()
    for f in ["models/unets/unet_2d.py", "models/unets/unet_2d_blocks.py", "models/resnet.py",
              "models/downsampling.py", "models/upsampling.py", "models/embeddings.py",
              "models/attention_processor.py", "models/modeling_utils.py"]:
        with open(os.path.join(root, f), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


def generate(arch, out, seed, f64):
    import torch
    import diffusers
    spec = ARCHS[arch]
    d = os.path.join(out, arch)
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    model = build(spec["unet"])
    randomize(model, gen)
    sd = model.state_dict()
    params = sum(p.numel() for p in model.parameters())
    assert params == spec["params"] and len(sd) == spec["tensors"], (params, len(sd))
    heads = sorted({m.heads for m in model.modules() if type(m).__name__ == "Attention"})
    procs = sorted({type(m.processor).__name__ for m in model.modules() if type(m).__name__ == "Attention"})
    r = spec["unet"]["sample_size"]
    x = torch.randn((2, spec["unet"]["in_channels"], r, r), generator=gen)

    t0 = time.time()
    eps = forward_cases(model, x, CASES, torch.float32)
    eps64 = None
    secs = time.time() - t0
    print(f"{arch}: {params} parameters, {len(sd)} tensors, attention heads {heads} ({procs}); "
          f"float32 forward of both cases {secs:.1f}s", flush=True)

    # The google hub files: old attention names, a torch.save pickle.
    old = collections.OrderedDict()
    for k, v in sd.items():
        for a, b in NEW_TO_OLD:
            k = k.replace(a, b)
        old[k] = v.clone().contiguous()
    torch.save(old, os.path.join(d, "diffusion_pytorch_model.bin"))
    for name, cfg in (("config.json", spec["unet"]), ("scheduler_config.json", spec["scheduler"])):
        with open(os.path.join(d, name), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")

    # Cross-check 1: the written folder, read back by diffusers itself (from_pretrained renames the old
    # attention names), gives the same eps.
    checks = {}
    try:
        from diffusers.models.unets.unet_2d import UNet2DModel
        back = UNet2DModel.from_pretrained(d).eval()
        how = "UNet2DModel.from_pretrained"
    except Exception as e:  # fall back to diffusers' own rename of the loaded state dict
        back = build(spec["unet"])
        loaded = torch.load(os.path.join(d, "diffusion_pytorch_model.bin"), map_location="cpu")
        back._fix_state_dict_keys_on_load(loaded)
        back.load_state_dict(loaded, strict=True)
        how = f"torch.load + _fix_state_dict_keys_on_load + strict load_state_dict (from_pretrained: {e!r:.200})"
    eps_back = forward_cases(back, x, CASES, torch.float32)
    checks["reload"] = {"how": how, "rel": rel(eps_back, eps)}
    del back
    print(f"{arch}: reload via {how.split(' (')[0]}: rel {checks['reload']['rel']:.3g}", flush=True)

    # Cross-check 2: the float32 noise floor (the same model in float64).
    if f64:
        t0 = time.time()
        eps64 = forward_cases(model, x, CASES, torch.float64)  # rounded to float32 at the end
        checks["float32_vs_float64"] = {"rel": rel(eps, eps64),
                                        "per_case": [rel(eps[k], eps64[k]) for k in range(len(CASES))]}
        print(f"{arch}: float32 vs float64 rel {checks['float32_vs_float64']['per_case']} "
              f"({time.time() - t0:.1f}s)", flush=True)

    meta = {
        "fixture": arch, "seed": seed, "batch": 2, "cases": json.dumps(CASES),
        "unet_config": json.dumps(spec["unet"], sort_keys=True),
        "scheduler_config": json.dumps(spec["scheduler"], sort_keys=True), "attn_names": "old",
        "attention_heads": json.dumps(heads), "params": params, "diffusers_version": diffusers.__version__,
        "diffusers_src_sha256": src_sha256(), "torch": torch.__version__,
        "layout": "NCHW float32; eps[k] = unet(x, t[k])",
        "rel_error": "||a-b||_2 / ||b||_2 over all elements, float64 accumulation",
    }
    ts = {"x": x, "t": torch.tensor(CASES, dtype=torch.int64), "eps": eps}
    if eps64 is not None:
        ts["eps_f64"] = eps64  # the float64 forward, rounded to float32: the float32 noise floor
    write_safetensors(os.path.join(d, "expected.safetensors"), ts, meta)
    fx = dict(meta, cases=CASES, unet_config=spec["unet"], scheduler_config=spec["scheduler"],
              attention_heads=heads, attention_processors=procs, tensors=len(sd),
              eps_abs_mean=float(eps.abs().mean()), eps_abs_max=float(eps.abs().max()),
              forward_seconds_f32=secs, cross_checks=checks, shimmed=SHIMMED,
              files=["config.json", "diffusion_pytorch_model.bin", "scheduler_config.json", "expected.safetensors"])
    with open(os.path.join(d, "fixture.json"), "w") as f:
        json.dump(fx, f, indent=2)
        f.write("\n")


def check_tiny(dir_):
    """Reproduces a peer fixture's eps (its unet/ safetensors weights) with this setup."""
    import torch
    with open(os.path.join(dir_, "unet", "config.json")) as f:
        cfg = json.load(f)
    model = build(cfg)
    model.load_state_dict(read_safetensors(os.path.join(dir_, "unet", "diffusion_pytorch_model.safetensors")),
                          strict=True)
    ex = read_safetensors(os.path.join(dir_, "expected.safetensors"))
    eps = forward_cases(model, ex["x"], ex["t"].tolist(), torch.float32)
    e = rel(eps, ex["eps"])
    print(f"{dir_}: eps relative error against the fixture {e:.3g} (float32 noise: ~1e-6)")
    if not e < 1e-5:
        sys.exit("this setup does not reproduce the peer fixture")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output folder (one subfolder per architecture)")
    ap.add_argument("--arch", default=",".join(ARCHS), help="comma-separated: " + ", ".join(ARCHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-f64", action="store_true", help="skip the float64 cross-check")
    ap.add_argument("--check-tiny", metavar="DIR", help="first reproduce this peer fixture (e.g. .../diffusers/tiny)")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    install_shims()
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.check_tiny:
        check_tiny(a.check_tiny)
    if a.out:
        for arch in a.arch.split(","):
            generate(arch, a.out, a.seed, not a.no_f64)


if __name__ == "__main__":
    main()
