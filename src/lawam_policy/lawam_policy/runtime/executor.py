"""Executing chunks in physical time, and merging a new chunk into the running one.

Timing: step k of a chunk is due at ``obs_stamp + t_k + execution_delay_s`` on the ROS clock (sim time
under the twin's /clock, wall time on hardware: there the inference PC and the robot PC must be
time-synchronised, e.g. with chrony, because the stamp comes from the camera driver's clock).

Latency compensation: when a chunk arrives, every step already due is dropped (never executed late);
the last dropped step is kept only as an interpolation anchor, so the track's value at "now" lies on the
chunk's own path. A chunk whose steps have all passed is refused as ``stale_chunk``.

Seams: the new chunk is blended into the running plan over ``blend_window_s`` with a quintic weight
(C2), position linearly, orientation by SLERP, gripper switched at the midpoint. Why bridge-side blending
rather than only inpainting the model with ``prev_actions`` (real-time chunking): blending guarantees a
continuous command for *any* predictor (random weights, a checkpoint that ignores the prefix, a chunk
computed from an older frame), costs nothing, and is measured by the benchmark; inpainting can be switched
on in the policy node in addition (``inpaint_prev_actions``) to make chunks agree before they are blended,
but it cannot be relied on for safety. The safety layer still rate-limits whatever remains.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import quaternion as quat
from .chunk import Chunk, ChunkError
from .interpolation import ArmSample, ArmTrack


def smootherstep(s: float) -> float:
    """Quintic 0 -> 1 with zero first and second derivatives at both ends: the blend adds no velocity or
    acceleration step at its start and end (a cubic smoothstep leaves acceleration steps, i.e. jerk spikes)."""
    s = min(1.0, max(0.0, s))
    return s * s * s * (s * (6.0 * s - 15.0) + 10.0)


# Seam blend window (s): long enough that a seam's jerk stays low (see runtime/README.md), the bridges' default.
DEFAULT_BLEND_WINDOW_S = 0.2


class _Plan:
    """Something that can be sampled per arm at an absolute time."""

    end: float
    chunk_id: int

    def sample(self, arm: int, t: float) -> ArmSample:
        raise NotImplementedError


class _ChunkPlan(_Plan):
    def __init__(self, tracks: list[ArmTrack], chunk: Chunk):
        self.tracks = tracks
        self.chunk = chunk
        self.chunk_id = chunk.chunk_id
        self.end = max(tr.end for tr in tracks)

    def sample(self, arm: int, t: float) -> ArmSample:
        return self.tracks[arm].sample(t)


class _BlendPlan(_Plan):
    def __init__(self, old: _Plan, new: _ChunkPlan, t0: float, t1: float):
        self.old, self.new, self.t0, self.t1 = old, new, t0, t1
        self.chunk_id = new.chunk_id
        self.end = new.end

    def weight(self, t: float) -> float:
        return 1.0 if self.t1 <= self.t0 else smootherstep((t - self.t0) / (self.t1 - self.t0))

    def sample(self, arm: int, t: float) -> ArmSample:
        w = self.weight(t)
        if w >= 1.0:
            return self.new.sample(arm, t)
        a = self.old.sample(arm, t)
        b = self.new.sample(arm, t)
        return ArmSample(a.position + w * (b.position - a.position), quat.slerp(a.quat, b.quat, w),
                         b.gripper if w >= 0.5 else a.gripper)


@dataclass
class Accepted:
    chunk_id: int
    dropped_steps: int  # steps already due on arrival (latency compensation)
    blended: bool  # merged into a running chunk (a seam) or started from scratch
    first_due: float  # absolute time of the first step that will be executed


class ChunkExecutor:
    """Holds the plan (running chunk, possibly mid-blend with its predecessor) for a set of arms."""

    def __init__(self, arm_names, execution_delay_s: float = 0.0, blend_window_s: float = DEFAULT_BLEND_WINDOW_S,
                 interpolation: str = "cubic"):
        if blend_window_s < 0 or execution_delay_s < 0:
            raise ValueError("blend_window_s and execution_delay_s must be >= 0")
        self.arm_names = tuple(arm_names)
        self.execution_delay_s = float(execution_delay_s)
        self.blend_window_s = float(blend_window_s)
        self.interpolation = interpolation
        self._plan: _Plan | None = None
        self.last_obs_stamp = -np.inf

    def reset(self) -> None:
        self._plan = None
        self.last_obs_stamp = -np.inf

    @property
    def chunk_id(self) -> int | None:
        return None if self._plan is None else self._plan.chunk_id

    def end_time(self) -> float | None:
        return None if self._plan is None else self._plan.end

    def covers(self, now: float) -> bool:
        return self._plan is not None and now <= self._plan.end

    def in_seam(self, now: float) -> bool:
        return isinstance(self._plan, _BlendPlan) and now < self._plan.t1

    def add_chunk(self, chunk: Chunk, now: float) -> Accepted:
        """Validate, drop the steps already due, and merge. Raises ChunkError(reason) on refusal."""
        chunk.validate(self.arm_names)
        if chunk.obs_stamp < self.last_obs_stamp:
            raise ChunkError("out_of_order", f"chunk {chunk.chunk_id} was computed from an observation "
                                             f"older than the running chunk's")
        due = chunk.obs_stamp + chunk.time_offsets + self.execution_delay_s
        future = np.nonzero(due >= now)[0]
        if len(future) == 0:
            raise ChunkError("stale_chunk", f"chunk {chunk.chunk_id} expired before it arrived: its last step "
                                            f"was due {now - due[-1]:.3f} s ago")
        first = int(future[0])
        keep = slice(max(0, first - 1), None)  # one passed step stays as the interpolation anchor
        tracks = [ArmTrack(due[keep], chunk.positions[a, keep], chunk.quats[a, keep], chunk.grippers[a, keep],
                           self.interpolation) for a in range(len(self.arm_names))]
        new = _ChunkPlan(tracks, chunk)
        blended = self.covers(now) and self.blend_window_s > 0
        if blended:
            self._collapse(now)
            self._plan = _BlendPlan(self._plan, new, now, now + self.blend_window_s)
        else:
            self._plan = new
        self.last_obs_stamp = chunk.obs_stamp
        return Accepted(chunk.chunk_id, first, blended, float(due[first]))

    def _collapse(self, now: float) -> None:
        # A finished blend is just its new chunk; keeps nesting bounded however fast chunks arrive.
        def simplify(plan):
            if isinstance(plan, _BlendPlan):
                if now >= plan.t1:
                    return simplify(plan.new)
                plan.old = simplify(plan.old)
            return plan
        self._plan = simplify(self._plan)

    def sample(self, now: float) -> list[ArmSample] | None:
        """Target per arm at `now`, or None when no chunk covers it (the caller holds)."""
        if not self.covers(now):
            return None
        self._collapse(now)
        return [self._plan.sample(a, now) for a in range(len(self.arm_names))]
