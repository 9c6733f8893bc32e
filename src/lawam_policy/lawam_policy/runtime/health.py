"""Health summaries for ROS diagnostics (ROS-free): a node's status dict -> (level, message, key/values).

The nodes publish them as diagnostic_msgs/DiagnosticArray on /diagnostics (1 Hz), beside their own
PolicyStatus/BridgeStatus, so rqt_runtime_monitor and Foxglove show the system's health. Levels follow
diagnostic_msgs/DiagnosticStatus: OK = 0, WARN = 1, ERROR = 2. Counters are cumulative since start;
a WARN for new rejections or time jumps is raised when the count grew since the previous summary.
"""
from __future__ import annotations

import math

OK, WARN, ERROR = 0, 1, 2

# Holds that mean "something is missing" rather than a normal state (waiting for a first chunk, disabled).
_BAD_HOLDS = ("no_chunk", "non_finite", "no_measured_pose")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _counts(prefix: str, counts: dict) -> list[tuple[str, str]]:
    return [(f"{prefix}.{k}", str(int(v))) for k, v in sorted(counts.items())]


class _Growth:
    """Which counters grew since the previous call (new rejections, new time jumps)."""

    def __init__(self):
        self._last: dict[str, int] = {}

    def grown(self, prefix: str, counts: dict) -> list[str]:
        out = []
        for k, v in counts.items():
            key = f"{prefix}.{k}"
            if int(v) > self._last.get(key, 0):
                out.append(k)
            self._last[key] = int(v)
        return sorted(out)

    def escalate(self, s: dict, level: int, message: str, refused: str) -> tuple[int, str]:
        """WARN and name them when rejections (`refused` labels them) or events grew since the last call."""
        for prefix, label in (("rejections", f"{refused}: "), ("events", "")):
            grown = self.grown(prefix, s.get(prefix, {}))
            if grown:
                level = max(level, WARN)
                message += f"; {label}{', '.join(grown)}"
        return level, message


class BridgeHealth:
    """`summary(status)` with BridgeCore.status() plus "state" (hold reason or "following") and
    "last_error" (a failing control tick, empty if none)."""

    def __init__(self):
        self._growth = _Growth()

    def summary(self, s: dict) -> tuple[int, str, list[tuple[str, str]]]:
        state = s.get("state", "")
        level, message = OK, ("following chunks" if state == "following" else f"holding: {state}")
        if not s.get("enabled", True):
            level, message = WARN, "motion disabled: holding"
        elif state in _BAD_HOLDS:
            level = WARN
        level, message = self._growth.escalate(s, level, message, "refused")
        if s.get("last_error"):
            level, message = ERROR, s["last_error"]
        values = [("state", state), ("enabled", _fmt(bool(s.get("enabled", True)))),
                  ("last_error", s.get("last_error", "")),
                  ("commands_sent", _fmt(s.get("commands_sent", 0))),
                  ("chunks_received", _fmt(s.get("chunks_received", 0))),
                  ("latency_obs_to_first_command_ms", _fmt(float(s.get("last_latency_obs_to_first_command_ms",
                                                                       float("nan"))))),
                  ("max_seam_step_m", _fmt(float(s.get("max_seam_step_m", 0.0))))]
        for prefix in ("holds", "rejections", "clamps", "events"):
            values += _counts(prefix, s.get(prefix, {}))
        return level, message, values


POLICY_LEVELS = {"starting": OK, "waiting_for_task": OK, "paused": OK, "running": OK,
                 "waiting_for_images": WARN, "error": ERROR}


class PolicyHealth:
    """`summary(status)` with the policy node's status: InferenceEngine.status() (or, before the model is
    loaded, state "starting"/"error"), "model_id" and "frames_dropped"."""

    def __init__(self):
        self._growth = _Growth()

    def summary(self, s: dict) -> tuple[int, str, list[tuple[str, str]]]:
        state = s.get("state", "starting")
        level = POLICY_LEVELS.get(state, WARN)
        message = f"{state}: {s.get('detail', '')}".rstrip(": ")
        level, message = self._growth.escalate(s, level, message, "frames refused")
        values = [("state", state), ("task", s.get("task", "")), ("model", s.get("model_id", "")),
                  ("enabled", _fmt(bool(s.get("enabled", True)))), ("last_error", s.get("last_error", "")),
                  ("last_inference_latency_ms", _fmt(float(s.get("last_latency_ms", float("nan"))))),
                  ("chunks_produced", _fmt(s.get("chunks_produced", 0))),
                  ("frames_dropped", _fmt(s.get("frames_dropped", 0)))]
        for prefix in ("rejections", "events"):
            values += _counts(prefix, s.get(prefix, {}))
        return level, message, values
