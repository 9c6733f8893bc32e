"""Training hands the deployment a checkpoint it can run: demos -> finetune (stage 1 and 2) ->
checkpoint -> the policy node process loads it and publishes chunks with the trained layout and T."""
import os
import subprocess
import time

import numpy as np
import pytest

pytest.importorskip("lerobot")
rclpy = pytest.importorskip("rclpy")
from lawam_msgs.msg import ActionChunk, PolicyStatus  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_training.episode_store import EpisodeStore, make_features  # noqa: E402
from lawam_training.finetune import main as finetune  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow
T = 0.4


def _demos(root):
    store = EpisodeStore(root, 10, make_features(get_layout("franka_panda"), {"primary": (32, 32)}), "franka_panda")
    for e in range(2):
        rec = store.begin_episode("put the red cube in the bowl")
        for k in range(12):
            img = np.full((32, 32, 3), 20 * k, np.uint8)
            s = np.array([0.5 + 0.01 * k, 0.0, 0.4, 1, 0, 0, 0, 1.0], np.float32)
            rec.add_frame({"primary": img}, s, s)
        rec.commit()
    return root


def test_finetuned_checkpoint_drives_the_policy_node(tmp_path, ros_env, worker_domain_id):
    demos, ckpt = _demos(tmp_path / "demos"), tmp_path / "ckpt"
    assert finetune(["--dataset", str(demos), "--output", str(ckpt), "--steps", "2", "--batch-size", "2",
                     "--num-workers", "0", "--horizon", str(T), "--no-progress"]) == 0
    node = subprocess.Popen(
        [os.path.join(ROOT, "install", "lawam_policy", "lib", "lawam_policy", "policy_node"), "--ros-args",
         "-p", f"checkpoint:={ckpt}", "-p", "task:=put the red cube in the bowl", "-p", "status_rate_hz:=5.0"],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=worker_domain_id)
    try:
        tester = rclpy.create_node("ckpt_tester", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(tester)
        chunks, status = [], []
        tester.create_subscription(ActionChunk, "/lawam/action_chunk", chunks.append, 10)
        tester.create_subscription(PolicyStatus, "/lawam/policy_status", status.append, 10)
        cam = tester.create_publisher(Image, "/camera/color/image_raw", qos_profile_sensor_data)

        def publish_frame():
            msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=bytes(48 * 64 * 3))
            msg.header.stamp = tester.get_clock().now().to_msg()
            cam.publish(msg)
        tester.create_timer(0.1, publish_frame)
        deadline = time.monotonic() + 240
        while not chunks and time.monotonic() < deadline and node.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        assert chunks, f"no chunk from the policy node; status: {status[-1] if status else None}"
        c = chunks[0]
        rate = c.control_rate_hz
        assert c.horizon_s == pytest.approx(T) and len(c.time_offsets_s) == round(T * rate)
        assert c.embodiment == "franka_panda" and list(c.arm_names) == ["arm"]
        while not any(s.chunks_produced for s in status) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert str(ckpt) in status[-1].model_id
    finally:
        rclpy.shutdown(context=context)
        node.terminate()
        out = node.communicate(timeout=30)[0]
    assert "Traceback" not in out, out[-3000:]
