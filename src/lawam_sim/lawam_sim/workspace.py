"""Target admission, mirroring the deployment safety layer: non-finite values and targets outside the
configured workspace box are refused (the twin keeps tracking the last admitted target) and counted by reason.

The twin refuses rather than clamps on purpose: the bridge's safety layer is the place that clamps; a target
that reaches the twin outside the box means something bypassed that layer, and silently moving towards it would
hide the fault. Reachability clamping of the 6-DoF arms is a different thing (see controllers/ik.py).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class WorkspaceBox:
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self):
        self.lower = np.asarray(self.lower, float)
        self.upper = np.asarray(self.upper, float)
        if self.lower.shape != (3,) or self.upper.shape != (3,) or np.any(self.lower >= self.upper):
            raise ValueError(f"workspace box needs lower < upper (3 values each), got {self.lower}, {self.upper}")

    def contains(self, p) -> bool:
        p = np.asarray(p, float)
        return bool(np.all(p >= self.lower) and np.all(p <= self.upper))


@dataclass
class TargetGate:
    """Admits (position, quaternion) targets; counts every refusal by reason."""

    box: WorkspaceBox
    refusals: Counter = field(default_factory=Counter)

    def admit(self, pos, quat) -> tuple[bool, str]:
        pos = np.asarray(pos, float)
        quat = np.asarray(quat, float)
        if pos.shape != (3,) or quat.shape != (4,):
            return self._refuse("bad_shape")
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            return self._refuse("non_finite")
        if not 0.5 < np.linalg.norm(quat) < 1.5:
            return self._refuse("bad_quaternion")
        if not self.box.contains(pos):
            return self._refuse("workspace")
        return True, "ok"

    def _refuse(self, reason: str) -> tuple[bool, str]:
        self.refusals[reason] += 1
        return False, reason
