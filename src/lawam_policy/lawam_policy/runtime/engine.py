"""Asynchronous inference: one worker thread that keeps chunks coming before the running one runs out.

Trigger (compare LeRobot's async inference, which sends a new observation once the action queue falls below
a fraction of the chunk): here the threshold is in physical time. With the latest chunk ending at
``obs_stamp + t_last + execution_delay_s``, the next inference starts as soon as

    remaining = chunk_end - now  <=  latency_estimate + latency_margin_s + camera frame period

where latency_estimate is the largest of the recently measured inference latencies (on the same clock as
`now`, so a sim slower than real time is accounted for) and the frame period covers the wait for a fresh
frame. Each inference takes the freshest synchronised
frame set and consumes it (frames are never reused or queued), and the chunk is stamped with that set's
observation time, so the bridge can drop the steps that passed during inference.

Time jumps: when the clock jumps (rclpy's jump callback in the node calls `time_jump`; a backward step
larger than `time_jump_threshold_s` between two worker iterations is caught here too), the engine logs it
once with its size, counts it (events["time_jump"]), forgets the running chunk, the frame sync and the
latency estimate (all on the old time line) and goes on producing chunks from the next frames.

Stale chunks: an inference still running when the episode is reset (`reset`), the task changes or the
clock jumps answers a scene, instruction or time line that is gone; its chunk is discarded, not published
(events["stale_chunk_discarded"]), and after a reset only frames stamped after it are used.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..action_layout import ActionLayout, get_layout
from ..parameters import setting
from .chunk import Chunk
from .executor import DEFAULT_BLEND_WINDOW_S
from .interpolation import ArmTrack
from .predictor import ChunkPrediction, Predictor
from .stamps import ClockJumps
from .sync import FrameSynchronizer


@dataclass
class EngineConfig:
    embodiment: str = "franka_panda"
    control_rate_hz: float = 15.0  # f_b of the chunks requested from the model
    horizon_s: float = setting(0.0, "chunk horizon T (s); 0: the model's trained horizon", min=0.0)
    execution_delay_s: float = setting(0.0, "the bridges' execution_delay_s (s), the same value: used to decide "
                                            "when to infer", min=0.0)
    latency_margin_s: float = setting(0.05, "start the next inference when the running chunk has latency + this "
                                            "left (s)")
    latency_window: int = 10  # inferences the latency estimate looks back over
    initial_latency_s: float = 0.5  # estimate before the first measurement
    inpaint_prev_actions: bool = setting(False, "also give the model the previous chunk's next steps, resampled "
                                                "on its grid (real-time chunking)")
    inpaint_extra_s: float = setting(DEFAULT_BLEND_WINDOW_S, "... those due up to latency + latency_margin_s + this (s; the bridges' "
                                          "blend window)", min=0.0)
    frame_id: str = ""
    seed: int | None = None
    poll_period_s: float = 0.005  # wall time between trigger checks
    camera_timeout_s: float = 1.0  # a camera silent this long (clock time) puts the state to waiting_for_images
    time_jump_threshold_s: float = setting(1.0, "a jump of the clock larger than this (s, either way) clears the "
                                                "frame sync, the latency estimate and the running chunk; 0: not "
                                                "watched", min=0.0)


def prev_on_grid(prev: Chunk, obs_stamp: float, control_rate_hz: float, max_offset_s: float = np.inf):
    """The previous chunk resampled at the new chunk's step times obs_stamp + k / f (for inpainting).

    Resampling (linear, SLERP, stepwise gripper) rather than passing the old steps with their own offsets:
    the observation stamps are not aligned to the step grid, and a model that snaps given steps to its
    nearest grid step would shift them by up to half a period. Returns (actions (K, D), timestamps (K,)),
    or None when the previous chunk has no step left after `obs_stamp`. Only steps up to `max_offset_s`
    after `obs_stamp` are given: those execute before the new chunk can take over; later ones are left to the
    model, otherwise the new observation would only matter after the old chunk's end.
    """
    start = max(obs_stamp, prev.obs_stamp + prev.time_offsets[0])
    end = min(prev.obs_stamp + prev.end_offset, obs_stamp + max_offset_s)
    k0 = int(np.ceil((start - obs_stamp) * control_rate_hz - 1e-9))
    k1 = int(np.floor((end - obs_stamp) * control_rate_hz + 1e-9))
    if k1 < k0:
        return None
    ts = np.arange(k0, k1 + 1) / control_rate_hz
    due = prev.obs_stamp + prev.time_offsets
    rows = []
    for a in range(len(prev.arm_names)):
        track = ArmTrack(due, prev.positions[a], prev.quats[a], prev.grippers[a], "linear")
        samples = [track.sample(obs_stamp + t) for t in ts]
        rows.append(np.array([np.concatenate([s.position, s.quat, [s.gripper]]) for s in samples]))
    return np.concatenate(rows, axis=1), ts


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


class InferenceEngine:
    STATES = ("starting", "waiting_for_task", "waiting_for_images", "running", "paused", "error")

    def __init__(self, predictor: Predictor, synchronizer: FrameSynchronizer, clock: Callable[[], float],
                 on_chunk: Callable[[Chunk, ChunkPrediction], None], config: EngineConfig | None = None,
                 decode: Callable[[Any], np.ndarray] | None = None, layout: ActionLayout | None = None,
                 log: Callable[[str, str], None] | None = None):
        self.predictor = predictor
        self.sync = synchronizer
        self.clock = clock
        self.on_chunk = on_chunk
        self.config = config or EngineConfig()
        self.decode = decode or (lambda payload: payload)
        self.layout = layout or get_layout(self.config.embodiment)
        self.log = log or (lambda level, msg: None)
        self._lock = threading.Lock()
        # Held from the epoch check to the end of on_chunk, and by reset/set_task/time_jump: a chunk is either
        # published before a reset or task change, or discarded.
        self._publish_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.task = ""
        self.enabled = True
        self.chunks_produced = 0
        self.last_latency_s = float("nan")  # clock time
        self.last_latency_wall_s = float("nan")
        self._latencies: deque = deque(maxlen=max(1, self.config.latency_window))
        self._last_chunk: Chunk | None = None
        self._jumps = ClockJumps(self.config.time_jump_threshold_s)
        # Bumped by a reset, a task change and a clock jump: a chunk whose inference started before the bump
        # answers a scene, task or time line that is gone, and is discarded instead of published.
        self._epoch = 0
        self.events: Counter = Counter()
        self.last_error = ""
        self.state = "waiting_for_task"
        self.detail = "no task set"

    # ---- control --------------------------------------------------------------------------------
    def set_task(self, task: str) -> None:
        """A new instruction; a chunk still being computed for the old one is discarded."""
        with self._publish_lock, self._lock:
            if task.strip() != self.task:
                self._epoch += 1
            self.task = task.strip()
        self._wake.set()

    def set_enabled(self, enabled: bool) -> None:
        with self._lock:
            self.enabled = bool(enabled)
        self._wake.set()

    def reset(self) -> None:
        """A new episode: forget the running chunk and the inpainting context, discard a chunk still being
        computed, and refuse frames stamped at or before now (still in flight from the old scene); the next
        chunk starts from scratch on a frame taken after the reset."""
        with self._publish_lock, self._lock:
            self._epoch += 1
            self._last_chunk = None
            self.sync.clear(reset_time=self.clock())
        self._wake.set()

    def time_jump(self, delta_s: float) -> None:
        """The node's jump callback: the clock jumped by `delta_s` (s). Forget everything on the old time
        line and keep producing, unless the worker already caught this jump (counted once)."""
        with self._publish_lock, self._lock:
            if self._jumps.reported(delta_s, self.clock()):
                self._time_jump(delta_s)
        self._wake.set()

    def _time_jump(self, delta_s: float) -> None:  # with self._lock held
        self.events["time_jump"] += 1
        self._epoch += 1
        self._last_chunk = None
        self.sync.reset()
        self._latencies.clear()
        self.log("warn", f"clock jumped by {delta_s:+.3f} s: frame sync, latency estimate and running chunk "
                         f"cleared; inference continues from the next frames")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lawam-inference", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify_frame(self) -> None:
        """Wake the worker early (a new frame arrived)."""
        self._wake.set()

    # ---- the decision --------------------------------------------------------------------------
    @property
    def latency_estimate_s(self) -> float:
        return max(self._latencies) if self._latencies else self.config.initial_latency_s

    def chunk_end(self) -> float | None:
        c = self._last_chunk
        return None if c is None else c.obs_stamp + c.end_offset + self.config.execution_delay_s

    def due(self, now: float) -> bool:
        """Should the next inference start now? The lead time also covers the wait for the next camera frame
        (a frame is never reused), so slow cameras do not leave a gap between chunks."""
        end = self.chunk_end()
        lead = self.latency_estimate_s + self.config.latency_margin_s + self.sync.frame_interval_s
        return end is None or end - now <= lead

    def _set_state(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail

    def step(self) -> bool:
        """One worker iteration; True if a chunk was produced. Also usable without the thread (tests)."""
        with self._lock:  # one reading: the task and the epoch it belongs to
            task, enabled = self.task, self.enabled
            now = self.clock()
            back = self._jumps.observe(now)
            if back is not None:
                self._time_jump(back)
            epoch = self._epoch
        if not task:
            self._set_state("waiting_for_task", "no task set: no inference runs (set one on the task topic "
                                                "or the SetTask service)")
            return False
        if not enabled:
            self._set_state("paused", "disabled through SetEnabled: no chunks are produced")
            return False
        if not self.due(now):
            return False
        frames = self.sync.take(now)
        if frames is None:
            # Between frames this is normal; it becomes a state once a camera is silent or never synchronised.
            silent = self.sync.silent(now, self.config.camera_timeout_s)
            if silent:
                self._set_state("waiting_for_images", f"no frames within {self.config.camera_timeout_s:g} s "
                                                      f"from: {', '.join(silent)}")
            elif self._last_chunk is None:
                self._set_state("waiting_for_images", "no synchronised frame set yet (stamps not within "
                                                      "sync_tolerance_s)")
            return False
        try:
            images = [self.decode(p) for p in frames.frames]
            kwargs = {}
            prev = self._last_chunk
            if self.config.inpaint_prev_actions and prev is not None:
                ahead = self.latency_estimate_s + self.config.latency_margin_s + self.config.inpaint_extra_s
                grid = prev_on_grid(prev, frames.stamp, self.config.control_rate_hz, ahead)
                if grid is not None:
                    kwargs = {"prev_actions": grid[0], "prev_timestamps": grid[1]}
            t0_clock, t0_wall = self.clock(), time.perf_counter()
            pred = self.predictor.predict_chunk(
                images, task, self.config.control_rate_hz,
                horizon_s=self.config.horizon_s or None, embodiment=self.layout.embodiment,
                seed=self.config.seed, **kwargs)
            self.last_latency_wall_s = time.perf_counter() - t0_wall
            latency_s = max(0.0, self.clock() - t0_clock)
            timestamps = _numpy(pred.timestamps)
            horizon = self.config.horizon_s or (float(timestamps[-1]) + 1.0 / self.config.control_rate_hz)
            chunk = Chunk.from_actions(_numpy(pred.actions), timestamps, self.layout, frames.stamp,
                                       chunk_id=self.chunks_produced + 1,
                                       control_rate_hz=self.config.control_rate_hz, horizon_s=horizon,
                                       frame_id=self.config.frame_id)
            chunk.validate(self.layout.arms)
        except Exception as err:  # keep the worker alive; the status reports the error
            msg = f"inference failed: {type(err).__name__}: {err}"
            if msg != self.last_error:
                self.log("error", msg)
            self.last_error = msg
            self._set_state("error", msg)
            return False
        with self._publish_lock:
            with self._lock:
                if self._epoch != epoch:  # reset, new task or clock jump during inference (see __init__)
                    self.events["stale_chunk_discarded"] += 1
                    return False
                self._last_chunk = chunk
                self.last_latency_s = latency_s
                self._latencies.append(latency_s)
            self.chunks_produced += 1
            self.last_error = ""
            self._set_state("running", f"chunk {chunk.chunk_id} from observation at {frames.stamp:.3f} s, "
                                       f"latency {self.last_latency_s * 1e3:.0f} ms")
            self.on_chunk(chunk, pred)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            produced = self.step()
            if not produced:
                self._wake.wait(self.config.poll_period_s if self.state != "error" else 1.0)
                self._wake.clear()

    def status(self) -> dict:
        return {"state": self.state, "detail": self.detail, "enabled": self.enabled, "task": self.task,
                "last_latency_ms": self.last_latency_wall_s * 1e3, "chunks_produced": self.chunks_produced,
                "frames_dropped": self.sync.dropped, "last_error": self.last_error,
                "events": dict(self.events), "rejections": dict(self.sync.rejections)}
