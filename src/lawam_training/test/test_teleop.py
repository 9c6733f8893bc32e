"""Teleop: key presses move the EEF targets from the measured pose; the node publishes 1-step ActionChunks."""
import threading

import numpy as np
import pytest

from lawam_training.teleop_node import TeleopTargets, axis_angle_quat, quat_mul
from demo_data import private_ros_env, wait_for

rclpy = pytest.importorskip("rclpy")


def test_keys_move_targets_in_the_base_frame():
    t = TeleopTargets(["left", "right"], linear_step=0.01, angular_step=0.1)
    assert t.key("w") is None and not t.ready  # nothing moves before the measured pose is known
    t.reset({"left": np.array([0.3, 0.2, 0.5, 0, 0, 0, 1.0]), "right": np.array([0.3, -0.2, 0.5, 0, 0, 0, 1.0])})
    for k in "wwrd":
        t.key(k)
    np.testing.assert_allclose(t.targets["left"][:3], [0.32, 0.19, 0.51])
    t.key("2")
    t.key("j")  # yaw +0.1 rad on the right arm
    np.testing.assert_allclose(t.targets["right"][3:7], [0, 0, np.sin(0.05), np.cos(0.05)], atol=1e-12)
    np.testing.assert_allclose(t.targets["left"][3:7], [0, 0, 0, 1])
    assert t.targets["right"][7] == 1.0
    t.key(" ")
    assert t.targets["right"][7] == 0.0 and t.targets["left"][7] == 1.0
    assert t.key("h") == "home" and t.key("q") == "quit"
    # rotations compose: two +0.1 yaws = one 0.2 yaw
    q = quat_mul(axis_angle_quat(np.array([0, 0, 0.1])), axis_angle_quat(np.array([0, 0, 0.1])))
    np.testing.assert_allclose(q, axis_angle_quat(np.array([0, 0, 0.2])), atol=1e-12)


def test_teleop_node_publishes_targets_from_measured_pose():
    private_ros_env()
    from geometry_msgs.msg import PoseStamped
    from lawam_msgs.msg import ActionChunk
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from std_msgs.msg import String

    from lawam_training.teleop_node import TeleopNode

    ctx = rclpy.Context()
    rclpy.init(context=ctx, args=["--ros-args", "-p", "input:=topic", "-p", "control_rate_hz:=20.0",
                                  "-p", "pose_topics:=['arm=/test/pose']", "-p", "frame_id:=fr3_link0"])
    teleop = TeleopNode(context=ctx)
    probe = rclpy.create_node("teleop_probe", context=ctx)
    chunks = []
    probe.create_subscription(ActionChunk, "/lawam/teleop/command", chunks.append, 10)
    pose_pub = probe.create_publisher(PoseStamped, "/test/pose", qos_profile_sensor_data)
    key_pub = probe.create_publisher(String, "/lawam_teleop/key", 10)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(teleop)
    ex.add_node(probe)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        wait_for(lambda: pose_pub.get_subscription_count() and key_pub.get_subscription_count(), what="discovery")
        msg = PoseStamped()
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = 0.4, 0.0, 0.3
        msg.pose.orientation.x, msg.pose.orientation.w = 1.0, 0.0  # gripper pointing down
        pose_pub.publish(msg)
        wait_for(lambda: chunks, what="a first command")
        c = chunks[-1]
        assert c.embodiment == "franka_panda" and list(c.arm_names) == ["arm"] and c.header.frame_id == "fr3_link0"
        assert list(c.time_offsets_s) == [0.0] and c.control_rate_hz == 20.0 and len(c.arms[0].poses) == 1
        assert c.arms[0].poses[0].position.x == pytest.approx(0.4) and c.arms[0].gripper_openings[0] == 1.0
        key_pub.publish(String(data="ww "))
        wait_for(lambda: chunks[-1].arms[0].poses[0].position.x > 0.41, what="the moved target")
        last = chunks[-1].arms[0]
        assert last.poses[0].position.x == pytest.approx(0.42) and last.gripper_openings[0] == 0.0
        assert last.poses[0].orientation.x == pytest.approx(1.0)
        ids = [c.chunk_id for c in chunks]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
    finally:
        ex.shutdown()
        teleop.destroy_node()
        probe.destroy_node()
        rclpy.shutdown(context=ctx)
