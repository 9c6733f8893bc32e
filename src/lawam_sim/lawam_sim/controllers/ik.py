"""Damped-least-squares inverse kinematics for position-controlled arms (the 6-DoF ViperX pair).

A new pose target is solved once, warm-started from the previous solution; the joint solution then becomes
the set point of the arm's joint position servos, which run every physics step (>= 500 Hz).

A 6-DoF arm cannot reach every pose. Damped least squares with joint-limit clipping converges to a nearby
reachable pose (orientation weighted below position, so position is preserved first); if the converged pose is
further than the tolerance from the target, the target counts as *clamped to the nearest reachable pose*.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from lawam_sim import rotations as rot


@dataclass
class IKResult:
    q: np.ndarray
    pos_err: float
    rot_err: float
    reached: bool


class DampedLeastSquaresIK:
    def __init__(self, model: mujoco.MjModel, body: str, tcp_offset, joints: list[str], rot_weight: float = 0.25,
                 damping: float = 0.03, iterations: int = 80, pos_tol: float = 0.005, rot_tol: float = 0.05):
        self.m = model
        self.d = mujoco.MjData(model)  # scratch data: IK never disturbs the simulation state
        self.body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
        self.offset = np.asarray(tcp_offset, float)
        jids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints]
        self.qadr = np.array([model.jnt_qposadr[j] for j in jids])
        self.dofs = np.array([model.jnt_dofadr[j] for j in jids])
        self.lo = model.jnt_range[jids, 0].copy()
        self.hi = model.jnt_range[jids, 1].copy()
        self.rot_weight, self.damping, self.iterations = rot_weight, damping, iterations
        self.pos_tol, self.rot_tol = pos_tol, rot_tol
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def fk(self, qpos_full: np.ndarray, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.d.qpos[:] = qpos_full
        self.d.qpos[self.qadr] = q_arm
        mujoco.mj_kinematics(self.m, self.d)
        return self._tcp()

    def _tcp(self):
        R = self.d.xmat[self.body].reshape(3, 3)
        return self.d.xpos[self.body] + R @ self.offset, rot.mat_to_wxyz(R)

    def solve(self, qpos_full: np.ndarray, q_init: np.ndarray, target_pos, target_quat_wxyz) -> IKResult:
        q = np.clip(np.asarray(q_init, float).copy(), self.lo, self.hi)
        self.d.qpos[:] = qpos_full
        w = np.array([1, 1, 1] + [self.rot_weight] * 3)
        for _ in range(self.iterations):
            self.d.qpos[self.qadr] = q
            mujoco.mj_kinematics(self.m, self.d)
            mujoco.mj_comPos(self.m, self.d)
            p, qq = self._tcp()
            e = np.concatenate([target_pos - p, rot.rotation_error(target_quat_wxyz, qq)])
            if np.linalg.norm(e[:3]) < self.pos_tol * 0.2 and np.linalg.norm(e[3:]) < self.rot_tol * 0.2:
                break
            mujoco.mj_jac(self.m, self.d, self._jacp, self._jacr, p, self.body)
            J = np.vstack([self._jacp[:, self.dofs], self._jacr[:, self.dofs]]) * w[:, None]
            dq = J.T @ np.linalg.solve(J @ J.T + self.damping ** 2 * np.eye(6), e * w)
            n = np.linalg.norm(dq)
            if n > 0.3:  # small steps keep the iteration on the near branch
                dq *= 0.3 / n
            q = np.clip(q + dq, self.lo, self.hi)
        p, qq = self.fk(qpos_full, q)
        pe = float(np.linalg.norm(target_pos - p))
        re = rot.angle_between(target_quat_wxyz, qq)
        return IKResult(q, pe, re, pe <= self.pos_tol and re <= self.rot_tol)
