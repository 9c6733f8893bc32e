"""Teleop node: keyboard (or a 3Dconnexion SpaceMouse when one is connected) -> EEF targets.

    ros2 run lawam_training teleop --ros-args --params-file config/teleop.yaml

Publishes a lawam_msgs/ActionChunk with a single step on the teleop command topic at ``control_rate_hz``:
the same message the bridges execute and the recorder stores as the action. Targets start at the measured
EEF pose (nothing is published before it is known) and move in the robot base frame.

Keyboard (terminal in focus): w/s +x/-x, a/d +y/-y, r/f +z/-z, u/o roll, i/k pitch, j/l yaw,
space toggles the gripper, 1/2 select the arm (two-arm layouts), h resets the targets to the measured
pose, q quits. Keys can also be sent as std_msgs/String on ``~/key`` (headless use, scripts, tests).
SpaceMouse (needs the optional ``pyspacemouse`` package and the device): 6-DoF velocity, left button
toggles the gripper, right button switches the arm.
"""
from __future__ import annotations

import math
import select
import sys
import threading

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from geometry_msgs.msg import Pose, PoseStamped
from lawam_msgs.msg import ActionChunk, ArmTrajectory
from std_msgs.msg import String

from lawam_policy.nodes.common import declare_parameters

from .conversions import ConversionError, pose_to_vec
from .node_settings import teleop_params
from .topics import DEFAULTS, parse_layout, parse_pairs

# key -> (axis, sign); axes 0..2 translation x, y, z; 3..5 rotation about base x, y, z
KEYMAP = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
          "u": (3, 1), "o": (3, -1), "i": (4, 1), "k": (4, -1), "j": (5, 1), "l": (5, -1)}


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of xyzw quaternions."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def axis_angle_quat(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    axis = rotvec / angle
    return np.concatenate([axis * math.sin(angle / 2), [math.cos(angle / 2)]])


class TeleopTargets:
    """Per-arm EEF targets (x, y, z, qx, qy, qz, qw, gripper) moved by key presses or twists."""

    def __init__(self, arms, linear_step=0.01, angular_step=0.05):
        self.arms = list(arms)
        self.linear_step, self.angular_step = linear_step, angular_step
        self.targets: dict[str, np.ndarray] = {}
        self.active = 0

    @property
    def ready(self) -> bool:
        return all(a in self.targets for a in self.arms)

    def reset(self, measured: dict[str, np.ndarray], grippers: dict[str, float] | None = None) -> None:
        for arm, pose in measured.items():
            g = (grippers or {}).get(arm, self.targets.get(arm, np.ones(8))[7])
            self.targets[arm] = np.concatenate([pose[:7], [g]])

    def move(self, arm: str, twist: np.ndarray) -> None:
        """twist: (6,) translation (m) and rotation vector (rad) in the base frame."""
        t = self.targets[arm]
        t[:3] += twist[:3]
        q = quat_mul(axis_angle_quat(np.asarray(twist[3:], float)), t[3:7])  # base-frame rotation: left multiply
        t[3:7] = q / np.linalg.norm(q)

    def key(self, key: str) -> str | None:
        """Apply one key; returns a command word for keys handled outside ('home', 'quit') or None."""
        if key in KEYMAP and self.ready:
            axis, sign = KEYMAP[key]
            twist = np.zeros(6)
            twist[axis] = sign * (self.linear_step if axis < 3 else self.angular_step)
            self.move(self.arms[self.active], twist)
        elif key == " " and self.ready:
            t = self.targets[self.arms[self.active]]
            t[7] = 0.0 if t[7] > 0.5 else 1.0
        elif key in "12" and int(key) <= len(self.arms):
            self.active = int(key) - 1
        elif key == "h":
            return "home"
        elif key in ("q", "\x03"):
            return "quit"
        return None


