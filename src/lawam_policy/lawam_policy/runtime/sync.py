"""Synchronising frames of several cameras: the freshest set whose stamps all lie within a tolerance.

Only a few recent frames per camera are kept (no queue): taking a set discards everything at or before it,
so the next inference can only use newer frames, and frames that were never used are counted as dropped.
The set's stamp is the primary camera's stamp (the observation time the chunk will be stamped with).
Thread-safe: cameras add from ROS callbacks, the inference worker takes.

Stamps and the clock: with `clock_tolerance_s` > 0, `add(..., now=...)` refuses a frame whose stamp lies more
than that ahead of or behind the node's clock, counted by reason in `rejections` (stamp_ahead_of_clock,
stamp_behind_clock): such a frame would otherwise be waited for or silently aged out. After a jump of the
clock, `reset()` forgets everything, including the newest stamps and the frame-interval estimate.
"""
from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from .stamps import before_reset


@dataclass
class FrameSet:
    stamp: float  # primary camera stamp, seconds on the ROS clock
    frames: list  # payloads in the configured camera order (primary first)
    stamps: list[float]


class FrameSynchronizer:
    def __init__(self, cameras, tolerance_s: float = 0.05, max_age_s: float = 0.0, history: int = 4,
                 primary: int = 0, clock_tolerance_s: float = 0.0):
        cams = list(cameras)
        if not cams or len(set(cams)) != len(cams):
            raise ValueError(f"cameras must be unique and non-empty, got {cams}")
        if not 0 <= primary < len(cams):
            raise ValueError(f"primary index {primary} out of range for {len(cams)} cameras")
        self.cameras = [cams[primary]] + [c for i, c in enumerate(cams) if i != primary]  # primary first
        self.tolerance_s = float(tolerance_s)
        self.max_age_s = float(max_age_s)  # 0: no age limit (e.g. a sim that pauses)
        self.clock_tolerance_s = float(clock_tolerance_s)  # 0: stamps are not compared with the clock
        self.rejections: Counter = Counter()
        self._buffers: dict[str, deque] = {c: deque() for c in self.cameras}
        self._history = max(1, int(history))
        self._lock = threading.Lock()
        self._last_used = {c: float("-inf") for c in self.cameras}
        self._newest = {c: float("-inf") for c in self.cameras}  # kept after frames are consumed
        self._reset_time: float | None = None  # frames stamped before it are dropped (stamps.before_reset)
        self.dropped = 0
        self.received = 0
        self.frame_interval_s = 0.0  # primary camera, 0 until two frames were seen

    def check_stamp(self, stamp: float, now: float | None) -> str | None:
        """The reason a frame stamped `stamp` is inconsistent with the clock reading `now`, or None.
        `now` <= 0 (a ROS clock that has no time yet) is not judged."""
        tol = self.clock_tolerance_s
        if tol <= 0 or now is None or now <= 0:
            return None
        if stamp - now > tol:
            return "stamp_ahead_of_clock"
        if now - stamp > tol:
            return "stamp_behind_clock"
        return None

    def add(self, camera: str, stamp: float, payload: Any, now: float | None = None) -> str | None:
        """Keep a frame; returns None, or the reason it was refused (counted in `rejections`)."""
        reason = self.check_stamp(stamp, now)
        if reason is not None:
            with self._lock:
                self.rejections[reason] += 1
            return reason
        with self._lock:
            buf = self._buffers[camera]
            self.received += 1
            if before_reset(stamp, self._reset_time):
                self.dropped += 1  # the old scene's frame, still in flight after an episode reset
                return None
            if camera == self.cameras[0] and stamp > self._newest[camera] > float("-inf"):
                gap = stamp - self._newest[camera]  # running estimate of the primary camera's frame period
                self.frame_interval_s = gap if self.frame_interval_s == 0.0 else \
                    0.8 * self.frame_interval_s + 0.2 * gap
            self._newest[camera] = max(self._newest[camera], stamp)
            if stamp <= self._last_used[camera] or (buf and stamp <= buf[-1][0]):
                self.dropped += 1  # older than what was used already, or out of order
                return
            buf.append((stamp, payload))
            while len(buf) > self._history:
                buf.popleft()
                self.dropped += 1
        return None

    def newest(self, camera: str) -> float | None:
        """The newest stamp received from `camera` (used or not), None if none since the last reset."""
        with self._lock:
            t = self._newest[camera]
        return None if t == float("-inf") else t

    def missing(self) -> list[str]:
        """Cameras with no frame waiting to be used."""
        with self._lock:
            return [c for c in self.cameras if not self._buffers[c]]

    def silent(self, now: float, timeout_s: float) -> list[str]:
        """Cameras that have delivered nothing within `timeout_s` before `now` (or never)."""
        with self._lock:
            return [c for c in self.cameras if now - self._newest[c] > timeout_s]

    def take(self, now: float | None = None) -> FrameSet | None:
        """Consume and return the freshest synchronised set newer than the last one, or None."""
        with self._lock:
            primary = self._buffers[self.cameras[0]]
            for stamp, payload in reversed(primary):
                if now is not None and self.max_age_s > 0 and now - stamp > self.max_age_s:
                    break  # this and every older primary frame is stale
                picks = [(stamp, payload)]
                for cam in self.cameras[1:]:
                    buf = self._buffers[cam]
                    best = min(buf, key=lambda f: abs(f[0] - stamp), default=None)
                    if best is None or abs(best[0] - stamp) > self.tolerance_s:
                        break
                    picks.append(best)
                else:
                    self._consume([p[0] for p in picks])
                    return FrameSet(stamp, [p[1] for p in picks], [p[0] for p in picks])
            return None

    def _consume(self, used_stamps: list[float]) -> None:
        for cam, used in zip(self.cameras, used_stamps):
            self._last_used[cam] = used
            buf = self._buffers[cam]
            while buf and buf[0][0] <= used:
                if buf[0][0] != used:
                    self.dropped += 1
                buf.popleft()

    def clear(self, reset_time: float | None = None) -> None:
        """Forget the waiting frames. With `reset_time` (s, an episode reset) frames stamped before it are
        dropped from now on: the old scene's frames still in flight (see stamps.before_reset)."""
        with self._lock:
            self._reset_time = reset_time
            self._last_used = {c: float("-inf") for c in self.cameras}
            for buf in self._buffers.values():
                self.dropped += len(buf)
                buf.clear()

    def reset(self) -> None:
        """After a jump of the clock: forget the frames, the newest stamps and the frame-interval estimate
        (all on the old time line); the counters stay."""
        self.clear()
        with self._lock:
            self._newest = {c: float("-inf") for c in self.cameras}
            self.frame_interval_s = 0.0
