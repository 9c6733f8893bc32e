"""Operational-space (Cartesian impedance) control of a torque-controlled arm, run every physics step.

tau = J^T Lambda (Kp e - Kd v) + nullspace posture torque + gravity/Coriolis compensation.
Using the task-space inertia Lambda makes the Cartesian stiffness behave like a mass-spring-damper with the
configured natural frequency regardless of arm configuration, which is what a real Cartesian impedance
controller approximates. The posture term keeps the redundant 7th DoF near a comfortable configuration.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from lawam_sim import rotations as rot


@dataclass
class OSCGains:
    pos_freq_hz: float = 4.0      # natural frequency of the translational spring
    rot_freq_hz: float = 4.0
    damping_ratio: float = 1.0
    null_kp: float = 10.0         # posture stiffness (Nm/rad)
    null_kd: float = 2.0
    max_pos_err: float = 0.05     # error saturation (m): large target steps do not turn into torque spikes
    max_rot_err: float = 0.5      # rad


class OperationalSpaceController:
    def __init__(self, model: mujoco.MjModel, site: str, joints: list[str], posture: np.ndarray,
                 gains: OSCGains | None = None):
        self.m = model
        self.site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        jids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints]
        self.dofs = np.array([model.jnt_dofadr[j] for j in jids])
        self.qadr = np.array([model.jnt_qposadr[j] for j in jids])
        self.posture = np.asarray(posture, float)
        self.g = gains or OSCGains()
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self._M = np.zeros((model.nv, model.nv))

    def torques(self, d: mujoco.MjData, target_pos, target_quat_wxyz) -> np.ndarray:
        g = self.g
        mujoco.mj_jacSite(self.m, d, self._jacp, self._jacr, self.site)
        J = np.vstack([self._jacp[:, self.dofs], self._jacr[:, self.dofs]])
        mujoco.mj_fullM(self.m, d, self._M)
        M = self._M[np.ix_(self.dofs, self.dofs)]
        Minv = np.linalg.inv(M)
        Lambda = np.linalg.pinv(J @ Minv @ J.T, rcond=1e-3)

        x = d.site_xpos[self.site]
        q = rot.mat_to_wxyz(d.site_xmat[self.site])
        e_pos = np.asarray(target_pos) - x
        n = np.linalg.norm(e_pos)
        if n > g.max_pos_err:
            e_pos *= g.max_pos_err / n
        e_rot = rot.rotation_error(target_quat_wxyz, q)
        n = np.linalg.norm(e_rot)
        if n > g.max_rot_err:
            e_rot *= g.max_rot_err / n

        dq = d.qvel[self.dofs]
        v = J @ dq
        wp, wr = 2 * np.pi * g.pos_freq_hz, 2 * np.pi * g.rot_freq_hz
        kp = np.array([wp * wp] * 3 + [wr * wr] * 3)
        kd = 2 * g.damping_ratio * np.array([wp] * 3 + [wr] * 3)
        F = Lambda @ (kp * np.concatenate([e_pos, e_rot]) - kd * v)
        tau = J.T @ F

        # Posture in the nullspace of the task (dynamically consistent projector).
        Jbar = Minv @ J.T @ Lambda
        N = np.eye(len(self.dofs)) - J.T @ Jbar.T
        tau_null = g.null_kp * (self.posture - d.qpos[self.qadr]) - g.null_kd * dq
        tau += N @ tau_null
        return tau + d.qfrc_bias[self.dofs]
