"""Scripted-expert demonstrations from a MuJoCo twin scene, recorded ROS-free into a LeRobot v3.0 dataset.

The scene, physics rate, workspace box, cameras and image size are the twin node's (its declared defaults
and config/<twin>.yaml), so the frames are the ones the policy node receives from the twin. Per frame (at
``fps``, which must divide the expert's control rate): one image per camera of the system (``TWINS``: the
twin's scene cameras in the system's camera-role order, primary first), the measured EEF state of every arm
and the expert's commanded EEF targets, taken at the same instant (the command issued when the image was
taken, as the recorder pairs the latest teleop command with a frame).

DART-style noise (Laskey et al. 2017): with ``dart_sigma_m > 0`` the *executed* target is the expert's target
plus a slowly varying (Ornstein-Uhlenbeck) position offset, while the *recorded* action stays the expert's
clean target. The data then holds states off the expert's path labelled with the way back. Episodes the
expert fails (e.g. noise knocked the cube) are dropped.
"""
from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# scene -> (twin node, embodiment, camera(s) in the scene, dataset camera role(s)). One camera: two names;
# several: two tuples of equal length in the order of the system's camera roles (lawam_bringup.systems), the
# primary first. The scene cameras are the ones the twin node publishes on the system's camera topics
# (franka_twin: front, and handcam_rgb with its wrist_camera parameter; quanta_twin: cam_high, left_wrist,
# right_wrist).
TWINS = {
    "franka_pick_place": ("franka_twin", "franka_panda", ("front", "handcam_rgb"), ("primary", "wrist")),
    "franka_drawer": ("franka_twin", "franka_panda", "front", "primary"),
    "quanta_towel_fold": ("quanta_twin", "quanta_x1", ("cam_high", "left_wrist", "right_wrist"),
                          ("primary", "left_wrist", "right_wrist")),
}


def camera_list(camera) -> list[str]:
    """One camera name or a sequence of them -> a list (the order kept: the first is the primary view)."""
    return [camera] if isinstance(camera, str) else list(camera)


def twin_cameras(scene_name: str) -> list[tuple[str, str]]:
    """Ordered (scene camera, dataset camera role) pairs of a scene's twin; the first is the primary view."""
    _, _, cameras, roles = TWINS[scene_name]
    cameras, roles = camera_list(cameras), camera_list(roles)
    if len(cameras) != len(roles):
        raise ValueError(f"TWINS[{scene_name!r}]: {len(cameras)} cameras for {len(roles)} roles")
    return list(zip(cameras, roles))


@dataclass
class TwinSettings:
    physics_hz: float
    workspace: tuple | None  # None: the scene's own box
    image_size: tuple  # (height, width)


def twin_settings(config_dir: Path, twin: str) -> TwinSettings:
    """The twin node's physics rate, workspace box (None: the scene's own) and camera size: its declared
    defaults (lawam_sim.twin_settings) with its parameter file applied, as the node runs."""
    from lawam_policy.parameters import node_values
    from lawam_sim.twin_settings import workspace_box
    p = node_values(twin, [Path(config_dir) / f"{twin}.yaml"])
    return TwinSettings(float(p["physics_hz"]), workspace_box(p), (int(p["image_height"]), int(p["image_width"])))


def training_seeds(n: int, first: int = 1) -> list[int]:
    """n scene seeds from `first` on, never one of the fixed evaluation seeds."""
    from lawam_sim.seeds import EVAL_SEEDS
    seeds, s = [], first
    while len(seeds) < n:
        if s not in EVAL_SEEDS:
            seeds.append(s)
        s += 1
    return seeds


def state_vector(scene, arms) -> np.ndarray:
    """Measured EEF state in the dataset's wire format: per arm position (m, base frame), quaternion xyzw,
    gripper opening."""
    parts = []
    for arm in arms:
        p, q = scene.eef_pose(arm)
        parts += [p, q, [scene.gripper_opening(arm)]]
    return np.concatenate(parts).astype(np.float32)


class OUNoise:
    """Ornstein-Uhlenbeck position offset (m): stationary std `sigma`, correlation time `tau_s`."""

    def __init__(self, sigma: float, tau_s: float, rng: np.random.Generator, dim: int = 3):
        self.sigma, self.tau_s, self.rng = sigma, tau_s, rng
        self.x = np.zeros(dim)

    def step(self, dt: float) -> np.ndarray:
        a = np.exp(-dt / self.tau_s)
        self.x = a * self.x + self.sigma * np.sqrt(1 - a * a) * self.rng.standard_normal(self.x.shape)
        return self.x


