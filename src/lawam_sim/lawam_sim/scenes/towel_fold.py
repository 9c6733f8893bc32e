"""Bimanual towel fold (the paper's Quanta X1 task) with two 6-DoF ViperX arms and a MuJoCo flex cloth.

Robot model: gym-aloha's ``vx300s_left.xml`` / ``vx300s_right.xml`` (+ meshes), loaded from the installed
``gym_aloha`` package; the arms face each other across the table. Our ``base_link`` frame is the midpoint
between the two arm bases on the table top (x to the right arm, y away from the viewer, z up); every pose at
the twin's interface is expressed in it.

Arm control: a new pose target is solved by damped-least-squares IK (controllers/ik.py); joint position servos
(our own actuators, gravity-compensated links) track the solution every physics step. Targets a 6-DoF arm
cannot reach are clamped to the nearest reachable pose and counted in ``clamps``.

Cloth: a 2-D ``flexcomp`` grid (inextensible edges through edge equality constraints, no self-collision to
keep the sim fast). The cloth collides only with the table (contype/conaffinity bit 2): the fingers pass
through it. **Grasping is by attachment**: when a gripper's command closes (opening < 0.5), the cloth
vertices within ``GRASP_RADIUS`` of its fingertip centre are attached to the gripper by ``connect`` equality
constraints (their anchors set to the current relative position, so nothing jumps); opening the gripper
(> 0.5) switches them off. Real fingers pinch cloth by friction; this is the usual simulation stand-in.

Task: fold the towel in half, bringing the near edge (small y) onto the far edge. Fold quality: for each
vertex of the near half and its mirror partner of the far half (mirrored across the fold line in the rest
shape), ``1 - d_xy / d_rest`` clipped to [0, 1], averaged; 1 = perfectly folded, 0 = flat.
Success: quality >= ``FOLD_SUCCESS``, the far half still lies spread out (its horizontal bounding-box area at
least ``SPREAD_MIN`` of the flat one, so crumpling the towel into a ball does not count as a fold) and both
grippers open (the towel was released).
"""
from __future__ import annotations

import mujoco
import numpy as np

from lawam_sim import rotations as rot
from lawam_sim.assets import asset_files
from lawam_sim.controllers.ik import DampedLeastSquaresIK
from lawam_sim.scenes import INSTRUCTIONS
from lawam_sim.scenes.base import FLOOR_ASSETS_XML, VISUAL_XML, Scene

ARM_PREFIX = {"left": "vx300s_left", "right": "vx300s_right"}
ARM_JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"]
HOME_Q = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])          # gym-aloha's home keyframe
TCP_OFFSET = np.array([0.14, 0.0, 0.0])   # between the pads, 1.4 cm behind the finger tips (gripper_link x)
FINGER_OPEN, FINGER_CLOSED = 0.057, 0.021

N_SIDE = 9                 # cloth vertices per side
SPACING = 0.034            # m between vertices -> 0.27 m towel
CLOTH_Z = 0.004            # rest height of the cloth centre plane
GRASP_RADIUS = 0.03
MAX_GRASPED = 4            # vertices one gripper may hold
FOLD_SUCCESS = 0.75
SPREAD_MIN = 0.7
BASE_LINK = (0.0, 0.5, 0.0)

SERVO_KP = [800, 1600, 800, 300, 300, 200]
SERVO_KV = [40, 80, 40, 10, 10, 5]


