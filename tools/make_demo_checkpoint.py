#!/usr/bin/env python3
"""Build a small demo checkpoint for `make demo` (franka_pick_place) from scripted-expert demonstrations.

    . tools/env.sh
    python tools/make_demo_checkpoint.py [--episodes 16] [--first-seed 1] [--fps 10]
                                         [--steps 300] [--stage1-steps 200] [--output DIR] [--force]

1. collect: runs the scripted pick-and-place expert ROS-free in the MuJoCo twin's scene (same scene, physics
   rate, workspace box and 224x224 primary camera render settings as the franka_twin node) over seeds
   first-seed.. (never the fixed evaluation seeds of lawam_sim.seeds), recording at --fps: the primary camera
   ("front" camera -> dataset camera role `primary`), the measured EEF pose + gripper opening as state and the
   expert's commanded EEF target + gripper opening as action, with the system's default instruction. Only
   episodes the expert solves are kept. Written with lawam_training.episode_store (LeRobot v3.0).
2. train: `python -m lawam_training.finetune` on that dataset, tiny preset, stage 1 then stage 2.
3. report: where the checkpoint is and its size; a quick check that it loads and that its first predicted
   chunk on a twin start image begins near the measured EEF pose (the bridge's start-up check).

This is a smoke-test checkpoint: a few hundred CPU steps on ~1k frames. It moves near the task; it does not
solve it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_TASK = "put the red cube in the bowl"   # lawam_bringup.systems: franka_pick_place default task
SCENE = "franka_pick_place"
TWIN_CAMERA = "front"                          # franka_twin publishes this camera on /camera/color/image_raw
CAMERA_ROLE = "primary"                        # LaWAM camera role of the first camera topic
EMBODIMENT = "franka_panda"
IMAGE_SIZE = 224


def twin_settings() -> dict:
    """physics_hz and workspace box of the twin node (config/franka_twin.yaml), so the scene matches it."""
    import yaml
    p = yaml.safe_load((ROOT / "config" / "franka_twin.yaml").read_text())["franka_twin"]["ros__parameters"]
    return {"physics_hz": float(p.get("physics_hz", 500.0)),
            "workspace": (list(p["workspace_min"]), list(p["workspace_max"]))}


def make_twin_scene():
    from lawam_sim.scenes import make_scene
    s = twin_settings()
    return make_scene(SCENE, physics_hz=s["physics_hz"], workspace=s["workspace"])


def training_seeds(n: int, first: int) -> list[int]:
    from lawam_sim.seeds import EVAL_SEEDS
    seeds, s = [], first
    while len(seeds) < n:
        if s not in EVAL_SEEDS:
            seeds.append(s)
        s += 1
    return seeds


def state_vec(scene) -> np.ndarray:
    p, q = scene.eef_pose("arm")                        # base frame, xyzw
    return np.concatenate([p, q, [scene.gripper_opening("arm")]]).astype(np.float32)


def record_episode(scene, rig, expert_cls_factory, seed: int, fps: int, settle_s: float = 0.5):
    """One expert episode; frames at ``fps``: (image, measured state, commanded action) at the same instant.

    Mirrors lawam_sim.episode.run_expert_episode (expert at its control rate, scene stepped in between), but
    samples the observation *before* the expert's command of that tick, so the action paired with an image
    is the command issued at the moment the image was taken (as the recorder pairs the latest command)."""
    scene.reset(seed)
    refused_before = scene.refusals()
    expert = expert_cls_factory(scene)
    steps_per_action = max(1, int(round(1.0 / (expert.control_hz * scene.dt))))
    ticks_per_frame = expert.control_hz / fps
    if abs(ticks_per_frame - round(ticks_per_frame)) > 1e-6:
        raise SystemExit(f"--fps {fps} must divide the expert's control rate {expert.control_hz} Hz")
    ticks_per_frame = int(round(ticks_per_frame))
    frames = []
    tick, done_at = 0, None
    while scene.time < scene.episode_s:
        take = tick % ticks_per_frame == 0
        if take:
            image = rig.render(scene.data, TWIN_CAMERA)
            state = state_vec(scene)
        action = expert.act(scene)
        pos, quat, opening = action["arm"]
        scene.set_target("arm", pos, quat)
        scene.set_gripper("arm", opening)
        if take:
            frames.append((image, state, np.concatenate([pos, quat, [opening]]).astype(np.float32)))
        scene.step(steps_per_action)
        tick += 1
        if expert.done and done_at is None:
            done_at = scene.time
        if done_at is not None and scene.time - done_at >= settle_s:
            break
    return frames, scene.metrics(), dict(scene.refusals() - refused_before)


def collect(args) -> dict:
    from tqdm import tqdm

    # torch (through lerobot) must be imported before the first EGL render: importing it (its triton
    # probe) after Mesa's EGL context exists segfaults.
    import torch._dynamo  # noqa: F401
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: F401

    from lawam_policy.action_layout import get_layout
    from lawam_sim.experts import make_expert
    from lawam_sim.rendering import CameraRig
    from lawam_training.episode_store import EpisodeStore, make_features

    dataset = Path(args.dataset)
    if dataset.exists():
        if not args.force:
            raise SystemExit(f"{dataset} exists: use --force to rebuild it, or --skip-collect to reuse it")
        shutil.rmtree(dataset)
    scene = make_twin_scene()
    rig = CameraRig(scene.model, IMAGE_SIZE, IMAGE_SIZE)  # same class and settings as the twin node
    store = EpisodeStore(dataset, args.fps, make_features(get_layout(EMBODIMENT), {CAMERA_ROLE: (IMAGE_SIZE, IMAGE_SIZE)}),
                         EMBODIMENT)
    kept, failed, frames_total = [], [], 0
    seeds = training_seeds(args.episodes, args.first_seed)
    bar = tqdm(seeds, desc="collect", unit="ep")
    for seed in bar:
        frames, metrics, refusals = record_episode(scene, rig, make_expert, seed, args.fps)
        if refusals:
            tqdm.write(f"seed {seed}: targets refused by the workspace box: {refusals}")
        if not metrics["success"]:
            failed.append(seed)
            tqdm.write(f"seed {seed}: expert failed ({metrics}); episode not kept")
            continue
        rec = store.begin_episode(SYSTEM_TASK)
        for image, state, action in frames:
            rec.add_frame({CAMERA_ROLE: image}, state, action)
        rec.commit()
        kept.append(seed)
        frames_total += len(frames)
        bar.set_postfix(kept=len(kept), frames=frames_total)
    rig.close()
    if not kept:
        raise SystemExit("the expert solved no episode: nothing to train on")
    return {"dataset": str(dataset), "episodes": len(kept), "frames": frames_total, "seeds": kept,
            "failed_seeds": failed}


def train(args) -> None:
    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not args.resume:
        if not args.force:
            raise SystemExit(f"{out} is not empty: use --force to replace it")
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "lawam_training.finetune", "--dataset", str(args.dataset), "--output", str(out),
           "--preset", "tiny", "--stage", "both", "--steps", str(args.steps), "--stage1-steps", str(args.stage1_steps),
           "--batch-size", str(args.batch_size), "--num-workers", str(args.num_workers),
           "--val-every", str(max(args.steps, args.stage1_steps)), "--log-every", "10",
           "--checkpoint-every", str(max(args.steps, args.stage1_steps)), "--seed", str(args.seed)]
    if args.lr is not None:
        cmd += ["--lr", str(args.lr)]
    if args.resume:
        cmd.append("--resume")
    print("train:", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc != 0:
        raise SystemExit(f"finetune failed (exit status {rc})")


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def check(args) -> dict:
    """Load the checkpoint; first chunk on twin start images (eval seeds, as the demo starts) vs the EEF."""
    from tqdm import tqdm

    from lawam_policy.model import LaWAMPolicy
    from lawam_sim.rendering import CameraRig
    from lawam_sim.seeds import EVAL_SEEDS

    policy = LaWAMPolicy.from_pretrained(args.output)
    policy.eval()
    scene = make_twin_scene()
    rig = CameraRig(scene.model, IMAGE_SIZE, IMAGE_SIZE)
    rows = []
    for seed in tqdm(EVAL_SEEDS[:args.check_seeds], desc="check", unit="seed"):
        scene.reset(seed)
        scene.run_for(0.2)
        img = rig.render(scene.data, TWIN_CAMERA)
        p, _ = scene.eef_pose("arm")
        pred = policy.predict_chunk([img], SYSTEM_TASK, control_hz=15.0, embodiment=EMBODIMENT, seed=0)
        d = np.linalg.norm(pred.actions[:, :3] - p, axis=1)
        rows.append({"seed": seed, "first_m": float(d[0]), "max_m": float(d.max()),
                     "first_gripper": float(pred.actions[0, 7])})
    rig.close()
    return {"per_seed": rows, "first_m_max": max(r["first_m"] for r in rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--output", default=str(ROOT / "outputs/checkpoints/franka_pick_place_tiny_sim"))
    ap.add_argument("--dataset", default=str(ROOT / "outputs/datasets/franka_pick_place_sim_expert"))
    ap.add_argument("--episodes", type=int, default=20, help="expert episodes to run (failed ones are dropped)")
    ap.add_argument("--first-seed", type=int, default=1, help="seeds first-seed.., skipping evaluation seeds")
    ap.add_argument("--fps", type=int, default=10, help="dataset rate; must divide the expert's 20 Hz")
    ap.add_argument("--steps", type=int, default=2000, help="stage-2 optimiser steps")
    ap.add_argument("--stage1-steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=5e-4,
                    help="one learning rate for all modules (the model's own defaults, 1e-4 / 1e-5, need far "
                         "more steps than a demo budget); negative: the model's defaults")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--num-workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check-seeds", type=int, default=3, help="evaluation-seed start images for the check")
    ap.add_argument("--skip-collect", action="store_true", help="reuse an existing --dataset")
    ap.add_argument("--keep-run-checkpoints", action="store_true",
                    help="keep OUTPUT/checkpoints (optimiser state, for --resume); removed by default")
    ap.add_argument("--resume", action="store_true",
                    help="continue an interrupted training run in --output (e.g. with --skip-collect)")
    ap.add_argument("--force", action="store_true", help="replace an existing dataset / output")
    args = ap.parse_args(argv)
    if args.lr is not None and args.lr < 0:
        args.lr = None
    args.output, args.dataset = str(Path(args.output).absolute()), str(Path(args.dataset).absolute())
    times = {}

    t = time.monotonic()
    if args.skip_collect:
        info = json.loads((Path(args.dataset) / "meta/info.json").read_text())
        data = {"dataset": args.dataset, "episodes": info["total_episodes"], "frames": info["total_frames"]}
    else:
        data = collect(args)
    times["collect_s"] = time.monotonic() - t
    print(f"collect: {data['episodes']} episodes, {data['frames']} frames -> {data['dataset']} "
          f"({times['collect_s']:.0f} s)", flush=True)

    t = time.monotonic()
    train(args)
    times["train_s"] = time.monotonic() - t
    out = Path(args.output)
    if not args.keep_run_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    print(f"train: done ({times['train_s']:.0f} s)", flush=True)

    t = time.monotonic()
    result = check(args)
    times["check_s"] = time.monotonic() - t
    for r in result["per_seed"]:
        print(f"check: eval seed {r['seed']}: first target {r['first_m']:.3f} m from the EEF "
              f"(chunk max {r['max_m']:.3f} m), gripper {r['first_gripper']:.2f}")
    ok = result["first_m_max"] <= 0.15
    model_files = [f for f in out.iterdir() if f.is_file()]
    size = sum(f.stat().st_size for f in model_files) / 1e6
    summary = {"checkpoint": str(out), "model_files_mb": round(size, 1), "dir_mb": round(dir_mb(out), 1),
               "data": data, "times_s": {k: round(v, 1) for k, v in times.items()}, "check": result,
               "start_check_ok": ok}
    (out / "demo_checkpoint.json").write_text(json.dumps(summary, indent=2))
    print(f"checkpoint: {out}  ({size:.1f} MB of model files, {dir_mb(out):.1f} MB in the directory)")
    print(f"phases: collect {times['collect_s']:.0f} s, train {times['train_s']:.0f} s, check {times['check_s']:.0f} s")
    print(f"start check (first target of one sampled chunk within 0.15 m of the EEF on eval-seed starts): "
          f"{'ok' if ok else 'NOT MET - the bridge refuses such first chunks; the policy node keeps sampling new ones'}")
    print(f"use: lawam launch franka_pick_place checkpoint:={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
