"""Message <-> runtime conversions and small rclpy helpers shared by the nodes."""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Pose
from lawam_msgs.msg import ActionChunk, ArmTrajectory, ReasonCount
from rcl_interfaces.msg import ParameterDescriptor

from ..runtime import stamps
from ..runtime.chunk import Chunk


def logger_fn(node):
    """(level, message) -> node logger; one call site per severity (rclpy refuses to change the severity
    of a call site between calls)."""
    logger = node.get_logger()

    def log(level: str, message: str) -> None:
        if level == "error":
            logger.error(message)
        elif level == "warn":
            logger.warning(message)
        else:
            logger.info(message)
    return log


def declare_parameters(node, params) -> dict:
    """Declare every `lawam_policy.parameters.Param` in `params` on `node` (type from the default, the
    description, bounds in the descriptor) and return {name: value}. Raises ValueError (one line, naming the
    parameter) for a value outside its bounds; rclpy raises for a value of the wrong type."""
    from rcl_interfaces.msg import FloatingPointRange

    values = {}
    for p in params:
        descriptor = ParameterDescriptor(description=p.description, additional_constraints=p.bounds_text())
        value = node.declare_parameter(p.name, p.default, descriptor).value
        p.check(value)  # before rclpy's own range check, for the one-line message naming the bound
        lo, hi = p.min, p.max
        if p.type_name == "double" and (lo is not None or hi is not None):
            # Inclusive bounds also go into the descriptor (`ros2 param describe`, later set_parameters).
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(lo if lo is not None else -float("inf")),
                to_value=float(hi if hi is not None else float("inf")), step=0.0)]
            node.set_descriptor(p.name, descriptor)
        values[p.name] = value
    return values


def pose_to_arrays(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def fill_pose(pose: Pose, position, quat) -> Pose:
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in quat)
    return pose


def chunk_to_msg(chunk: Chunk) -> ActionChunk:
    msg = ActionChunk()
    stamps.fill_stamp(msg.header.stamp, stamps.seconds_to_ns(chunk.obs_stamp))
    msg.header.frame_id = chunk.frame_id
    msg.chunk_id = int(chunk.chunk_id)
    msg.embodiment = chunk.embodiment
    msg.arm_names = list(chunk.arm_names)
    msg.control_rate_hz = float(chunk.control_rate_hz)
    msg.horizon_s = float(chunk.horizon_s)
    msg.time_offsets_s = [float(t) for t in chunk.time_offsets]
    for a in range(len(chunk.arm_names)):
        arm = ArmTrajectory()
        arm.poses = [fill_pose(Pose(), chunk.positions[a, k], chunk.quats[a, k]) for k in range(chunk.num_steps)]
        arm.gripper_openings = [float(g) for g in chunk.grippers[a]]
        msg.arms.append(arm)
    return msg


def msg_to_chunk(msg: ActionChunk) -> Chunk:
    """Message -> Chunk without judging it (the executor validates; ragged arms become a bad_layout)."""
    h = len(msg.time_offsets_s)
    a = len(msg.arms)
    positions = np.full((a, h, 3), np.nan)
    quats = np.full((a, h, 4), np.nan)
    grippers = np.full((a, h), np.nan)
    ragged = False
    for i, arm in enumerate(msg.arms):
        if len(arm.poses) != h or len(arm.gripper_openings) != h:
            ragged = True
            continue
        for k, pose in enumerate(arm.poses):
            positions[i, k], quats[i, k] = pose_to_arrays(pose)
        grippers[i] = np.asarray(arm.gripper_openings, dtype=float)
    chunk = Chunk(obs_stamp=stamps.stamp_to_seconds(msg.header.stamp), time_offsets=np.asarray(msg.time_offsets_s, float),
                  positions=positions, quats=quats, grippers=grippers, arm_names=tuple(msg.arm_names),
                  chunk_id=int(msg.chunk_id), embodiment=msg.embodiment, control_rate_hz=msg.control_rate_hz,
                  horizon_s=msg.horizon_s, frame_id=msg.header.frame_id)
    if ragged or len(msg.arm_names) != a:
        chunk.arm_names = tuple(msg.arm_names) + ("<ragged>",)  # fails the layout check with a clear reason
    return chunk


def reason_counts(counter: dict) -> list:
    return [ReasonCount(reason=str(k), count=int(v)) for k, v in sorted(counter.items())]


def watch_time_jumps(node, threshold_s: float, on_jump):
    """Call `on_jump(delta_s)` (executor thread) when the node's clock jumps by more than `threshold_s`
    either way (rclpy's jump callbacks; under use_sim_time a /clock that goes back or skips ahead).

    The activation of ROS time (its first value, from zero, when /clock first arrives) is not a jump and
    is not reported. Returns the handle, which must stay referenced; None when `threshold_s` <= 0 (off).
    """
    from rclpy.clock import ClockChange, JumpThreshold
    from rclpy.duration import Duration

    if threshold_s <= 0:
        return None
    clock = node.get_clock()
    ns = stamps.seconds_to_ns(threshold_s)

    def post(jump) -> None:
        if jump.clock_change in (ClockChange.ROS_TIME_ACTIVATED, ClockChange.ROS_TIME_DEACTIVATED):
            return
        delta = jump.delta.nanoseconds
        if clock.now().nanoseconds - delta == 0:  # from "no time yet" to the first /clock: activation
            return
        on_jump(stamps.ns_to_seconds(delta))

    threshold = JumpThreshold(min_forward=Duration(nanoseconds=ns), min_backward=Duration(nanoseconds=-ns),
                              on_clock_change=False)
    return clock.create_jump_callback(threshold, post_callback=post)


def now_seconds(node) -> float:
    """The node's clock (ROS time) in seconds."""
    return stamps.ns_to_seconds(node.get_clock().now().nanoseconds)
