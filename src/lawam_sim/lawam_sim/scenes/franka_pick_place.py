"""Pick-and-place (the paper's Franka task) where language matters: put the named cube into the bowl.

Two cubes, a red and a green one, identical in size, mass and friction, and a bowl stand on the table. Both
cubes are drawn i.i.d. from the same position/yaw distribution (rejection-sampled as a pair: at least
``MIN_CUBE_SEPARATION`` apart, each at least ``MIN_BOWL_CLEARANCE`` from the bowl), so neither colour has a
typical place and only the instruction says which one to pick. The layout depends on the seed only: one seed
gives the same start for both instructions (paired evaluation).

Instructions: "put the red cube in the bowl", "put the green cube in the bowl"; the other cube is the
distractor. Success: the named cube rests inside the bowl (horizontally within the bowl's inner radius, below
its rim), the other cube does not, and the gripper has let go (opening > 0.5).
"""
from __future__ import annotations

from contextlib import contextmanager

import mujoco
import numpy as np

from lawam_sim.scenes import INSTRUCTIONS
from lawam_sim.scenes.franka import TABLE_TOP, FrankaScene

CUBE_HALF = 0.02
BOWL_RADIUS = 0.085      # inner radius of the wall ring (m)
BOWL_WALL_H = 0.035
COLOURS = {"red": "0.85 0.1 0.1 1", "green": "0.1 0.7 0.2 1"}
TARGET_COLOUR = dict(zip(INSTRUCTIONS["franka_pick_place"], ("red", "green")))
# Layout (base frame, m). Both cubes share one region; the bowl keeps its own region on the +y side.
CUBE_X, CUBE_Y = (0.40, 0.62), (-0.24, 0.02)
BOWL_X, BOWL_Y = (0.45, 0.60), (0.12, 0.25)
MIN_CUBE_SEPARATION = 0.10   # centre to centre: the open fingers (0.085 m) fit beside the other cube
MIN_BOWL_CLEARANCE = 0.16    # cube centre to bowl centre: no cube starts against or under the bowl wall
CUBE_YAW = (-np.pi / 4, np.pi / 4)  # a cube is symmetric under 90 degree turns


def _cube_fits(xy, other_cube, bowl) -> bool:
    """The layout rules for one cube's start (base-frame xy, m): apart from the other cube, clear of the bowl."""
    return (np.linalg.norm(xy - other_cube) >= MIN_CUBE_SEPARATION
            and np.linalg.norm(xy - bowl) >= MIN_BOWL_CLEARANCE)


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


def _cube_xml(colour: str, x: float, y: float) -> str:
    # Everything but the colour is shared, so the cubes differ to the camera only.
    return f"""
    <body name="{colour}_cube" pos="{x} {y} {TABLE_TOP + CUBE_HALF}">
      <freejoint name="{colour}_cube"/>
      <geom name="{colour}_cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" mass="0.05"
            rgba="{COLOURS[colour]}" friction="1.5 0.01 0.001" condim="4"/>
    </body>"""


