"""Franka Panda on a table: the robot part shared by the pick-and-place and drawer scenes.

Robot model: gym-hil's ``assets/panda.xml`` (the Franka Emika Panda arm from MuJoCo Menagerie with a Robotiq
2F-85 parallel gripper), loaded from the installed ``gym_hil`` package at run time. Its arm joints are torque
motors, so the twin tracks Cartesian targets with operational-space control (controllers/osc.py) at the
physics rate (500 Hz default). The robot base ``link0`` sits at the world origin and is ``panda_link0``.

Gripper: the contract commands a Franka-hand width 0..0.08 m. The 2F-85 opens to 0.085 m; we map width
linearly onto its actuator (0 = open .. 255 = closed) and report width from the driver joint angle (linear
approximation of the linkage, good to a few mm), which is enough for recording and the bridge.
"""
from __future__ import annotations

import mujoco
import numpy as np

from lawam_policy.embodiments import FRANKA_HAND_MAX_WIDTH_M
from lawam_sim import rotations as rot
from lawam_sim.assets import asset_files
from lawam_sim.controllers.osc import OperationalSpaceController
from lawam_sim.scenes.base import FLOOR_ASSETS_XML, VISUAL_XML, Scene

ARM_JOINTS = [f"joint{i}" for i in range(1, 8)]
HOME_Q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.785])
MAX_WIDTH = FRANKA_HAND_MAX_WIDTH_M  # Franka hand range in the contract (m)
ROBOTIQ_MAX_WIDTH = 0.085
DRIVER_CLOSED = 0.8       # rad, driver joint fully closed

TABLE_TOP = 0.0           # the table top is level with the robot base (robot mounted on the table)

# Franka scenes: physics settings, the shared render settings and floor, the table material.
COMMON_XML = f"""
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>{VISUAL_XML}
  <asset>{FLOOR_ASSETS_XML}
    <material name="table_mat" rgba="0.62 0.5 0.38 1"/>
  </asset>
"""

TABLE_XML = """
    <light pos="0.4 0 1.8" dir="0 0 -1" diffuse="0.6 0.6 0.6"/>
    <geom name="floor" type="plane" size="3 3 0.05" pos="0 0 -0.75" material="floor_mat"/>
    <body name="table" pos="0.45 0 -0.025">
      <geom name="table_top" type="box" size="0.55 0.6 0.025" material="table_mat"/>
      <geom type="box" size="0.03 0.03 0.36" pos="0.5 0.55 -0.385" rgba=".3 .3 .3 1"/>
      <geom type="box" size="0.03 0.03 0.36" pos="0.5 -0.55 -0.385" rgba=".3 .3 .3 1"/>
      <geom type="box" size="0.03 0.03 0.36" pos="-0.5 0.55 -0.385" rgba=".3 .3 .3 1"/>
      <geom type="box" size="0.03 0.03 0.36" pos="-0.5 -0.55 -0.385" rgba=".3 .3 .3 1"/>
    </body>
    <body name="look_at" pos="{look_at}"/>
    <!-- front-right view (the scene's primary camera): aimed and zoomed per scene -->
    <camera name="front" pos="1.2 -0.75 0.75" mode="targetbody" target="look_at" fovy="{fovy}"/>
"""


class FrankaScene(Scene):
    arms = ("arm",)
    frame_id = "panda_link0"
    base_body = "link0"
    cameras = ("front", "handcam_rgb")  # handcam_rgb: the wrist camera gym-hil mounts on the hand
    # Outer guard box (base frame, m): a superset of the bridge's safety box; the twin's default workspace.
    default_workspace = ((0.1, -0.65, -0.02), (0.9, 0.65, 0.85))
    tcp_site = "pinch"
    # The front camera's aim point (base frame, m) and vertical field of view (deg): the default sees the
    # drawer's front and side as it slides out.
    front_look_at = (0.5, 0.0, 0.05)
    front_fovy = 45.0

    def _objects_xml(self) -> str:
        return ""

    def _build_xml(self):
        assets = dict(asset_files("gym_hil"))
        xml = f"""<mujoco model="{type(self).__name__}">
  <include file="panda.xml"/>
  {COMMON_XML}
  <worldbody>
    {TABLE_XML.format(look_at=" ".join(f"{v:g}" for v in self.front_look_at), fovy=f"{self.front_fovy:g}")}
    {self._objects_xml()}
  </worldbody>
</mujoco>"""
        return xml, assets

    def reset(self, seed: int, instruction: str | None = None) -> None:
        if not hasattr(self, "osc"):
            self.osc = OperationalSpaceController(self.model, self.tcp_site, ARM_JOINTS, HOME_Q)
            self._qadr = np.array([self.joint_qadr(j) for j in ARM_JOINTS])
            self._tcp = self.site_id(self.tcp_site)
            self._driver = self.joint_qadr("right_driver_joint")
            self._grip_act = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_ACTUATOR, "fingers_actuator")
        super().reset(seed, instruction)

    def _randomise_arm(self, rng: np.random.Generator, noise: float = 0.05) -> None:
        q = HOME_Q + rng.uniform(-noise, noise, size=7)
        self.data.qpos[self._qadr] = q
        self.osc.posture = HOME_Q.copy()

    def _control(self) -> None:
        t = self.targets["arm"]
        p, q = self.base_to_world(t.pos, t.quat_wxyz)
        self.data.ctrl[:7] = self.osc.torques(self.data, p, q)
        # opening 1 -> actuator 0 (open), opening 0 -> 255 (closed)
        self.data.ctrl[self._grip_act] = 255.0 * (1.0 - t.opening)

    def eef_pose_world(self, arm: str):
        return self.data.site_xpos[self._tcp].copy(), rot.mat_to_wxyz(self.data.site_xmat[self._tcp])

    def finger_width(self) -> float:
        """Measured opening between the pads (m), mapped into the contract's 0..0.08 range."""
        closed = np.clip(self.data.qpos[self._driver] / DRIVER_CLOSED, 0.0, 1.0)
        return float(MAX_WIDTH * (1.0 - closed))

    def gripper_opening(self, arm: str) -> float:
        return self.finger_width() / MAX_WIDTH

    def top_down_quat_xyzw(self, yaw: float = 0.0) -> np.ndarray:
        """Gripper pointing down (tool z = -world z), rotated by ``yaw`` about the vertical."""
        down = rot.axis_angle_wxyz([1, 0, 0], np.pi)
        q = rot.quat_mul(rot.axis_angle_wxyz([0, 0, 1], yaw), down)
        return rot.wxyz_to_xyzw(q)
