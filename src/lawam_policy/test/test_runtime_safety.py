"""Safety layer and the BridgeCore tick: limits, start-up, holds, NaN rejection, enable flag, seams."""
import math
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_policy.runtime import quaternion as quat  # noqa: E402
from lawam_policy.runtime.bridge_core import BridgeConfig, BridgeCore  # noqa: E402
from lawam_policy.runtime.chunk import Chunk  # noqa: E402
from lawam_policy.runtime.safety import ArmSafety, SafetyLimits  # noqa: E402

DOWN = np.array([1.0, 0.0, 0.0, 0.0])
DT = 0.001


def limits(**kw):
    base = dict(max_linear_speed=0.5, max_angular_speed=1.0, max_linear_accel=4.0, max_angular_accel=8.0,
                startup_ramp_s=0.0)
    base.update(kw)
    return SafetyLimits(**base)


def chunk(obs, positions, rate=10.0, cid=1, quats=None, grip=None, layout="franka_panda"):
    positions = np.asarray(positions, float)
    lay = get_layout(layout)
    h = len(positions)
    quats = np.tile(DOWN, (h, 1)) if quats is None else np.asarray(quats, float)
    grip = np.ones(h) if grip is None else np.asarray(grip, float)
    arm = np.concatenate([positions, quats, grip[:, None]], axis=1)
    return Chunk.from_actions(np.concatenate([arm] * len(lay.arms), axis=1), np.arange(h) / rate, lay, obs, cid)


def line(p0, n=12, d=(0.0, 0.0, 0.0)):
    return np.asarray(p0, float) + np.arange(n)[:, None] * np.asarray(d, float)


def run(core, t0, t1, dt=DT):
    out = []
    for t in np.arange(t0, t1, dt):
        r = core.tick(float(t))
        if r is not None:
            out.append((float(t), r))
    return out


def steps(results, arm=0):
    p = np.array([r.commands[arm].position for _, r in results])
    return np.linalg.norm(np.diff(p, axis=0), axis=1)


# ---- ArmSafety --------------------------------------------------------------------------------------
def test_far_target_is_approached_within_speed_and_acceleration_limits_and_counted():
    lim = limits()
    s = ArmSafety(lim)
    s.start([0.5, 0.0, 0.4], DOWN)
    goal = np.array([0.7, 0.1, 0.3])
    pos, vel, reasons = [s.position.copy()], [np.zeros(3)], set()
    for _ in range(3000):
        reasons |= set(s.step(goal, DOWN, 1.0, DT))
        pos.append(s.position.copy())
        vel.append(s.lin_vel.copy())
    pos, vel = np.array(pos), np.array(vel)
    speed = np.linalg.norm(np.diff(pos, axis=0), axis=1) / DT
    acc = np.linalg.norm(np.diff(vel, axis=0), axis=1) / DT
    assert speed.max() <= lim.max_linear_speed + 1e-9
    assert acc.max() <= lim.max_linear_accel + 1e-6
    assert np.allclose(pos[-1], goal, atol=1e-6)  # reached, never deadlocked
    # it decelerates into the goal: the distance shrinks monotonically until a last tick-sized settle
    # (arriving at 1 kHz with < a_max * dt of speed leaves at most a few micrometres of overshoot)
    dist = np.linalg.norm(pos - goal, axis=1)
    first_close = int(np.argmax(dist < 1e-6))
    assert np.all(np.diff(dist[:first_close]) <= 1e-12)
    assert dist[first_close:].max() <= 2e-5
    assert {"linear_speed", "linear_accel"} <= reasons


def test_rotation_is_rate_limited_toward_the_goal():
    lim = limits()
    s = ArmSafety(lim)
    s.start([0.5, 0.0, 0.4], DOWN)
    goal = quat.multiply(quat.from_rotvec([0, 0, 1.5]), DOWN)
    prev, reasons = s.quat.copy(), set()
    for _ in range(4000):
        reasons |= set(s.step([0.5, 0.0, 0.4], goal, 1.0, DT))
        assert quat.angle_between(prev, s.quat) <= lim.max_angular_speed * DT + 1e-9
        assert abs(np.linalg.norm(s.quat) - 1) < 1e-12
        prev = s.quat.copy()
    assert quat.angle_between(s.quat, goal) < 1e-5
    assert "angular_speed" in reasons


