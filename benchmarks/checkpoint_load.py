#!/usr/bin/env python3
"""Checkpoint load time and peak memory of LaWAMPolicy.from_pretrained, each in a fresh process.

    python benchmarks/checkpoint_load.py --write /tmp/paper_bf16 --preset paper --dtype bfloat16   # ~5 GB
    python benchmarks/checkpoint_load.py /tmp/paper_bf16

`--write DIR` first writes a checkpoint of the preset with random weights (parameters built on the meta device,
so writing needs about one copy of the weights); never commit one. Loading prints the import and
from_pretrained times, the peak RSS right after loading, and the peak RSS and time after reading every weight
once (loaded weights may stay file-backed until first touched, as on the first forward pass).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "lawam_policy"))


def write(directory: str, preset: str, dtype: str) -> None:
    import torch

    from lawam_policy.model import LaWAMConfig, LaWAMPolicy
    from lawam_policy.model.checkpoint import parameters_on_meta, save_checkpoint

    t0 = time.perf_counter()
    with parameters_on_meta():
        policy = LaWAMPolicy(LaWAMConfig.from_preset(preset))
    gen = torch.Generator().manual_seed(0)
    state = {}
    for k, v in policy.state_dict().items():
        if v.is_meta:
            state[k] = (torch.randn(v.shape, generator=gen) * 0.02).to(getattr(torch, dtype))
        else:
            state[k] = v.to(getattr(torch, dtype)) if v.is_floating_point() else v
    save_checkpoint(policy, directory, state_dict=state)
    size = Path(directory, "model.safetensors").stat().st_size / 1e9
    print(f"wrote {directory}: {preset} preset, {dtype}, {size:.2f} GB in {time.perf_counter() - t0:.0f} s")


def load(directory: str) -> None:
    import resource

    import torch

    def peak_gib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    t0 = time.perf_counter()
    from lawam_policy.model import LaWAMPolicy
    t1 = time.perf_counter()
    policy = LaWAMPolicy.from_pretrained(directory)
    t2 = time.perf_counter()
    rss_loaded = peak_gib()
    with torch.no_grad():
        checksum = sum(float(p.float().abs().sum()) for p in policy.parameters())
    t3 = time.perf_counter()
    params = list(policy.parameters())
    gib = sum(p.numel() * p.element_size() for p in params) / 2**30
    print(f"{directory}: {sum(p.numel() for p in params) / 1e9:.3f} G parameters "
          f"{sorted({str(p.dtype) for p in params})} = {gib:.2f} GiB; import {t1 - t0:.1f} s, "
          f"from_pretrained {t2 - t1:.1f} s, peak RSS {rss_loaded:.2f} GiB; after reading every weight once "
          f"({t3 - t2:.1f} s, checksum {checksum:.4g}) peak RSS {peak_gib():.2f} GiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", help="checkpoint directory to load")
    ap.add_argument("--write", metavar="DIR", help="write a random-weight checkpoint to DIR first, then load it")
    ap.add_argument("--preset", default="paper", choices=["paper", "sim", "tiny"])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # the fresh child process
    args = ap.parse_args()
    if args.in_process:
        load(args.checkpoint)
        return 0
    if args.write:
        write(args.write, args.preset, args.dtype)
    target = args.write or args.checkpoint
    if not target:
        ap.error("give a checkpoint directory or --write DIR")
    # A fresh process, so the peak RSS is the load's alone.
    return subprocess.call([sys.executable, __file__, target, "--in-process"])


if __name__ == "__main__":
    sys.exit(main())
