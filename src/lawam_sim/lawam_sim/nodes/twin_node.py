"""Shared rclpy plumbing of the twins: a simulation thread owns the scene (steps it, publishes /clock, states,
images and success); the executor thread only receives commands and Reset requests and queues them in an
inbox that the sim thread drains at every tick. No lock is shared, so a busy sim thread can never starve the
command callbacks, and only the newest admitted pose target per arm and tick is solved (IK is not free).

Language: the twin follows the task topic the policy node listens to (``task_topic``, std_msgs/String) and
the optional ``task`` of a Reset request (empty: keep the current one). A task its scene cannot judge is
warned about once per distinct text and listed in ``~/stats`` (``unknown_tasks``); the scene then follows its
default instruction.

Timing: the sim thread advances in ticks of ``1 / state_rate_hz`` seconds of sim time and paces itself to
``real_time_factor`` (0 = as fast as possible). When rendering makes the sim slower than real time, /clock
simply advances slower: consumers run on ``use_sim_time``. Stamps of everything the twin publishes are sim
time. /clock is monotonic across the twin's own Reset: MuJoCo restarts its time at 0, the twin adds the time
of the episodes before (a reset is not a time jump for the nodes that follow /clock).

Shutdown: ``main`` is the workspace's shared one (lawam_policy.nodes.main): signals only request a stop,
``destroy_node`` stops and joins the simulation thread (which owns MuJoCo and the GL context) before the
context is shut down, so nothing renders or publishes while the process tears down.
"""
from __future__ import annotations

import collections
import json
import threading
import time

import numpy as np
from geometry_msgs.msg import Pose, PoseStamped
from lawam_msgs.msg import ActionChunk, ArmTrajectory
from lawam_msgs.srv import Reset
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from builtin_interfaces.msg import Time as TimeMsg

from lawam_policy import topics
from lawam_policy.nodes.common import declare_parameters
from lawam_policy.nodes.main import main_for
from lawam_policy.runtime import stamps
from lawam_sim.experts import make_expert
from lawam_sim.rendering import CameraRig
from lawam_sim.scenes import make_scene
from lawam_sim.seeds import EvalSeedCycler
from lawam_sim.twin_settings import workspace_box

BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
IMAGES = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def sim_stamp(t: float) -> TimeMsg:
    """Sim time (s) -> stamp, through integer nanoseconds (1.9999999999 s is 2 s + 0 ns, not 1 s)."""
    return stamps.fill_stamp(TimeMsg(), stamps.seconds_to_ns(t))


def pose_msg(pos, quat_xyzw) -> Pose:
    p = Pose()
    p.position.x, p.position.y, p.position.z = (float(v) for v in pos)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in quat_xyzw)
    return p


def pose_from_msg(p: Pose) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([p.position.x, p.position.y, p.position.z]),
            np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]))


