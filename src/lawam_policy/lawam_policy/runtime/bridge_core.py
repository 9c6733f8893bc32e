"""ROS-free core of a robot bridge: chunks in, one safe command per arm per control tick out.

Per tick: if motion is enabled and a chunk covers "now", the executor's interpolated target goes through
the safety layer; otherwise the bridge holds the last commanded pose (the hold target is frozen and the
acceleration limit brings a moving command to rest). Every hold, clamp and rejection is counted by reason.

Start-up: nothing is commanded until every arm's measured pose is known; the command starts there, at rest.
After a Reset given its time (an episode reset: the robot may have been moved), the bridge starts from the
first measured pose stamped after it, and a chunk observed before it is refused ("observed_before_reset").
Until it accepts a chunk after such a Reset it sends no pose command at all (unless `initial_gripper` asks for
a command): whoever reset the robot holds it there (a twin its reset pose, a robot's controller its last
target), and the first command starts at the newest measured pose. A bridge that held a pose measured before
the robot was reset would pull the reset robot back towards it (lawam-eval: about 1 cm per 25 ms).
The first chunk after start (or Reset) must begin within `max_start_distance_m` / `max_start_angle_rad` of
the measured pose, otherwise it is refused ("too_far_from_measured") and the bridge keeps holding; the first
`startup_ramp_s` of motion run with speed limits ramping up from `startup_speed_scale`.

Gripper: no gripper command is sent until the first chunk is accepted after start (or Reset / time jump), so
a robot holding an object keeps it; `initial_gripper` (an opening, None = off) asks for one explicitly.

Time: `now` is the ROS clock. A jump of that clock (a twin reset, a bag that loops, an NTP step) is treated
like a Reset (`time_jump`): it is logged once with its size, counted (events["time_jump"]), the bridge holds,
forgets its chunks, waits for a fresh measured pose and applies the start-up check and ramp again. The node
reports jumps from rclpy's jump callbacks; `tick` also catches a backward step larger than
`time_jump_threshold_s` itself, so the core never stalls silently. A chunk whose observation stamp lies more
than `stamp_tolerance_s` ahead of "now" is refused (`stamp_ahead_of_clock`) instead of waiting for it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..parameters import setting
from . import quaternion as quat
from .chunk import Chunk, ChunkError
from .executor import DEFAULT_BLEND_WINDOW_S, ChunkExecutor
from .interpolation import INTERPOLATIONS
from .safety import ArmSafety, SafetyLimits
from .stamps import ClockJumps, before_reset


@dataclass
class BridgeConfig:
    arm_names: tuple = ("arm",)
    embodiment: str = "franka_panda"
    control_rate_hz: float = 1000.0
    execution_delay_s: float = setting(0.0, "added to every step's due time: step k is due at stamp + k / f_b + "
                                            "this (s); the policy node's execution_delay_s must be the same",
                                       min=0.0)
    blend_window_s: float = setting(DEFAULT_BLEND_WINDOW_S, "a new chunk is blended into the running one over this window (s); 0 "
                                         "switches at once", min=0.0)
    interpolation: str = setting("cubic", "position interpolation (orientation is always SLERP, the gripper "
                                          "stepwise)", choices=INTERPOLATIONS)
    limits: SafetyLimits = field(default_factory=SafetyLimits)
    initial_gripper: float | None = None  # opening commanded before the first chunk; None: no gripper command
    frame_id: str = ""  # chunks in another (non-empty) frame are refused
    time_jump_threshold_s: float = setting(1.0, "a jump of the ROS clock larger than this (s, either way) "
                                                "restarts like a Reset; 0: not watched", min=0.0)
    stamp_tolerance_s: float = setting(2.0, "chunks stamped further ahead of this node's clock (s) are refused; "
                                            "0: no check", min=0.0)


@dataclass
class ArmCommand:
    position: np.ndarray
    quat: np.ndarray
    gripper: float


@dataclass
class TickResult:
    commands: list[ArmCommand] | None  # None: send nothing (no measured pose yet, or silent after a Reset)
    hold_reason: str | None  # why the bridge holds this tick, None while following a chunk
    in_seam: bool  # the target is a blend of two chunks
    step_m: float  # largest position change of any arm since the last tick
    chunk_id: int | None
    gripper_active: bool = False  # False: send no gripper command (nothing accepted since start/reset)


def _worth_logging(count: int) -> bool:
    """1, 2, 5, 10, 20, 50, ...: every occurrence early on, then ever fewer."""
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count in (1, 2, 5)


def _finite(*arrays) -> bool:
    return all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays)


class BridgeCore:
    def __init__(self, config: BridgeConfig, log: Callable[[str, str], None] | None = None):
        config.limits.validate()
        self.config = config
        self.arm_names = tuple(config.arm_names)
        self.executor = ChunkExecutor(self.arm_names, config.execution_delay_s, config.blend_window_s,
                                      config.interpolation)
        self.log = log or (lambda level, msg: None)
        self.enabled = True
        self.holds: Counter = Counter()
        self.clamps: Counter = Counter()
        self.rejections: Counter = Counter()
        self.events: Counter = Counter()  # things that interrupted operation, by reason (time_jump)
        self._jumps = ClockJumps(self.config.time_jump_threshold_s)
        self.commands_sent = 0
        self.chunks_received = 0
        self.max_seam_step_m = 0.0
        self.max_within_step_m = 0.0
        self.last_latency_ms = float("nan")
        self.state = "no_measured_pose"  # the last tick's hold reason, or "following"
        self._measured: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.arm_names)
        self.reset()

    # ---- inputs -------------------------------------------------------------------------------------
    def reset(self, now: float | None = None) -> None:
        """Hold, forget all chunks, restart from the measured pose with the start-up ramp. With `now` (the ROS
        time of the reset, s; an episode reset, after which the robot may stand elsewhere, e.g. a twin reset),
        the bridge also forgets the measured pose and starts from the first one not stamped before `now`, and
        chunks observed before `now` are refused ("observed_before_reset"): both describe the scene before the
        reset (stamps.before_reset: unstamped and off-clock stamps are not judged)."""
        self._reset_time = now
        if self._episode_reset:
            self._measured = [None] * len(self.arm_names)
        self.executor.reset()
        initial = self.config.initial_gripper
        self._safety = [ArmSafety(self.config.limits, gripper=1.0 if initial is None else initial)
                        for _ in self.arm_names]
        self._gripper_active = initial is not None
        self._moving_since: float | None = None  # time of the first accepted chunk after start/reset
        self._last_now: float | None = None
        self._hold_target: list[tuple[np.ndarray, np.ndarray, float]] | None = None
        self._hold_logged: str | None = None
        self._pending_latency_stamp: float | None = None

    def time_jump(self, delta_s: float, now: float) -> None:
        """The node's jump callback: the ROS clock jumped by `delta_s` (s, negative = backwards) and reads
        `now`. Handled as in `_time_jump`, unless `tick` already caught this jump (counted once)."""
        if self._jumps.reported(delta_s, now):
            self._time_jump(delta_s)

    def _time_jump(self, delta_s: float) -> None:
        """Hold and restart like a Reset, and wait for a measured pose taken after the jump."""
        self.events["time_jump"] += 1
        self.log("warn", f"ROS time jumped by {delta_s:+.3f} s: holding, dropping the running chunk and "
                         f"restarting from the next measured pose (start-up check and ramp)")
        self.reset()
        self._measured = [None] * len(self.arm_names)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = bool(enabled)

    def on_measured_pose(self, arm: int | str, position, orientation, stamp: float = 0.0) -> bool:
        """The measured EEF pose of `arm` (m, quaternion x y z w, in the command frame), taken at ROS time
        `stamp` (s; 0 = unknown). False if refused: non-finite, or stamped at or before an episode reset."""
        i = self.arm_names.index(arm) if isinstance(arm, str) else int(arm)
        if not _finite(position, orientation) or np.linalg.norm(orientation) < 1e-6:
            self.rejections["non_finite_measured_pose"] += 1
            return False
        if before_reset(stamp, self._reset_time):
            self.rejections["measured_before_reset"] += 1
            return False
        self._measured[i] = (np.asarray(position, float).copy(), quat.normalize(orientation))
        return True

    @property
    def _episode_reset(self) -> bool:
        """The last reset was an episode reset (given a time; 0: the ROS clock had no time yet)."""
        return self._reset_time is not None and self._reset_time > 0

    @property
    def _silent(self) -> bool:
        """Send nothing: after an episode reset, until a chunk is accepted (module docstring)."""
        return self._episode_reset and self._moving_since is None and self.config.initial_gripper is None

    @property
    def started(self) -> bool:
        return all(s.started for s in self._safety)

    def _try_start(self) -> bool:
        """Start the command state at the measured pose once every arm's pose is known."""
        if not self.started and all(m is not None for m in self._measured):
            for safety, (pos, q) in zip(self._safety, self._measured):
                safety.start(pos, q)
        return self.started

    def on_chunk(self, chunk: Chunk, now: float) -> bool:
        """Accept (True) or refuse (False, counted under rejections by reason) a chunk."""
        self.chunks_received += 1
        try:
            self._try_start()
            if not self.started:
                raise ChunkError("no_measured_pose", "chunk refused: the measured pose of every arm is needed "
                                                     "before the first motion")
            if self.config.frame_id and chunk.frame_id and chunk.frame_id != self.config.frame_id:
                raise ChunkError("wrong_frame", f"chunk {chunk.chunk_id} is in frame '{chunk.frame_id}', this "
                                                f"bridge commands in '{self.config.frame_id}'")
            if before_reset(chunk.obs_stamp, self._reset_time):
                raise ChunkError("observed_before_reset",
                                 f"chunk {chunk.chunk_id} was observed at {chunk.obs_stamp:.3f} s, before the "
                                 f"reset at {self._reset_time:.3f} s: refused (it answers the old scene)")
            tol = self.config.stamp_tolerance_s
            if tol > 0 and now > 0 and chunk.obs_stamp - now > tol:  # now == 0: the ROS clock has no time yet
                raise ChunkError("stamp_ahead_of_clock",
                                 f"chunk {chunk.chunk_id} is stamped {chunk.obs_stamp - now:.3f} s ahead of this "
                                 f"node's clock (tolerance {tol:g} s): refused; are the clocks synchronised?")
            first_motion = self._moving_since is None
            if self._silent:  # nothing commanded since the reset: start where the robot is now
                for safety, (pos, q) in zip(self._safety, self._measured):
                    safety.start(pos, q)
            accepted = self.executor.add_chunk(chunk, now)
            if first_motion:
                self._check_start_distance(accepted.first_due)
        except ChunkError as err:
            self.rejections[err.reason] += 1
            n = self.rejections[err.reason]
            if _worth_logging(n):  # a policy producing the same bad chunk at 2 Hz must not flood the log
                self.log("error" if err.reason == "too_far_from_measured" else "warn",
                         f"{err} [{err.reason} x{n}]")
            return False
        if first_motion:
            self._moving_since = now
        self._gripper_active = True
        self._pending_latency_stamp = chunk.obs_stamp
        return True

    def _check_start_distance(self, first_due: float) -> None:
        lim = self.config.limits
        targets = self.executor.sample(first_due)
        for name, safety, target in zip(self.arm_names, self._safety, targets):
            dist = float(np.linalg.norm(target.position - safety.position))
            angle = quat.angle_between(target.quat, safety.quat)
            if dist > lim.max_start_distance_m or angle > lim.max_start_angle_rad:
                self.executor.reset()
                raise ChunkError("too_far_from_measured",
                                 f"first target of arm '{name}' is {dist:.3f} m / {angle:.2f} rad from the "
                                 f"measured pose (limits {lim.max_start_distance_m} m / "
                                 f"{lim.max_start_angle_rad} rad): refused, holding. Move the robot closer "
                                 f"to the task's start or raise max_start_distance_m.")

    # ---- the control tick ---------------------------------------------------------------------------
    def tick(self, now: float) -> TickResult | None:
        """One control tick at ROS time `now`; None if the clock has not advanced (nothing new to send)."""
        back = self._jumps.observe(now)
        if back is not None:
            self._time_jump(back)  # backwards beyond the threshold: never stall silently
        if self._last_now is not None and now <= self._last_now:
            return None
        dt = 1.0 / self.config.control_rate_hz if self._last_now is None else now - self._last_now
        self._last_now = now
        if not self._try_start():
            self.holds["no_measured_pose"] += 1
            self.state = "no_measured_pose"
            self._log_hold("no_measured_pose", "waiting for the measured pose of every arm; not commanding")
            return TickResult(None, "no_measured_pose", False, 0.0, None)

        hold_reason = None
        targets = None
        if not self.enabled:
            hold_reason = "disabled"
        elif self._moving_since is None:
            hold_reason = "startup"  # at the measured pose, waiting for a first acceptable chunk
        else:
            targets = self.executor.sample(now)
            if targets is None:
                hold_reason = "no_chunk"
            elif not all(_finite(t.position, t.quat, t.gripper) for t in targets):
                self.rejections["non_finite"] += 1
                hold_reason = "non_finite"
                targets = None

        self.state = hold_reason or "following"
        if hold_reason is not None:
            self.holds[hold_reason] += 1
            self._log_hold(hold_reason, {
                "no_chunk": "no chunk covers the current time: holding the last commanded pose",
                "disabled": "motion disabled: holding",
                "startup": "holding at the measured pose until a first chunk is accepted",
                "non_finite": "non-finite target: holding",
            }[hold_reason] + (" (after the episode reset: sending nothing until then)" if self._silent else ""))
            if self._silent:  # whoever reset the robot holds it (module docstring)
                return TickResult(None, hold_reason, False, 0.0, None)
            if self._hold_target is None:
                self._hold_target = [(s.position.copy(), s.quat.copy(), s.gripper) for s in self._safety]
            goals = self._hold_target
        else:
            if self._hold_logged is not None:
                self.log("info", f"resuming motion (was holding: {self._hold_logged})")
            self._hold_target = None
            self._hold_logged = None
            goals = [(t.position, t.quat, t.gripper) for t in targets]

        scale = 1.0
        lim = self.config.limits
        if self._moving_since is not None and lim.startup_ramp_s > 0:
            ramp = (now - self._moving_since) / lim.startup_ramp_s
            scale = min(1.0, lim.startup_speed_scale + (1.0 - lim.startup_speed_scale) * max(0.0, ramp))

        step = 0.0
        commands = []
        for safety, (pos, q, g) in zip(self._safety, goals):
            before = safety.position.copy()
            for reason in safety.step(pos, q, g, dt, scale):
                self.clamps[reason] += 1
            step = max(step, float(np.linalg.norm(safety.position - before)))
            # No sign canonicalisation: q and -q are the same pose, and a flip between ticks (e.g. around
            # w = 0, a gripper pointing down) would look like a jump to a consumer that interpolates naively.
            commands.append(ArmCommand(safety.position.copy(), safety.quat.copy(), safety.gripper))

        in_seam = hold_reason is None and self.executor.in_seam(now)
        if in_seam:
            self.max_seam_step_m = max(self.max_seam_step_m, step)
        else:
            self.max_within_step_m = max(self.max_within_step_m, step)
        if hold_reason is None and self._pending_latency_stamp is not None:
            self.last_latency_ms = (now - self._pending_latency_stamp) * 1e3
            self._pending_latency_stamp = None
        self.commands_sent += 1
        return TickResult(commands, hold_reason, in_seam, step, self.executor.chunk_id, self._gripper_active)

    def _log_hold(self, reason: str, message: str) -> None:
        if self._hold_logged != reason:  # once per hold episode and reason
            self._hold_logged = reason
            self.log("warn" if reason in ("no_chunk", "non_finite") else "info", message)

    # ---- reporting ----------------------------------------------------------------------------------
    def status(self) -> dict:
        return {
            "state": self.state,
            "enabled": self.enabled,
            "commands_sent": self.commands_sent,
            "chunks_received": self.chunks_received,
            "holds": dict(self.holds),
            "clamps": dict(self.clamps),
            "rejections": dict(self.rejections),
            "events": dict(self.events),
            "max_seam_step_m": self.max_seam_step_m,
            "max_within_step_m": self.max_within_step_m,
            "last_latency_obs_to_first_command_ms": self.last_latency_ms,
        }
