"""Wire actions <-> network actions.

Wire (datasets, the ROS side): per arm x, y, z (m), qx, qy, qz, qw (unit quaternion, ROS order), gripper in
[0, 1]. Network: per arm position (3) + 6D rotation (first two columns of R; continuous, unlike quaternions)
+ gripper, with position and gripper normalised by checkpoint statistics (6D is left as is: it is bounded).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..action_layout import ARM_DIM, ActionLayout
from .config import NET_ARM_DIM


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) xyzw -> (..., 3, 3); the quaternion is normalised first."""
    q = F.normalize(q, dim=-1)
    x, y, z, w = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 4) unit quaternion xyzw with w >= 0 (largest-pivot method)."""
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack([
        torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1],
                     1 + trace], -1),
        torch.stack([1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0],
                     m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], -1),
        torch.stack([m[..., 0, 1] + m[..., 1, 0], 1 + m[..., 1, 1] - m[..., 0, 0] - m[..., 2, 2],
                     m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 + m[..., 2, 2] - m[..., 0, 0] - m[..., 1, 1], m[..., 1, 0] - m[..., 0, 1]], -1),
    ], dim=-2)  # (..., 4 candidates, 4) each proportional to q
    pivots = torch.stack([1 + trace, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                          1 + m[..., 1, 1] - m[..., 0, 0] - m[..., 2, 2],
                          1 + m[..., 2, 2] - m[..., 0, 0] - m[..., 1, 1]], -1)
    best = pivots.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., 3:4] < 0, -q, q)


def rot6d_to_matrix(r6: torch.Tensor) -> torch.Tensor:
    """(..., 6) two columns -> (..., 3, 3) via Gram-Schmidt."""
    a, b = r6[..., :3], r6[..., 3:]
    c1 = F.normalize(a, dim=-1)
    c2 = F.normalize(b - (c1 * b).sum(-1, keepdim=True) * c1, dim=-1)
    c3 = torch.cross(c1, c2, dim=-1)
    return torch.stack([c1, c2, c3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def wire_to_net(x: torch.Tensor, layout: ActionLayout) -> torch.Tensor:
    """(..., 8*arms) wire -> (..., 10*arms) network representation (not yet normalised)."""
    out = []
    for i in range(len(layout.arms)):
        a = x[..., i * ARM_DIM:(i + 1) * ARM_DIM]
        out += [a[..., :3], matrix_to_rot6d(quat_to_matrix(a[..., 3:7])), a[..., 7:8]]
    return torch.cat(out, dim=-1)


def net_to_wire(y: torch.Tensor, layout: ActionLayout) -> torch.Tensor:
    """(..., 10*arms) network -> (..., 8*arms) wire: unit quaternion, gripper clipped to [0, 1]."""
    out = []
    for i in range(len(layout.arms)):
        a = y[..., i * NET_ARM_DIM:(i + 1) * NET_ARM_DIM]
        out += [a[..., :3], matrix_to_quat(rot6d_to_matrix(a[..., 3:9])), a[..., 9:10].clamp(0.0, 1.0)]
    return torch.cat(out, dim=-1)


def default_stats(layout: ActionLayout) -> dict:
    """Identity position statistics; gripper [0, 1] -> [-1, 1]; 6D untouched."""
    mean = ([0.0] * 3 + [0.0] * 6 + [0.5]) * len(layout.arms)
    std = ([1.0] * 3 + [1.0] * 6 + [0.5]) * len(layout.arms)
    return {"mean": mean, "std": std}


def compute_stats(wire: np.ndarray, layout: ActionLayout) -> dict:
    """Normalisation statistics (network representation) from wire-format samples (N, 8*arms).

    The training package calls this on its dataset and stores the result in the config's `normalization`.
    Raises ValueError if a sample is not finite (one NaN would make every statistic, and every model
    normalised with it, NaN).
    """
    wire = np.asarray(wire, np.float64)
    bad = np.argwhere(~np.isfinite(wire))
    if bad.size:
        row, col = (int(v) for v in bad[0])
        name = layout.names[col] if col < len(layout.names) else str(col)
        raise ValueError(f"normalisation statistics: {len(bad)} non-finite value(s) in {len(wire)} samples, the "
                         f"first in sample {row}, {name} = {wire[row, col]}")
    net = wire_to_net(torch.as_tensor(wire, dtype=torch.float64), layout)
    mean = net.mean(0)
    std = net.std(0).clamp_min(1e-3)
    stats = default_stats(layout)
    for i in range(len(layout.arms)):
        o = i * NET_ARM_DIM
        for j in (0, 1, 2, 9):  # position and gripper only
            stats["mean"][o + j] = float(mean[o + j])
            stats["std"][o + j] = float(std[o + j])
    return stats


class Normalizer:
    """Applies one embodiment's statistics: wire <-> normalised network actions (or states)."""

    def __init__(self, layout: ActionLayout, stats: dict | None):
        stats = stats or default_stats(layout)
        if len(stats["mean"]) != NET_ARM_DIM * len(layout.arms):
            raise ValueError(f"normalisation statistics for {layout.embodiment!r} have {len(stats['mean'])} "
                             f"entries, expected {NET_ARM_DIM * len(layout.arms)}")
        self.layout = layout
        self.mean = torch.tensor(stats["mean"], dtype=torch.float32)
        self.std = torch.tensor(stats["std"], dtype=torch.float32)

    def encode(self, wire: torch.Tensor) -> torch.Tensor:
        if wire.shape[-1] != self.layout.dim:
            raise ValueError(f"{self.layout.embodiment} actions must have {self.layout.dim} dims "
                             f"({', '.join(self.layout.names)}), got {wire.shape[-1]}")
        net = wire_to_net(wire.float(), self.layout)
        return (net - self.mean.to(net.device)) / self.std.to(net.device)

    def decode(self, normed: torch.Tensor) -> torch.Tensor:
        net = normed.float() * self.std.to(normed.device) + self.mean.to(normed.device)
        return net_to_wire(net, self.layout)
