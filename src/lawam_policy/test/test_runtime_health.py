"""Health summaries for /diagnostics (ROS-free): level, message and key/values from a node's status."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.runtime.health import ERROR, OK, WARN, BridgeHealth, PolicyHealth  # noqa: E402


def test_bridge_health_levels_and_values():
    h = BridgeHealth()
    s = {"state": "following", "enabled": True, "commands_sent": 10, "chunks_received": 2,
         "holds": {"startup": 5}, "rejections": {}, "clamps": {"linear_speed": 3}, "events": {},
         "max_seam_step_m": 0.001, "last_latency_obs_to_first_command_ms": 42.0, "last_error": ""}
    level, msg, values = h.summary(s)
    kv = dict(values)
    assert (level, msg) == (OK, "following chunks")
    assert kv["holds.startup"] == "5" and kv["clamps.linear_speed"] == "3" and kv["latency_obs_to_first_command_ms"] == "42"
    s.update(state="no_chunk", rejections={"stale_chunk": 1}, events={"time_jump": 1})
    level, msg, _ = h.summary(s)
    assert level == WARN and "holding: no_chunk" in msg and "stale_chunk" in msg and "time_jump" in msg
    level, msg, _ = h.summary(s)  # nothing new since the last summary: only the hold remains
    assert level == WARN and "stale_chunk" not in msg
    s.update(state="startup")
    assert h.summary(s)[0] == OK
    s.update(last_error="control tick failed: RuntimeError: boom")
    assert h.summary(s)[:2] == (ERROR, "control tick failed: RuntimeError: boom")


def test_policy_health_levels():
    h = PolicyHealth()
    base = {"state": "running", "detail": "chunk 3", "task": "go", "model_id": "preset:tiny", "last_latency_ms": 80.0,
            "chunks_produced": 3, "frames_dropped": 0, "rejections": {}, "events": {}, "last_error": ""}
    assert h.summary(base)[0] == OK
    assert h.summary({**base, "state": "waiting_for_images"})[0] == WARN
    level, msg, values = h.summary({**base, "state": "error", "detail": "cannot load the model"})
    assert level == ERROR and "cannot load the model" in msg and dict(values)["model"] == "preset:tiny"
    level, msg, _ = h.summary({**base, "rejections": {"stamp_ahead_of_clock": 2}})
    assert level == WARN and "stamp_ahead_of_clock" in msg
