"""Test support (never installed): a deterministic stand-in for LaWAMPolicy.predict_chunk (same signature),
for tests and benchmarks without torch. It predicts a slow circle in the horizontal plane around `center`,
as a function of the time `clock` gives at the call (or `obs_time` when set), so consecutive chunks agree up to a configurable
`seam_offset_m` (the seam mismatch a real model would show). In a live node the call comes a little after
the frame's stamp, so its chunks are ahead of their stamp by that frame age; a model would not be."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from lawam_policy.action_layout import get_layout


@dataclass
class FakePrediction:
    timestamps: np.ndarray
    actions: np.ndarray
    subgoal: np.ndarray
    current_features: np.ndarray


class FakePredictor:
    """`center` (3,) or one row per arm (A, 3); `orientation` (x, y, z, w), (4,) or (A, 4)."""

    def __init__(self, center=(0.5, 0.0, 0.4), radius: float = 0.03, period_s: float = 8.0,
                 horizon_s: float = 1.2, latency_s: float = 0.0, seam_offset_m: float = 0.0,
                 clock=time.monotonic, embodiment: str = "franka_panda", gripper_period_s: float = 4.0,
                 orientation=(1.0, 0.0, 0.0, 0.0)):
        self.center = np.asarray(center, float)
        self.orientation = np.asarray(orientation, float)
        self.radius, self.period_s, self.horizon_s = radius, period_s, horizon_s
        self.latency_s, self.seam_offset_m = latency_s, seam_offset_m
        self.clock = clock
        self.embodiment = embodiment
        self.gripper_period_s = gripper_period_s
        self.calls = []  # (n_images, instruction, kwargs) per call, for tests
        self.obs_time = None  # if set, the time the chunk starts at (else: clock() at the call)

    def pose_at(self, t: float, arm: int = 0) -> np.ndarray:
        a = 2 * math.pi * t / self.period_s
        center = self.center if self.center.ndim == 1 else self.center[arm]
        return center + self.radius * np.array([math.cos(a), math.sin(a), 0.0])

    def predict_chunk(self, images, instruction, control_hz, horizon_s=None, embodiment=None, seed=None,
                      prev_actions=None, prev_timestamps=None):
        t_obs = self.clock() if self.obs_time is None else self.obs_time
        self.calls.append((len(images), instruction, {"prev_actions": prev_actions, "prev_timestamps": prev_timestamps,
                                                     "embodiment": embodiment}))
        if self.latency_s:
            time.sleep(self.latency_s)
        layout = get_layout(embodiment or self.embodiment)
        h = max(1, int(round((horizon_s or self.horizon_s) * control_hz)))
        ts = np.arange(h) / control_hz
        offset = self.seam_offset_m * (1 if len(self.calls) % 2 else -1)
        rows = []
        for t in ts:
            grip = 1.0 if math.sin(2 * math.pi * (t_obs + t) / self.gripper_period_s) >= 0 else 0.0
            arms = []
            for a in range(len(layout.arms)):
                pos = self.pose_at(t_obs + t, a) + np.array([0.0, 0.0, offset])
                q = self.orientation if self.orientation.ndim == 1 else self.orientation[a]
                arms.append(np.concatenate([pos, q, [grip]]))
            rows.append(np.concatenate(arms))
        return FakePrediction(ts, np.array(rows), np.zeros((196, 8)), np.zeros((196, 8)))