@dataclass(frozen=True)
class RenderVariant:
    """A counterfactual rendering of a pick-and-place demo: the same motion, states and actions, seen with the
    cubes' colours exchanged (then under the other instruction) and/or the cube the instruction does not name
    standing elsewhere (``distractor``: its (xy, yaw); None: where it is)."""
    exchanged: bool = False
    distractor: tuple | None = None

    def instruction(self, scene, instruction: str) -> str:
        return scene.exchanged_instruction(instruction) if self.exchanged else instruction

    def render(self, scene, rig, cameras) -> list:
        data = scene.data if self.distractor is None else scene.data_with_distractor_at(*self.distractor)
        with scene.colours_exchanged() if self.exchanged else nullcontext():
            return [rig.render(data, c) for c in cameras]


def draw_variants(scene, rng: np.random.Generator, exchange_colours: bool, distractor_moves: int) -> list:
    """The demo's counterfactual renderings: every combination of the distractor where it is or at one of
    `distractor_moves` new places, and the colours as they are or exchanged, but the demo's own view."""
    if (exchange_colours or distractor_moves) and not hasattr(scene, "colours_exchanged"):
        raise ValueError(f"scene {scene.name} has no counterfactual renderings")
    places = [None] + [scene.draw_distractor_place(rng) for _ in range(distractor_moves)]
    colours = (False, True) if exchange_colours else (False,)
    return [RenderVariant(ex, place) for place in places for ex in colours][1:]


def record_episode(scene, rig, camera, seed: int, instruction: str, fps: int, dart_sigma_m: float = 0.0,
                   dart_tau_s: float = 0.5, settle_s: float = 1.0, exchange_colours: bool = False,
                   distractor_moves: int = 0):
    """Run the scene's expert once; returns (frames, metrics, variants). frames: list of (images, state,
    action, variant_images) with images a list of (H, W, 3) uint8 arrays, one per camera of `camera` (a scene
    camera name or an ordered sequence of them), and variant_images one such list per RenderVariant of
    `variants` (draw_variants; none by default)."""
    from lawam_sim.experts import make_expert

    scene.reset(seed, instruction)
    variants = draw_variants(scene, np.random.default_rng(seed + 104729), exchange_colours, distractor_moves)
    expert = make_expert(scene)
    arms = scene.arms
    steps_per_action = max(1, int(round(1.0 / (expert.control_hz * scene.dt))))
    ticks = expert.control_hz / fps
    if abs(ticks - round(ticks)) > 1e-6:
        raise ValueError(f"fps {fps} must divide the expert's control rate {expert.control_hz} Hz")
    ticks = int(round(ticks))
    rng = np.random.default_rng(seed + 7919)
    noise = {arm: OUNoise(dart_sigma_m, dart_tau_s, rng) for arm in arms}
    cameras = camera_list(camera)
    frames, tick, done_at = [], 0, None
    # Up to the closed-loop timeout, not the nominal episode length: a demo in which the expert regrasps
    # (experts.pick_place) runs longer, and is the kind of demo worth keeping.
    while scene.time < scene.timeout_s:
        take = tick % ticks == 0
        if take:
            images, state = [rig.render(scene.data, c) for c in cameras], state_vector(scene, arms)
            variant_images = [v.render(scene, rig, cameras) for v in variants]
        action = expert.act(scene)
        wire = []
        for arm in arms:
            pos, quat, opening = action[arm]
            offset = noise[arm].step(1.0 / expert.control_hz) if dart_sigma_m > 0 and not expert.done else 0.0
            scene.set_target(arm, np.asarray(pos) + offset, quat)
            scene.set_gripper(arm, opening)
            wire += [pos, quat, [opening]]
        if take:
            frames.append((images, state, np.concatenate(wire).astype(np.float32), variant_images))
        scene.step(steps_per_action)
        tick += 1
        if expert.done and done_at is None:
            done_at = scene.time
        if done_at is not None and scene.time - done_at >= settle_s:
            break
    return frames, scene.metrics(), variants


