"""Waypoint sequencing shared by the experts: move the commanded pose towards the next waypoint at a bounded
linear and angular speed (so the commands are smooth enough for the bridge's rate limits), then hold the gripper
state for the waypoint's dwell time before moving on.

The orientation turns gradually (SLERP, `ANGULAR_SPEED`) rather than jumping to the waypoint's: a demo whose
first command is already turned (the towel's arms start horizontal and work pointing down, 1.57 rad; a cube
yawed up to 0.79 rad) teaches a policy a first target the bridge refuses at start-up (`max_start_angle_rad`
0.6), and the same refused chunk then comes back for ever."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lawam_policy.runtime import quaternion

ANGULAR_SPEED = 0.8  # rad/s: below the bridges' default max_angular_speed (1.0), so a replayed demo is not clamped


@dataclass
class Waypoint:
    pos: np.ndarray
    quat_xyzw: np.ndarray
    opening: float
    dwell_s: float = 0.0      # wait here (gripper settling) before the next waypoint
    speed: float | None = None


class WaypointTrack:
    def __init__(self, start_pos, start_quat_xyzw, start_opening: float, speed: float = 0.3):
        self.cmd = np.asarray(start_pos, float).copy()
        self.quat = np.asarray(start_quat_xyzw, float).copy()
        self.opening = float(start_opening)
        self.speed = speed
        self.queue: list[Waypoint] = []
        self._dwell_left = 0.0

    def extend(self, wps: list[Waypoint]) -> None:
        self.queue.extend(wps)

    @property
    def done(self) -> bool:
        return not self.queue

    def step(self, dt: float) -> tuple[np.ndarray, np.ndarray, float]:
        if self.queue:
            wp = self.queue[0]
            angle = quaternion.angle_between(self.quat, wp.quat_xyzw)
            turned = angle <= ANGULAR_SPEED * dt
            self.quat = (np.asarray(wp.quat_xyzw, float) if turned else
                         quaternion.slerp(self.quat, wp.quat_xyzw, ANGULAR_SPEED * dt / angle))
            delta = wp.pos - self.cmd
            dist = np.linalg.norm(delta)
            max_step = (wp.speed or self.speed) * dt
            if dist > max_step:
                self.cmd = self.cmd + delta * (max_step / dist)
            else:
                self.cmd = np.asarray(wp.pos, float).copy()
            if dist <= max_step and turned:  # reached (position and orientation)
                self.opening = wp.opening  # the gripper acts once the waypoint is reached
                self._dwell_left += dt
                if self._dwell_left >= wp.dwell_s:
                    self.queue.pop(0)
                    self._dwell_left = 0.0
        return self.cmd.copy(), self.quat.copy(), self.opening


class SingleArmWaypointExpert:
    """A one-arm expert that plans a WaypointTrack from privileged state at its first call after a reset
    (and again, from where the arm is, when the scene's instruction changes) and then plays it back at
    ``control_hz``; subclasses provide ``_plan``, which reads ``scene.instruction``."""

    control_hz = 20.0

    def __init__(self, scene):
        self.scene = scene
        self.track: WaypointTrack | None = None
        self._planned_for: str | None = None

    def reset(self) -> None:
        self.track = None

    def _plan(self) -> WaypointTrack:
        raise NotImplementedError

    def act(self, scene=None) -> dict:
        instruction = getattr(self.scene, "instruction", "")
        if self.track is None or instruction != self._planned_for:
            self.track = self._plan()
            self._planned_for = instruction
        pos, quat, opening = self.track.step(1.0 / self.control_hz)
        return {"arm": (pos, quat, opening)}

    @property
    def done(self) -> bool:
        return self.track is not None and self.track.done
