"""Scripted drawer opening: top-down grasp of the handle bar, pull straight back, release.

The handle bar runs along y, so the gripper is yawed to close its pads along x (around the bar).
"""
from __future__ import annotations

from lawam_sim.experts.waypoints import SingleArmWaypointExpert, Waypoint, WaypointTrack

PULL_M = 0.17
GRASP_YAW = 0.0   # at yaw 0 the 2F-85 pads close along the base x axis, i.e. around the bar


class DrawerExpert(SingleArmWaypointExpert):
    def _plan(self) -> WaypointTrack:
        s = self.scene
        p, q = s.eef_pose("arm")
        h = s.handle_pos()
        gq = s.top_down_quat_xyzw(GRASP_YAW)
        grasp = h + [0, 0, -0.005]
        pulled = grasp + [-PULL_M, 0, 0]
        track = WaypointTrack(p, q, 1.0, speed=0.35)
        track.extend([
            Waypoint(grasp + [0, 0, 0.1], gq, 1.0),
            Waypoint(grasp, gq, 1.0, speed=0.12, dwell_s=0.1),
            Waypoint(grasp, gq, 0.0, dwell_s=0.6),
            Waypoint(pulled, gq, 0.0, speed=0.12),
            Waypoint(pulled, gq, 1.0, dwell_s=0.4),
            Waypoint(pulled + [0, 0, 0.12], gq, 1.0),
        ])
        return track