class TwinNode(Node):
    """Subclasses set ``embodiment`` and ``declared_params`` (their list in lawam_sim.twin_settings), create
    their topics in ``_setup_io`` (values in ``self.params``) and publish their robot-specific state in
    ``_publish_state``."""

    embodiment = ""
    declared_params = staticmethod(lambda: [])

    def __init__(self, name: str):
        super().__init__(name)
        # One home: lawam_sim/twin_settings.py (type, default, description, bounds of each parameter).
        v = self.params = declare_parameters(self, self.declared_params())
        self.scene_name = v["scene"]
        physics_hz = float(v["physics_hz"])
        self.rtf = float(v["real_time_factor"])
        self.state_rate = float(v["state_rate_hz"])
        self.camera_rate = float(v["camera_rate_hz"])
        w, h = int(v["image_width"]), int(v["image_height"])
        self.publish_clock = bool(v["publish_clock"])
        self.expert_on = bool(v["expert"])
        self.expert_direct = bool(v["expert_apply_directly"])
        self.teleop_topic = v["teleop_topic"]
        self.success_topic = v["success_topic"]
        initial_seed = int(v["seed"])
        initial_task = v["task"]
        task_topic = v["task_topic"]
        workspace = workspace_box(v)

        self.scene = make_scene(self.scene_name, physics_hz=physics_hz, workspace=workspace)
        self.rig = CameraRig(self.scene.model, w, h)
        self.seeds = EvalSeedCycler()
        self.inbox: collections.deque = collections.deque()  # (kind, ...) commands for the sim thread
        self.expert = None
        self._chunk_id = 0
        self._warned: set[str] = set()
        self.unknown_tasks: list[str] = []  # distinct tasks the scene could not judge, in arrival order
        self._time_offset = 0.0  # sim time of the episodes before the current one: /clock never goes back
        self._images_published: collections.Counter = collections.Counter()  # per camera topic, in ~/stats

        self.clock_pub = self.create_publisher(Clock, "/clock", RELIABLE)
        self.success_pub = self.create_publisher(Bool, self.success_topic, RELIABLE)
        self.stats_pub = self.create_publisher(String, "~/stats", RELIABLE)
        self.teleop_pub = self.create_publisher(ActionChunk, self.teleop_topic, RELIABLE) if self.expert_on else None
        self.camera_pubs: list[tuple[str, object]] = []  # (mujoco camera, publisher)
        self._setup_io()
        self.create_service(Reset, "~/reset", self._on_reset)
        # Same topic and QoS (reliable, depth 10) as the policy node's task subscription.
        self.create_subscription(String, task_topic, lambda m: self.inbox.append(("task", m.data)), 10)

        self._reset(initial_seed, initial_task)
        self._running = True
        self._thread = threading.Thread(target=self._sim_loop, name="sim", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"{self.scene_name}: {physics_hz:.0f} Hz physics, {w}x{h} images at {self.camera_rate} Hz, "
            f"expert={'on' if self.expert_on else 'off'}, seed {self.scene.seed}, "
            f"instruction {self.scene.instruction!r}")

    # ----- subclass hooks ------------------------------------------------------------------------
    def _setup_io(self) -> None:
        raise NotImplementedError

    def _publish_state(self, stamp: TimeMsg) -> None:
        raise NotImplementedError

    # ----- commands (executor thread) ------------------------------------------------------------
    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(msg + " (logged once)")

    def _pose_target(self, arm: str, msg: PoseStamped) -> None:
        if msg.header.frame_id and msg.header.frame_id != self.scene.frame_id:
            self.inbox.append(("refuse", arm, "wrong_frame"))
            self._warn_once(f"frame_{arm}", f"{arm}: target in frame {msg.header.frame_id!r} refused, expected "
                                            f"{self.scene.frame_id!r}")
            return
        self.inbox.append(("pose", arm, *pose_from_msg(msg.pose)))

    def _gripper_opening(self, arm: str, opening: float) -> None:
        self.inbox.append(("gripper", arm, float(opening)))

    def _on_reset(self, req: Reset.Request, resp: Reset.Response) -> Reset.Response:
        done, result = threading.Event(), {}
        self.inbox.append(("reset", int(req.seed), req.task, done, result))
        if not done.wait(timeout=30.0):
            resp.success, resp.message = False, "reset timed out: the simulation thread did not respond"
        elif "error" in result:
            resp.success, resp.message = False, f"reset failed: {result['error']}"
        else:
            resp.success = True
            resp.message = (f"reset {self.scene_name} to seed {result['seed']}, instruction "
                            f"{result['instruction']!r}" + result.get("note", ""))
        return resp

    def _instruction_for(self, task: str) -> tuple[str, str]:
        """(instruction the scene follows for ``task``, note for the caller). Empty ``task``: the current one;
        unknown: warn once per distinct text, list it in ~/stats and fall back to the scene's default."""
        s = self.scene
        if not task.strip():
            return s.instruction, ""
        known = s.known_instruction(task)
        if known is not None:
            return known, ""
        if task not in self.unknown_tasks:
            self.unknown_tasks.append(task)
        options = ", ".join(repr(i) for i in s.instructions)
        self._warn_once(f"task:{task}", f"task {task!r} is not an instruction of scene {self.scene_name} "
                                         f"({options}); success follows its default {s.instructions[0]!r}")
        return s.instructions[0], f"; unknown task {task!r} (known: {options}): using the default"

    def _set_task(self, task: str) -> None:
        """Sim thread only: a task from the topic switches the instruction without resetting the layout."""
        self.scene.set_instruction(self._instruction_for(task)[0])

    def _reset(self, seed: int, task: str = "") -> tuple[int, str, str]:
        """Sim thread (or before it starts) only. Returns (seed, instruction, note)."""
        seed = self.seeds.next() if seed < 0 else seed
        instruction, note = self._instruction_for(task)
        self._time_offset += self.scene.time  # MuJoCo restarts at 0; the published clock continues
        self.scene.reset(seed, instruction)
        self.expert = make_expert(self.scene) if self.expert_on else None
        self._last_success = None
        self._rewound = True
        return seed, instruction, note

    def _apply(self, cmd: tuple) -> None:
        """Apply one queued command, in the sim thread."""
        kind = cmd[0]
        if kind == "gripper":
            _, arm, opening = cmd
            if not self.scene.set_gripper(arm, opening):
                self._warn_once(f"grip_{arm}", f"{arm}: non-finite gripper command refused")
        elif kind == "refuse":
            _, arm, reason = cmd
            self.scene.gates[arm].refusals[reason] += 1
        elif kind == "task":
            self._set_task(cmd[1])
        elif kind == "reset":
            _, seed, task, done, result = cmd
            try:
                result["seed"], result["instruction"], result["note"] = self._reset(seed, task)
            except Exception as e:  # noqa: BLE001 - report any scene failure to the caller
                result["error"] = str(e)
            done.set()

    def _drain_inbox(self) -> None:
        newest_pose = {}
        while self.inbox:
            cmd = self.inbox.popleft()
            if cmd[0] == "pose":
                _, arm, pos, quat = cmd
                ok, reason = self.scene.gates[arm].admit(pos, quat)
                if ok:
                    newest_pose[arm] = (pos, quat)
                else:
                    self._warn_once(f"refuse_{arm}_{reason}", f"{arm}: pose target refused ({reason}): {pos}")
            else:
                if cmd[0] == "reset":
                    newest_pose.clear()  # targets sent before a reset do not apply to the new episode
                self._apply(cmd)
        for arm, (pos, quat) in newest_pose.items():
            self.scene.set_target(arm, pos, quat)

    # ----- simulation thread ---------------------------------------------------------------------
    def sim_time(self) -> float:
        """The published (monotonic) sim time in s: earlier episodes + the scene's own time."""
        return self._time_offset + self.scene.time

    def _sim_loop(self) -> None:
        try:
            self._run_sim()
        except Exception:  # noqa: BLE001
            if self._running and self.context.ok():
                raise
            # stopped while a publish was under way: nothing to report
        finally:
            self.rig.close()  # the GL context belongs to this thread: release it here, not in __del__

    def _run_sim(self) -> None:
        s = self.scene
        tick_steps = max(1, int(round(1.0 / (self.state_rate * s.dt))))
        self._rewound = True
        while self._running and self.context.ok():
            self._drain_inbox()
            if self._rewound:  # start or reset: restart pacing and schedules from the new sim time
                self._rewound = False
                wall0, sim0 = time.monotonic(), s.time
                next_cam = next_expert = next_stats = s.time
            if self.expert is not None and s.time >= next_expert - 1e-9:
                self._expert_step()
                next_expert = s.time + 1.0 / self.expert.control_hz
            s.step(tick_steps)
            now = s.time
            stamp = sim_stamp(self.sim_time())
            if self.publish_clock:
                self.clock_pub.publish(Clock(clock=stamp))
            self._publish_state(stamp)
            if self.camera_pubs and now >= next_cam - 1e-9:
                self._publish_images(stamp)
                next_cam = now + 1.0 / self.camera_rate
            success = s.success()
            if success != self._last_success:
                self.success_pub.publish(Bool(data=bool(success)))
                self._last_success = success
            if now >= next_stats - 1e-9:
                self.success_pub.publish(Bool(data=bool(success)))  # periodic, for late joiners
                self._publish_stats()
                next_stats = now + 1.0
            if self.rtf > 0:
                ahead = (now - sim0) / self.rtf - (time.monotonic() - wall0)
                if ahead > 0:
                    time.sleep(ahead)

    def _expert_step(self) -> None:
        s = self.scene
        action = self.expert.act(s)
        msg = ActionChunk()
        msg.header.stamp = sim_stamp(self.sim_time())
        msg.header.frame_id = s.frame_id
        msg.chunk_id = self._chunk_id
        self._chunk_id += 1
        msg.embodiment = self.embodiment
        msg.arm_names = list(s.arms)
        msg.control_rate_hz = float(self.expert.control_hz)
        msg.horizon_s = 1.0 / self.expert.control_hz
        msg.time_offsets_s = [0.0]
        for arm in s.arms:
            pos, quat, opening = action[arm]
            tr = ArmTrajectory()
            tr.poses = [pose_msg(pos, quat)]
            tr.gripper_openings = [float(opening)]
            msg.arms.append(tr)
            if self.expert_direct:
                s.set_target(arm, pos, quat)
                s.set_gripper(arm, opening)
        self.teleop_pub.publish(msg)

    def _publish_images(self, stamp: TimeMsg) -> None:
        for cam, pub in self.camera_pubs:
            img = self.rig.render(self.scene.data, cam)
            m = Image()
            m.header.stamp = stamp
            m.header.frame_id = cam
            m.height, m.width = int(img.shape[0]), int(img.shape[1])
            m.encoding = "rgb8"
            m.is_bigendian = 0
            m.step = m.width * 3
            m.data = img.tobytes()
            pub.publish(m)
            self._images_published[pub.topic_name] += 1

    def _publish_stats(self) -> None:
        s = self.scene
        stats = {"scene": self.scene_name, "seed": s.seed, "instruction": s.instruction,
                 "unknown_tasks": list(self.unknown_tasks), "sim_time_s": round(s.time, 3),
                 "refusals": dict(s.refusals()), "clamps": dict(s.clamps),
                 "images_published": dict(self._images_published),
                 "metrics": {k: (float(v) if not isinstance(v, bool) else v) for k, v in s.metrics().items()}}
        self.stats_pub.publish(String(data=json.dumps(stats)))

    def _joint_state_msg(self, stamp: TimeMsg, names: list[str], ros_names: list[str] | None = None) -> JointState:
        q, v, f = self.scene.joint_state(names)
        js = JointState()
        js.header.stamp = stamp
        js.name = ros_names or names
        js.position, js.velocity, js.effort = q.tolist(), v.tolist(), f.tolist()
        return js

    def _pose_stamped(self, stamp: TimeMsg, arm: str) -> PoseStamped:
        pos, quat = self.scene.eef_pose(arm)
        m = PoseStamped()
        m.header.stamp = stamp
        m.header.frame_id = self.scene.frame_id
        m.pose = pose_msg(pos, quat)
        return m

    def destroy_node(self) -> None:
        # The simulation thread must be gone before the context and the interpreter go: it renders (EGL)
        # and publishes. A render takes tens of ms; the generous timeout only guards against a hang (the
        # shared main then ends the process without finalising around the thread).
        self._running = False
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        super().destroy_node()


def run(node_cls, args=None) -> int:
    """The twins' main: the workspace's shared node main (exit code)."""
    return main_for(node_cls)(args)
