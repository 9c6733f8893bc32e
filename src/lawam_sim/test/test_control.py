"""Cartesian tracking, workspace refusal (as the bridge's safety layer does) and reachability clamping."""
import numpy as np
import pytest

from lawam_sim import rotations as rot
from lawam_sim.scenes import make_scene


@pytest.fixture(scope="module")
def franka():
    return make_scene("franka_pick_place")


@pytest.fixture(scope="module")
def towel():
    return make_scene("quanta_towel_fold")


def _rot_err(q_xyzw_a, q_xyzw_b):
    return rot.angle_between(rot.xyzw_to_wxyz(q_xyzw_a), rot.xyzw_to_wxyz(q_xyzw_b))


def test_quaternion_order_conversion_roundtrip():
    q = rot.normalize([0.1, -0.2, 0.3, 0.9])
    assert np.allclose(rot.wxyz_to_xyzw(rot.xyzw_to_wxyz(q)), q)
    assert rot.xyzw_to_wxyz([0, 0, 0, 1]).tolist() == [1, 0, 0, 0]


def test_osc_tracks_cartesian_target(franka):
    franka.reset(1)
    p0, _ = franka.eef_pose("arm")
    target = p0 + [0.08, -0.1, -0.12]
    quat = franka.top_down_quat_xyzw(0.4)
    assert franka.set_target("arm", target, quat) == (True, "ok")
    franka.run_for(2.0)
    p, q = franka.eef_pose("arm")
    assert np.linalg.norm(p - target) < 0.005
    assert _rot_err(q, quat) < 0.03


def test_out_of_workspace_and_non_finite_targets_are_refused_and_counted(franka):
    franka.reset(2)
    p0, q0 = franka.eef_pose("arm")
    refusals_before = franka.refusals()["workspace"]
    ok, reason = franka.set_target("arm", [2.0, 0.0, 0.3], q0)
    assert (ok, reason) == (False, "workspace")
    assert franka.set_target("arm", [0.4, np.nan, 0.3], q0) == (False, "non_finite")
    assert franka.set_target("arm", p0, [0, 0, 0, 0]) == (False, "bad_quaternion")
    assert franka.refusals()["workspace"] == refusals_before + 1
    franka.run_for(0.5)
    # The refused targets left the previous (measured-at-reset) target in force: the arm did not move.
    assert np.linalg.norm(franka.eef_pose("arm")[0] - p0) < 0.01


def test_ik_arm_tracks_reachable_target(towel):
    towel.reset(1)
    for arm, x in (("left", -0.15), ("right", 0.15)):
        quat = _down(arm)
        assert towel.set_target(arm, [x, 0.05, 0.1], quat)[0]
    clamps_before = sum(towel.clamps.values())
    towel.run_for(1.5)
    for arm, x in (("left", -0.15), ("right", 0.15)):
        p, q = towel.eef_pose(arm)
        assert np.linalg.norm(p - [x, 0.05, 0.1]) < 0.01
        assert _rot_err(q, _down(arm)) < 0.05
    assert sum(towel.clamps.values()) == clamps_before


def test_unreachable_target_is_clamped_to_nearest_and_counted(towel):
    towel.reset(2)
    before = towel.clamps["left_unreachable"]
    target = np.array([0.7, 0.5, 0.5])  # inside the box, beyond the left arm's reach
    assert towel.set_target("left", target, _down("left"))[0]
    assert towel.clamps["left_unreachable"] == before + 1
    towel.run_for(1.5)
    p, _ = towel.eef_pose("left")
    # it went as far as it can towards the target, not somewhere else
    start = towel.world_to_base(towel.data.xpos[towel.body_id("vx300s_left")], [1, 0, 0, 0])[0]
    assert np.linalg.norm(p - target) < np.linalg.norm(start - target)
    assert np.all(np.isfinite(towel.data.qpos))


def _down(arm):
    from lawam_sim.experts.towel_fold import down_quat_xyzw
    return down_quat_xyzw(arm)
