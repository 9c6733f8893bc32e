"""Pick-and-place (the paper's Franka task): put the red cube into the bowl.

A red cube (the target), a green cube (distractor) and a bowl on the table; positions and the cube's yaw are
drawn from the seed. Success: the red cube rests inside the bowl (horizontally within the bowl's inner radius,
below its rim) and the gripper has let go (opening > 0.5).
"""
from __future__ import annotations

import numpy as np

from lawam_sim.scenes.franka import TABLE_TOP, FrankaScene

CUBE_HALF = 0.02
BOWL_RADIUS = 0.085      # inner radius of the wall ring (m)
BOWL_WALL_H = 0.035


def _bowl_xml() -> str:
    walls = []
    n = 14
    for i in range(n):
        a = 2 * np.pi * i / n
        x, y = (BOWL_RADIUS + 0.005) * np.cos(a), (BOWL_RADIUS + 0.005) * np.sin(a)
        walls.append(f'<geom type="box" size="0.005 0.021 {BOWL_WALL_H / 2}" pos="{x:.4f} {y:.4f} {BOWL_WALL_H / 2}" '
                     f'euler="0 0 {a:.4f}" material="bowl_mat"/>')
    return f"""
    <body name="bowl" pos="0.55 0.2 {TABLE_TOP}">
      <geom name="bowl_floor" type="cylinder" size="{BOWL_RADIUS + 0.01} 0.003" pos="0 0 0.003" material="bowl_mat"/>
      {''.join(walls)}
    </body>"""


class PickPlaceScene(FrankaScene):
    name = "franka_pick_place"
    task = "put the red cube in the bowl"
    episode_s = 9.0

    def _objects_xml(self) -> str:
        return f"""
    <body name="cube" pos="0.5 0 {TABLE_TOP + CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.05" rgba="0.85 0.1 0.1 1"
            friction="1.5 0.01 0.001" condim="4"/>
    </body>
    <body name="distractor" pos="0.45 -0.2 {TABLE_TOP + CUBE_HALF}">
      <freejoint name="distractor"/>
      <geom name="distractor" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.05" rgba="0.1 0.7 0.2 1"/>
    </body>
    {_bowl_xml()}
"""

    def _build_xml(self):
        xml, assets = super()._build_xml()
        xml = xml.replace("<asset>", '<asset>\n    <material name="bowl_mat" rgba="0.2 0.35 0.8 1"/>', 1)
        return xml, assets

    def _randomise(self, rng: np.random.Generator) -> None:
        self._randomise_arm(rng)
        bowl = np.array([rng.uniform(0.45, 0.6), rng.uniform(0.12, 0.25)])
        cube = np.array([rng.uniform(0.42, 0.6), rng.uniform(-0.2, 0.0)])
        # distractor somewhere away from the cube and the bowl
        while True:
            distractor = np.array([rng.uniform(0.35, 0.65), rng.uniform(-0.3, 0.3)])
            if np.linalg.norm(distractor - cube) > 0.1 and np.linalg.norm(distractor - bowl) > 0.16:
                break
        self.model.body_pos[self.body_id("bowl")][:2] = bowl
        self._place_free("cube", cube, rng.uniform(-np.pi / 4, np.pi / 4))
        self._place_free("distractor", distractor, rng.uniform(-np.pi, np.pi))

    def _place_free(self, joint: str, xy, yaw: float) -> None:
        a = self.joint_qadr(joint)
        self.data.qpos[a:a + 3] = [xy[0], xy[1], TABLE_TOP + CUBE_HALF]
        self.data.qpos[a + 3:a + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]

    # privileged state for the expert and the success test
    def cube_pose(self) -> tuple[np.ndarray, float]:
        a = self.joint_qadr("cube")
        w, x, y, z = self.data.qpos[a + 3:a + 7]
        yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return self.data.qpos[a:a + 3].copy(), float(yaw)

    def bowl_pos(self) -> np.ndarray:
        return self.data.xpos[self.body_id("bowl")].copy()

    def metrics(self) -> dict:
        cube, _ = self.cube_pose()
        bowl = self.bowl_pos()
        horiz = float(np.linalg.norm(cube[:2] - bowl[:2]))
        inside = horiz < BOWL_RADIUS - CUBE_HALF * 0.5 and cube[2] < TABLE_TOP + BOWL_WALL_H + CUBE_HALF
        released = self.gripper_opening("arm") > 0.5
        return {"success": bool(inside and released), "cube_to_bowl_m": horiz, "cube_z": float(cube[2])}

    def success(self) -> bool:
        return self.metrics()["success"]
