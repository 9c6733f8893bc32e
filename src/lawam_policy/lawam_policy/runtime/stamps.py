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
