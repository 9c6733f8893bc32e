"""Turning a streamed gripper opening into discrete Franka gripper goals.

franka_ros2's Grasp and Move actions block and take seconds, so streaming them at the control rate is
useless: a goal is sent only when the commanded opening crosses `threshold` by more than `hysteresis`
(close below threshold - hysteresis with a Grasp, open above threshold + hysteresis with a Move), and a goal
still running is pre-empted (cancelled, then replaced) when the command reverses.

Grasp semantics (franka_gripper): a Grasp succeeds when the fingers stop at a width d with
``width - epsilon.inner < d < width + epsilon.outer``. So the Grasp goal describes the *expected object*
(`grasp_width_m` with its tolerances), not the commanded opening: closing on nothing (d ~ 0) then fails,
and the failure is counted (``grasp_failed``) instead of passing as a success.

A goal that could not be sent (action server not up) is retried at most every `retry_period_s` of the
caller's clock (monotonic seconds), with the same goal id, until it is sent or replaced by a reversal.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..embodiments import FRANKA_HAND_MAX_WIDTH_M
from ..parameters import setting


@dataclass
class GripperGoalConfig:
    """How openings become Grasp/Move goals (each field is also the Franka bridge parameter named)."""

    max_width_m: float = setting(FRANKA_HAND_MAX_WIDTH_M, "finger width at opening 1.0 (m); 0.0 is 0 m", name="gripper_max_width_m",
                                 above=0.0)
    threshold: float = setting(0.5, "close (Grasp) below threshold - hysteresis, open (Move) above threshold + "
                                    "hysteresis", name="gripper_threshold", above=0.0, max=1.0)
    hysteresis: float = setting(0.1, "band around the threshold that sends nothing", name="gripper_hysteresis",
                                min=0.0)
    grasp_force_n: float = setting(20.0, "Grasp goal force (N)")
    grasp_speed_mps: float = setting(0.1, "Grasp goal speed (m/s)")
    move_speed_mps: float = setting(0.1, "Move goal speed (m/s)")
    # The expected object: a grasp succeeds when the fingers stop within (width - inner, width + outer).
    grasp_width_m: float = setting(0.04, "width of the expected object (m), the Grasp goal's width: "
                                         "franka_gripper reports success when the fingers stop within width - "
                                         "inner .. width + outer, so closing on nothing fails (grasp_failed); "
                                         "default: the twin's 4 cm cubes", min=0.0)
    epsilon_inner_m: float = setting(0.01, "Grasp succeeds if the fingers stop above width - this (m)",
                                     name="grasp_epsilon_inner_m", min=0.0)
    epsilon_outer_m: float = setting(0.01, "... and below width + this (m)", name="grasp_epsilon_outer_m",
                                     min=0.0)
    retry_period_s: float = setting(1.0, "a goal the action server did not take is retried at most this often "
                                         "(s)", name="gripper_retry_period_s", above=0.0)

    def validate(self) -> None:
        if not (0.0 < self.threshold < 1.0 and 0.0 <= self.hysteresis < min(self.threshold, 1 - self.threshold)):
            raise ValueError("need 0 < threshold < 1 and 0 <= hysteresis < distance of threshold to 0 and 1")
        if self.max_width_m <= 0:
            raise ValueError("max_width_m must be > 0")
        if not 0.0 <= self.grasp_width_m <= self.max_width_m:
            raise ValueError(f"grasp_width_m must lie in [0, {self.max_width_m}] m, got {self.grasp_width_m}")
        if self.epsilon_inner_m < 0 or self.epsilon_outer_m < 0:
            raise ValueError("grasp epsilons must be >= 0")
        if self.grasp_width_m - self.epsilon_inner_m <= 0.0:
            raise ValueError(f"grasp_width_m - grasp_epsilon_inner_m must be > 0 (got {self.grasp_width_m} - "
                             f"{self.epsilon_inner_m}): otherwise a grasp that closes on nothing succeeds")
        if self.retry_period_s <= 0:
            raise ValueError("retry_period_s must be > 0")


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
    """state: "open", "closed" or None (unknown until the first command). `events` counts outcomes by
    reason (grasp_succeeded, grasp_failed, goal_rejected, server_unavailable) for the bridge's status."""

    def __init__(self, config: GripperGoalConfig):
        config.validate()
        self.config = config
        self.state: str | None = None
        self.goal_active = False
        self.goals_sent = 0  # ids issued; a retried goal keeps its id
        self.preemptions = 0
        self.events: Counter = Counter()
        self._unsent: GraspGoal | MoveGoal | None = None  # the last goal, not delivered yet
        self._retry_at = 0.0

    def _goal(self, want: str, opening: float):
        c = self.config
        if want == "closed":
            return GraspGoal(c.grasp_width_m, c.grasp_speed_mps, c.grasp_force_n, c.epsilon_inner_m,
                             c.epsilon_outer_m)
        return MoveGoal(opening_to_width(opening, c.max_width_m), c.move_speed_mps)

    def update(self, opening: float, now: float = 0.0) -> list:
        """Feed the commanded opening at monotonic time `now` (s); returns the actions to perform now."""
        c = self.config
        want = self.state
        if opening < c.threshold - c.hysteresis:
            want = "closed"
        elif opening > c.threshold + c.hysteresis:
            want = "open"
        elif self.state is None:  # inside the band at start-up: take the nearer side
            want = "closed" if opening < c.threshold else "open"
        if want == self.state:
            if self._unsent is not None and now >= self._retry_at:
                goal, self._unsent = self._unsent, None  # paced retry of the same goal
                self.goal_active = True
                return [goal]
            return []
        actions = []
        if self.goal_active:
            actions.append(Cancel())
            self.preemptions += 1
        goal = self._goal(want, opening)
        self.state = want
        self.goal_active = True
        self._unsent = None
        self.goals_sent += 1
        goal.goal_id = self.goals_sent
        actions.append(goal)
        return actions

    def not_sent(self, goal, now: float = 0.0) -> None:
        """`goal` could not be sent (no action server): retry it from `now` + retry_period_s."""
        self.events["server_unavailable"] += 1
        if goal.goal_id == self.goals_sent:
            self._unsent = goal
            self._retry_at = now + self.config.retry_period_s
            self.goal_active = False

    def goal_rejected(self, goal_id: int) -> None:
        self.events["goal_rejected"] += 1
        self.goal_finished(goal_id)

    def grasp_result(self, goal_id: int, success: bool) -> None:
        """A Grasp ended; success False = the fingers did not stop on the expected object (e.g. nothing)."""
        self.events["grasp_succeeded" if success else "grasp_failed"] += 1
        self.goal_finished(goal_id)

    def goal_finished(self, goal_id: int) -> None:
        """Goal `goal_id` ended (succeeded, failed or was cancelled); a pre-empted one changes nothing."""
        if goal_id == self.goals_sent:
            self.goal_active = False

    def reset(self) -> None:
        self.state = None
        self.goal_active = False
        self._unsent = None
