#!/usr/bin/env python3
"""Video decode speed (frames/s) of LeRobot episode videos in the pattern training reads them: random samples,
each the frames at t and t + T of one camera (lawam_training.data.DemoDataset), through the workspace's PyAV
decoder (lawam_training.video_decode) and, when it loads, LeRobot's torchcodec decoder (needs a system FFmpeg).

    python benchmarks/video_decode.py                                # synthetic: 3 episodes x 20 s, 15 fps, 224x224
    python benchmarks/video_decode.py --dataset DIR --samples 300 --horizon 1.2

Without --dataset a synthetic dataset (moving texture with sensor noise, h264 as the recorder writes it; --vcodec) is written
to a temporary directory. Both decoders read the same (file, timestamp) pairs in the same order; the first
--warmup samples (opening the files) are not timed. Prints one line per decoder and a JSON summary.
The workspace installs neither torchcodec nor a system FFmpeg; to compare, `pip install torchcodec==0.17.0` into
the venv and install the FFmpeg libraries (Debian 12: libavutil57 libavcodec59 libavformat59 libavdevice59
libavfilter8 libswscale6 libswresample4).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src" / "lawam_training"), str(ROOT / "src" / "lawam_policy")]

import numpy as np  # noqa: E402


def synthetic_dataset(root: Path, episodes: int, seconds: float, fps: int, size: int, vcodec: str) -> Path:
    from lawam_policy.action_layout import get_layout
    from lawam_training.episode_store import EpisodeStore, make_features

    layout = get_layout("franka_panda")
    store = EpisodeStore(root, fps, make_features(layout, {"primary": (size, size)}), "franka_panda", vcodec=vcodec)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = int(seconds * fps)
    for e in range(episodes):
        rec = store.begin_episode(f"pick up the cube {e}")
        for k in range(frames):
            phase = 2 * np.pi * k / frames
            base = 127 + 80 * np.sin(6 * xx + phase)[..., None] * np.cos(4 * yy - phase)[..., None] * [1, 0.7, 0.4]
            img = np.clip(base + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
            s = np.array([0.4 + 0.1 * k / frames, 0.0, 0.3, 0, 0, 0, 1, k / frames], np.float32)
            rec.add_frame({"primary": img}, s, s)
        rec.commit()
    return root


def queries(root: Path, n: int, horizon_s: float, seed: int):
    """[(video path, [from_ts + t, from_ts + t + T])] for n random frames t of random episodes."""
    from lawam_training.video_decode import PyAVLeRobotDataset

    ds = PyAVLeRobotDataset("local/bench", root=root)
    key = ds.meta.video_keys[0]
    h = max(1, round(horizon_s * ds.fps))
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ep = rng.randrange(ds.meta.total_episodes)
        row = ds.meta.episodes[ep]
        length = int(row["length"])
        t = rng.randrange(max(1, length - h)) / ds.fps
        start = row[f"videos/{key}/from_timestamp"]
        out.append((root / ds.meta.get_video_file_path(ep, key), [start + t, start + t + h / ds.fps]))
    return out, ds.tolerance_s


def measure(decode, qs, tolerance_s, warmup):
    for path, ts in qs[:warmup]:
        decode(path, ts, tolerance_s)
    t0 = time.perf_counter()
    frames = 0
    for path, ts in qs[warmup:]:
        frames += len(decode(path, ts, tolerance_s))
    return frames / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", help="an existing LeRobot v3.0 dataset (default: a synthetic one)")
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0, help="synthetic episode length")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--vcodec", default="h264", help="synthetic video codec (h264 | hevc | libsvtav1)")
    ap.add_argument("--samples", type=int, default=200, help="timed samples (2 frames each)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--horizon", type=float, default=1.2, help="T in seconds between the two frames")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (torchcodec decodes through torch)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    from lawam_training.video_decode import decode_frames

    with tempfile.TemporaryDirectory(prefix="lawam_bench_") as tmp:
        root = Path(args.dataset) if args.dataset else synthetic_dataset(
            Path(tmp) / "ds", args.episodes, args.seconds, args.fps, args.size, args.vcodec)
        qs, tol = queries(root, args.warmup + args.samples, args.horizon, seed=0)
        results = {"pyav": measure(decode_frames, qs, tol, args.warmup)}
        try:
            from lerobot.datasets.video_utils import decode_video_frames_torchcodec
            results["torchcodec"] = measure(decode_video_frames_torchcodec, qs, tol, args.warmup)
        except Exception as e:  # torchcodec missing, or no system FFmpeg for it to load
            results["torchcodec"] = None
            print(f"torchcodec: not measured ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        for name, fps in results.items():
            if fps is not None:
                print(f"{name:>10}: {fps:7.1f} frames/s  ({args.samples} samples x 2 frames, random access)")
        print(json.dumps({"frames_per_s": results, "samples": args.samples, "horizon_s": args.horizon,
                          "dataset": args.dataset or f"synthetic {args.episodes}x{args.seconds:g}s "
                          f"{args.fps}fps {args.size}px {args.vcodec}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
