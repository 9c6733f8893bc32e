"""Shared rclpy adapter of the robot bridges: ActionChunk in, PoseStamped targets out at the controller rate.

All decisions live in runtime.BridgeCore; this node only moves messages. The control loop runs in its own
thread on the steady clock at `control_rate_hz` (an rclpy timer at 1 kHz loses ticks to executor overhead:
~870 Hz and 5-6 ms p99 period on the 2-core CI machine, vs. 1 kHz and 2-3 ms with the thread), while "now"
(chunk due times, command stamps) is the ROS clock: under `use_sim_time` a tick whose sim time has not
advanced sends nothing, so the stream follows the twin's /clock instead of repeating stale commands.
Subscriptions and services run in the executor; a lock keeps them and the tick apart.

A jump of the ROS clock (rclpy's jump callback, threshold `time_jump_threshold_s`) is handed to the core,
which treats it like a Reset; the gripper goal logic is reset with it. Health goes to /diagnostics at
`diagnostics_rate_hz` beside BridgeStatus.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from lawam_msgs.msg import ActionChunk, BridgeStatus
from lawam_msgs.srv import Reset, SetEnabled
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from ..runtime import stamps
from ..runtime.bridge_core import BridgeConfig, BridgeCore, TickResult
from ..runtime.health import BridgeHealth
from ..runtime.safety import SafetyLimits
from ..parameters import field_values
from .common import (declare_parameters, fill_pose, logger_fn, msg_to_chunk, now_seconds, pose_to_arrays, reason_counts,
                     watch_time_jumps)
from .diagnostics import DiagnosticsPublisher

COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
CHUNK_QOS = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


class BridgeNode(Node):
    """Base class; subclasses pass their parameter list, implement `send_grippers` and call `start_control()`
    at the end of their __init__ (the control thread must not tick before their gripper outputs exist)."""

    def __init__(self, node_name: str, params, **kwargs):
        """`params`: every parameter of this bridge (lawam_policy.parameters, e.g. franka_bridge_params());
        they are declared at once and kept in `self.params` for the subclass."""
        super().__init__(node_name, **kwargs)
        v = self.params = declare_parameters(self, params)
        self.embodiment = v["embodiment"]
        self.arm_names = tuple(v["arm_names"])
        self.frame_id = v["frame_id"]
        chunk_topic = v["chunk_topic"]
        target_topics = list(v["target_topics"])
        measured_topics = list(v["measured_pose_topics"])
        self.control_rate_hz = float(v["control_rate_hz"])
        status_rate = float(v["status_rate_hz"])
        self.config = BridgeConfig(
            arm_names=self.arm_names, embodiment=self.embodiment, control_rate_hz=self.control_rate_hz,
            limits=SafetyLimits(**field_values(SafetyLimits, v)), frame_id=self.frame_id,
            initial_gripper=_optional_opening(v["initial_gripper"]), **field_values(BridgeConfig, v))
        if len(target_topics) != len(self.arm_names) or len(measured_topics) != len(self.arm_names):
            raise ValueError(f"need one target and one measured-pose topic per arm {list(self.arm_names)}")
        self.core = BridgeCore(self.config, log=logger_fn(self))
        self.last_error = ""  # a failing control tick, for the diagnostics

        self._target_pubs = [self.create_publisher(PoseStamped, t, COMMAND_QOS) for t in target_topics]
        self._status_pub = self.create_publisher(BridgeStatus, v["status_topic"], 10)
        self.create_subscription(ActionChunk, chunk_topic, self._on_chunk, CHUNK_QOS)
        for i, topic in enumerate(measured_topics):
            self.create_subscription(PoseStamped, topic, lambda m, i=i: self._on_measured(i, m),
                                     qos_profile_sensor_data)
        self.create_service(SetEnabled, "~/set_enabled", self._on_set_enabled)
        self.create_service(Reset, "~/reset", self._on_reset)
        self._lock = threading.Lock()  # BridgeCore is used from the executor and the control thread
        self._cmd = PoseStamped()
        self._cmd.header.frame_id = self.frame_id
        self.create_timer(1.0 / status_rate, self._publish_status, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._jump_handle = watch_time_jumps(self, self.config.time_jump_threshold_s, self._on_time_jump)
        self._health = BridgeHealth()
        self.diagnostics = DiagnosticsPublisher(self, "bridge", self.embodiment, self._health_summary,
                                                v["diagnostics_rate_hz"])
        self._stop = threading.Event()
        self._control = threading.Thread(target=self._control_loop, name=f"{node_name}-control", daemon=True)
        self.get_logger().info(f"{node_name}: {self.embodiment} arms {list(self.arm_names)} -> {target_topics} at "
                               f"{self.control_rate_hz:g} Hz, chunks from {chunk_topic}")

    # ---- callbacks -----------------------------------------------------------------------------
    def now_s(self) -> float:
        return now_seconds(self)

    def _on_time_jump(self, delta_s: float) -> None:
        with self._lock:
            self.core.time_jump(delta_s, self.now_s())
            self.reset_grippers()

    def _on_chunk(self, msg: ActionChunk) -> None:
        chunk = msg_to_chunk(msg)
        with self._lock:
            self.core.on_chunk(chunk, self.now_s())

    def _on_measured(self, arm: int, msg: PoseStamped) -> None:
        pos, q = pose_to_arrays(msg.pose)
        with self._lock:
            self.core.on_measured_pose(arm, pos, q, stamps.stamp_to_seconds(msg.header.stamp))

    def _on_set_enabled(self, request, response):
        with self._lock:
            self.core.set_enabled(request.enabled)
        response.success = True
        response.message = "motion enabled" if request.enabled else "motion disabled: holding"
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request, response):
        with self._lock:
            self.core.reset(now=self.now_s())
            self.reset_grippers()
        response.success = True
        response.message = ("bridge reset: sending nothing until a chunk is accepted, then starting from the "
                            "newest measured pose")
        self.get_logger().info(response.message)
        return response

    def _control_loop(self) -> None:
        period = 1.0 / self.control_rate_hz
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += period
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -period:  # fell behind (CPU starved): skip the missed ticks, do not burst
                deadline = time.monotonic()
            try:
                self._tick()
            except Exception as err:  # noqa: BLE001 - a failing tick must be visible, not kill the stream
                if not self.context.ok():
                    return
                self.last_error = f"control tick failed: {type(err).__name__}: {err}"
                self.get_logger().error(self.last_error, throttle_duration_sec=5.0)

    def start_control(self) -> None:
        self._control.start()

    def destroy_node(self):
        self._stop.set()
        if self._control.is_alive():
            self._control.join(timeout=2.0)
        return super().destroy_node()

    def _tick(self) -> None:
        with self._lock:  # the clock is read under the lock: a jump handled meanwhile is never undone
            now = self.get_clock().now()
            t = stamps.ns_to_seconds(now.nanoseconds)
            result = self.core.tick(t)
        if result is None or result.commands is None:
            return
        stamps.fill_stamp(self._cmd.header.stamp, now.nanoseconds)
        for pub, cmd in zip(self._target_pubs, result.commands):
            fill_pose(self._cmd.pose, cmd.position, cmd.quat)
            pub.publish(self._cmd)
        if result.gripper_active:  # nothing before the first accepted chunk: the hand keeps what it holds
            self.send_grippers(result, t)

    def send_grippers(self, result: TickResult, now: float) -> None:
        raise NotImplementedError

    def reset_grippers(self) -> None:
        pass

    def status(self) -> dict:
        with self._lock:
            s = self.core.status()
        s["events"] = {**s["events"], **self.gripper_events()}
        s["last_error"] = self.last_error
        return s

    def gripper_events(self) -> dict:
        """Gripper outcomes by reason (e.g. grasp_failed), for BridgeStatus.events and the diagnostics."""
        return {}

    def _health_summary(self):
        return self._health.summary(self.status())

    def _publish_status(self) -> None:
        s = self.status()
        msg = BridgeStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.bridge_name = self.get_name()
        msg.embodiment = self.embodiment
        msg.enabled = s["enabled"]
        msg.commands_sent = s["commands_sent"]
        msg.chunks_received = s["chunks_received"]
        msg.holds = reason_counts(s["holds"])
        msg.clamps = reason_counts(s["clamps"])
        msg.rejections = reason_counts(s["rejections"])
        msg.events = reason_counts(s["events"])
        msg.max_seam_step_m = float(s["max_seam_step_m"])
        msg.last_latency_obs_to_first_command_ms = float(s["last_latency_obs_to_first_command_ms"])
        self._status_pub.publish(msg)


class TopicGrippers:
    """Gripper commands as std_msgs/Float64 on one topic per arm, sent when the value changes (and at
    `keepalive_s` otherwise) rather than at the full control rate."""

    def __init__(self, node: Node, topics: list[str], scale: float = 1.0, keepalive_s: float = 0.1):
        from std_msgs.msg import Float64
        self._msg_type = Float64
        self._pubs = [node.create_publisher(Float64, t, COMMAND_QOS) for t in topics]
        self.scale = scale
        self.keepalive_s = keepalive_s
        self._last = [None] * len(topics)
        self._last_time = [-np.inf] * len(topics)

    def send(self, openings: list[float], now: float) -> None:
        for i, (pub, opening) in enumerate(zip(self._pubs, openings)):
            value = float(opening) * self.scale
            if self._last[i] is None or abs(value - self._last[i]) > 1e-6 or now - self._last_time[i] >= \
                    self.keepalive_s or now < self._last_time[i]:
                pub.publish(self._msg_type(data=value))
                self._last[i], self._last_time[i] = value, now


def _optional_opening(value: float) -> float | None:
    return None if value < 0 else float(value)
