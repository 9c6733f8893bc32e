"""The one conversion between ROS stamps and time, in integer nanoseconds.

A ROS stamp is ``builtin_interfaces/Time``: ``int32 sec`` + ``uint32 nanosec`` (0 <= nanosec < 1e9), also for
negative times (sec carries the sign, nanosec stays in range). Arithmetic on stamps happens in integer
nanoseconds: float64 seconds of an epoch time resolve only ~240 ns, and splitting a float into sec and
nanosec separately loses the carry (1.9999999999 s must become 2 s + 0 ns, not 1 s + 1e9 ns).

ROS-free: works on any object with ``sec`` and ``nanosec`` attributes, so the runtime, the nodes, the twins
and the data tools share it without importing rclpy.
"""
from __future__ import annotations

import math

NS_PER_S = 1_000_000_000


def seconds_to_ns(t: float) -> int:
    """Seconds (float) -> integer nanoseconds, rounded to the nearest ns. Raises ValueError if not finite."""
    if not math.isfinite(t):
        raise ValueError(f"time must be finite, got {t}")
    return int(round(t * NS_PER_S))


def ns_to_seconds(ns: int) -> float:
    return ns / NS_PER_S


def split_ns(ns: int) -> tuple[int, int]:
    """Integer nanoseconds -> (sec, nanosec) with 0 <= nanosec < 1e9 (floor division, so negatives work)."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return sec, nanosec


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` (or anything with sec/nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def stamp_to_seconds(stamp) -> float:
    return ns_to_seconds(stamp_to_ns(stamp))


def fill_stamp(stamp, ns: int):
    """Write integer nanoseconds into a stamp message in place; returns it."""
    stamp.sec, stamp.nanosec = split_ns(ns)
    return stamp


# A stamp at most this far before a reset's time is taken as from before the reset (still in flight); one
# further back is on another clock (a robot or camera not synchronised with the node) and cannot be judged.
RESET_STAMP_WINDOW_S = 5.0


def before_reset(stamp: float, reset_time: float | None) -> bool:
    """Is a message stamped `stamp` (s; 0 = unstamped) from before the reset at `reset_time` (s on the same
    clock; None, or 0 from a ROS clock that had no time yet = no reset to judge against)? Unstamped and
    far-older (off-clock) stamps are not judged."""
    return (reset_time is not None and reset_time > 0 and stamp > 0
            and reset_time - RESET_STAMP_WINDOW_S < stamp <= reset_time)


class ClockJumps:
    """Counts each jump of a clock once although two observers may see it: the node's jump callback
    (`reported`, rclpy's JumpThreshold) and the backward-step check of a loop that reads the clock
    (`observe`, so a ROS-free loop never stalls silently). Whichever sees a jump first handles it; the other
    sighting of the same jump is recognised and dropped. Without this, a worker thread reading the new time
    between rclpy setting it and calling the jump callback counted one jump twice.

    Times and deltas in seconds; `threshold_s` > 0 is the smallest step that counts (either way for
    callbacks; `observe` sees backward steps only, a forward skip is indistinguishable from a slow loop).
    """

    def __init__(self, threshold_s: float):
        self.threshold_s = float(threshold_s)
        self._last: float | None = None
        self._caught: tuple[float, float] | None = None  # (clock after, delta) of the jump `observe` caught

    def observe(self, now: float) -> float | None:
        """A clock reading; returns the step (s, negative) if it went back by more than the threshold since
        the previous reading (a jump to handle), else None."""
        last, self._last = self._last, now
        if last is None or now >= last - self.threshold_s:
            return None
        self._caught = (now, now - last)
        return now - last

    def reported(self, delta_s: float, now: float) -> bool:
        """The jump callback reports a jump by `delta_s`, the clock reading `now` after it. True: a new jump
        to handle; False: the one `observe` already caught (same size within the threshold, and the clock has
        moved on by less than the threshold since)."""
        caught, self._caught, self._last = self._caught, None, None
        return not (caught is not None and now - caught[0] < self.threshold_s
                    and abs(delta_s - caught[1]) < self.threshold_s)
