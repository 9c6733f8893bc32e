"""Unit quaternions in ROS order (x, y, z, w) and the interpolation helpers the runtime needs.

Everything here is plain numpy, works on single quaternions of shape (4,), and never returns a
non-unit quaternion: inputs are normalised, and the zero quaternion is an error.
"""
from __future__ import annotations

import math

import numpy as np

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


def normalize(q) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    n = float(np.linalg.norm(q))
    if not math.isfinite(n) or n < 1e-12:
        raise ValueError(f"quaternion {q} has no direction (norm {n})")
    return q / n


def multiply(a, b) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a), both (x, y, z, w)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])


def conjugate(q) -> np.ndarray:
    return np.array([-q[0], -q[1], -q[2], q[3]], dtype=float)


def angle_between(a, b) -> float:
    """Rotation angle (rad, in [0, pi]) taking a to b; q and -q are the same rotation."""
    d = abs(float(np.dot(normalize(a), normalize(b))))
    return 2.0 * math.acos(min(1.0, d))


def to_rotvec(q) -> np.ndarray:
    """Rotation vector (axis * angle, angle in [0, pi]) of a unit quaternion."""
    q = normalize(q)
    if q[3] < 0.0:  # the short way round
        q = -q
    s = float(np.linalg.norm(q[:3]))
    if s < 1e-12:
        return 2.0 * q[:3]  # first-order: angle ~ 2 * |v|
    angle = 2.0 * math.atan2(s, q[3])
    return q[:3] / s * angle


def from_rotvec(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return normalize(np.array([0.5 * v[0], 0.5 * v[1], 0.5 * v[2], 1.0]))
    half = 0.5 * angle
    return np.concatenate([v / angle * math.sin(half), [math.cos(half)]])


def relative_rotvec(q_from, q_to) -> np.ndarray:
    """World-frame rotation vector w with q_to = exp(w) * q_from (shortest path)."""
    return to_rotvec(multiply(normalize(q_to), conjugate(normalize(q_from))))


def slerp(a, b, s: float) -> np.ndarray:
    """Spherical linear interpolation a -> b at s in [0, 1], along the shortest path.

    Exact at the ends (s=0 gives a, s=1 gives b up to the sign flip that picks the short way) and unit
    norm everywhere.
    """
    a = normalize(a)
    b = normalize(b)
    d = float(np.dot(a, b))
    if d < 0.0:  # q and -q are the same rotation; go the short way
        b = -b
        d = -d
    if d > 0.9995:  # nearly parallel: nlerp is accurate and avoids dividing by sin(~0)
        return normalize(a + s * (b - a))
    theta = math.acos(min(1.0, d))
    sin_theta = math.sin(theta)
    wa = math.sin((1.0 - s) * theta) / sin_theta
    wb = math.sin(s * theta) / sin_theta
    return normalize(wa * a + wb * b)


def canonical(q) -> np.ndarray:
    """Sign convention for output: w >= 0 (the same rotation, stable for comparisons)."""
    q = normalize(q)
    return -q if q[3] < 0.0 else q
