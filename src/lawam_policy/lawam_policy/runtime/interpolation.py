"""Interpolating one arm's chunk steps to the controller rate.

Position: linear, or cubic Hermite with Catmull-Rom tangents on the (non-uniform) knot times: both pass
exactly through every knot; cubic is C1 so the commanded velocity has no corners between steps.
Orientation: SLERP between neighbouring knots (unit norm, shortest path). Gripper: stepwise (the value of
the latest knot that is due), because a gripper goal is a discrete event, not a trajectory.
Outside the knot range the track holds its first / last knot.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import quaternion as quat

INTERPOLATIONS = ("linear", "cubic")


@dataclass
class ArmSample:
    position: np.ndarray  # (3,)
    quat: np.ndarray  # (4,) x, y, z, w
    gripper: float


class ArmTrack:
    def __init__(self, times, positions, quats, grippers, interpolation: str = "cubic"):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
        self.times = np.asarray(times, dtype=float)
        self.positions = np.asarray(positions, dtype=float)
        self.grippers = np.asarray(grippers, dtype=float)
        # Make neighbouring quaternions sign-consistent so SLERP never takes the long way round.
        q = np.array([quat.normalize(x) for x in np.asarray(quats, dtype=float)])
        for k in range(1, len(q)):
            if np.dot(q[k - 1], q[k]) < 0.0:
                q[k] = -q[k]
        self.quats = q
        self.interpolation = interpolation
        self._tangents = self._catmull_rom_tangents() if interpolation == "cubic" else None

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def _catmull_rom_tangents(self) -> np.ndarray:
        t, p = self.times, self.positions
        m = np.zeros_like(p)
        n = len(t)
        if n < 2:
            return m
        m[0] = (p[1] - p[0]) / (t[1] - t[0])
        m[-1] = (p[-1] - p[-2]) / (t[-1] - t[-2])
        if n > 2:
            m[1:-1] = (p[2:] - p[:-2]) / (t[2:] - t[:-2])[:, None]
        return m

    def sample(self, t: float) -> ArmSample:
        times = self.times
        if t <= times[0] or len(times) == 1:
            return ArmSample(self.positions[0].copy(), self.quats[0].copy(), float(self.grippers[0]))
        if t >= times[-1]:
            return ArmSample(self.positions[-1].copy(), self.quats[-1].copy(), float(self.grippers[-1]))
        k = int(np.searchsorted(times, t, side="right")) - 1  # times[k] <= t < times[k+1]
        h = times[k + 1] - times[k]
        s = (t - times[k]) / h
        p0, p1 = self.positions[k], self.positions[k + 1]
        if self.interpolation == "linear":
            pos = p0 + s * (p1 - p0)
        else:
            s2, s3 = s * s, s * s * s
            h00, h10, h01, h11 = 2 * s3 - 3 * s2 + 1, s3 - 2 * s2 + s, -2 * s3 + 3 * s2, s3 - s2
            pos = h00 * p0 + h10 * h * self._tangents[k] + h01 * p1 + h11 * h * self._tangents[k + 1]
        q = quat.slerp(self.quats[k], self.quats[k + 1], s)
        return ArmSample(pos, q, float(self.grippers[k]))
