"""Franka bridge (franka_ros2 conventions): Cartesian equilibrium-pose targets + gripper actions.

Targets go to the Cartesian impedance controller's PoseStamped topic; the controller must track a streamed
target with impedance. Two profiles (config/franka_bridge.yaml = Panda naming, franka_bridge_fr3.yaml = FR3 on
franka_ros2 jazzy) set frames, topics and gripper action names; the README says which franka_ros2 release
each matches. The gripper: franka_msgs Grasp/Move actions when franka_msgs is importable (sent only on
threshold crossings with hysteresis, pre-empted on reversal, a Grasp describing the expected object so
that an empty grasp fails and is counted), otherwise a std_msgs/Float64 width (m) on a topic. No gripper
command is sent before the first accepted chunk unless `initial_gripper` asks for one.
"""
from __future__ import annotations

import importlib
import threading
import time

from rclpy.action import ActionClient

from ..parameters import field_values, franka_bridge_params
from ..runtime.bridge_core import TickResult
from ..runtime.gripper import Cancel, GraspGoal, GripperGoalConfig, GripperGoalLogic, MoveGoal
from .bridge_node import BridgeNode, TopicGrippers
from .main import main_for


def load_franka_actions():
    """(Grasp, Move) from franka_msgs, or None when it is not installed."""
    try:
        mod = importlib.import_module("franka_msgs.action")
        return mod.Grasp, mod.Move
    except ImportError:
        return None


class FrankaGripperActions:
    """Sends the GripperGoalLogic's goals through Grasp/Move action clients.

    `grasp_type` / `move_type` are action types shaped like franka_msgs' (Grasp.Goal: width, epsilon.inner,
    epsilon.outer, speed, force; Move.Goal: width, speed); the clients are injectable for tests.
    """

    def __init__(self, node, logic: GripperGoalLogic, grasp_type=None, move_type=None, grasp_name="",
                 move_name="", grasp_client=None, move_client=None):
        self.node = node
        self.logic = logic
        self.grasp_type, self.move_type = grasp_type, move_type
        self.grasp_client = grasp_client or ActionClient(node, grasp_type, grasp_name)
        self.move_client = move_client or ActionClient(node, move_type, move_name)
        self._handle = None  # goal handle of the running goal
        self._warned_unavailable = False
        self.clock = time.monotonic  # paces retries; injectable for tests
        # update() runs in the bridge's control thread, the goal callbacks in the executor; re-entrant
        # because rclpy may run a callback at once when its future is already done.
        self._lock = threading.RLock()

    def update(self, opening: float) -> None:
        with self._lock:
            self._update(opening)

    def reset(self) -> None:
        with self._lock:
            self.logic.reset()

    def events(self) -> dict:
        with self._lock:
            return dict(self.logic.events)

    def _update(self, opening: float) -> None:
        for action in self.logic.update(opening, self.clock()):
            if isinstance(action, Cancel):
                if self._handle is not None:
                    self._handle.cancel_goal_async()
                    self._handle = None
            elif isinstance(action, GraspGoal):
                goal = self.grasp_type.Goal()
                goal.width, goal.speed, goal.force = action.width, action.speed, action.force
                goal.epsilon.inner, goal.epsilon.outer = action.epsilon_inner, action.epsilon_outer
                self._send(self.grasp_client, goal, action)
            elif isinstance(action, MoveGoal):
                goal = self.move_type.Goal()
                goal.width, goal.speed = action.width, action.speed
                self._send(self.move_client, goal, action)

    def _send(self, client, goal, action) -> None:
        if not client.server_is_ready():
            if not self._warned_unavailable:
                self.node.get_logger().warning(
                    f"gripper action server {getattr(client, '_action_name', '')!r} not available; retrying "
                    f"every {self.logic.config.retry_period_s:g} s (counted as server_unavailable)")
                self._warned_unavailable = True
            self.logic.not_sent(action, self.clock())
            return
        self._warned_unavailable = False
        goal_id = action.goal_id
        is_grasp = isinstance(action, GraspGoal)
        future = client.send_goal_async(goal)
        future.add_done_callback(lambda f: self._on_goal_response(f, goal_id, is_grasp))

    def _on_goal_response(self, future, goal_id: int, is_grasp: bool = False) -> None:
        with self._lock:
            self._goal_response(future, goal_id, is_grasp)

    def _goal_response(self, future, goal_id: int, is_grasp: bool) -> None:
        handle = future.result()
        if handle is None or not handle.accepted:
            self.node.get_logger().warning(f"gripper goal {goal_id} was rejected")
            self.logic.goal_rejected(goal_id)
            return
        if goal_id != self.logic.goals_sent:  # pre-empted before it was accepted
            handle.cancel_goal_async()
            return
        self._handle = handle
        handle.get_result_async().add_done_callback(lambda f: self._on_result(f, goal_id, is_grasp))

    def _on_result(self, future, goal_id: int, is_grasp: bool = False) -> None:
        with self._lock:
            self._result(future, goal_id, is_grasp)

    def _result(self, future, goal_id: int, is_grasp: bool) -> None:
        result = future.result()
        res = getattr(result, "result", None)
        success = res is None or not hasattr(res, "success") or bool(res.success)
        if goal_id == self.logic.goals_sent:
            self._handle = None
        if is_grasp:
            if not success:
                # The fingers did not stop on the expected object (e.g. closed on nothing): a failed grasp.
                self.node.get_logger().warning(f"grasp {goal_id} failed: {getattr(res, 'error', '')} "
                                               f"(counted as grasp_failed)")
            self.logic.grasp_result(goal_id, success)
            return
        if not success:
            self.node.get_logger().info(f"gripper goal {goal_id} finished without success: "
                                        f"{getattr(res, 'error', '')}")
        self.logic.goal_finished(goal_id)


