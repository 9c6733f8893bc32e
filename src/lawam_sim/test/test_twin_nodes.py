"""Cross-process tests of the twin nodes: a pose target sent over ROS moves the measured pose, /clock advances,
Reset works, and the expert publishes single-step teleop chunks. Each test uses its own ROS_DOMAIN_ID and
waits for discovery (publisher/subscriber matching) instead of sleeping."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from lawam_msgs.msg import ActionChunk  # noqa: E402
from lawam_msgs.srv import Reset  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from lawam_sim.scenes import INSTRUCTIONS  # noqa: E402
from lawam_sim.seeds import EVAL_SEEDS  # noqa: E402
from ros_isolation import next_domain_id  # noqa: E402

PKG_ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 90.0  # generous guard against hangs only; no assertion is about speed


def _domain_id() -> int:
    return next_domain_id()  # the one source of test domain ids (test/ros_isolation.py)


class Twin:
    """The twin node in its own process, and a probe node in this one, on a private ROS domain."""

    def __init__(self, module: str, params: dict):
        self.domain = _domain_id()
        env = dict(os.environ, ROS_DOMAIN_ID=str(self.domain))
        env["PYTHONPATH"] = f"{PKG_ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
        args = [sys.executable, "-m", module, "--ros-args"]
        for k, v in params.items():
            args += ["-p", f"{k}:={v}"]
        # a file, not a pipe: a pipe nobody reads would block a chatty twin
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT, text=True)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain)
        self.node = rclpy.create_node("probe", context=self.context)
        # Spin in the background: at 250 Hz per topic, spin_once() in a loop can starve later subscriptions.
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shutdown while spinning
            pass

    def spin_until(self, cond, what: str):
        t0 = time.monotonic()
        while not cond():
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise AssertionError(f"twin exited ({self.proc.returncode}) while waiting for {what}:\n"
                                     f"{self.log.read()}")
            if time.monotonic() - t0 > DEADLINE_S:
                raise AssertionError(f"gave up waiting for {what}")
            time.sleep(0.02)  # polling interval of the condition, not a synchronisation delay

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.executor.shutdown()
        self._spinner.join(timeout=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.log.seek(0)
        self.output = self.log.read()  # what the twin printed, for tests of its log
        self.log.close()


@pytest.fixture
def franka_twin():
    t = Twin("lawam_sim.nodes.franka_twin", {"camera_rate_hz": 10.0, "seed": 5})
    yield t
    t.close()


def test_franka_twin_tracks_pose_target_and_publishes_clock(franka_twin):
    t = franka_twin
    poses, clocks, images = [], [], []
    t.node.create_subscription(PoseStamped, "/franka_robot_state_broadcaster/current_pose", poses.append,
                               qos_profile_sensor_data)
    t.node.create_subscription(Clock, "/clock", clocks.append, 10)
    t.node.create_subscription(Image, "/camera/color/image_raw", images.append, qos_profile_sensor_data)
    pub = t.node.create_publisher(PoseStamped, "/cartesian_impedance_example_controller/equilibrium_pose",
                                  qos_profile_sensor_data)
    t.spin_until(lambda: poses and clocks and images and pub.get_subscription_count() > 0, "discovery")

    first_clock = clocks[-1].clock.sec + clocks[-1].clock.nanosec * 1e-9
    start = poses[-1]
    assert start.header.frame_id == "panda_link0"
    p0 = np.array([start.pose.position.x, start.pose.position.y, start.pose.position.z])
    target = PoseStamped()
    target.header.frame_id = "panda_link0"
    goal = p0 + [0.06, 0.0, -0.06]
    target.pose.position.x, target.pose.position.y, target.pose.position.z = (float(v) for v in goal)
    o = start.pose.orientation
    target.pose.orientation.x, target.pose.orientation.y = o.x, o.y
    target.pose.orientation.z, target.pose.orientation.w = o.z, o.w

    def reached():
        pub.publish(target)  # streamed, like the bridge; best effort may drop some
        p = poses[-1].pose.position
        return np.linalg.norm(np.array([p.x, p.y, p.z]) - goal) < 0.005
    t.spin_until(reached, "the measured pose to reach the target")
    last_clock = clocks[-1].clock.sec + clocks[-1].clock.nanosec * 1e-9
    assert last_clock > first_clock
    img = images[-1]
    assert (img.width, img.height, img.encoding, img.step) == (224, 224, "rgb8", 224 * 3)
    assert len(img.data) == 224 * 224 * 3

    # A target outside the workspace box is refused (the arm stays) and counted in ~/stats.
    stats = []
    t.node.create_subscription(String, "/franka_twin/stats", lambda m: stats.append(json.loads(m.data)), 10)
    outside = PoseStamped()
    outside.header.frame_id = "panda_link0"
    outside.pose.position.x, outside.pose.position.z = 2.0, 0.3
    outside.pose.orientation = target.pose.orientation

    def refused():
        pub.publish(outside)
        return stats and stats[-1]["refusals"].get("workspace", 0) > 0
    t.spin_until(refused, "the workspace refusal to show in ~/stats")
    p = poses[-1].pose.position
    assert np.linalg.norm(np.array([p.x, p.y, p.z]) - goal) < 0.01

    # Reset over the service: seed < 0 = next evaluation seed
    cli = t.node.create_client(Reset, "/franka_twin/reset")
    t.spin_until(cli.service_is_ready, "the reset service")
    before = len(clocks)
    fut = cli.call_async(Reset.Request(seed=-1))
    t.spin_until(fut.done, "the reset response")
    assert fut.result().success, fut.result().message
    # /clock stays monotonic across the twin's own Reset (MuJoCo restarts at 0; a reset is not a time jump)
    t.spin_until(lambda: len(clocks) > before + 50, "/clock after the reset")
    ns = [c.clock.sec * 1_000_000_000 + c.clock.nanosec for c in list(clocks)]
    assert all(b > a for a, b in zip(ns, ns[1:])), "the twin's /clock went back"


def test_quanta_twin_expert_publishes_single_step_teleop_chunks():
    t = Twin("lawam_sim.nodes.quanta_twin", {"expert": True, "wrist_cameras": False, "camera_rate_hz": 5.0})
    try:
        chunks = []
        t.node.create_subscription(ActionChunk, "/lawam/teleop/command", chunks.append, 10)
        t.spin_until(lambda: len(chunks) >= 5, "teleop chunks from the expert")
        c = chunks[-1]
        assert c.embodiment == "quanta_x1" and list(c.arm_names) == ["left", "right"]
        assert c.header.frame_id == "base_link" and len(c.time_offsets_s) == 1
        assert all(len(a.poses) == 1 and len(a.gripper_openings) == 1 for a in c.arms)
        q = c.arms[0].poses[0].orientation
        assert abs(np.linalg.norm([q.x, q.y, q.z, q.w]) - 1) < 1e-6
    finally:
        t.close()


def test_lawam_eval_runs_episodes_with_resets_over_ros(tmp_path):
    """The evaluation loop (reset to each selected fixed seed with each instruction, wait for /lawam_sim/success
    or a sim-time timeout) driven by the twin's scripted expert, which succeeds on these seeds (test_experts):
    the expert follows the instruction the Reset carries, or the success test would fail for one of them."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(_domain_id()))
    env["PYTHONPATH"] = f"{PKG_ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "lawam_sim.nodes.evaluate", "--system", "franka_pick_place",
                           "--expert", "--seeds", "1", "--timeout-s", "15", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    red, green = INSTRUCTIONS["franka_pick_place"]
    assert [(e["seed"], e["instruction"]) for e in result["episodes"]] == [(EVAL_SEEDS[1], red),
                                                                           (EVAL_SEEDS[1], green)]
    assert result["success_rate"] == 1.0, result
    for instruction in (red, green):
        st = result["per_instruction"][instruction]
        assert st["success_rate"] == 1.0 and 0 < st["mean_time_to_success_s"] < 15
    assert result["real_time_factor"] > 0 and isinstance(result["real_time_factor_low"], bool)
    assert "success rate 2/2" in proc.stdout and "sim real-time factor" in proc.stdout