DEMO_GROUPS_FILE = "lawam_demos.json"  # beside meta/ in a collected dataset: the episodes of each demo


def demo_groups(dataset: Path, per_demo: int = 1) -> list[list[int]]:
    """Episode indices of each demo of a collected dataset, in order (a demo with its counterfactual renderings
    is one group): from the dataset's lawam_demos.json, then any episodes after the last group as one group (a
    collection stopped between one demo's renderings; they are still that demo's). A dataset collected without
    the file is cut into consecutive groups of `per_demo`."""
    from lawam_training.episode_store import read_info
    dataset = Path(dataset)
    n = read_info(dataset)["total_episodes"] if (dataset / "meta/info.json").is_file() else 0
    path = dataset / DEMO_GROUPS_FILE
    groups = json.loads(path.read_text())["groups"] if path.is_file() else \
        [list(range(s, min(s + per_demo, n))) for s in range(0, n - n % per_demo, per_demo)]
    covered = sum(len(g) for g in groups)
    return groups + ([list(range(covered, n))] if covered < n else [])


def _write_demo_groups(dataset: Path, groups: list) -> None:
    path = Path(dataset) / DEMO_GROUPS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"groups": groups}))
    os.replace(tmp, path)


def twin_scene(scene_name: str, config_dir: Path, render: bool = True):
    """The scene, camera rig (None unless `render`) and TwinSettings of `scene_name`'s twin, set up as the twin
    node runs it (sim_rollout.twin_env's too)."""
    # torch must be imported before the first EGL render (importing it after Mesa's context exists segfaults).
    import torch._dynamo  # noqa: F401

    from lawam_sim.rendering import CameraRig
    from lawam_sim.scenes import make_scene
    s = twin_settings(config_dir, TWINS[scene_name][0])
    scene = make_scene(scene_name, physics_hz=s.physics_hz, workspace=s.workspace)
    h, w = s.image_size
    return scene, (CameraRig(scene.model, w, h) if render else None), s


_RECORDER: dict = {}  # a recording process's own scene and rig (_init_recorder)


def _init_recorder(scene_name: str, config_dir: Path) -> None:
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it lets the child finish its demo
    scene, rig, _ = twin_scene(scene_name, config_dir)
    _RECORDER.update(scene=scene, rig=rig, cameras=[c for c, _ in twin_cameras(scene_name)])


def _record_in_recorder(seed: int, instruction: str, fps: int, options: dict):
    r = _RECORDER
    return record_episode(r["scene"], r["rig"], r["cameras"], seed, instruction, fps, **options)


def _recordings(jobs, fps: int, options: dict, scene_name: str, config_dir: Path, workers: int, wanted,
                local=None):
    """(job, record_episode's result) for each (seed, instruction) of `jobs`, in order, while `wanted()` (the
    demos still to keep) is positive. workers 0: recorded here by `local(seed, instruction)`; otherwise in that
    many spawned processes, each with its own twin scene and renderer, at most workers + 1 and at most
    `wanted()` demos ahead (a demo's frames are tens of MB, and a child blocked sending a result nobody reads
    would never exit)."""
    if workers == 0:
        for job in jobs:
            if wanted() <= 0:
                return
            yield job, local(*job)
        return
    import multiprocessing as mp
    from collections import deque
    jobs = iter(jobs)
    pool = mp.get_context("spawn").Pool(workers, _init_recorder, (scene_name, config_dir))
    ahead = deque()
    try:
        while True:
            while len(ahead) < min(workers + 1, wanted()):
                job = next(jobs, None)
                if job is None:
                    break
                ahead.append((job, pool.apply_async(_record_in_recorder, (*job, fps, options))))
            if not ahead:
                return
            job, result = ahead.popleft()
            yield job, result.get()
    finally:  # stopped early (an error, Ctrl-C): let the children hand over what they started, then stop them
        for _, result in ahead:
            result.wait(timeout=120)
        if all(result.ready() for _, result in ahead):
            pool.close()
        else:
            pool.terminate()
        pool.join()