class TeleopNode(Node):
    def __init__(self, **kwargs):
        super().__init__("lawam_teleop", **kwargs)
        # One home: lawam_training/node_settings.py (type, default, description, bounds of each parameter).
        v = declare_parameters(self, teleop_params())
        self.layout = parse_layout(v["action_layout"] or None, v["embodiment"])
        poses = [x for x in v["pose_topics"] if x]
        self.pose_topics = parse_pairs(poses, "pose") if poses else dict(DEFAULTS[self.layout.embodiment]["poses"])
        if set(self.pose_topics) != set(self.layout.arms):
            raise ValueError(f"pose topics for arms {sorted(self.pose_topics)}, layout has {list(self.layout.arms)}")
        self.rate = float(v["control_rate_hz"])
        self.frame_id = v["frame_id"]
        self.input = v["input"]
        self.linear_speed = float(v["linear_speed"])   # m/s (SpaceMouse full deflection)
        self.angular_speed = float(v["angular_speed"])  # rad/s
        self.targets = TeleopTargets(self.layout.arms, float(v["linear_step"]), float(v["angular_step"]))
        self._measured: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._quit = threading.Event()
        self._chunk_id = 0
        self.pub = self.create_publisher(ActionChunk, v["command_topic"],
                                         QoSProfile(depth=10))
        for arm, topic in self.pose_topics.items():
            self.create_subscription(PoseStamped, topic, lambda m, a=arm: self._on_pose(a, m),
                                     qos_profile_sensor_data)
        self.create_subscription(String, "~/key", lambda m: self.handle_key(m.data), 10)
        self.create_timer(1.0 / self.rate, self._publish)
        self._spacemouse = None
        if self.input in ("auto", "spacemouse"):
            self._spacemouse = _open_spacemouse()
            if self._spacemouse is None and self.input == "spacemouse":
                raise ValueError("input 'spacemouse' requested but no SpaceMouse could be opened "
                                 "(is pyspacemouse installed and the device connected?)")
        self._keyboard = self.input == "keyboard" or (self.input == "auto" and self._spacemouse is None
                                                       and sys.stdin.isatty())
        source = "SpaceMouse" if self._spacemouse else "keyboard" if self._keyboard else f"topic {self.get_name()}/key"
        self.get_logger().info(f"teleop for {self.layout.embodiment} arms {list(self.layout.arms)} via {source}; "
                               f"waiting for measured poses on {list(self.pose_topics.values())}")

    def _on_pose(self, arm, msg):
        try:
            vec = pose_to_vec(msg)
        except ConversionError:
            return
        with self._lock:
            self._measured[arm] = vec
            if arm not in self.targets.targets:
                self.targets.reset({arm: vec})

    def handle_key(self, key: str) -> None:
        for ch in key:
            with self._lock:
                word = self.targets.key(ch)
                if word == "home":
                    self.targets.reset(dict(self._measured))
            if word == "quit":
                self._quit.set()

    def _poll_spacemouse(self):
        state = self._spacemouse.read()
        if state is None:
            return
        dt = 1.0 / self.rate
        twist = np.array([state.x, state.y, state.z, state.roll, state.pitch, state.yaw], float)
        twist[:3] *= self.linear_speed * dt
        twist[3:] *= self.angular_speed * dt
        buttons = list(getattr(state, "buttons", []) or [])
        with self._lock:
            if self.targets.ready:
                self.targets.move(self.layout.arms[self.targets.active], twist)
            pressed = [b and not old for b, old in zip(buttons, getattr(self, "_buttons", [0] * len(buttons)))]
            if pressed and pressed[0]:
                self.targets.key(" ")
            if len(pressed) > 1 and pressed[1]:
                self.targets.active = (self.targets.active + 1) % len(self.layout.arms)
        self._buttons = buttons

    def make_chunk(self) -> ActionChunk | None:
        with self._lock:
            if not self.targets.ready:
                return None
            targets = {a: self.targets.targets[a].copy() for a in self.layout.arms}
        msg = ActionChunk()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.frame_id
        self._chunk_id += 1
        msg.chunk_id = self._chunk_id
        msg.embodiment = self.layout.embodiment
        msg.arm_names = list(self.layout.arms)
        msg.control_rate_hz = self.rate
        msg.horizon_s = 1.0 / self.rate
        msg.time_offsets_s = [0.0]
        for arm in self.layout.arms:
            t = targets[arm]
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = (float(v) for v in t[:3])
            (pose.orientation.x, pose.orientation.y, pose.orientation.z,
             pose.orientation.w) = (float(v) for v in t[3:7])
            msg.arms.append(ArmTrajectory(poses=[pose], gripper_openings=[float(t[7])]))
        return msg

    def _publish(self):
        if self._spacemouse is not None:
            self._poll_spacemouse()
        msg = self.make_chunk()
        if msg is not None:
            self.pub.publish(msg)

    def keyboard_loop(self):
        """Raw-mode terminal reader (its own thread); restores the terminal on exit."""
        import termios
        import tty
        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while not self._quit.is_set() and rclpy.ok():
                if select.select([sys.stdin], [], [], 0.1)[0]:
                    self.handle_key(sys.stdin.read(1))
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _open_spacemouse():
    try:
        import pyspacemouse  # optional: not a dependency of the workspace
    except ImportError:
        return None
    try:
        return pyspacemouse if pyspacemouse.open() else None
    except Exception:  # noqa: BLE001 - no device / no permission: fall back to the keyboard
        return None


def _start_keyboard(node) -> None:
    if node._keyboard:
        print(__doc__.split("Keyboard", 1)[1].split("SpaceMouse (")[0].strip(), flush=True)
        threading.Thread(target=node.keyboard_loop, daemon=True).start()


def main(args=None) -> int:
    """The shared node main (lawam_policy.nodes.main); the 'quit' key ends it normally."""
    from lawam_policy.nodes.main import run
    return run(TeleopNode, args, name="lawam teleop", started=_start_keyboard,
               until=lambda node: node._quit.is_set())


if __name__ == "__main__":
    raise SystemExit(main())
