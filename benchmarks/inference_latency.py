#!/usr/bin/env python3
"""LaWAM inference latency, the paper's protocol: mean over N `predict_chunk` calls after warm-up, 10 Euler
steps. Prints mean / p50 / p99 ms per chunk, the parameter count, and the ratio of a full chunk to the
prefix-only pass (DINOv3 + VLM + LaWM + context projection, no denoising), which shows that the 10 denoising
steps reuse the prefix and the context keys/values.

    python benchmarks/inference_latency.py --preset tiny                 # CPU, fp32, N = 50
    python benchmarks/inference_latency.py --preset paper --dtype bf16 -n 20
    python benchmarks/inference_latency.py --preset paper --device cuda  # bf16, N = 1000

Random weights are fine for latency; `--checkpoint DIR` times a real checkpoint instead. Nothing is downloaded.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "lawam_policy"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lawam_policy.model import LaWAMConfig, LaWAMPolicy  # noqa: E402


def build(args, device, dtype):
    if args.checkpoint:
        return LaWAMPolicy.from_pretrained(args.checkpoint, device=device, dtype=dtype)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # allocate the random weights directly in the target dtype
    try:
        with torch.device(device):
            torch.manual_seed(0)
            policy = LaWAMPolicy(LaWAMConfig.from_preset(args.preset))
    finally:
        torch.set_default_dtype(previous)
    return policy.to(device=device, dtype=dtype).eval()


def timed(fn, n, device):
    times = []
    for _ in range(n):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000.0)
    return np.array(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    ap.add_argument("--checkpoint", default=None, help="time this checkpoint instead of random weights")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default=None, choices=["fp32", "bf16"], help="default: fp32 on CPU, bf16 on GPU")
    ap.add_argument("-n", "--num-calls", type=int, default=None, help="default: 1000 on a GPU, 50 on the CPU")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--hz", type=float, default=20.0, help="branch control rate (H = round(T * hz))")
    ap.add_argument("--cameras", type=int, default=2, help="primary + auxiliary images per call")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA requested but not available")
    dtype_name = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    n = args.num_calls or (1000 if device.type == "cuda" else 50)
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    policy = build(args, device, dtype)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(args.cameras)]
    instruction = "put the black bowl on the plate"
    chunk = lambda: policy.predict_chunk(images, instruction, args.hz, seed=0)  # noqa: E731
    prefix = lambda: policy.prefix_only(images, instruction, args.hz)  # noqa: E731

    timed(chunk, args.warmup, device)
    timed(prefix, args.warmup, device)
    chunk_ms = timed(chunk, n, device)
    # Interleave chunk and prefix-only calls for the ratio, so load from other processes hits both alike.
    pairs = [(timed(chunk, 1, device)[0], timed(prefix, 1, device)[0]) for _ in range(max(10, n // 2))]
    ratio = float(np.median([c / p for c, p in pairs]))
    prefix_ms = np.array([p for _, p in pairs])

    report = policy.parameter_report()
    dev_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"CPU x{torch.get_num_threads()} threads")
    print(f"LaWAM inference latency | preset={args.checkpoint or args.preset} device={dev_name} dtype={dtype_name} "
          f"H={policy.config.horizon_steps(args.hz)} ({args.hz:g} Hz) cameras={args.cameras} "
          f"denoise_steps={policy.config.num_denoise_steps} build={build_s:.1f}s")
    print(f"parameters: total(deployed)={report['total'] / 1e6:.1f}M " +
          " ".join(f"{k}={v / 1e6:.1f}M" for k, v in report.items() if k != "total"))
    print(f"chunk  ms over N={n}: mean={chunk_ms.mean():.2f} p50={np.percentile(chunk_ms, 50):.2f} "
          f"p99={np.percentile(chunk_ms, 99):.2f} min={chunk_ms.min():.2f}")
    print(f"prefix ms over N={len(prefix_ms)}: mean={prefix_ms.mean():.2f} p50={np.percentile(prefix_ms, 50):.2f}")
    print(f"chunk / prefix ratio: {ratio:.2f}x (median of {len(pairs)} interleaved pairs), "
          f"{np.percentile(chunk_ms, 50) / np.percentile(prefix_ms, 50):.2f}x (p50 / p50), "
          f"{chunk_ms.min() / prefix_ms.min():.2f}x (min / min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
