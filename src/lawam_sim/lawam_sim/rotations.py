"""Quaternion helpers. ROS uses (x, y, z, w); MuJoCo uses (w, x, y, z). Every conversion goes through here."""
from __future__ import annotations

import mujoco
import numpy as np


def xyzw_to_wxyz(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    return np.array([q[3], q[0], q[1], q[2]])


def wxyz_to_xyzw(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    return np.array([q[1], q[2], q[3], q[0]])


def normalize(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"quaternion {q} has no usable norm")
    return q / n


def mat_to_wxyz(mat) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.asarray(mat, dtype=float).reshape(9))
    return q


def wxyz_to_mat(q) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=float))
    return m.reshape(3, 3)


def quat_mul(a, b) -> np.ndarray:
    """Hamilton product of two (w, x, y, z) quaternions."""
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, np.asarray(a, float), np.asarray(b, float))
    return out


def quat_conj(q) -> np.ndarray:
    q = np.asarray(q, float)
    return np.array([q[0], -q[1], -q[2], -q[3]])


def rotation_error(target_wxyz, current_wxyz) -> np.ndarray:
    """Rotation vector (world frame, rad) that turns ``current`` into ``target``, shortest path."""
    dq = quat_mul(target_wxyz, quat_conj(current_wxyz))
    if dq[0] < 0:  # q and -q are the same rotation: take the short way round
        dq = -dq
    v = np.zeros(3)
    mujoco.mju_quat2Vel(v, dq, 1.0)
    return v


def angle_between(a_wxyz, b_wxyz) -> float:
    return float(np.linalg.norm(rotation_error(a_wxyz, b_wxyz)))


def axis_angle_wxyz(axis, angle) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])
