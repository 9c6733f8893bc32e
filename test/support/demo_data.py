"""Test support (never installed; test/support is on sys.path through the workspace conftest.py):
synthetic demonstration bags written with rosbags (no ROS install needed), a private ROS domain per test,
waiting for discovery, and a stand-in robot publishing demonstration streams. Used by tests and benchmarks.

Values encode time so tests can check the synchronisation: at receive time t (s) the pose x is t, the image
of camera c (its k-th frame) is filled with 8 k % 240 + c, the command x is t + 1000, the gripper opening t / 10.
Every message is stamped (header) with its event time."""
from __future__ import annotations

import os
import time

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from lawam_policy.runtime import stamps
from lawam_policy.runtime.stamps import seconds_to_ns, split_ns
from lawam_training.msgdefs import build_typestore
from ros_isolation import next_domain_id


def write_demo_bag(path, *, duration_s=2.0, cam_hz=30.0, pose_hz=100.0, cmd_hz=15.0,
                   cameras=("/camera/color/image_raw",), size=(24, 32), storage="mcap", task="pick up the cube",
                   skip_topics=(), markers=None, start_s=1000.0, extra=(), msg_paths=(), start_ns=None,
                   silent=None, encoding="rgb8", gripper_positions=None, receive_delay=None):
    """``extra``: more (t, topic, msgtype, make_msg(types)) events; ``msg_paths``: their .msg directories.

    Times are integer nanoseconds: event time t (s) is received (and stamped) at ``start_ns`` (default
    ``start_s``) + round(t * 1e9). ``silent``: {topic: [(from_s, to_s), ...]} spans without messages of that
    topic; ``encoding``: the cameras' encoding (rgb8, or bgr8/8UC3 with the bytes in BGR order);
    ``gripper_positions(t)``: the finger joint positions (default: opening t / 10); ``receive_delay``:
    {topic: f(t) -> seconds} between a message's header stamp and its receive time."""
    ts = build_typestore(msg_paths)
    M = ts.types
    Header, Time = M["std_msgs/msg/Header"], M["builtin_interfaces/msg/Time"]
    Pose, Point, Quat = M["geometry_msgs/msg/Pose"], M["geometry_msgs/msg/Point"], M["geometry_msgs/msg/Quaternion"]
    t0 = int(start_ns) if start_ns is not None else seconds_to_ns(start_s)

    def header(t):
        sec, nanosec = split_ns(t0 + seconds_to_ns(t))  # carries: 1.9999999999 s -> 2 s + 0 ns
        return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id="base")

    def pose(x):
        return Pose(position=Point(x=float(x), y=0.1, z=0.2), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0))

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    events = []  # (t, topic, msgtype, msg)
    for ci, topic in enumerate(cameras):
        for k in range(int(duration_s * cam_hz)):
            t = k / cam_hz
            img = np.full(size + (3,), (8 * k) % 240 + ci, np.uint8)
            if encoding != "rgb8":
                img = np.ascontiguousarray(img[..., ::-1])
            msg = M["sensor_msgs/msg/Image"](header=header(t), height=size[0], width=size[1],
                                             encoding=encoding, is_bigendian=0, step=size[1] * 3,
                                             data=img.reshape(-1))
            events.append((t, topic, "sensor_msgs/msg/Image", msg))
    for k in range(int(duration_s * pose_hz)):
        t = k / pose_hz
        events.append((t, "/franka_robot_state_broadcaster/current_pose", "geometry_msgs/msg/PoseStamped",
                       M["geometry_msgs/msg/PoseStamped"](header=header(t), pose=pose(t))))
        w = 0.08 * (t / 10)
        fingers = gripper_positions(t) if gripper_positions else [w / 2, w / 2]
        events.append((t, "/franka_gripper/joint_states", "sensor_msgs/msg/JointState",
                       M["sensor_msgs/msg/JointState"](header=header(t),
                                                       name=["fr3_finger_joint1", "fr3_finger_joint2"],
                                                       position=np.array(fingers, np.float64), velocity=np.zeros(2),
                                                       effort=np.zeros(2))))
    for k in range(int(duration_s * cmd_hz)):
        t = k / cmd_hz
        arm = M["lawam_msgs/msg/ArmTrajectory"](poses=[pose(t + 1000)], gripper_openings=np.array([0.5]))
        msg = M["lawam_msgs/msg/ActionChunk"](header=header(t), chunk_id=k, embodiment="franka_panda",
                                              arm_names=["arm"], control_rate_hz=cmd_hz, horizon_s=1 / cmd_hz,
                                              time_offsets_s=np.array([0.0]), arms=[arm])
        events.append((t, "/lawam/teleop/command", "lawam_msgs/msg/ActionChunk", msg))
    if task is not None:
        events.append((0.0, "/lawam/task", "std_msgs/msg/String", M["std_msgs/msg/String"](data=task)))
    for t, value in markers or []:
        events.append((t, "/episode_marker", "std_msgs/msg/String", M["std_msgs/msg/String"](data=value)))
    events += [(t, topic, msgtype, make(M)) for t, topic, msgtype, make in extra]
    events = [e for e in events if e[1] not in skip_topics
              and not any(a <= e[0] < b for a, b in (silent or {}).get(e[1], ()))]
    delay = receive_delay or {}
    events = [(t0 + seconds_to_ns(t) + (seconds_to_ns(delay[topic](t)) if topic in delay else 0), topic, msgtype, msg)
              for t, topic, msgtype, msg in events]
    events.sort(key=lambda e: e[0])
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {}
        for t_ns, topic, msgtype, msg in events:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=ts)
            w.write(conns[topic], t_ns, ts.serialize_cdr(msg, msgtype))
    return path


