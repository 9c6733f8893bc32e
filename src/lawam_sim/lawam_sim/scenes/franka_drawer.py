"""Drawer opening (the paper's second Franka task): pull the drawer open by its handle.

A cabinet stands on the table facing the robot; its drawer slides towards the robot (-x) on a damped slide
joint. The handle is a horizontal bar (along y) on stand-offs at the drawer's top front edge, so a top-down
grasp closes the fingers around it. Cabinet position is drawn from the seed. Success: drawer open by at least
``OPEN_SUCCESS_M``.
"""
from __future__ import annotations

import numpy as np

from lawam_sim.scenes import INSTRUCTIONS
from lawam_sim.scenes.franka import TABLE_TOP, FrankaScene

OPEN_SUCCESS_M = 0.12
DRAWER_TRAVEL = 0.22
CAB_HALF = (0.12, 0.14, 0.07)     # cabinet half sizes (x depth, y width, z height)


class DrawerScene(FrankaScene):
    name = "franka_drawer"
    instructions = INSTRUCTIONS["franka_drawer"]
    episode_s = 8.0

    def _objects_xml(self) -> str:
        hx, hy, hz = CAB_HALF
        wall = 0.008
        return f"""
    <body name="cabinet" pos="0.72 0 {TABLE_TOP}">
      <geom type="box" size="{hx} {hy} {wall / 2}" pos="0 0 {2 * hz - wall / 2}" rgba=".55 .55 .6 1"/>
      <geom type="box" size="{hx} {wall / 2} {hz}" pos="0 {hy - wall / 2} {hz}" rgba=".55 .55 .6 1"/>
      <geom type="box" size="{hx} {wall / 2} {hz}" pos="0 {-hy + wall / 2} {hz}" rgba=".55 .55 .6 1"/>
      <geom type="box" size="{wall / 2} {hy} {hz}" pos="{hx - wall / 2} 0 {hz}" rgba=".55 .55 .6 1"/>
      <body name="drawer" pos="0 0 0">
        <joint name="drawer_slide" type="slide" axis="-1 0 0" range="0 {DRAWER_TRAVEL}" damping="8" frictionloss="0.5"
               armature="0.05"/>
        <geom name="drawer_front" type="box" size="{wall / 2} {hy - 0.012} {hz - 0.01}" pos="{-hx + wall / 2} 0 {hz}"
              rgba=".8 .75 .6 1" mass="0.4"/>
        <geom type="box" size="{hx - 0.02} {hy - 0.02} 0.004" pos="0 0 0.012" rgba=".7 .65 .5 1" mass="0.3"/>
        <geom type="box" size="{hx - 0.02} 0.004 0.03" pos="0 {hy - 0.024} 0.04" rgba=".7 .65 .5 1" mass="0.1"/>
        <geom type="box" size="{hx - 0.02} 0.004 0.03" pos="0 {-hy + 0.024} 0.04" rgba=".7 .65 .5 1" mass="0.1"/>
        <geom type="box" size="0.01 0.008 0.008" pos="{-hx - 0.01} 0.04 {2 * hz - 0.03}" rgba=".2 .2 .2 1" mass="0.01"/>
        <geom type="box" size="0.01 0.008 0.008" pos="{-hx - 0.01} -0.04 {2 * hz - 0.03}" rgba=".2 .2 .2 1" mass="0.01"/>
        <geom name="handle" type="capsule" size="0.009 0.055" pos="{-hx - 0.028} 0 {2 * hz - 0.03}" euler="1.5708 0 0"
              rgba=".15 .15 .15 1" mass="0.02" friction="1.5 0.01 0.001" condim="4"/>
        <site name="handle" pos="{-hx - 0.028} 0 {2 * hz - 0.03}" size="0.005"/>
      </body>
    </body>
"""

    def _randomise(self, rng: np.random.Generator) -> None:
        self._randomise_arm(rng)
        cab = self.body_id("cabinet")
        self.model.body_pos[cab][:2] = [rng.uniform(0.68, 0.76), rng.uniform(-0.15, 0.15)]

    def handle_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.site_id("handle")].copy()

    def drawer_opening(self) -> float:
        return float(self.data.qpos[self.joint_qadr("drawer_slide")])

    def metrics(self) -> dict:
        return {"success": self.drawer_opening() >= OPEN_SUCCESS_M, "drawer_opening_m": self.drawer_opening()}

    def success(self) -> bool:
        return self.metrics()["success"]
