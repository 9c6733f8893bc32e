"""lawam_msgs cross two processes over DDS on localhost: a message and a service round trip."""
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import Pose  # noqa: E402
from lawam_msgs.msg import ActionChunk, ArmTrajectory  # noqa: E402
from lawam_msgs.srv import SetTask  # noqa: E402

PUBLISHER = textwrap.dedent("""
    import sys, rclpy
    from geometry_msgs.msg import Pose
    from lawam_msgs.msg import ActionChunk, ArmTrajectory
    from lawam_msgs.srv import SetTask
    rclpy.init()
    node = rclpy.create_node("roundtrip_peer")
    pub = node.create_publisher(ActionChunk, "/test/chunk", 10)
    received = []
    def on_set_task(req, resp):
        received.append(req.task)
        resp.success, resp.message = True, "task=" + req.task[::-1]
        return resp
    node.create_service(SetTask, "/test/set_task", on_set_task)
    msg = ActionChunk(chunk_id=42, embodiment="quanta_x1", arm_names=["left", "right"], control_rate_hz=10.0,
                      horizon_s=0.2, time_offsets_s=[0.0, 0.1])
    msg.header.frame_id = "base_link"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    for arm in range(2):
        poses = []
        for k in range(2):
            p = Pose(); p.position.x = arm + 0.1 * k; p.orientation.w = 1.0
            poses.append(p)
        msg.arms.append(ArmTrajectory(poses=poses, gripper_openings=[0.25 * arm, 1.0]))
    # Publish until the test subscriber (our parent) has taken the sample and called the service.
    while rclpy.ok() and not received:
        pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.05)
    for _ in range(20):
        rclpy.spin_once(node, timeout_sec=0.05)
    print("peer done", received, flush=True)
""")


def test_action_chunk_and_service_cross_processes(ros_env, worker_domain_id):
    peer = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=worker_domain_id)
    try:
        node = rclpy.create_node("roundtrip_test", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        got = []
        node.create_subscription(ActionChunk, "/test/chunk", got.append, 10)
        client = node.create_client(SetTask, "/test/set_task")
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline and peer.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert got, "no ActionChunk arrived from the other process"
        msg = got[0]
        assert (msg.chunk_id, msg.embodiment, list(msg.arm_names)) == (42, "quanta_x1", ["left", "right"])
        assert msg.header.frame_id == "base_link" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345)
        assert list(msg.time_offsets_s) == [0.0, 0.1] and msg.control_rate_hz == 10.0
        assert [p.position.x for p in msg.arms[1].poses] == pytest.approx([1.0, 1.1])
        assert list(msg.arms[1].gripper_openings) == [0.25, 1.0]

        assert client.wait_for_service(timeout_sec=30)
        future = client.call_async(SetTask.Request(task="fold the towel"))
        executor.spin_until_future_complete(future, timeout_sec=30)
        assert future.result().success and future.result().message == "task=lewot eht dlof"
        out, _ = peer.communicate(timeout=30)
        assert peer.returncode == 0, out
        assert "['fold the towel']" in out
    finally:
        peer.kill()
        rclpy.shutdown(context=context)
