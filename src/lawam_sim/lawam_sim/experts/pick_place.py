"""Scripted pick-and-place: top-down grasp of the cube the scene's instruction names, carry, release above
the bowl centre.

The plan is computed from privileged state (named cube's pose, bowl position) at the first call after a reset
and again whenever the scene's instruction changes; the gripper yaw follows the cube yaw modulo 90 degrees (the
cube is symmetric), so the pads close on two faces.
"""
from __future__ import annotations

import numpy as np

from lawam_sim.experts.waypoints import SingleArmWaypointExpert, Waypoint, WaypointTrack
from lawam_sim.scenes.franka import TABLE_TOP

APPROACH_H = 0.12     # above the cube before descending (m)
CARRY_H = 0.17
RELEASE_H = 0.10


class PickPlaceExpert(SingleArmWaypointExpert):
    def _plan(self) -> WaypointTrack:
        s = self.scene
        p, q = s.eef_pose("arm")
        cube, yaw = s.cube_pose(s.target_colour)
        yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
        grasp_q = s.top_down_quat_xyzw(yaw)
        bowl = s.bowl_pos()
        grasp = np.array([cube[0], cube[1], TABLE_TOP + 0.012])
        track = WaypointTrack(p, q, 1.0, speed=0.35)
        track.extend([
            Waypoint(grasp + [0, 0, APPROACH_H], grasp_q, 1.0),
            Waypoint(grasp + [0, 0, 0.03], grasp_q, 1.0, speed=0.15),
            Waypoint(grasp, grasp_q, 1.0, speed=0.1, dwell_s=0.1),
            Waypoint(grasp, grasp_q, 0.0, dwell_s=0.6),                     # close and let the grip settle
            Waypoint(grasp + [0, 0, CARRY_H], grasp_q, 0.0, speed=0.2),
            Waypoint(np.array([bowl[0], bowl[1], TABLE_TOP + CARRY_H]), grasp_q, 0.0),
            Waypoint(np.array([bowl[0], bowl[1], TABLE_TOP + RELEASE_H]), grasp_q, 0.0, speed=0.2),
            Waypoint(np.array([bowl[0], bowl[1], TABLE_TOP + RELEASE_H]), grasp_q, 1.0, dwell_s=0.5),
            Waypoint(np.array([bowl[0], bowl[1], TABLE_TOP + 0.25]), grasp_q, 1.0),
        ])
        return track
