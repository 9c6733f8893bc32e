"""ROS-free closed loop: twin scene + the bridge's runtime core + a policy, in one process, on sim time.

The same pieces the ROS system runs, without DDS: the policy predicts a chunk from the twin's camera images
(one per camera role of the system, primary first; stamped with the render time, as the policy node stamps
chunks with the observation time), the ``BridgeCore`` executes it in physical time behind the safety layer
(start-up check, ramp, blending; ``bridge_limits`` reads the limits from the system's bridge parameter
file), and the scene's controller tracks the commanded pose of every arm; the gripper openings are streamed
as the bridges' topic modes do in sim. A new chunk is requested when the running one is about to end, with
the engine's rule (``remaining <= latency + margin + frame period``). ``latency_s`` delays each chunk's
arrival in sim time (inference is otherwise free here: the sim waits for it), so asynchronous execution can
be reproduced.

Used by the recipe's evaluation (lawam-sim-train) and the shipped checkpoints' tests; the full ROS system
is evaluated with ``lawam-eval``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lawam_policy.action_layout import get_layout
from lawam_policy.parameters import field_values, node_values
from lawam_policy.runtime.bridge_core import BridgeConfig, BridgeCore
from lawam_policy.runtime.chunk import Chunk
from lawam_policy.runtime.safety import SafetyLimits


BRIDGES = {"franka_panda": "franka_bridge", "quanta_x1": "quanta_bridge"}  # embodiment -> bridge node


def bridge_limits(config_dir: Path, embodiment: str) -> SafetyLimits:
    """The safety limits the embodiment's bridge node runs with: its parameter defaults (lawam_policy.parameters)
    with config/<bridge>.yaml applied. Raises KeyError for an embodiment without a bridge."""
    bridge = BRIDGES[embodiment]
    values = node_values(bridge, [Path(config_dir) / f"{bridge}.yaml"])
    limits = SafetyLimits(**field_values(SafetyLimits, values))
    limits.validate()
    return limits


@dataclass
class RolloutResult:
    seed: int
    instruction: str
    success: bool
    time_to_success_s: float | None  # sim seconds from reset
    sim_time_s: float
    chunks: int
    refused_chunks: int
    metrics: dict = field(default_factory=dict)


def rollout(policy, scene, rig, camera, seed: int, instruction: str, control_hz: float,
            embodiment: str, limits: SafetyLimits | None = None, bridge_rate_hz: float = 100.0,
            timeout_s: float | None = None, policy_seed: int | None = 0, latency_s: float = 0.0,
            margin_s: float = 0.05, on_chunk=None) -> RolloutResult:
    """One episode from `seed` with `instruction`; stops at the scene's success or `timeout_s` (default: the
    scene's timeout_s, 2x its nominal episode length). `camera`: the scene camera the policy sees, or an ordered sequence of
    them (the policy's camera roles, primary first). `limits`: the bridge's safety limits (default:
    SafetyLimits(), the Franka bridge's; see bridge_limits). `on_chunk(now, primary image, prediction)` is
    called for every chunk requested."""
    layout = get_layout(embodiment)
    cameras = [camera] if isinstance(camera, str) else list(camera)
    scene.reset(seed, instruction)
    core = BridgeCore(BridgeConfig(arm_names=tuple(scene.arms), embodiment=embodiment,
                                   control_rate_hz=bridge_rate_hz, limits=limits or SafetyLimits()))
    dt = 1.0 / bridge_rate_hz
    steps = max(1, int(round(dt / scene.dt)))
    timeout_s = timeout_s if timeout_s is not None else scene.timeout_s
    frame_period = 1.0 / control_hz
    pending: list[tuple[float, Chunk]] = []  # (arrival time, chunk)
    last_end = None
    chunks = refused = 0
    t0 = scene.time
    while scene.time - t0 < timeout_s:
        now = scene.time - t0
        for i, arm in enumerate(scene.arms):
            core.on_measured_pose(i, *scene.eef_pose(arm))
        if not pending and (last_end is None or last_end - now <= latency_s + margin_s + frame_period):
            images = [rig.render(scene.data, c) for c in cameras]
            pred = policy.predict_chunk(images, instruction, control_hz, embodiment=embodiment, seed=policy_seed)
            chunks += 1
            chunk = Chunk.from_actions(pred.actions, pred.timestamps, layout, now, chunk_id=chunks,
                                       control_rate_hz=control_hz, horizon_s=len(pred.timestamps) / control_hz)
            pending.append((now + latency_s, chunk))
            last_end = now + chunk.end_offset
            if on_chunk is not None:
                on_chunk(now, images[0], pred)
        while pending and pending[0][0] <= now:
            if not core.on_chunk(pending.pop(0)[1], now):
                refused += 1  # the policy node does not hear of it: the next chunk comes when this one ends
        result = core.tick(now)
        if result is not None and result.commands is not None:
            for arm, cmd in zip(scene.arms, result.commands):
                scene.set_target(arm, cmd.position, cmd.quat)
                scene.set_gripper(arm, float(cmd.gripper))
        scene.step(steps)
        if scene.success():
            t = scene.time - t0
            return RolloutResult(seed, instruction, True, t, t, chunks, refused, scene.metrics())
    return RolloutResult(seed, instruction, False, None, scene.time - t0, chunks, refused, scene.metrics())


@dataclass
class TwinEnv:
    """A scene set up as its twin node runs it (physics rate, workspace, image size), with its system's
    cameras (scene camera names in camera-role order, primary first), embodiment and bridge safety limits."""
    scene_name: str
    scene: object
    rig: object
    cameras: list
    embodiment: str
    limits: SafetyLimits

    def cameras_for(self, policy) -> list:
        """The scene cameras of the policy's camera roles, in its order (a checkpoint trained before the system
        took more cameras gets the ones it knows). Raises ValueError for a role this twin does not render."""
        from .sim_demos import twin_cameras
        roles = policy.config.cameras(self.embodiment)
        by_role = {role: camera for camera, role in twin_cameras(self.scene_name)}
        if any(r not in by_role for r in roles):
            raise ValueError(f"the checkpoint takes cameras {roles}; the {self.scene_name} twin renders "
                             f"{list(by_role)}")
        return [by_role[r] for r in roles]

    def rollout(self, policy, seed: int, instruction: str, control_hz: float, **kwargs) -> RolloutResult:
        return rollout(policy, self.scene, self.rig, self.cameras_for(policy), seed, instruction, control_hz,
                       self.embodiment, limits=self.limits, **kwargs)

    def close(self) -> None:
        self.rig.close()


def twin_env(scene_name: str, config_dir: Path) -> TwinEnv:
    """The twin of `scene_name` (a key of sim_demos.TWINS) from the workspace's config/ directory."""
    from .sim_demos import TWINS, twin_cameras, twin_scene

    embodiment = TWINS[scene_name][1]
    scene, rig, _ = twin_scene(scene_name, config_dir)
    return TwinEnv(scene_name, scene, rig, [c for c, _ in twin_cameras(scene_name)], embodiment,
                   bridge_limits(config_dir, embodiment))


def summarize(results: list[RolloutResult]) -> dict:
    """Success rate and mean time to success per instruction and overall."""
    out = {}
    for key in sorted({r.instruction for r in results}) + ["all"]:
        rs = [r for r in results if key == "all" or r.instruction == key]
        times = [r.time_to_success_s for r in rs if r.success]
        out[key] = {"episodes": len(rs), "successes": sum(r.success for r in rs),
                    "success_rate": sum(r.success for r in rs) / max(1, len(rs)),
                    "mean_time_to_success_s": float(np.mean(times)) if times else None}
    return out
