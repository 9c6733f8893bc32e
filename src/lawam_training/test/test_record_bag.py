"""lawam-record-bag records live topics into an MCAP rosbag2 bag that the importer (and ros2 bag) read."""
import signal
import subprocess
import sys
import threading

import pytest
import yaml

from demo_data import DemoPublisher, private_ros_env, wait_for

rclpy = pytest.importorskip("rclpy")


def test_record_bag_then_import(tmp_path):
    env = private_ros_env()
    bag = tmp_path / "demo_bag"
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bag_test", context=ctx)
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String
    from rclpy.qos import QoSProfile
    task_pub = node.create_publisher(String, "/lawam/task", QoSProfile(depth=10))
    pub = DemoPublisher(node, ["/camera/color/image_raw"], {"arm": "/franka_robot_state_broadcaster/current_pose"},
                        gripper_topic="/franka_gripper/joint_states")
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    log = open(tmp_path / "record.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "lawam_training.record_bag", "-o", str(bag)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        pub.start()
        wait_for(lambda: proc.poll() is None and all(p.get_subscription_count() for p in pub.publishers())
                 and task_pub.get_subscription_count(), 60, what="the bag recorder's subscriptions")
        task_pub.publish(String(data="stack the blocks"))
        cam0 = pub.counts["cam"]
        wait_for(lambda: pub.counts["cam"] - cam0 >= 45, what="1.5 s of demo")
        task_pub.publish(String(data="stack the blocks"))
    finally:
        pub.stop()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
        log.close()
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    out = (tmp_path / "record.log").read_text()
    assert rc == 0, out
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["version"] >= 8
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts["/camera/color/image_raw"] >= 40 and counts["/lawam/teleop/command"] >= 15
    assert counts["/lawam/task"] >= 1 and sum(counts.values()) == meta["message_count"]
    types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in meta["topics_with_message_count"]}
    assert types["/lawam/teleop/command"] == "lawam_msgs/msg/ActionChunk"

    from lawam_training.video_decode import PyAVLeRobotDataset

    from lawam_training.bag_import import main as bag_main
    assert bag_main([str(bag), "-o", str(tmp_path / "ds"), "--fps", "10"]) == 0
    ds = PyAVLeRobotDataset("local/x", root=tmp_path / "ds")
    assert len(ds) >= 10 and ds[0]["task"] == "stack the blocks"
    assert ds[len(ds) - 1]["action"][0].item() == pytest.approx(0.7)


def test_record_bag_refuses_existing_output(tmp_path):
    r = subprocess.run([sys.executable, "-m", "lawam_training.record_bag", "-o", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "already exists" in r.stderr
