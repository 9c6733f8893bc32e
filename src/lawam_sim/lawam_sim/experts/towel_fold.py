"""Scripted bimanual towel fold: each arm takes the near corner on its side, carries it over the fold line on an
arc and lays it on the far corner of its side, then lets go.

Corners come from privileged cloth state at the first call after a reset. Both arms follow waypoint lists of
equal lengths and speeds, so they move in step and the near edge stays taut-ish while it is carried.
"""
from __future__ import annotations

import numpy as np

from lawam_sim import rotations as rot
from lawam_sim.experts.waypoints import Waypoint, WaypointTrack

ARC_H = 0.11        # height of the carried edge above the fold line (m)


def down_quat_xyzw(arm: str) -> np.ndarray:
    """Gripper approach axis pointing down, fingers closing along the base y axis."""
    q = rot.axis_angle_wxyz([0, 1, 0], np.pi / 2)
    if arm == "right":  # the right arm faces the other way
        q = rot.quat_mul(rot.axis_angle_wxyz([0, 0, 1], np.pi), q)
    return rot.wxyz_to_xyzw(q)


class TowelFoldExpert:
    control_hz = 20.0

    def __init__(self, scene):
        self.scene = scene
        self.tracks: dict[str, WaypointTrack] | None = None

    def _plan(self) -> dict[str, WaypointTrack]:
        s = self.scene
        corners = s.corner_indices()
        verts = s.cloth_vertices()
        tracks = {}
        for arm in s.arms:
            near = verts[corners[f"near_{arm}"]]
            far = verts[corners[f"far_{arm}"]]
            near, _ = s.world_to_base(near, [1, 0, 0, 0])
            far, _ = s.world_to_base(far, [1, 0, 0, 0])
            q = down_quat_xyzw(arm)
            inward = np.array([-np.sign(near[0]) * 0.01, 0.01, 0.0])  # grab just inside the corner
            grasp = near + inward + [0, 0, 0.016]  # finger tips just above the table
            place = far + [inward[0], -0.02, 0.022]
            mid = (grasp + place) / 2 + [0, 0, ARC_H]
            p, pq = s.eef_pose(arm)
            t = WaypointTrack(p, pq, 1.0, speed=0.3)
            t.extend([
                Waypoint(grasp + [0, 0, 0.07], q, 1.0),
                Waypoint(grasp, q, 1.0, speed=0.15, dwell_s=0.1),
                Waypoint(grasp, q, 0.0, dwell_s=0.3),
                Waypoint(grasp + [0, 0.03, 0.06], q, 0.0, speed=0.15),
                Waypoint(mid, q, 0.0, speed=0.2),
                Waypoint(place + [0, 0, 0.03], q, 0.0, speed=0.2),
                Waypoint(place, q, 0.0, speed=0.1, dwell_s=0.2),
                Waypoint(place, q, 1.0, dwell_s=0.3),
                Waypoint(place + [0, 0, 0.08], q, 1.0),
            ])
            tracks[arm] = t
        return tracks

    def act(self, scene=None) -> dict:
        if self.tracks is None:
            self.tracks = self._plan()
        return {arm: t.step(1.0 / self.control_hz) for arm, t in self.tracks.items()}

    @property
    def done(self) -> bool:
        return self.tracks is not None and all(t.done for t in self.tracks.values())
