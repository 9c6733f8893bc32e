"""Safety layer applied to every streamed command: workspace box, speed and acceleration limits, gripper range.

Targets that violate a rate limit are not refused (refusing would freeze the robot a long way from the
path and deadlock); the command moves toward the target as fast as the limits allow and the clamp is
counted by reason. The approach speed is also capped by about sqrt(2 * a_max * distance), the speed from
which the arm can still stop at the target, so a clamped move decelerates into the goal instead of overshooting.
Orientation is handled the same way on the rotation vector between the last command and the target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..parameters import check_fields, setting
from . import quaternion as quat


@dataclass
class SafetyLimits:
    """The bridge's safety limits (each field is also the bridge parameter of that name). Defaults: a
    Panda-sized box in front of the robot (the bridge takes each embodiment's box from the registry), and
    rates well inside the Panda's Cartesian limits (about 1.7 m/s, 2.5 rad/s, 13 m/s^2, 25 rad/s^2)."""

    workspace_min: tuple = setting((0.2, -0.6, 0.0), "workspace box lower corner [x, y, z] (m, base frame)")
    workspace_max: tuple = setting((0.85, 0.6, 0.8), "workspace box upper corner [x, y, z] (m, base frame)")
    max_linear_speed: float = setting(0.5, "command speed limit (m/s)", above=0.0)
    max_angular_speed: float = setting(1.0, "command angular speed limit (rad/s)", above=0.0)
    max_linear_accel: float = setting(4.0, "command acceleration limit (m/s^2)", above=0.0)
    max_angular_accel: float = setting(8.0, "command angular acceleration limit (rad/s^2)", above=0.0)
    gripper_min: float = setting(0.0, "lowest gripper opening commanded (0..1)")
    gripper_max: float = setting(1.0, "highest gripper opening commanded (0..1)")
    # Start-up: the first target must be near the measured pose, and the limits ramp up from a fraction.
    max_start_distance_m: float = setting(0.15, "a first chunk farther than this from the measured pose (m) is "
                                                "refused")
    max_start_angle_rad: float = setting(0.6, "same for the orientation (rad)")
    startup_ramp_s: float = setting(2.0, "speed limits ramp up over this time after start / reset (s)")
    startup_speed_scale: float = setting(0.2, "fraction of the speed limits at the start of the ramp", above=0.0,
                                         max=1.0)

    def validate(self) -> None:
        """Raise ValueError (one line) for limits out of their bounds or a box that is not a box."""
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or np.any(lo >= hi):
            raise ValueError(f"workspace box must be 3 mins below 3 maxes, got {self.workspace_min} .. "
                             f"{self.workspace_max}")
        check_fields(self)
        if not self.gripper_min < self.gripper_max:
            raise ValueError("gripper_min must be below gripper_max")


def rate_limit(delta, v_prev, v_target, dt: float, v_max: float, a_max: float) -> tuple[np.ndarray, list[str]]:
    """Velocity for this tick that moves `delta` (command -> target) within speed and acceleration limits.

    `v_target` is the target's own velocity: a lagging command closes the gap at the speed from which it can
    still stop relative to the target, so it neither overshoots a stationary goal nor lags a moving one for
    ever. Returns (velocity, reasons); reasons is empty when the target was reachable in this tick.
    """
    v_des = delta / dt
    if float(np.linalg.norm(v_des)) <= v_max and float(np.linalg.norm(v_des - v_prev)) <= a_max * dt * (1 + 1e-9):
        return v_des, []
    reasons = []
    vt = np.asarray(v_target, dtype=float)
    vt_norm = float(np.linalg.norm(vt))
    if vt_norm > v_max:  # a jump in the target (e.g. a seam without blending) is not a velocity to follow
        vt = vt * (v_max / vt_norm)
    gap = delta - vt * dt  # what is left once the command moves along with the target
    dist = float(np.linalg.norm(gap))
    # Fastest closing speed from which braking at a_max, one tick at a time, still stops at the target:
    # v^2 / (2 a) + v dt / 2 <= distance.
    closing = a_max * (math.sqrt(0.25 * dt * dt + 2.0 * dist / a_max) - 0.5 * dt)
    v = vt + (gap / dist) * min(closing, dist / dt) if dist > 0 else vt
    speed = float(np.linalg.norm(v))
    if speed > v_max:
        v = v * (v_max / speed)
        reasons.append("speed")
    dv = v - v_prev
    dv_norm = float(np.linalg.norm(dv))
    if dv_norm > a_max * dt:
        v = v_prev + dv * (a_max * dt / dv_norm)
        reasons.append("accel")
    elif not reasons:
        reasons.append("accel")  # the closing speed was capped by the stopping distance
    return v, reasons


@dataclass
class ArmSafety:
    """Rate-limited command state of one arm."""

    limits: SafetyLimits
    position: np.ndarray | None = None
    quat: np.ndarray | None = None
    gripper: float = 1.0
    lin_vel: np.ndarray = field(default_factory=lambda: np.zeros(3))
    ang_vel: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _last_target: tuple | None = None  # previous (position, quat) target, for the target's velocity

    @property
    def started(self) -> bool:
        return self.position is not None

    def start(self, position, orientation, gripper: float | None = None) -> None:
        """Begin from the measured pose, at rest."""
        self.position = np.asarray(position, dtype=float).copy()
        self.quat = quat.normalize(orientation)
        if gripper is not None:
            self.gripper = float(gripper)
        self.lin_vel = np.zeros(3)
        self.ang_vel = np.zeros(3)
        self._last_target = None

    def step(self, position, orientation, gripper: float, dt: float,
             speed_scale: float = 1.0) -> list[str]:
        """Move the command one tick toward the target; returns the clamp reasons (counter keys)."""
        lim = self.limits
        reasons: list[str] = []
        target = np.asarray(position, dtype=float)
        boxed = np.clip(target, lim.workspace_min, lim.workspace_max)
        if np.any(boxed != target):
            reasons.append("workspace")
        scaled = speed_scale < 1.0
        target_q = quat.normalize(orientation)
        if self._last_target is None:
            vt_lin, vt_ang = np.zeros(3), np.zeros(3)
        else:
            vt_lin = (boxed - self._last_target[0]) / dt
            vt_ang = quat.relative_rotvec(self._last_target[1], target_q) / dt
        self._last_target = (boxed, target_q)
        v, why = rate_limit(boxed - self.position, self.lin_vel, vt_lin, dt, lim.max_linear_speed * speed_scale,
                            lim.max_linear_accel)
        reasons += [("startup_ramp" if scaled and w == "speed" else f"linear_{w}") for w in why]
        w_rot, why = rate_limit(quat.relative_rotvec(self.quat, target_q), self.ang_vel, vt_ang, dt,
                                lim.max_angular_speed * speed_scale, lim.max_angular_accel)
        reasons += [("startup_ramp" if scaled and w == "speed" else f"angular_{w}") for w in why]
        self.position = self.position + v * dt
        self.quat = quat.normalize(quat.multiply(quat.from_rotvec(w_rot * dt), self.quat))
        self.lin_vel, self.ang_vel = v, w_rot
        g = min(max(float(gripper), lim.gripper_min), lim.gripper_max)
        if g != gripper:
            reasons.append("gripper_range")
        self.gripper = g
        return sorted(set(reasons))
