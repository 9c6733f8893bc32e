"""Run one scripted-expert episode in a scene (no ROS): used by tests, the benchmark and demo collection."""
from __future__ import annotations

from dataclasses import dataclass

from lawam_sim.experts import make_expert


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    sim_time_s: float
    metrics: dict
    instruction: str = ""


def run_expert_episode(scene, seed: int, timeout_s: float | None = None, settle_s: float = 0.5,
                       on_step=None, instruction: str | None = None, on_expert=None) -> EpisodeResult:
    """Reset to ``seed`` with ``instruction`` (None: the scene's default; unknown: ValueError), drive the
    scene with its expert until the plan ends (+ settle) or ``timeout_s`` (sim s). ``on_step(scene)`` runs
    after every expert step, ``on_expert(expert)`` once with the episode's expert."""
    scene.reset(seed, instruction)
    expert = make_expert(scene)
    if on_expert is not None:
        on_expert(expert)
    timeout_s = timeout_s if timeout_s is not None else scene.episode_s
    steps_per_action = max(1, int(round(1.0 / (expert.control_hz * scene.dt))))
    done_at = None
    while scene.time < timeout_s:
        for arm, (pos, quat, opening) in expert.act(scene).items():
            scene.set_target(arm, pos, quat)
            scene.set_gripper(arm, opening)
        scene.step(steps_per_action)
        if on_step is not None:
            on_step(scene)
        if expert.done and done_at is None:
            done_at = scene.time
        if done_at is not None and scene.time - done_at >= settle_s:
            break
    m = scene.metrics()
    return EpisodeResult(seed, bool(m["success"]), scene.time, m, scene.instruction)