def test_workspace_box_and_gripper_range_clamp():
    lim = limits(workspace_min=(0.3, -0.2, 0.1), workspace_max=(0.6, 0.2, 0.5))
    s = ArmSafety(lim)
    s.start([0.5, 0.0, 0.4], DOWN)
    reasons = set()
    for _ in range(3000):
        reasons |= set(s.step([0.5, 0.0, -0.2], DOWN, 1.7, DT))
    assert s.position[2] == pytest.approx(0.1)
    assert s.gripper == 1.0
    assert {"workspace", "gripper_range"} <= reasons


def test_small_smooth_motion_is_not_clamped():
    s = ArmSafety(limits())
    s.start([0.5, 0.0, 0.4], DOWN)
    for k in range(1, 500):  # 0.1 m/s, starting gently
        x = 0.5 + 0.1 * (k * DT) ** 2 / (2 * 0.05) if k * DT < 0.05 else 0.5 + 0.1 * (k * DT - 0.025)
        assert s.step([x, 0.0, 0.4], DOWN, 1.0, DT) == []


# ---- BridgeCore -------------------------------------------------------------------------------------
def core(**kw):
    lim = kw.pop("limits", limits())
    cfg = BridgeConfig(limits=lim, blend_window_s=kw.pop("blend_window_s", 0.1), **kw)
    events = []
    c = BridgeCore(cfg, log=lambda level, msg: events.append((level, msg)))
    return c, events


def test_no_command_before_the_measured_pose_then_start_there():
    c, _ = core()
    r = c.tick(0.0)
    assert r.commands is None and r.hold_reason == "no_measured_pose"
    assert not c.on_chunk(chunk(0.0, line([0.5, 0, 0.4])), 0.0)
    assert c.rejections["no_measured_pose"] == 1
    c.on_measured_pose("arm", [0.45, 0.01, 0.38], DOWN)
    r = c.tick(0.001)
    assert r.hold_reason == "startup" and np.allclose(r.commands[0].position, [0.45, 0.01, 0.38])


def test_first_target_too_far_from_measured_pose_is_refused_with_clear_error():
    c, events = core(limits=limits(max_start_distance_m=0.1))
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    assert not c.on_chunk(chunk(0.0, line([0.5, 0.3, 0.4])), 0.0)
    assert c.rejections["too_far_from_measured"] == 1
    assert any(level == "error" and "measured pose" in msg for level, msg in events)
    results = run(c, 0.001, 0.2)
    assert all(r.hold_reason == "startup" for _, r in results)
    assert np.allclose(results[-1][1].commands[0].position, [0.5, 0.0, 0.4])
    assert c.on_chunk(chunk(0.2, line([0.55, 0.0, 0.4]), cid=2), 0.2)  # a near one is accepted


def test_startup_ramp_bounds_speed():
    lim = limits(startup_ramp_s=1.0, startup_speed_scale=0.2, max_start_distance_m=0.2)
    c, _ = core(limits=lim)
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    assert c.on_chunk(chunk(0.0, line([0.6, 0.0, 0.4], n=40), cid=1), 0.0)
    res = run(c, 0.001, 0.1)
    # within the first 0.1 s the speed is capped at (0.2 + 0.8 * 0.1) * 0.5 m/s
    assert steps(res).max() <= 0.28 * 0.5 * DT + 1e-9
    assert c.clamps["startup_ramp"] > 0


def test_watchdog_holds_when_chunks_stop_and_logs_once():
    c, events = core()
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    assert c.on_chunk(chunk(0.0, line([0.5, 0, 0.4], d=(0.002, 0, 0))), 0.0)  # 2 cm/s for 1.1 s
    res = run(c, 0.001, 2.0)
    held = [(t, r) for t, r in res if r.hold_reason == "no_chunk"]
    assert held and held[0][0] > 1.1 and held[0][0] < 1.1 + 2 * DT
    final = held[-1][1].commands[0].position
    assert np.allclose(final, [0.5 + 0.022, 0, 0.4], atol=1e-3)  # holds where it stopped
    # the command comes to rest and stays there
    tail = np.array([r.commands[0].position for _, r in held[-200:]])
    assert np.ptp(tail, axis=0).max() < 1e-9
    assert c.holds["no_chunk"] == len(held)
    assert sum("no chunk covers" in m for _, m in events) == 1


def test_non_finite_chunk_is_rejected_and_the_bridge_keeps_going():
    c, _ = core()
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    assert c.on_chunk(chunk(0.0, line([0.5, 0, 0.4])), 0.0)
    bad = chunk(0.1, line([0.5, 0, 0.4]), cid=2)
    bad.quats[0, 4] = [np.nan, 0, 0, 1]
    assert not c.on_chunk(bad, 0.1)
    inf = chunk(0.1, line([0.5, 0, 0.4]), cid=3)
    inf.grippers[0, 2] = np.inf
    assert not c.on_chunk(inf, 0.1)
    assert c.rejections["non_finite"] == 2
    res = run(c, 0.001, 0.5)
    assert all(r.hold_reason is None and np.all(np.isfinite(r.commands[0].position)) for _, r in res)
    assert not c.on_measured_pose(0, [np.nan, 0, 0], DOWN)


