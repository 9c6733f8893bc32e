"""Turning a streamed gripper opening into discrete Franka gripper goals.

franka_ros2's Grasp and Move actions block and take seconds, so streaming them at the control rate is
useless: a goal is sent only when the commanded opening crosses `threshold` by more than `hysteresis`
(close below threshold - hysteresis with a Grasp, open above threshold + hysteresis with a Move), and a goal
still running is pre-empted (cancelled, then replaced) when the command reverses.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GripperGoalConfig:
    max_width_m: float = 0.08  # opening 1.0 maps to this width, 0.0 to 0 m
    threshold: float = 0.5
    hysteresis: float = 0.1
    grasp_force_n: float = 20.0
    grasp_speed_mps: float = 0.1
    move_speed_mps: float = 0.1
    epsilon_inner_m: float = 0.005
    epsilon_outer_m: float = 0.08  # accept any object narrower than the commanded width + this

    def validate(self) -> None:
        if not (0.0 < self.threshold < 1.0 and 0.0 <= self.hysteresis < min(self.threshold, 1 - self.threshold)):
            raise ValueError("need 0 < threshold < 1 and 0 <= hysteresis < distance of threshold to 0 and 1")
        if self.max_width_m <= 0:
            raise ValueError("max_width_m must be > 0")


@dataclass
class GraspGoal:
    width: float
    speed: float
    force: float
    epsilon_inner: float
    epsilon_outer: float
    goal_id: int = 0


@dataclass
class MoveGoal:
    width: float
    speed: float
    goal_id: int = 0


@dataclass
class Cancel:
    """Cancel the goal still running before the next goal is sent."""


def opening_to_width(opening: float, max_width_m: float) -> float:
    return min(max(float(opening), 0.0), 1.0) * max_width_m


class GripperGoalLogic:
    """state: "open", "closed" or None (unknown until the first command)."""

    def __init__(self, config: GripperGoalConfig):
        config.validate()
        self.config = config
        self.state: str | None = None
        self.goal_active = False
        self.goals_sent = 0
        self.preemptions = 0

    def update(self, opening: float) -> list:
        """Feed the commanded opening; returns the actions to perform now (possibly none)."""
        c = self.config
        want = self.state
        if opening < c.threshold - c.hysteresis:
            want = "closed"
        elif opening > c.threshold + c.hysteresis:
            want = "open"
        elif self.state is None:  # inside the band at start-up: take the nearer side
            want = "closed" if opening < c.threshold else "open"
        if want == self.state:
            return []
        actions = []
        if self.goal_active:
            actions.append(Cancel())
            self.preemptions += 1
        width = opening_to_width(opening, c.max_width_m)
        if want == "closed":
            actions.append(GraspGoal(width, c.grasp_speed_mps, c.grasp_force_n, c.epsilon_inner_m, c.epsilon_outer_m))
        else:
            actions.append(MoveGoal(width, c.move_speed_mps))
        self.state = want
        self.goal_active = True
        self.goals_sent += 1
        actions[-1].goal_id = self.goals_sent
        return actions

    def goal_finished(self, goal_id: int) -> None:
        """Goal `goal_id` ended (succeeded, failed or was cancelled); a pre-empted one changes nothing."""
        if goal_id == self.goals_sent:
            self.goal_active = False

    def reset(self) -> None:
        self.state = None
        self.goal_active = False
