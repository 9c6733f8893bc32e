#!/usr/bin/env python3
"""LaWAM training throughput (samples/s) through the real training loop (lawam_training.train.Trainer):
data loading from a LeRobot dataset (video decoding), the stage's losses, backward, AdamW step.

    python benchmarks/training_throughput.py                         # tiny preset, CPU, stages 1 and 2
    python benchmarks/training_throughput.py --dataset DIR --steps 50 --batch-size 8 --threads 2

Without --dataset a synthetic franka dataset (224x224 camera, 30 fps) is written to a temporary directory.
The first --warmup steps are not timed. Prints one line per stage and a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src" / "lawam_training"), str(ROOT / "src" / "lawam_policy")]

import numpy as np  # noqa: E402
import torch  # noqa: E402


def synthetic_dataset(root: Path, episodes: int, frames: int, fps: int, size: int) -> Path:
    from lawam_policy.action_layout import get_layout
    from lawam_training.episode_store import EpisodeStore, make_features

    layout = get_layout("franka_panda")
    store = EpisodeStore(root, fps, make_features(layout, {"primary": (size, size)}), "franka_panda")
    rng = np.random.default_rng(0)
    for e in range(episodes):
        rec = store.begin_episode(f"pick up the cube {e}")
        for k in range(frames):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            s = np.array([0.4 + 0.1 * k / frames, 0.0, 0.3, 0, 0, 0, 1, k / frames], np.float32)
            rec.add_frame({"primary": img}, s, s)
        rec.commit()
    return root


def measure(policy, stage, data, steps, warmup, batch_size, workers, run_dir):
    from lawam_training.train import Trainer, TrainOptions

    # Windows of 5 steps: their median resists bursts from other processes on a shared machine.
    opts = TrainOptions(steps=warmup + steps, batch_size=batch_size, log_every=5, val_every=10 ** 9,
                        checkpoint_every=10 ** 9, progress=False, num_workers=workers, keep_checkpoints=1)
    trainer = Trainer(policy, stage, data, run_dir / f"stage{stage}", opts, log=lambda m: None)
    trainer.fit(stop_after=warmup)  # warm-up (allocations, first video decode), untimed
    trainer.history.clear()
    t0 = time.perf_counter()
    result = trainer.fit(resume=False)
    dt = time.perf_counter() - t0
    # The loop's own figures cover exactly the timed steps (data + forward/backward + AdamW), not the
    # end-of-run checkpoint that `dt` includes.
    windows = [h["samples_per_s"] for h in result["history"] if h["kind"] == "train"]
    return float(np.median(windows)), steps * trainer.global_batch / dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", choices=["tiny", "paper"])
    ap.add_argument("--dataset", help="LeRobot dataset (default: a synthetic one)")
    ap.add_argument("--stages", default="1,2")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--horizon", type=float, default=1.2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lawam_policy.model import LaWAMConfig, LaWAMPolicy, compute_stats
    from lawam_training.data import DemoDataset, MixedDataset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = Path(args.dataset) if args.dataset else synthetic_dataset(tmp / "demos", 2, 90, 30, 224)
        ds = DemoDataset(root, args.horizon)
        cfg = LaWAMConfig.from_preset(args.preset, horizon_s=args.horizon)
        a, s = ds.wire_arrays()
        cfg.normalization[ds.embodiment] = {"action": compute_stats(a, ds.layout), "state": compute_stats(s, ds.layout)}
        torch.manual_seed(0)
        policy = LaWAMPolicy(cfg)
        results = {}
        for stage in (int(x) for x in args.stages.split(",")):
            median, overall = measure(policy, stage, MixedDataset([ds]), args.steps, args.warmup,
                                      args.batch_size, args.workers, tmp / "ck")
            results[f"stage{stage}_samples_per_s"] = round(median, 2)
            results[f"stage{stage}_samples_per_s_overall"] = round(overall, 2)
            print(f"stage {stage}: {median:.2f} samples/s (median of 5-step windows; {overall:.2f} over all "
                  f"{args.steps} steps x {args.batch_size} samples, checkpoint included)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    summary = dict(preset=args.preset, device="cpu", threads=args.threads, cpus=os.cpu_count(), load_avg_1m=load,
                   batch_size=args.batch_size, workers=args.workers, horizon_s=args.horizon, steps=args.steps, torch=torch.__version__,
                   **results)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