def test_disabled_holds_and_resumes():
    c, _ = core()
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    c.on_chunk(chunk(0.0, line([0.5, 0, 0.4], n=40, d=(0.002, 0, 0))), 0.0)
    run(c, 0.001, 0.5)
    c.set_enabled(False)
    res = run(c, 0.5, 1.0)
    assert all(r.hold_reason == "disabled" for _, r in res)
    tail = np.array([r.commands[0].position for _, r in res[-100:]])
    assert np.ptp(tail, axis=0).max() < 1e-9
    c.set_enabled(True)
    res = run(c, 1.0, 1.5)
    assert res[-1][1].hold_reason is None
    assert steps(res).max() <= 0.5 * DT + 1e-9
    assert c.status()["holds"]["disabled"] == 500 and c.status()["enabled"]


@pytest.mark.parametrize("blend", [0.0, 0.1])
def test_no_jump_above_the_limit_at_chunk_seams(blend):
    """Chunks that disagree by 4 cm: with or without blending, no command step exceeds v_max * dt."""
    lim = limits()
    c, _ = core(limits=lim, blend_window_s=blend)
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    res = []
    for i in range(6):
        obs = i * 0.4
        offset = 0.04 * (i % 2)
        assert c.on_chunk(chunk(obs, line([0.5, offset, 0.4], d=(0.001, 0, 0)), cid=i + 1), obs + 0.05)
        res += run(c, obs + 0.05, obs + 0.45)
    s = steps(res)
    assert s.max() <= lim.max_linear_speed * DT + 1e-9
    assert c.max_seam_step_m <= lim.max_linear_speed * DT + 1e-9
    if blend:
        assert any(r.in_seam for _, r in res)


def test_reset_restarts_from_the_measured_pose():
    c, _ = core()
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    c.on_chunk(chunk(0.0, line([0.5, 0, 0.4], d=(0.002, 0, 0))), 0.0)
    run(c, 0.001, 0.5)
    c.on_measured_pose(0, [0.52, 0.01, 0.41], DOWN)
    c.reset()
    r = c.tick(0.6)
    assert r.hold_reason == "startup" and np.allclose(r.commands[0].position, [0.52, 0.01, 0.41])


def test_two_arms_and_latency_figure():
    c, _ = core(arm_names=("left", "right"), embodiment="quanta_x1")
    c.on_measured_pose("left", [0.5, 0.2, 0.4], DOWN)
    c.on_measured_pose("right", [0.5, -0.2, 0.4], DOWN)
    c.tick(1.0)
    ch = chunk(1.0, line([0.5, 0.2, 0.4]), layout="quanta_x1")
    ch.positions[1] = line([0.5, -0.2, 0.4])
    assert c.on_chunk(ch, 1.2)
    r = c.tick(1.25)
    assert len(r.commands) == 2 and r.commands[1].position[1] == pytest.approx(-0.2)
    assert c.status()["last_latency_obs_to_first_command_ms"] == pytest.approx(250.0)
    assert math.isfinite(c.status()["max_seam_step_m"])


def test_chunk_in_another_frame_is_refused_and_quaternions_never_flip_sign():
    c, _ = core(frame_id="panda_link0")
    c.on_measured_pose(0, [0.5, 0.0, 0.4], DOWN)
    c.tick(0.0)
    wrong = chunk(0.0, line([0.5, 0, 0.4]))
    wrong.frame_id = "world"
    assert not c.on_chunk(wrong, 0.0) and c.rejections["wrong_frame"] == 1
    # pointing down and rotating about z back and forth: w crosses 0 but the command's sign stays continuous
    quats = [quat.multiply(quat.from_rotvec([0, 0, 0.3 * np.sin(k / 3)]), DOWN) for k in range(12)]
    quats = [q if k % 2 else -q for k, q in enumerate(quats)]  # the model may output either sign
    ok = chunk(0.0, line([0.5, 0, 0.4]), quats=quats)
    ok.frame_id = "panda_link0"
    assert c.on_chunk(ok, 0.0)
    q = np.array([r.commands[0].quat for _, r in run(c, 0.001, 1.2)])
    assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0.99)
