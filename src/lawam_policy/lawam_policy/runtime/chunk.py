"""The runtime's ROS-free view of an action chunk (mirrors lawam_msgs/ActionChunk)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..action_layout import ARM_DIM, ActionLayout


class ChunkError(ValueError):
    """A chunk that cannot be executed; `reason` is the counter key reported in BridgeStatus."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Chunk:
    """H steps for each arm, step k due at obs_stamp + time_offsets[k] (seconds on the ROS clock)."""

    obs_stamp: float
    time_offsets: np.ndarray  # (H,) s, strictly increasing
    positions: np.ndarray  # (A, H, 3) m
    quats: np.ndarray  # (A, H, 4) x, y, z, w
    grippers: np.ndarray  # (A, H) opening, 0 closed .. 1 open
    arm_names: tuple[str, ...]
    chunk_id: int = 0
    embodiment: str = ""
    control_rate_hz: float = 0.0
    horizon_s: float = 0.0
    frame_id: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return int(len(self.time_offsets))

    @property
    def end_offset(self) -> float:
        return float(self.time_offsets[-1])

    def validate(self, expected_arms: tuple[str, ...] | None = None) -> None:
        """Raise ChunkError(reason) unless the chunk is well formed and finite."""
        h = self.num_steps
        if h == 0:
            raise ChunkError("empty_chunk", f"chunk {self.chunk_id} has no steps")
        if expected_arms is not None and tuple(self.arm_names) != tuple(expected_arms):
            raise ChunkError("bad_layout", f"chunk {self.chunk_id} has arms {list(self.arm_names)}, "
                                           f"this bridge drives {list(expected_arms)}")
        a = len(self.arm_names)
        shapes = {"positions": (a, h, 3), "quats": (a, h, 4), "grippers": (a, h)}
        for name, shape in shapes.items():
            if getattr(self, name).shape != shape:
                raise ChunkError("bad_layout", f"chunk {self.chunk_id}: {name} has shape "
                                               f"{getattr(self, name).shape}, expected {shape}")
        for name in ("time_offsets", "positions", "quats", "grippers"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ChunkError("non_finite", f"chunk {self.chunk_id}: non-finite values in {name}")
        if not np.isfinite(self.obs_stamp):
            raise ChunkError("non_finite", f"chunk {self.chunk_id}: non-finite observation stamp")
        if h > 1 and np.any(np.diff(self.time_offsets) <= 0):
            raise ChunkError("bad_timing", f"chunk {self.chunk_id}: time offsets are not strictly increasing")
        if np.any(np.linalg.norm(self.quats, axis=-1) < 1e-6):
            raise ChunkError("bad_quaternion", f"chunk {self.chunk_id}: zero quaternion")

    @classmethod
    def from_actions(cls, actions, timestamps, layout: ActionLayout, obs_stamp: float, chunk_id: int = 0,
                     control_rate_hz: float = 0.0, horizon_s: float = 0.0, frame_id: str = "") -> "Chunk":
        """Build from a model prediction: actions (H, D), per arm [x, y, z, qx, qy, qz, qw, gripper]."""
        actions = np.asarray(actions, dtype=float)
        timestamps = np.asarray(timestamps, dtype=float).reshape(-1)
        if actions.ndim != 2 or actions.shape[1] != layout.dim or actions.shape[0] != len(timestamps):
            raise ChunkError("bad_layout", f"prediction has shape {actions.shape} with {len(timestamps)} "
                                           f"timestamps; layout {layout.embodiment} needs (H, {layout.dim})")
        per_arm = actions.reshape(len(timestamps), len(layout.arms), ARM_DIM).transpose(1, 0, 2)
        quats = per_arm[:, :, 3:7]
        norms = np.linalg.norm(quats, axis=-1, keepdims=True)
        quats = np.divide(quats, norms, out=np.full_like(quats, np.nan), where=norms > 1e-9)
        return cls(obs_stamp=float(obs_stamp), time_offsets=timestamps, positions=per_arm[:, :, 0:3].copy(),
                   quats=quats, grippers=per_arm[:, :, 7].copy(), arm_names=tuple(layout.arms),
                   chunk_id=chunk_id, embodiment=layout.embodiment, control_rate_hz=control_rate_hz,
                   horizon_s=horizon_s, frame_id=frame_id)

    def to_actions(self) -> np.ndarray:
        """(H, D) actions in the ActionLayout order, the inverse of from_actions."""
        per_arm = np.concatenate([self.positions, self.quats, self.grippers[..., None]], axis=-1)
        return per_arm.transpose(1, 0, 2).reshape(self.num_steps, -1)
