"""Waypoint sequencing shared by the experts: move the commanded point towards the next waypoint at a bounded
speed (so the commands are smooth enough for the bridge's rate limits), then hold the gripper state for the
waypoint's dwell time before moving on."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
            self.quat = np.asarray(wp.quat_xyzw, float)
            delta = wp.pos - self.cmd
            dist = np.linalg.norm(delta)
            max_step = (wp.speed or self.speed) * dt
            if dist > max_step:
                self.cmd = self.cmd + delta * (max_step / dist)
            else:
                self.cmd = np.asarray(wp.pos, float).copy()
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
