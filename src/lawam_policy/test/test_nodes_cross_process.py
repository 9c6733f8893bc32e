"""End to end over DDS, every node its own process: test camera -> policy node (fake model: the test-support
executable test/support/fake_policy_node.py) -> Franka bridge -> command stream received here. Then the
camera stops and the bridge must hold (watchdog)."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

PKG = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PKG))  # before the package is installed

rclpy = pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from lawam_msgs.msg import ActionChunk, BridgeStatus, PolicyStatus  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402

from lawam_policy.nodes.common import fill_pose  # noqa: E402
from ros_isolation import next_domain_id  # noqa: E402

CONFIG = PKG.parents[1] / "config"
FAKE_POLICY = PKG.parents[1] / "test" / "support" / "fake_policy_node.py"

CAMERA = r"""
import sys, rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("test_camera")
pub = node.create_publisher(Image, "/camera/color/image_raw", qos_profile_sensor_data)
h, w = 96, 128
data = bytes(range(256)) * (h * w * 3 // 256)
def tick():
    msg = Image(height=h, width=w, encoding="rgb8", step=w * 3, data=data)
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id = "camera"
    pub.publish(msg)
node.create_timer(1 / 15, tick)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""


def start(cmd, env, log_path):
    log = open(log_path, "w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_camera_to_policy_to_bridge_command_stream(tmp_path):
    domain = next_domain_id()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join([str(PKG), os.environ.get("PYTHONPATH", "")]))
    py = sys.executable
    procs = {
        "camera": start([py, "-c", CAMERA], env, tmp_path / "camera.log"),
        "policy": start([py, str(FAKE_POLICY), "--ros-args",
                         "--params-file", str(CONFIG / "policy.yaml"),
                         "-p", "task:=put the red cube in the bowl", "-p", "status_rate_hz:=5.0"],
                        env, tmp_path / "policy.log"),
        "bridge": start([py, "-m", "lawam_policy.nodes.franka_bridge", "--ros-args",
                         "--params-file", str(CONFIG / "franka_bridge.yaml"),
                         "-p", "control_rate_hz:=250.0", "-p", "startup_ramp_s:=0.5"],
                        env, tmp_path / "bridge.log"),
    }
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("cross_process_test", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin_until(cond, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            executor.spin_once(timeout_sec=0.02)
            for name, p in procs.items():
                if p.poll() is not None and name != "camera":
                    raise AssertionError(f"{name} exited: {(tmp_path / (name + '.log')).read_text()[-3000:]}")
        return cond()

    cmds, widths, bridge_status, policy_status, chunks = [], [], [], [], []
    node.create_subscription(PoseStamped, "/cartesian_impedance_example_controller/equilibrium_pose",
                             cmds.append, 100)
    node.create_subscription(Float64, "/franka_gripper/width_command", widths.append, 10)
    node.create_subscription(BridgeStatus, "/lawam/bridge_status", bridge_status.append, 10)
    node.create_subscription(PolicyStatus, "/lawam/policy_status", policy_status.append, 10)
    node.create_subscription(ActionChunk, "/lawam/action_chunk", chunks.append, 10)
    measured = node.create_publisher(PoseStamped, "/franka_robot_state_broadcaster/current_pose",
                                     qos_profile_sensor_data)
    start_pose = PoseStamped()
    start_pose.header.frame_id = "panda_link0"
    fill_pose(start_pose.pose, [0.5, 0.0, 0.4], [1.0, 0.0, 0.0, 0.0])  # the fake model circles around here
    node.create_timer(0.05, lambda: measured.publish(start_pose))  # like the robot state broadcaster
    try:
        assert spin_until(lambda: measured.get_subscription_count() > 0)
        assert spin_until(lambda: len(chunks) >= 3), "no chunks from the policy node"
        assert spin_until(lambda: bridge_status and bridge_status[-1].chunks_received >= 3)
        assert spin_until(lambda: len(cmds) > 200)
        s = bridge_status[-1]
        # chunks that beat our first measured pose to the bridge are refused as such; nothing else may be
        assert {r.reason for r in s.rejections} <= {"no_measured_pose"}, [(r.reason, r.count) for r in s.rejections]
        assert np.isfinite(s.last_latency_obs_to_first_command_ms) and s.last_latency_obs_to_first_command_ms > 0
        assert spin_until(lambda: policy_status and policy_status[-1].state == PolicyStatus.STATE_RUNNING)
        assert policy_status[-1].model_id.startswith("injected:")
        # commands: in the robot frame, finite, unit quaternions, within the speed limit, and moving
        tail = cmds[-200:]
        assert all(c.header.frame_id == "panda_link0" for c in tail)
        p = np.array([[c.pose.position.x, c.pose.position.y, c.pose.position.z] for c in tail])
        q = np.array([[c.pose.orientation.x, c.pose.orientation.y, c.pose.orientation.z, c.pose.orientation.w]
                      for c in tail])
        assert np.all(np.isfinite(p)) and np.allclose(np.linalg.norm(q, axis=1), 1.0)
        assert np.linalg.norm(p - [0.5, 0.0, 0.4], axis=1).max() < 0.03 + 1e-3  # on the fake model's circle
        assert np.ptp(p[:, 1]) > 1e-4  # following the chunks, not holding
        stamps = np.array([c.header.stamp.sec + 1e-9 * c.header.stamp.nanosec for c in tail])
        steps = np.linalg.norm(np.diff(p, axis=0), axis=1)
        assert np.all(steps <= 0.5 * np.maximum(np.diff(stamps), 1 / 250) + 1e-6)
        assert widths and 0.0 <= widths[-1].data <= 0.08

        # the camera stops: no new chunks, the bridge holds and counts it (watchdog)
        stop(procs["camera"])
        assert spin_until(lambda: any(r.reason == "no_chunk" and r.count > 0 for r in bridge_status[-1].holds))
        n = len(cmds)
        assert spin_until(lambda: len(cmds) > n + 50)
        held = np.array([[c.pose.position.x, c.pose.position.y, c.pose.position.z] for c in cmds[-20:]])
        assert np.ptp(held, axis=0).max() < 1e-9
        assert spin_until(lambda: policy_status[-1].state == PolicyStatus.STATE_WAITING_FOR_IMAGES)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        for p in procs.values():
            stop(p)
