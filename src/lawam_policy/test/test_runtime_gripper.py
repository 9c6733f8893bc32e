"""Franka gripper goals from a streamed opening: threshold with hysteresis, pre-emption on reversal."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.runtime.gripper import (Cancel, GraspGoal, GripperGoalConfig, GripperGoalLogic,  # noqa: E402
                                          MoveGoal, opening_to_width)

CFG = GripperGoalConfig(max_width_m=0.08, threshold=0.5, hysteresis=0.1, grasp_force_n=30.0,
                        grasp_speed_mps=0.05, move_speed_mps=0.2, epsilon_inner_m=0.004, epsilon_outer_m=0.07)


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
        pytest.approx((0.024, 30.0, 0.05, 0.004, 0.07))
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
    assert g.update(0.0) == [GraspGoal(0.0, 0.05, 30.0, 0.004, 0.07, goal_id=4)]
    assert g.preemptions == 2


def test_width_mapping_and_config_checks():
    assert opening_to_width(0.5, 0.08) == pytest.approx(0.04)
    assert opening_to_width(1.7, 0.08) == pytest.approx(0.08) and opening_to_width(-1, 0.08) == 0.0
    with pytest.raises(ValueError):
        GripperGoalLogic(GripperGoalConfig(threshold=0.5, hysteresis=0.6))
