"""Common scene machinery: model, stepping, per-arm targets in the robot base frame, cameras, counters.

A scene is ROS-free. Subclasses provide the MJCF (``_build_xml``), the robot's controller (``_control``),
the randomised start (``_randomise``) and the task's success test (``success``/``metrics``).
Language: ``instructions`` lists the tasks a scene can judge (first = default); ``reset(seed, instruction)``
and ``set_instruction`` choose the current one, which the success test and the scripted expert follow. The
layout depends on the seed only, so one seed gives the same start for every instruction (paired evaluation).
Poses at this interface are in the robot base frame (``frame_id``), quaternions in ROS order (x, y, z, w).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import mujoco
import numpy as np

from lawam_sim import rotations as rot
from lawam_sim.workspace import TargetGate, WorkspaceBox


@dataclass
class ArmTarget:
    pos: np.ndarray          # base frame, m
    quat_wxyz: np.ndarray    # base frame, MuJoCo order (internal)
    opening: float = 1.0     # gripper opening [0 closed, 1 open]


class Scene:
    #: registry name, e.g. "franka_pick_place"
    name: str = ""
    #: arm names in ActionChunk order, e.g. ("arm",) or ("left", "right")
    arms: tuple[str, ...] = ()
    #: robot base frame name used in ROS headers
    frame_id: str = "world"
    #: MuJoCo body that is the robot base frame
    base_body: str = "world"
    #: the language instructions this scene can judge; the first is the default
    instructions: tuple[str, ...] = ()
    #: default workspace box (base frame) used when the caller passes none
    default_workspace = ((-1.0, -1.0, -0.1), (1.0, 1.0, 1.0))
    #: cameras available for rendering, primary first
    cameras: tuple[str, ...] = ()
    #: nominal episode length (s of sim time) the experts need, with margin
    episode_s: float = 10.0

    @property
    def timeout_s(self) -> float:
        """Closed-loop timeout (s of sim time): twice the nominal episode, room for a retry after a miss."""
        return 2.0 * self.episode_s

    def __init__(self, physics_hz: float = 500.0, workspace=None):
        if physics_hz < 500:
            raise ValueError(f"physics_hz={physics_hz}: the controllers need at least 500 Hz")
        spec_xml, assets = self._build_xml()
        self.model = mujoco.MjModel.from_xml_string(spec_xml, assets)
        self.model.opt.timestep = 1.0 / physics_hz
        self.data = mujoco.MjData(self.model)
        lo, hi = workspace if workspace is not None else self.default_workspace
        self.gates = {arm: TargetGate(WorkspaceBox(lo, hi)) for arm in self.arms}
        self.clamps: Counter = Counter()  # targets moved to the nearest reachable pose, by reason
        self._base_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, self.base_body)
        self.seed: int | None = None
        self._instruction = self.instructions[0] if self.instructions else ""
        self.targets: dict[str, ArmTarget] = {}
        self.reset(0)

    # ----- to implement -------------------------------------------------------------------------
    def _build_xml(self) -> tuple[str, dict]:
        raise NotImplementedError

    def _randomise(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _control(self) -> None:
        """Write ``data.ctrl`` for the current targets; called before every physics step."""
        raise NotImplementedError

    def eef_pose_world(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """(position, quaternion w,x,y,z) of the arm's tool centre point in the world frame."""
        raise NotImplementedError

    def gripper_opening(self, arm: str) -> float:
        raise NotImplementedError

    def success(self) -> bool:
        raise NotImplementedError

    def metrics(self) -> dict:
        return {"success": self.success()}

    def _on_target(self, arm: str) -> None:
        """Hook: a new pose target was admitted for ``arm`` (IK scenes solve here)."""

    def _on_step(self) -> None:
        """Hook: after every physics step (e.g. grasp constraints)."""

    # ----- common API ---------------------------------------------------------------------------
    @property
    def instruction(self) -> str:
        """The current instruction (one of ``instructions``)."""
        return self._instruction

    def known_instruction(self, text: str) -> str | None:
        """The instruction ``text`` names (case and surrounding/repeated whitespace ignored), or None."""
        key = " ".join(str(text).split()).lower()
        return next((i for i in self.instructions if i.lower() == key), None)

    def set_instruction(self, text: str) -> None:
        """Switch the current instruction without resetting the layout.

        Raises ValueError (naming the known instructions) when ``text`` is not one of ``instructions``."""
        known = self.known_instruction(text)
        if known is None:
            raise ValueError(f"unknown instruction {text!r} for scene {self.name}; known: "
                             + ", ".join(repr(i) for i in self.instructions))
        self._instruction = known

    def reset(self, seed: int, instruction: str | None = None) -> None:
        """Reset to the layout of ``seed`` with ``instruction`` (None: ``instructions[0]``).

        Raises ValueError for an unknown instruction, before anything changes."""
        self.set_instruction(self.instructions[0] if instruction is None else instruction)
        self.seed = int(seed)
        mujoco.mj_resetData(self.model, self.data)
        self._randomise(np.random.default_rng(self.seed))
        mujoco.mj_forward(self.model, self.data)
        # Start by holding the measured pose: a twin must not jump at reset.
        self.targets = {}
        for arm in self.arms:
            p, q = self.eef_pose(arm)
            self.targets[arm] = ArmTarget(p, rot.xyzw_to_wxyz(q), self.gripper_opening(arm))
            self._on_target(arm)

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep)

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self._control()
            mujoco.mj_step(self.model, self.data)
            self._on_step()

    def run_for(self, seconds: float) -> None:
        self.step(max(1, int(round(seconds / self.dt))))

    def set_target(self, arm: str, pos, quat_xyzw) -> tuple[bool, str]:
        """Admit a base-frame pose target; refused targets leave the previous one in force."""
        ok, reason = self.gates[arm].admit(pos, quat_xyzw)
        if not ok:
            return ok, reason
        t = self.targets[arm]
        t.pos = np.asarray(pos, float).copy()
        t.quat_wxyz = rot.normalize(rot.xyzw_to_wxyz(quat_xyzw))
        self._on_target(arm)
        return True, "ok"

    def set_gripper(self, arm: str, opening: float) -> bool:
        if not np.isfinite(opening):
            self.gates[arm].refusals["non_finite"] += 1
            return False
        self.targets[arm].opening = float(np.clip(opening, 0.0, 1.0))
        return True

    def refusals(self) -> Counter:
        total = Counter()
        for g in self.gates.values():
            total.update(g.refusals)
        return total

    # ----- frames -------------------------------------------------------------------------------
    def _base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.xpos[self._base_id].copy(), self.data.xmat[self._base_id].reshape(3, 3).copy()

    def world_to_base(self, p_world, q_world_wxyz) -> tuple[np.ndarray, np.ndarray]:
        bp, bR = self._base_pose()
        p = bR.T @ (np.asarray(p_world) - bp)
        q = rot.mat_to_wxyz(bR.T @ rot.wxyz_to_mat(q_world_wxyz))
        return p, q

    def base_to_world(self, p_base, q_base_wxyz) -> tuple[np.ndarray, np.ndarray]:
        bp, bR = self._base_pose()
        p = bp + bR @ np.asarray(p_base)
        q = rot.mat_to_wxyz(bR @ rot.wxyz_to_mat(q_base_wxyz))
        return p, q

    def eef_pose(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """Measured tool pose in the base frame: position (m), quaternion (x, y, z, w)."""
        p, q = self.world_to_base(*self.eef_pose_world(arm))
        if q[0] < 0:
            q = -q  # canonical hemisphere, so streamed quaternions do not flip sign
        return p, rot.wxyz_to_xyzw(q)

    # ----- joints -------------------------------------------------------------------------------
    def joint_names(self) -> list[str]:
        names = []
        for j in range(self.model.njnt):
            if self.model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                names.append(mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_JOINT, j))
        return names

    def joint_state(self, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = [mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names]
        qadr = self.model.jnt_qposadr[ids]
        dadr = self.model.jnt_dofadr[ids]
        return (self.data.qpos[qadr].copy(), self.data.qvel[dadr].copy(), self.data.qfrc_actuator[dadr].copy())

    # ----- helpers for subclasses ---------------------------------------------------------------
    def body_id(self, name: str) -> int:
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if i < 0:
            raise KeyError(f"no body {name!r} in scene {type(self).__name__}")
        return i

    def site_id(self, name: str) -> int:
        i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, name)
        if i < 0:
            raise KeyError(f"no site {name!r} in scene {type(self).__name__}")
        return i

    def joint_qadr(self, name: str) -> int:
        return int(self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)])

    def joint_dadr(self, name: str) -> int:
        return int(self.model.jnt_dofadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name)])


# Render settings and floor shared by every scene: no shadow map and no multisampling (the renderer also
# switches reflections off), which takes a 224x224 CPU render from ~220 ms to ~30 ms.
VISUAL_XML = """
  <visual>
    <global offwidth="640" offheight="480"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight diffuse="0.6 0.6 0.6" ambient="0.4 0.4 0.4" specular="0 0 0"/>
  </visual>"""
FLOOR_ASSETS_XML = """
    <texture name="floor_tex" type="2d" builtin="checker" width="256" height="256" rgb1=".25 .26 .28" rgb2=".3 .31 .33"/>
    <material name="floor_mat" texture="floor_tex" texrepeat="6 6"/>"""