def _children(pid: int) -> set[int]:
    """Pids of the processes whose parent is `pid` (from /proc)."""
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_lawam_eval_stops_its_stack_on_sigterm_and_reports_what_it_has(tmp_path, signum, status):
    """Regression: SIGTERM used to be swallowed by rclpy's handler; lawam-eval went on (every episode a
    timeout) with its twin, bridge and policy running. Now either signal tears the stack down, prints the
    episodes done so far and exits 128 + signal."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(_domain_id()))
    env["PYTHONPATH"] = f"{PKG_ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = tmp_path / "eval.json"
    proc = subprocess.Popen([sys.executable, "-m", "lawam_sim.nodes.evaluate", "--system", "franka_drawer",
                             "--expert", "--seeds", "0-29", "--json", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # "started the twin ..."
        kids = _children(proc.pid)
        assert kids and "started the twin" in first, first
        assert proc.stdout.readline().startswith("episode   0")  # one episode done
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == status, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert "success rate" in stdout  # the episodes finished before the signal
    result = json.loads(out.read_text())
    assert result["interrupted"] and 1 <= len(result["episodes"]) < 30
    assert not [k for k in kids if _alive(k)], "the twin outlived lawam-eval"


def test_lawam_eval_ends_with_the_reason_when_a_node_of_its_stack_dies(tmp_path):
    """A node that exits ends the evaluation with its last line instead of timeouts counted as failures."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(_domain_id()))
    env["PYTHONPATH"] = f"{PKG_ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.Popen([sys.executable, "-m", "lawam_sim.nodes.evaluate", "--system", "franka_drawer",
                             "--expert", "--seeds", "0-29"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "started the twin" in proc.stdout.readline()
        assert proc.stdout.readline().startswith("episode   0")
        for kid in _children(proc.pid):
            os.kill(kid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    assert "error: required node franka_twin exited with code -9" in stderr, stderr
    assert "Traceback" not in stderr


def test_twin_follows_the_task_topic_and_reset_task_and_reports_unknown_tasks():
    t = Twin("lawam_sim.nodes.franka_twin", {"camera_rate_hz": 2.0, "seed": 5,
                                             "task": "put the green cube in the bowl"})
    red, green = INSTRUCTIONS["franka_pick_place"]
    try:
        stats = []
        t.node.create_subscription(String, "/franka_twin/stats", lambda m: stats.append(json.loads(m.data)), 10)
        tasks = t.node.create_publisher(String, "/lawam/task", 10)
        cli = t.node.create_client(Reset, "/franka_twin/reset")
        t.spin_until(lambda: stats and cli.service_is_ready() and tasks.get_subscription_count() > 0, "discovery")
        assert stats[-1]["instruction"] == green   # the `task` parameter

        def reset(seed, task):
            fut = cli.call_async(Reset.Request(seed=seed, task=task))
            t.spin_until(fut.done, "the reset response")
            assert fut.result().success, fut.result().message
            return fut.result().message

        def stats_show(instruction, unknown=()):
            n = len(stats)
            t.spin_until(lambda: len(stats) > n and stats[-1]["instruction"] == instruction
                         and stats[-1]["unknown_tasks"] == list(unknown), f"~/stats with {instruction!r}")

        assert repr(red) in reset(7, red)
        stats_show(red)
        assert repr(red) in reset(8, "")             # empty: keep the current instruction
        tasks.publish(String(data=green))             # the policy's task topic
        stats_show(green)
        for _ in range(2):                            # unknown: the scene's default, warned once
            tasks.publish(String(data="stack the cubes"))
        stats_show(red, ["stack the cubes"])
        msg = reset(9, "wipe the table")
        assert "unknown task 'wipe the table'" in msg and repr(red) in msg
        stats_show(red, ["stack the cubes", "wipe the table"])
    finally:
        t.close()
    t_log = t.output
    assert t_log.count("'stack the cubes' is not an instruction") == 1, t_log
    assert t_log.count("'wipe the table' is not an instruction") == 1, t_log


def test_sim_stamp_carries_nanoseconds_into_seconds():
    from lawam_sim.nodes.twin_node import sim_stamp
    s = sim_stamp(1.9999999999)  # used to become 1 s + 0 ns (the carry was lost)
    assert (s.sec, s.nanosec) == (2, 0)
    s = sim_stamp(12.3456789)
    assert (s.sec, s.nanosec) == (12, 345678900)