def private_ros_env(env=None) -> dict:
    """A fresh ROS_DOMAIN_ID (test/ros_isolation.py, the one source), localhost only. Also sets it in this
    process, for in-process rclpy."""
    domain = next_domain_id()
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env = dict(env or os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    return env


def wait_for(predicate, timeout=20.0, spin=None, what="condition"):
    """Poll (spinning ``spin`` if given) until predicate() is truthy; raise with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if spin is not None:
            spin()
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


class DemoPublisher:
    """A stand-in robot for tests and benchmarks (rclpy, one thread per stream): cameras at ``cam_hz`` whose
    images are filled with 8 k % 240 (k = frame count; ``texture=True``: a moving smooth texture with sensor
    noise instead, which costs a video encoder what real images do), measured poses at ``pose_hz`` with
    x = seconds since start, Franka finger joints, and 1-step teleop commands with x = 0.7 at ``cmd_hz``."""

    def __init__(self, node, cameras, poses, gripper_topic=None, command_topic="/lawam/teleop/command",
                 cam_hz=30.0, pose_hz=100.0, cmd_hz=15.0, size=(24, 32), embodiment="franka_panda",
                 texture=False):
        import threading

        from geometry_msgs.msg import PoseStamped
        from lawam_msgs.msg import ActionChunk
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState

        self.node, self.size, self.embodiment = node, size, embodiment
        self.cam_pubs = [node.create_publisher(Image, t, qos_profile_sensor_data) for t in cameras]
        self.pose_pubs = {a: node.create_publisher(PoseStamped, t, qos_profile_sensor_data) for a, t in poses.items()}
        self.grip_pub = node.create_publisher(JointState, gripper_topic, 10) if gripper_topic else None
        self.cmd_pub = node.create_publisher(ActionChunk, command_topic, 10) if command_topic else None
        self.rates = dict(cam=cam_hz, pose=pose_hz, cmd=cmd_hz)
        self.counts = dict(cam=0, pose=0, cmd=0)
        self.paused: set = set()  # kinds ("cam", "pose", "cmd") that publish nothing for now (a stalled driver)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(kind,), daemon=True) for kind in self.rates]
        self._t0 = time.monotonic()
        if texture:
            from PIL import Image as PILImage
            rng = np.random.default_rng(0)
            coarse = rng.integers(0, 255, (max(2, size[0] // 16), max(2, size[1] // 16), 3), dtype=np.uint8)
            base = np.asarray(PILImage.fromarray(coarse).resize((size[1] * 2, size[0]), PILImage.BICUBIC), np.int16)
            self._frames = [np.clip(base[:, 2 * k:2 * k + size[1]] + rng.normal(0, 3, size + (3,)), 0, 255)
                            .astype(np.uint8).tobytes() for k in range(30)]
        else:
            self._frames = [np.full(size + (3,), v, np.uint8).tobytes() for v in range(0, 240, 8)]
        self._cam_msgs = [[self._image_msg(data) for data in self._frames] for _ in cameras]

    def _image_msg(self, data):
        from sensor_msgs.msg import Image
        msg = Image(height=self.size[0], width=self.size[1], encoding="rgb8", step=self.size[1] * 3)
        msg.data = data
        return msg

    def publishers(self):
        return self.cam_pubs + list(self.pose_pubs.values()) + [p for p in (self.grip_pub, self.cmd_pub) if p]

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join()

    def _loop(self, kind):
        period = 1.0 / self.rates[kind]
        next_t = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            if kind not in self.paused:
                getattr(self, f"_publish_{kind}")(tick)
                self.counts[kind] += 1
            tick += 1  # (the schedule goes on while paused: stamps after a pause show the pause)
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))

    def _publish_cam(self, tick):
        # Camera-like stamps: on the ideal 1/cam_hz grid (hardware timestamps), not when this thread ran.
        k = self.counts["cam"]
        if k == 0:
            self._cam_t0 = self.node.get_clock().now().nanoseconds - seconds_to_ns(tick / self.rates["cam"])
        ns = self._cam_t0 + seconds_to_ns(tick / self.rates["cam"])
        for c, pub in enumerate(self.cam_pubs):
            msg = self._cam_msgs[c][k % len(self._frames)]  # pre-built: only the stamp changes
            stamps.fill_stamp(msg.header.stamp, ns)
            pub.publish(msg)

    def _pose(self, x):
        from geometry_msgs.msg import Pose
        p = Pose()
        p.position.x, p.position.y, p.position.z = float(x), 0.1, 0.2
        p.orientation.w = 1.0
        return p

    def _publish_pose(self, tick=0):
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState
        t = time.monotonic() - self._t0
        for pub in self.pose_pubs.values():
            msg = PoseStamped(pose=self._pose(t))
            msg.header.stamp = self.node.get_clock().now().to_msg()
            pub.publish(msg)
        if self.grip_pub is not None:
            msg = JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.02, 0.02])
            msg.header.stamp = self.node.get_clock().now().to_msg()
            self.grip_pub.publish(msg)

    def _publish_cmd(self, tick=0):
        from lawam_msgs.msg import ActionChunk, ArmTrajectory
        msg = ActionChunk(embodiment=self.embodiment, arm_names=list(self.pose_pubs), control_rate_hz=self.rates["cmd"],
                          time_offsets_s=[0.0])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.arms = [ArmTrajectory(poses=[self._pose(0.7)], gripper_openings=[0.25]) for _ in self.pose_pubs]
        self.cmd_pub.publish(msg)


def make_moving_demos(root, episodes=2, frames=12, fps=10, size=(32, 32)):
    """A LeRobot dataset of moving Franka demos for training tests: x and the gripper ramp with time, a bar
    grows across the image, one task per episode ("push the block <e>"); actions lead the state by 2 cm in x."""
    from lawam_policy.action_layout import get_layout
    from lawam_training.episode_store import EpisodeStore, make_features
    layout = get_layout("franka_panda")
    store = EpisodeStore(root, fps, make_features(layout, {"primary": size}), "franka_panda")
    for e in range(episodes):
        rec = store.begin_episode(f"push the block {e}")
        for k in range(frames):
            u = k / frames
            img = np.zeros(size + (3,), np.uint8)
            img[:, : int(4 + u * (size[1] - 8))] = 200
            s = np.array([0.3 + 0.2 * u, 0.1 * e, 0.4, 0, 0, 0, 1, u], np.float32)
            rec.add_frame({"primary": img}, s, s + np.array([0.02, 0, 0, 0, 0, 0, 0, 0], np.float32))
        rec.commit()
    return root
