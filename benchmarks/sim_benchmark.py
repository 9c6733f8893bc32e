#!/usr/bin/env python3
"""Simulation benchmark of the MuJoCo twins (a script, not a test).

Per scene it prints:
  * physics RTF: sim seconds per wall second while the scripted expert drives the robot (controller + physics
    at the scene's physics rate, no rendering);
  * render Hz: 224x224 rgb frames per wall second from each camera (shadows/reflections off, MUJOCO_GL=egl);
  * twin RTF: physics plus every camera rendered at --camera-hz sim time, i.e. what a twin node can sustain.

Usage: python benchmarks/sim_benchmark.py [--seconds 6] [--camera-hz 15] [--size 224] [--json out.json]
Run it with the workspace environment (`. tools/env.sh`) and src/lawam_sim on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src" / "lawam_sim"))
os.environ.setdefault("MUJOCO_GL", "egl")

from lawam_sim.experts import make_expert  # noqa: E402
from lawam_sim.rendering import CameraRig  # noqa: E402
from lawam_sim.scenes import SCENES, make_scene  # noqa: E402
from lawam_sim.seeds import EVAL_SEEDS  # noqa: E402


def drive(scene, seconds: float, camera_hz: float = 0.0, rig: CameraRig | None = None) -> float:
    """Run the expert for ``seconds`` of sim time; returns wall seconds."""
    scene.reset(EVAL_SEEDS[0])
    expert = make_expert(scene)
    steps = max(1, int(round(1.0 / (expert.control_hz * scene.dt))))
    next_cam = 0.0
    t0 = time.perf_counter()
    while scene.time < seconds:
        for arm, (p, q, o) in expert.act(scene).items():
            scene.set_target(arm, p, q)
            scene.set_gripper(arm, o)
        scene.step(steps)
        if rig is not None and scene.time >= next_cam:
            for cam in scene.cameras:
                rig.render(scene.data, cam)
            next_cam += 1.0 / camera_hz
    return time.perf_counter() - t0


def render_rate(scene, rig: CameraRig, cam: str, n: int = 40) -> float:
    rig.render(scene.data, cam)  # warm-up (GL context, textures)
    t0 = time.perf_counter()
    for _ in range(n):
        rig.render(scene.data, cam)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="sim seconds per measurement")
    ap.add_argument("--camera-hz", type=float, default=15.0)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--scenes", nargs="*", default=list(SCENES))
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    print(f"cpus available: {len(os.sched_getaffinity(0))}, MUJOCO_GL={os.environ.get('MUJOCO_GL')}")
    results = {}
    for name in args.scenes:
        scene = make_scene(name)
        rig = CameraRig(scene.model, args.size, args.size)
        physics_wall = drive(scene, args.seconds)
        renders = {cam: render_rate(scene, rig, cam) for cam in scene.cameras}
        twin_wall = drive(scene, args.seconds, args.camera_hz, rig)
        results[name] = {
            "physics_hz": round(1.0 / scene.dt),
            "physics_rtf": args.seconds / physics_wall,
            "render_hz": renders,
            "twin_rtf_with_cameras": args.seconds / twin_wall,
            "cameras": list(scene.cameras),
        }
        rig.close()
        r = results[name]
        cams = ", ".join(f"{c} {hz:.0f} Hz" for c, hz in renders.items())
        print(f"{name:20s} physics {r['physics_hz']} Hz: RTF {r['physics_rtf']:.2f} | render {args.size}px: {cams} | "
              f"twin RTF with {len(scene.cameras)} camera(s) at {args.camera_hz:g} Hz: {r['twin_rtf_with_cameras']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