def collect(scene_name: str, config_dir: Path, output: Path, episodes: int, fps: int, first_seed: int = 1,
            dart_sigma_m: float = 0.0, exchange_colours: bool = False, distractor_moves: int = 0,
            progress: bool = True, log=print, record_workers: int = 0) -> dict:
    """Record `episodes` successful expert demos (one seed each, the scene's instructions alternating)
    into the LeRobot dataset `output` (appending to it if it exists: collection resumes). Returns a summary.

    Counterfactual renderings (pick-and-place, draw_variants): each demo is followed in the dataset by the
    same motion rendered with the two cubes' colours exchanged (`exchange_colours`, under the other
    instruction) and with the other cube at `distractor_moves` new places: they show that the word and the
    colour, not the place, decide which cube is taken. The episodes of one demo are consecutive
    (`episodes_per_demo` in the summary; DEMO_GROUPS_FILE lists them, see demo_groups).

    `record_workers` > 0: the demos are simulated and rendered in that many child processes while this one
    writes the dataset (the same demos, in the same order; a pick-and-place demo on a 2-core CPU:
    rendering 26 s, writing 18 s); 0: all in this process. The children are spawned: a script that calls this
    with workers needs the usual `if __name__ == "__main__":` guard."""
    from tqdm import tqdm

    from lawam_policy.action_layout import get_layout
    from lawam_training.episode_store import EpisodeStore, make_features, read_info

    if record_workers < 0:
        raise ValueError(f"record_workers must be >= 0, got {record_workers}")
    _, embodiment, _, _ = TWINS[scene_name]
    cameras, roles = zip(*twin_cameras(scene_name))
    scene, rig, s = twin_scene(scene_name, config_dir, render=record_workers == 0)
    h, w = s.image_size
    store = EpisodeStore(output, fps, make_features(get_layout(embodiment), {r: (h, w) for r in roles}), embodiment)
    per_demo = (1 + distractor_moves) * (2 if exchange_colours else 1)
    groups = demo_groups(output, per_demo)
    done = len(groups)
    next_episode = sum(len(g) for g in groups)
    instructions = scene.instructions
    kept, failed, frames_total = done, [], 0
    seeds = training_seeds(2 * episodes + 50, first_seed)
    bar = tqdm(total=episodes, initial=done, desc="collect", unit="ep", disable=not progress)
    # One layout per episode (both cubes i.i.d. per seed), the instructions alternating: twice the layouts of
    # demonstrating every seed once per instruction, for a policy that must place the arm from the image. A resumed
    # collection starts at the seed numbered by the demos kept (a layout may then repeat: harmless).
    options = dict(dart_sigma_m=dart_sigma_m, exchange_colours=exchange_colours, distractor_moves=distractor_moves)
    jobs = ((seeds[i], instructions[i % len(instructions)]) for i in range(done, len(seeds)))
    recordings = _recordings(jobs, fps, options, scene_name, config_dir, record_workers, lambda: episodes - kept,
                             lambda seed, ins: record_episode(scene, rig, cameras, seed, ins, fps, **options))
    try:
        for (seed, instruction), (frames, metrics, variants) in recordings:
            if not metrics["success"]:
                failed.append(seed)
                continue
            rec = store.begin_episode(instruction)
            for images, state, action, _ in frames:
                rec.add_frame(dict(zip(roles, images)), state, action)
            rec.commit()
            for v, variant in enumerate(variants):
                rec = store.begin_episode(variant.instruction(scene, instruction))
                for _, state, action, variant_images in frames:
                    rec.add_frame(dict(zip(roles, variant_images[v])), state, action)
                rec.commit()
            groups.append(list(range(next_episode, next_episode + 1 + len(variants))))
            next_episode = groups[-1][-1] + 1
            _write_demo_groups(output, groups)
            kept += 1
            frames_total += len(frames)
            bar.update(1)
            bar.set_postfix(frames=frames_total, failed=len(failed))
    finally:
        recordings.close()
        bar.close()
        if rig is not None:
            rig.close()
    if kept < episodes:
        raise RuntimeError(f"only {kept} of {episodes} expert episodes succeeded")
    info = read_info(output)
    return {"dataset": str(output), "episodes": info["total_episodes"], "frames": info["total_frames"],
            "fps": fps, "failed_seeds": failed, "dart_sigma_m": dart_sigma_m, "instructions": list(instructions),
            "exchange_colours": exchange_colours, "distractor_moves": distractor_moves,
            "episodes_per_demo": per_demo, "demos": len(groups)}