class PickPlaceScene(FrankaScene):
    name = "franka_pick_place"
    instructions = INSTRUCTIONS["franka_pick_place"]
    episode_s = 9.0
    # Zoomed on the cubes' region and the bowl (the gripper stays in view from its start pose to the carry
    # height): at 45 deg a cube was about 6 px wide in the model's 128 px image, a third of a feature patch.
    front_look_at = (0.53, 0.02, 0.13)
    front_fovy = 35.0

    def _objects_xml(self) -> str:
        return _cube_xml("red", 0.5, 0.0) + _cube_xml("green", 0.45, -0.15) + _bowl_xml()

    def _build_xml(self):
        xml, assets = super()._build_xml()
        xml = xml.replace("<asset>", '<asset>\n    <material name="bowl_mat" rgba="0.2 0.35 0.8 1"/>', 1)
        return xml, assets

    def _randomise(self, rng: np.random.Generator) -> None:
        # Only the seed decides the layout (never the instruction): paired evaluation needs that.
        self._randomise_arm(rng)
        bowl = np.array([rng.uniform(*BOWL_X), rng.uniform(*BOWL_Y)])
        while True:  # the pair together, so the two colours stay exchangeable
            cubes = rng.uniform([CUBE_X[0], CUBE_Y[0]], [CUBE_X[1], CUBE_Y[1]], size=(2, 2))
            if _cube_fits(cubes[0], cubes[1], bowl) and _cube_fits(cubes[1], cubes[0], bowl):
                break
        yaws = rng.uniform(*CUBE_YAW, size=2)
        self.model.body_pos[self.body_id("bowl")][:2] = bowl
        for colour, xy, yaw in zip(COLOURS, cubes, yaws):
            self._place_free(f"{colour}_cube", xy, yaw)

    def _place_free(self, joint: str, xy, yaw: float, data: mujoco.MjData | None = None) -> None:
        """Stand the cube of free joint `joint` on the table at (xy, yaw), in `data` (default: the scene's)."""
        data = self.data if data is None else data
        a = self.joint_qadr(joint)
        data.qpos[a:a + 3] = [xy[0], xy[1], TABLE_TOP + CUBE_HALF]
        data.qpos[a + 3:a + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]

    # privileged state for the expert and the success test
    @property
    def target_colour(self) -> str:
        """Colour of the cube the current instruction names ("red" or "green")."""
        return TARGET_COLOUR[self.instruction]

    def cube_pose(self, colour: str | None = None) -> tuple[np.ndarray, float]:
        """(centre position in the world = base frame (m), yaw about z (rad)) of the ``colour`` cube
        (None: the one the instruction names). Raises KeyError for an unknown colour."""
        if colour is None:
            colour = self.target_colour
        if colour not in COLOURS:
            raise KeyError(f"no {colour!r} cube; colours: {sorted(COLOURS)}")
        a = self.joint_qadr(f"{colour}_cube")
        w, x, y, z = self.data.qpos[a + 3:a + 7]
        yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
        return self.data.qpos[a:a + 3].copy(), float(yaw)

    def grounding_targets(self) -> np.ndarray:
        """(2, 2): base-frame xy (m) of the cube the instruction names, then of the other cube (the labels of
        the sim recipe's VLM grounding stage, lawam_training.vlm_grounding)."""
        other = next(c for c in COLOURS if c != self.target_colour)
        return np.stack([self.cube_pose()[0][:2], self.cube_pose(other)[0][:2]])

    @contextmanager
    def colours_exchanged(self):
        """Render the two cubes in each other's colour inside the block (physics untouched; the colours are
        restored on exit). A demo rendered so is the counterfactual demo of `exchanged_instruction`."""
        ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"{c}_cube") for c in COLOURS]
        saved = self.model.geom_rgba[ids].copy()
        self.model.geom_rgba[ids] = saved[::-1]
        try:
            yield
        finally:
            self.model.geom_rgba[ids] = saved

    def draw_distractor_place(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """A new (xy (m, base frame), yaw (rad)) for the cube the instruction does not name, from the layout
        distribution given where the named cube and the bowl are now (the same separation rules)."""
        target, bowl = self.cube_pose()[0][:2], self.bowl_pos()[:2]
        while True:
            xy = rng.uniform([CUBE_X[0], CUBE_Y[0]], [CUBE_X[1], CUBE_Y[1]])
            if _cube_fits(xy, target, bowl):
                return xy, float(rng.uniform(*CUBE_YAW))

    def data_with_distractor_at(self, xy, yaw: float) -> mujoco.MjData:
        """A copy of the scene's state for rendering, with the cube the instruction does not name at (xy, yaw)
        on the table; the scene's own state is not touched."""
        data = mujoco.MjData(self.model)
        data.qpos[:] = self.data.qpos
        distractor = next(c for c in COLOURS if c != self.target_colour)
        self._place_free(f"{distractor}_cube", xy, yaw, data)
        mujoco.mj_forward(self.model, data)  # camera and light poses too (mj_kinematics leaves them at zero)
        return data

    @staticmethod
    def exchanged_instruction(instruction: str) -> str:
        """The instruction naming the other colour: with the colours exchanged, it names the same cube."""
        return next(i for i, c in TARGET_COLOUR.items() if c != TARGET_COLOUR[instruction])

    def bowl_pos(self) -> np.ndarray:
        return self.data.xpos[self.body_id("bowl")].copy()

    def _cube_to_bowl(self, colour: str) -> tuple[float, bool]:
        """Horizontal distance (m) of the cube's centre to the bowl's axis, and whether it rests inside."""
        cube, _ = self.cube_pose(colour)
        horiz = float(np.linalg.norm(cube[:2] - self.bowl_pos()[:2]))
        inside = horiz < BOWL_RADIUS - CUBE_HALF * 0.5 and cube[2] < TABLE_TOP + BOWL_WALL_H + CUBE_HALF
        return horiz, bool(inside)

    def metrics(self) -> dict:
        """success (named cube in, other cube out, gripper open) and, per colour, ``<colour>_cube_to_bowl_m``
        (horizontal, m) and ``<colour>_cube_in_bowl``."""
        m, inside = {}, {}
        for colour in COLOURS:
            m[f"{colour}_cube_to_bowl_m"], inside[colour] = self._cube_to_bowl(colour)
            m[f"{colour}_cube_in_bowl"] = inside[colour]
        target = self.target_colour
        others_out = not any(v for c, v in inside.items() if c != target)
        released = self.gripper_opening("arm") > 0.5
        return {"success": bool(inside[target] and others_out and released), **m}

    def success(self) -> bool:
        return self.metrics()["success"]
