"""Franka gripper goals from a streamed opening: threshold with hysteresis, pre-emption on reversal, a Grasp
that describes the expected object, failed grasps counted, retries paced."""
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.runtime.gripper import (Cancel, GraspGoal, GripperGoalConfig, GripperGoalLogic,  # noqa: E402
                                          MoveGoal, opening_to_width)

CFG = GripperGoalConfig(max_width_m=0.08, threshold=0.5, hysteresis=0.1, grasp_force_n=30.0,
                        grasp_speed_mps=0.05, move_speed_mps=0.2, grasp_width_m=0.03, epsilon_inner_m=0.004,
                        epsilon_outer_m=0.006, retry_period_s=1.0)


def test_goals_only_on_crossings_with_hysteresis():
    g = GripperGoalLogic(CFG)
    (first,) = g.update(1.0)
    assert isinstance(first, MoveGoal) and first.width == pytest.approx(0.08) and first.speed == 0.2
    g.goal_finished(first.goal_id)
    # noise around the threshold inside the band sends nothing
    for x in (0.9, 0.55, 0.45, 0.41, 0.59, 0.6):
        assert g.update(x) == []
    (close,) = g.update(0.3)
    assert isinstance(close, GraspGoal)
    assert (close.width, close.force, close.speed, close.epsilon_inner, close.epsilon_outer) == \
        pytest.approx((0.03, 30.0, 0.05, 0.004, 0.006))  # the expected object, not the commanded opening
    g.goal_finished(close.goal_id)
    for x in (0.35, 0.5, 0.6, 0.2, 0.0):
        assert g.update(x) == []
    (reopen,) = g.update(0.65)
    assert isinstance(reopen, MoveGoal) and reopen.width == pytest.approx(0.052)
    assert g.goals_sent == 3 and g.preemptions == 0


def test_reversal_pre_empts_the_running_goal():
    g = GripperGoalLogic(CFG)
    g.update(1.0)
    actions = g.update(0.0)  # the Move is still running: cancel it, then grasp
    assert isinstance(actions[0], Cancel) and isinstance(actions[1], GraspGoal)
    old_id = actions[1].goal_id
    actions = g.update(1.0)
    assert isinstance(actions[0], Cancel) and isinstance(actions[1], MoveGoal)
    g.goal_finished(old_id)  # the cancelled grasp reports back late: the Move is still active
    assert g.goal_active
    g.goal_finished(actions[1].goal_id)
    assert not g.goal_active
    assert g.update(0.0) == [GraspGoal(0.03, 0.05, 30.0, 0.004, 0.006, goal_id=4)]
    assert g.preemptions == 2


def test_width_mapping_and_config_checks():
    assert opening_to_width(0.5, 0.08) == pytest.approx(0.04)
    assert opening_to_width(1.7, 0.08) == pytest.approx(0.08) and opening_to_width(-1, 0.08) == 0.0
    with pytest.raises(ValueError):
        GripperGoalLogic(GripperGoalConfig(threshold=0.5, hysteresis=0.6))


def test_a_grasp_on_nothing_cannot_succeed_and_is_counted_as_failed():
    # franka_gripper: a Grasp succeeds iff the fingers stop within (width - inner, width + outer). Closing on
    # nothing stops at ~0 m: with the goal describing the expected object, that lies outside.
    g = GripperGoalLogic(CFG)
    (grasp,) = g.update(0.0)
    assert not (grasp.width - grasp.epsilon_inner < 0.0 < grasp.width + grasp.epsilon_outer)
    g.grasp_result(grasp.goal_id, success=False)
    assert g.events["grasp_failed"] == 1 and not g.goal_active
    # a configuration under which an empty grasp would pass is refused
    with pytest.raises(ValueError, match="closes on nothing"):
        GripperGoalLogic(GripperGoalConfig(grasp_width_m=0.0, epsilon_inner_m=0.005))


def test_unsent_goals_are_retried_at_the_retry_period_with_the_same_id():
    g = GripperGoalLogic(CFG)
    (goal,) = g.update(1.0, now=10.0)
    g.not_sent(goal, now=10.0)  # the action server is not up
    retries = []
    for k in range(2500):  # 1 kHz control ticks over 2.5 s; the server stays down
        t = 10.0 + k / 1000
        for a in g.update(1.0, now=t):
            retries.append((k, a.goal_id))
            g.not_sent(a, now=t)
    assert [(k // 10, i) for k, i in retries] == [(100, 1), (200, 1)]  # ~1 s apart; the id does not grow
    assert g.goals_sent == 1 and g.events["server_unavailable"] == 3
    # a reversal replaces the unsent goal at once (new id), and the old one is not retried any more
    (close,) = g.update(0.0, now=12.6)
    assert isinstance(close, GraspGoal) and close.goal_id == 2
    assert g.update(0.0, now=20.0) == []