class FrankaBridge(BridgeNode):
    def __init__(self, node_name: str = "franka_bridge", actions=None, **kwargs):
        super().__init__(node_name, franka_bridge_params(), **kwargs)
        v = self.params
        mode = v["gripper_mode"]
        cfg = GripperGoalConfig(**field_values(GripperGoalConfig, v))
        self.gripper_width_max = cfg.max_width_m
        grasp_action, move_action, width_topic = v["grasp_action"], v["move_action"], v["gripper_width_topic"]
        cfg.validate()
        actions = actions if actions is not None else load_franka_actions()
        if mode == "action" and actions is None:
            raise RuntimeError("gripper_mode 'action' needs franka_msgs (build it from franka_ros2's sources); "
                               "use 'topic' or 'auto' without it")
        self.gripper_actions = None
        self.gripper_topic = None
        if mode in ("auto", "action") and actions is not None:
            self.gripper_actions = FrankaGripperActions(self, GripperGoalLogic(cfg), actions[0], actions[1],
                                                        grasp_action, move_action)
            self.get_logger().info(f"gripper: franka_msgs actions {grasp_action}, {move_action}")
        elif mode in ("auto", "topic"):
            self.gripper_topic = TopicGrippers(self, [width_topic], scale=self.gripper_width_max)
            self.get_logger().info(f"gripper: std_msgs/Float64 width (m) on {width_topic}")
        self.start_control()

    def send_grippers(self, result: TickResult, now: float) -> None:
        opening = result.commands[0].gripper
        if self.gripper_actions is not None:
            self.gripper_actions.update(opening)
        elif self.gripper_topic is not None:
            self.gripper_topic.send([opening], now)

    def reset_grippers(self) -> None:
        if self.gripper_actions is not None:
            self.gripper_actions.reset()

    def gripper_events(self) -> dict:
        return self.gripper_actions.events() if self.gripper_actions is not None else {}


main = main_for(FrankaBridge)


if __name__ == "__main__":
    raise SystemExit(main())
