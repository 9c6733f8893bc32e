"""A whole system as `make demo` runs it: several processes exchanging lawam_msgs over DDS.

`lawam launch franka_pick_place checkpoint:=preset:tiny` brings up the MuJoCo twin, the policy node
(untrained tiny preset) and the Franka bridge; this test listens like an outside observer on its own domain, then stops the system
with Ctrl-C and checks the demo outputs.
"""
import json
import os
import signal
import subprocess
import time
import warnings

import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from lawam_msgs.msg import ActionChunk, BridgeStatus, PolicyStatus  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from ros_isolation import isolated_ros_env, next_domain_id  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.slow
CAMERA = "/camera/color/image_raw"


def _observe(domain_id, until, timeout, give_up=None):
    """Listen on `domain_id` until `until(seen)`, `give_up(seen, elapsed_s)` or `timeout` (s)."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    seen = {"chunks": [], "status": [], "commands": 0, "images": 0, "policy": None, "twin": None}
    try:
        node = rclpy.create_node("e2e_observer", context=context)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        node.create_subscription(ActionChunk, "/lawam/action_chunk", seen["chunks"].append, 10)
        node.create_subscription(BridgeStatus, "/lawam/bridge_status", seen["status"].append, 10)
        node.create_subscription(PolicyStatus, "/lawam/policy_status", lambda m: seen.update(policy=m), 10)
        node.create_subscription(String, "/franka_twin/stats", lambda m: seen.update(twin=json.loads(m.data)), 10)

        def count(key):
            def on_message(_):
                seen[key] += 1
            return on_message
        node.create_subscription(PoseStamped, "/cartesian_impedance_example_controller/equilibrium_pose",
                                 count("commands"), qos_profile_sensor_data)
        node.create_subscription(Image, CAMERA, count("images"), qos_profile_sensor_data)
        start = time.monotonic()
        while time.monotonic() - start < timeout and not until(seen):
            if give_up is not None and give_up(seen, time.monotonic() - start):
                break
            executor.spin_once(timeout_sec=0.1)
    finally:
        rclpy.shutdown(context=context)
    return seen


def _diagnosis(seen) -> str:
    policy = seen["policy"]
    state = "no PolicyStatus" if policy is None else f"policy state {policy.state}: {policy.state_detail!r}"
    published = (seen["twin"] or {}).get("images_published", "no twin stats")
    return (f"observer: {len(seen['chunks'])} chunks, {seen['images']} images on {CAMERA}, {seen['commands']} "
            f"commands; {state}; twin images published: {published}")


def _run_system(out_dir, log_path, domain_id, give_up=None):
    """Launch, observe, stop with Ctrl-C; (seen, exit code, log text)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [os.path.join(ROOT, ".venv", "bin", "lawam"), "launch", "franka_pick_place",
             "checkpoint:=preset:tiny", f"demo_output:={out_dir}", "--duration", "400", "--domain-id", str(domain_id)],
            env=isolated_ros_env(domain_id), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # Three chunks more than the summary needs: the demo monitor is another process and may join the
        # domain a chunk or two after this observer (CI, machine loaded: it had 2 when the observer had 3).
        # And a bridge status that counts a chunk: it is published on a steady timer, so the newest one seen
        # when the chunks are in may predate them (CI: 6 chunks seen, the last status still at 0).
        seen = _observe(domain_id, lambda s: len(s["chunks"]) >= 6 and s["commands"] >= 50 and _bridge_got_chunk(s),
                        timeout=300, give_up=give_up)
        assert proc.poll() is None, f"system exited early:\n{log_path.read_text()[-4000:]}"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    return seen, code, log_path.read_text()


def _bridge_got_chunk(seen) -> bool:
    return bool(seen["status"]) and seen["status"][-1].chunks_received >= 1


def _images_never_delivered(seen, elapsed_s) -> bool:
    """The twin has published images for a minute and neither the policy nor this observer got one."""
    published = sum(((seen["twin"] or {}).get("images_published") or {}).values())
    return elapsed_s > 60 and not seen["chunks"] and seen["images"] == 0 and published > 100


def test_franka_pick_place_system_runs_end_to_end(worker_domain_id, tmp_path):
    out_dir = tmp_path / "demo"
    log_path = tmp_path / "launch.log"
    seen, code, log = _run_system(out_dir, log_path, worker_domain_id, give_up=_images_never_delivered)
    if _images_never_delivered(seen, elapsed_s=61):
        # Seen once in CI (2 cores, loaded): the twin published all along, the bridge and the monitor got its
        # poses, and no image reached any subscriber for 300 s; not reproduced since. Images are large
        # (150 kB) DDS samples: a transport fault of the host, not of this system, so it is relaunched once,
        # on a fresh domain, and must then pass every check.
        warnings.warn(f"images never delivered; relaunching once on a fresh domain. {_diagnosis(seen)}")
        out_dir, log_path = tmp_path / "demo_relaunch", tmp_path / "launch_relaunch.log"
        seen, code, log = _run_system(out_dir, log_path, next_domain_id())
    assert len(seen["chunks"]) >= 3, f"no chunks from the policy node ({_diagnosis(seen)}):\n{log[-4000:]}"
    chunk = seen["chunks"][-1]
    assert chunk.embodiment == "franka_panda" and list(chunk.arm_names) == ["arm"]
    h = len(chunk.time_offsets_s)
    assert h == round(chunk.horizon_s * chunk.control_rate_hz) and len(chunk.arms[0].poses) == h
    ids = [c.chunk_id for c in seen["chunks"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert seen["commands"] >= 50, "the bridge streamed no pose targets"
    assert _bridge_got_chunk(seen), f"the bridge reported no chunk received: {seen['status'][-1:]}"
    assert code == 0, log[-4000:]
    for name in ("franka_twin", "policy_node", "franka_bridge", "demo_monitor"):
        assert f"started {name}" in log
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["system"] == "franka_pick_place" and summary["chunks"] >= 3 and summary["commands"] > 0
