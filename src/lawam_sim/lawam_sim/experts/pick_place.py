"""Scripted pick-and-place: top-down grasp of the cube the scene's instruction names, carry, release above
the bowl centre.

The plan is computed from privileged state (named cube's pose, bowl position) at the first call after a reset
and again whenever the scene's instruction changes; the gripper yaw follows the cube yaw modulo 90 degrees (the
cube is symmetric), so the pads close on two faces.

Regrasp: when the closed hand has been raised above ``HELD_CHECK_H`` and the named cube is not between the
pads (a missed grasp, e.g. under DART noise, or a cube dropped on the way), the expert opens and plans the
grasp again from the cube's current pose, at most ``MAX_REGRASPS`` times. Demonstrations then hold the
recovery a policy needs after its own missed grasp (closed on nothing: open, go back, grasp again) instead of
only grasps that worked the first time.
"""
from __future__ import annotations

import numpy as np

from lawam_sim.experts.waypoints import SingleArmWaypointExpert, Waypoint, WaypointTrack
from lawam_sim.scenes.franka import TABLE_TOP

APPROACH_H = 0.12     # above the cube before descending (m)
CARRY_H = 0.17
RELEASE_H = 0.10
GRASP_Z = TABLE_TOP + 0.012  # TCP height of the grasp (m)
HELD_CHECK_H = 0.05   # TCP above the grasp height (m) from which a closed hand must hold the cube
HELD_RADIUS = 0.03    # named cube centre to TCP (m) within which it counts as held
MAX_REGRASPS = 2


class PickPlaceExpert(SingleArmWaypointExpert):
    def __init__(self, scene):
        super().__init__(scene)
        self.regrasps = 0
        self._closed_low = False  # the hand was commanded closed down at the grasp: from then on it must hold

    def reset(self) -> None:
        super().reset()
        self.regrasps = 0
        self._closed_low = False

    def act(self, scene=None) -> dict:
        if self.track is not None:
            closed = self.track.opening < 0.5
            tcp_z = self.scene.eef_pose("arm")[0][2]
            self._closed_low = closed and (self._closed_low or tcp_z < GRASP_Z + HELD_CHECK_H / 2)
            if self._closed_low and tcp_z > GRASP_Z + HELD_CHECK_H and not self._cube_held() \
                    and self.regrasps < MAX_REGRASPS:
                # open and grasp again, starting from the commanded pose (no jump in the commands)
                self.track = self._plan(self.track.cmd, self.track.quat)
                self.regrasps += 1
                self._closed_low = False
        return super().act(scene)

    def _cube_held(self) -> bool:
        """The named cube's centre is within HELD_RADIUS of the TCP."""
        s = self.scene
        return np.linalg.norm(s.cube_pose(s.target_colour)[0] - s.eef_pose("arm")[0]) <= HELD_RADIUS

    def _plan(self, start_pos=None, start_quat_xyzw=None) -> WaypointTrack:
        """The grasp-carry-release track from the start pose (default: the measured one), gripper open."""
        s = self.scene
        p, q = s.eef_pose("arm") if start_pos is None else (start_pos, start_quat_xyzw)
        cube, yaw = s.cube_pose(s.target_colour)
        yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
        grasp_q = s.top_down_quat_xyzw(yaw)
        bowl = s.bowl_pos()
        grasp = np.array([cube[0], cube[1], GRASP_Z])
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
