"""Stream gaps: the maximum message age per topic, shared by the bag import and the live recorder.

A frame of a demonstration takes, per topic, the latest message. When a topic stops delivering (a camera
driver stalls, a state broadcaster hangs) the latest message grows old and frames would repeat it while the
other streams (the teleop command) move on. Nothing is ever filled that way: every topic has a maximum
message age, measured on header stamps (the ROS clock of the publisher, so transport delays and bursts do
not count), and

- a **gap** of a topic is a span between two consecutive messages whose header stamps lie more than the
  maximum age apart (bag import), or a frame at which the topic's newest message is older than the maximum
  age (live recorder: it cannot wait for the next message);
- no frame is taken inside a gap, and the **episode is split at the gap**: the frames before it and the frames
  after it become separate episodes. Chosen over dropping the episode whole, because the pieces are clean
  demonstrations (every training sample of LaWAM, a frame t with its chunk over [t, t + T] and the frame at
  t + T, lies inside one piece), and over cutting the span out of one episode, because training reads t + T
  and chunk times by frame offset: an episode with a hole would pair frames that lie further apart than T.

The default maximum age of a topic is ``GAP_PERIODS`` times its own median period (a 15 Hz camera in a
30 fps dataset repeats each image once: not a gap), but at least ``GAP_FRAMES`` frame periods (a frame may
hold a message a few frames old: a busy machine delays or loses a few camera images without the stream having
stopped). Topics whose stamps are all zero (drivers that leave them empty)
are measured on receive times. ROS-free; times are integer nanoseconds.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from lawam_policy.runtime.stamps import NS_PER_S, ns_to_seconds, seconds_to_ns

GAP_PERIODS = 3.0  # default maximum age = this many median periods of the topic ...
GAP_FRAMES = 3.0   # ... and at least this many frame periods (transport hiccups of a live system)


@dataclass(frozen=True)
class MaxAge:
    """Maximum message age per topic: explicit seconds per topic, else one for every topic, else automatic
    (``GAP_PERIODS`` median periods, at least ``GAP_FRAMES`` frame periods). ``math.inf`` = no limit."""
    default_s: float | None = None
    per_topic: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, items) -> "MaxAge":
        """``["0.5", "/camera/image_raw=0.3", "/lawam/teleop/command=off"]`` (or a YAML mapping / number):
        a bare value applies to every topic, ``TOPIC=VALUE`` to one; ``auto`` is the default rule, ``off``
        no limit. Raises ValueError for anything else."""
        if items is None:
            return cls()
        if isinstance(items, (int, float, str)):
            items = [items]
        if isinstance(items, dict):
            items = [f"{k}={v}" for k, v in items.items()]
        default, per = None, {}
        for item in items:
            text = str(item).strip()
            topic, sep, value = text.rpartition("=")
            if sep and not topic.strip():
                raise ValueError(f"bad max message age {item!r}: expected SECONDS or TOPIC=SECONDS")
            seconds = _parse_seconds(value, item)
            if sep:
                per[topic.strip()] = seconds
            else:
                default = seconds
        return cls(default, per)

    def for_topic(self, topic: str, median_period_ns: int | None, fps: float) -> int | None:
        """Maximum age of ``topic`` in ns (None: no limit, or no period known yet for the automatic rule)."""
        seconds = self.per_topic.get(topic, self.default_s)  # (a per-topic None: "auto" for that topic)
        if seconds is not None:
            return None if math.isinf(seconds) else seconds_to_ns(seconds)
        if median_period_ns is None:
            return None
        return max(int(GAP_PERIODS * median_period_ns), int(GAP_FRAMES * NS_PER_S / fps))


def _parse_seconds(value: str, item) -> float | None:
    v = str(value).strip().lower()
    if v == "auto":
        return None
    if v in ("off", "inf", "none"):
        return math.inf
    try:
        seconds = float(v)
    except ValueError:
        raise ValueError(f"bad max message age {item!r}: expected seconds > 0, 'auto' or 'off'") from None
    if not seconds > 0:
        raise ValueError(f"bad max message age {item!r}: must be > 0 s (or 'off')")
    return seconds


def median_period_ns(stamps_ns) -> int | None:
    """Median of the positive differences between consecutive stamps (None with fewer than two)."""
    diffs = sorted(b - a for a, b in zip(stamps_ns, stamps_ns[1:]) if b > a)
    if not diffs:
        return None
    return diffs[len(diffs) // 2]


def effective_stamps(header_ns, receive_ns) -> tuple[list[int], bool]:
    """The times a topic's age is measured on: its header stamps, or its receive times when the publisher
    leaves the stamps empty (all zero). Returns (times, measured_on_header_stamps)."""
    if header_ns and any(s != 0 for s in header_ns):
        return list(header_ns), True
    return list(receive_ns), False


@dataclass
class Gap:
    """Two consecutive messages of a topic too far apart; frames with receive times strictly between
    ``recv_from_ns`` and ``recv_to_ns`` would hold the older one (to_ns None: the topic ended)."""
    topic: str
    role: str
    length_ns: int
    max_age_ns: int
    recv_from_ns: int
    recv_to_ns: int | None

    def describe(self, origin_ns: int) -> str:
        start = ns_to_seconds(self.recv_from_ns - origin_ns)
        if self.recv_to_ns is None:
            return (f"{self.role} ({self.topic}) has no message after {start:.3f} s for the last "
                    f"{ns_to_seconds(self.length_ns):.3f} s of the episode (max age "
                    f"{ns_to_seconds(self.max_age_ns):.3f} s)")
        return (f"{self.role} ({self.topic}) has no message from {start:.3f} s to "
                f"{ns_to_seconds(self.recv_to_ns - origin_ns):.3f} s ({ns_to_seconds(self.length_ns):.3f} s on its "
                f"stamps, max age {ns_to_seconds(self.max_age_ns):.3f} s)")


def find_gaps(topic: str, role: str, stamps_ns, receive_ns, max_age_ns: int | None) -> list[Gap]:
    """Gaps of one topic: consecutive messages whose stamps differ by more than max_age_ns (either way: a
    stamp that jumps back by more than that is a discontinuity too). Stamps and receive times in message
    order."""
    if max_age_ns is None:
        return []
    out = []
    for i in range(1, len(stamps_ns)):
        d = stamps_ns[i] - stamps_ns[i - 1]
        if abs(d) > max_age_ns:
            out.append(Gap(topic, role, abs(d), max_age_ns, receive_ns[i - 1], receive_ns[i]))
    return out


def split_at_gaps(times: list[int], gaps: list[Gap]) -> list[list[int]]:
    """Frame times (sorted) -> the runs of frames outside every gap; a frame exactly at a gap's first or
    last message is outside it (it holds a message that has just arrived)."""
    runs, run = [], []
    for t in times:
        inside = any(g.recv_from_ns < t and (g.recv_to_ns is None or t < g.recv_to_ns) for g in gaps)
        if inside:
            if run:
                runs.append(run)
            run = []
        else:
            run.append(t)
    if run:
        runs.append(run)
    return runs


class LiveGapMonitor:
    """The same rule for the live recorder: per topic the newest header stamp and a running median period
    (last ``window`` intervals); ``stale(now)`` lists the topics whose newest message is older than their
    maximum age at ``now`` (the frame's stamp, ns on the same ROS clock)."""

    def __init__(self, max_age: MaxAge, fps: float, roles: dict[str, str], window: int = 50):
        self.max_age, self.fps, self.roles = max_age, float(fps), dict(roles)
        self._last: dict[str, int] = {}
        self._intervals: dict[str, deque] = {t: deque(maxlen=window) for t in roles}

    def observe(self, topic: str, stamp_ns: int) -> int | None:
        """Record a message; returns the interval to the previous one if it exceeds the maximum age."""
        last = self._last.get(topic)
        self._last[topic] = stamp_ns
        if last is None:
            return None
        interval = stamp_ns - last
        limit = self.limit_ns(topic)
        if interval > 0:
            self._intervals[topic].append(interval)
        return abs(interval) if limit is not None and abs(interval) > limit else None

    def limit_ns(self, topic: str) -> int | None:
        iv = sorted(self._intervals.get(topic, ()))
        median = iv[len(iv) // 2] if len(iv) >= 2 else None
        return self.max_age.for_topic(topic, median, self.fps)

    def stale(self, now_ns: int, topics=None) -> list[tuple[str, int, int]]:
        """[(topic, age_ns, max_age_ns)] of the given (default: all seen) topics too old at now_ns."""
        out = []
        for topic in topics if topics is not None else list(self._last):
            last = self._last.get(topic)
            limit = self.limit_ns(topic)
            if last is not None and limit is not None and now_ns - last > limit:
                out.append((topic, now_ns - last, limit))
        return out

    def forget(self, topic: str) -> None:
        """The topic's stream restarts (e.g. the command at the start of an episode)."""
        self._last.pop(topic, None)