class TowelFoldScene(Scene):
    name = "quanta_towel_fold"
    instructions = INSTRUCTIONS["quanta_towel_fold"]
    arms = ("left", "right")
    frame_id = "base_link"
    base_body = "base_link"
    cameras = ("cam_high", "left_wrist", "right_wrist")
    default_workspace = ((-0.75, -0.6, -0.02), (0.75, 0.6, 0.6))  # both arms' reach
    episode_s = 7.0

    def _build_xml(self):
        assets = dict(asset_files("gym_aloha"))
        actuators, equalities = [], []
        for arm, pre in ARM_PREFIX.items():
            for j, kp, kv in zip(ARM_JOINTS, SERVO_KP, SERVO_KV):
                actuators.append(f'<position name="{arm}_{j}" joint="{pre}/{j}" kp="{kp}" kv="{kv}" '
                                 f'forcerange="-300 300" ctrlrange="-3.2 3.2"/>')
            actuators.append(f'<position name="{arm}_left_finger" joint="{pre}/left_finger" kp="200" kv="2" '
                             f'ctrlrange="{FINGER_CLOSED} {FINGER_OPEN}"/>')
            actuators.append(f'<position name="{arm}_right_finger" joint="{pre}/right_finger" kp="200" kv="2" '
                             f'ctrlrange="{-FINGER_OPEN} {-FINGER_CLOSED}"/>')
            # One switchable attachment per (gripper, cloth vertex); all off until a grasp.
            for v in range(N_SIDE * N_SIDE):
                equalities.append(f'<connect name="{arm}_grasp_{v}" body1="towel_{v}" body2="{pre}/gripper_link" '
                                  f'anchor="0 0 0" active="false" solref="0.01 1"/>')
        xml = f"""<mujoco model="quanta_towel_fold">
  <include file="vx300s_dependencies.xml"/>
  <option timestep="0.002" integrator="implicitfast"/>{VISUAL_XML}
  <asset>{FLOOR_ASSETS_XML}
    <material name="towel_mat" rgba="0.2 0.55 0.85 1"/>
  </asset>
  <worldbody>
    <light pos="0 0.5 1.8" dir="0 0 -1" diffuse="0.6 0.6 0.6"/>
    <geom name="floor" type="plane" size="3 3 0.05" pos="0 0 -0.75" material="floor_mat"/>
    <geom name="table" type="box" size="0.75 0.45 0.02" pos="0 0.5 -0.02" rgba="0.35 0.35 0.38 1"
          contype="3" conaffinity="3"/>
    <body name="base_link" pos="{BASE_LINK[0]} {BASE_LINK[1]} {BASE_LINK[2]}"/>
    <camera name="cam_high" pos="0 -0.05 0.75" mode="targetbody" target="base_link" fovy="55"/>
    <include file="vx300s_left.xml"/>
    <include file="vx300s_right.xml"/>
    <flexcomp name="towel" type="grid" count="{N_SIDE} {N_SIDE} 1" spacing="{SPACING} {SPACING} {SPACING}"
              pos="0 0.5 {CLOTH_Z}" radius="0.003" dim="2" mass="0.08" material="towel_mat">
      <edge equality="true" damping="0.002"/>
      <contact contype="2" conaffinity="2" selfcollide="none" condim="3" friction="0.8" solref="0.01 1"/>
    </flexcomp>
  </worldbody>
  <actuator>
    {chr(10).join(actuators)}
  </actuator>
  <equality>
    {chr(10).join(equalities)}
  </equality>
</mujoco>"""
        return xml, assets

    def reset(self, seed: int, instruction: str | None = None) -> None:
        if instruction is not None and self.known_instruction(instruction) is None:
            self.set_instruction(instruction)  # raises before any grasp is released
        if not hasattr(self, "ik"):
            self._setup()
        for arm in self.arms:
            self._release(arm)
        super().reset(seed, instruction)

    def _setup(self) -> None:
        m = self.model
        self.ik, self._arm_qadr, self._act, self._finger, self._gripper_body = {}, {}, {}, {}, {}
        for arm, pre in ARM_PREFIX.items():
            joints = [f"{pre}/{j}" for j in ARM_JOINTS]
            self.ik[arm] = DampedLeastSquaresIK(m, f"{pre}/gripper_link", TCP_OFFSET, joints)
            self._arm_qadr[arm] = np.array([self.joint_qadr(j) for j in joints])
            self._act[arm] = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{arm}_{j}")
                                       for j in ARM_JOINTS + ["left_finger", "right_finger"]])
            self._finger[arm] = self.joint_qadr(f"{pre}/left_finger")
            self._gripper_body[arm] = self.body_id(f"{pre}/gripper_link")
            # The package's joints carry large friction losses tuned for its own servos; ours are
            # gravity-compensated PD servos, so keep only a little friction.
            for j in joints + [f"{pre}/left_finger", f"{pre}/right_finger"]:
                m.dof_frictionloss[self.joint_dadr(j)] = 0.1
            for b in range(m.nbody):
                if mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b).startswith(pre):
                    m.body_gravcomp[b] = 1.0
        self._joint_target = {arm: HOME_Q.copy() for arm in self.arms}
        self._vert_bodies = np.array([self.body_id(f"towel_{v}") for v in range(N_SIDE * N_SIDE)])
        self._vert_qadr = np.array([m.jnt_qposadr[m.body_jntadr[b]] for b in self._vert_bodies])
        self._vert_rest = m.body_pos[self._vert_bodies].copy()   # world rest positions (flat, centred)
        self._eq = {arm: np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY, f"{arm}_grasp_{v}")
                                   for v in range(N_SIDE * N_SIDE)]) for arm in self.arms}
        self._grasped = {arm: [] for arm in self.arms}
        self._pairs = self._mirror_pairs()

    def _mirror_pairs(self) -> np.ndarray:
        """(near, far, rest distance) triples mirrored across the fold line y = centre."""
        rest = self._vert_rest[:, :2] - self._vert_rest[:, :2].mean(axis=0)
        pairs = []
        for i, (x, y) in enumerate(rest):
            if y < -1e-6:
                j = int(np.argmin(np.linalg.norm(rest - [x, -y], axis=1)))
                pairs.append((i, j, 2 * abs(y)))
        return np.array(pairs)

    # ----- randomisation -------------------------------------------------------------------------
    def _randomise(self, rng: np.random.Generator) -> None:
        for arm in self.arms:
            q = HOME_Q + rng.uniform(-0.05, 0.05, size=6)
            self.data.qpos[self._arm_qadr[arm]] = q
            self._joint_target[arm] = q.copy()
            self.data.qpos[self._finger[arm]] = FINGER_OPEN
            self.data.qpos[self._finger[arm] + 1] = -FINGER_OPEN
        centre = self._vert_rest.mean(axis=0)
        shift = np.array([rng.uniform(-0.03, 0.03), rng.uniform(-0.03, 0.03), 0.0])
        yaw = rng.uniform(-np.radians(8), np.radians(8))
        c, s = np.cos(yaw), np.sin(yaw)
        R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        world = (self._vert_rest - centre) @ R.T + centre + shift
        for k, (a, b) in enumerate(zip(self._vert_qadr, self._vert_bodies)):
            # vertex bodies move on three slide joints: qpos is the offset from the body's rest position
            self.data.qpos[a:a + 3] = world[k] - self.model.body_pos[b]

    # ----- control -------------------------------------------------------------------------------
    def _on_target(self, arm: str) -> None:
        t = self.targets[arm]
        p, q = self.base_to_world(t.pos, t.quat_wxyz)
        res = self.ik[arm].solve(self.data.qpos, self._joint_target[arm], p, q)
        if not res.reached:
            self.clamps[f"{arm}_unreachable"] += 1
        self._joint_target[arm] = res.q

    def _control(self) -> None:
        for arm in self.arms:
            o = self.targets[arm].opening
            width = FINGER_CLOSED + o * (FINGER_OPEN - FINGER_CLOSED)
            self.data.ctrl[self._act[arm]] = np.concatenate([self._joint_target[arm], [width, -width]])

    def _on_step(self) -> None:
        for arm in self.arms:
            closing = self.targets[arm].opening < 0.5
            if closing and not self._grasped[arm]:
                self._grasp(arm)
            elif not closing and self._grasped[arm]:
                self._release(arm)

    def _grasp(self, arm: str) -> None:
        tcp, _ = self.eef_pose_world(arm)
        verts = self.data.xpos[self._vert_bodies]
        d = np.linalg.norm(verts - tcp, axis=1)
        near = [int(v) for v in np.argsort(d)[:MAX_GRASPED] if d[v] < GRASP_RADIUS]
        if not near:
            self._grasped[arm] = [-1]   # closed on nothing: do not retry until the gripper reopens
            return
        b = self._gripper_body[arm]
        R = self.data.xmat[b].reshape(3, 3)
        for v in near:
            eq = self._eq[arm][v]
            self.model.eq_data[eq, 0:3] = 0.0                                   # anchor on the vertex
            self.model.eq_data[eq, 3:6] = R.T @ (verts[v] - self.data.xpos[b])  # same point, gripper frame
            self.data.eq_active[eq] = 1
        self._grasped[arm] = near

    def _release(self, arm: str) -> None:
        if hasattr(self, "_eq"):
            self.data.eq_active[self._eq[arm]] = 0
            self._grasped[arm] = []

    # ----- measurements -------------------------------------------------------------------------
    def eef_pose_world(self, arm: str):
        b = self._gripper_body[arm]
        R = self.data.xmat[b].reshape(3, 3)
        return self.data.xpos[b] + R @ TCP_OFFSET, rot.mat_to_wxyz(R)

    def gripper_opening(self, arm: str) -> float:
        w = self.data.qpos[self._finger[arm]]
        return float(np.clip((w - FINGER_CLOSED) / (FINGER_OPEN - FINGER_CLOSED), 0.0, 1.0))

    def grasped_vertices(self, arm: str) -> list[int]:
        return [v for v in self._grasped[arm] if v >= 0]

    def active_attachments(self, arm: str) -> int:
        """Number of switched-on cloth attachment constraints of ``arm``."""
        return int(self.data.eq_active[self._eq[arm]].sum())

    def cloth_vertices(self) -> np.ndarray:
        return self.data.xpos[self._vert_bodies].copy()

    def fold_quality(self) -> float:
        v = self.cloth_vertices()
        i, j, d0 = self._pairs[:, 0].astype(int), self._pairs[:, 1].astype(int), self._pairs[:, 2]
        d = np.linalg.norm(v[i, :2] - v[j, :2], axis=1)
        return float(np.mean(np.clip(1.0 - d / d0, 0.0, 1.0)))

    def corner_indices(self) -> dict[str, int]:
        """Cloth corners by role, from the current vertex positions (privileged state for the expert)."""
        v = self.cloth_vertices()
        c = v[:, :2].mean(axis=0)
        rel = v[:, :2] - c
        return {"near_left": int(np.argmax(-rel[:, 0] - rel[:, 1])), "near_right": int(np.argmax(rel[:, 0] - rel[:, 1])),
                "far_left": int(np.argmax(-rel[:, 0] + rel[:, 1])), "far_right": int(np.argmax(rel[:, 0] + rel[:, 1]))}

    def far_half_spread(self) -> float:
        """Horizontal bounding-box area of the far half now / flat (rotation-safe enough for small yaw)."""
        far = np.unique(self._pairs[:, 1].astype(int))
        now = self.cloth_vertices()[far, :2]
        rest = self._vert_rest[far, :2]
        area = lambda v: float(np.prod(v.max(axis=0) - v.min(axis=0)))  # noqa: E731
        return area(now) / area(rest)

    def metrics(self) -> dict:
        q = self.fold_quality()
        spread = self.far_half_spread()
        released = all(not self.grasped_vertices(a) for a in self.arms)
        return {"success": bool(q >= FOLD_SUCCESS and spread >= SPREAD_MIN and released), "fold_quality": q,
                "far_half_spread": spread}

    def success(self) -> bool:
        return self.metrics()["success"]
