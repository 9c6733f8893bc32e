"""The recorder's and the teleop node's ROS parameters, each declared once (type, default, description, bounds).

ROS-free and light (no LeRobot, no torch): ``docs/parameters.md`` is generated from these lists, the nodes
declare exactly them through ``lawam_policy.nodes.common.declare_parameters``, and ``config/recorder.yaml`` /
``config/teleop.yaml`` hold only what differs. Topics default to ``lawam_policy.topics`` and the embodiment
registry.
"""
from __future__ import annotations

from dataclasses import dataclass

from lawam_policy.embodiments import FRANKA_HAND_MAX_WIDTH_M
from lawam_policy.parameters import Param, params_of, setting

from .episode_store import DEFAULT_VCODEC
from .topics import COMMAND_TOPIC, TASK_TOPIC

TELEOP_INPUTS = ("auto", "keyboard", "spacemouse", "topic")


@dataclass
class RecorderSettings:
    output: str = setting("", "dataset directory (required): absent, empty, or a dataset of the same setup")
    fps: int = setting(15, "frames per second = the control rate the actions are stored at (a checkpoint "
                           "records it; the policy node queries at it)", min=1)
    embodiment: str = setting("franka_panda", "franka_panda or quanta_x1: selects the default topics when "
                                              "cameras / pose_topics / gripper_topics are empty")
    action_layout: str = setting("", "empty: the embodiment's; or comma-separated names (x,y,z,qx,qy,qz,qw,"
                                     "gripper ...)")
    cameras: tuple = setting(("",), "NAME=TOPIC per camera (sensor_msgs/Image rgb8, bgr8, rgba8, bgra8, mono8, "
                                    "8UC1; 8UC3/8UC4 carry no channel order and are refused), the first the "
                                    "primary view that triggers the frames; [\"\"]: the embodiment's (Franka "
                                    "primary; add wrist=TOPIC if mounted)")
    pose_topics: tuple = setting(("",), "ARM=TOPIC measured EEF geometry_msgs/PoseStamped per arm (best effort); "
                                        "[\"\"]: the embodiment's")
    gripper_topics: tuple = setting(("",), "ARM=TOPIC gripper state, sensor_msgs/JointState of the finger joints "
                                           "(opening = width / gripper_max_width); [\"\"]: the embodiment's "
                                           "(Quanta: none); [\"none\"]: no sensor, the state's gripper is the "
                                           "last commanded opening")
    command_topic: str = setting(COMMAND_TOPIC, "lawam_msgs/ActionChunk teleop command (its first step is the "
                                                "action, an EEF target)")
    task_topic: str = setting(TASK_TOPIC, "std_msgs/String instruction input")
    gripper_max_width: float = setting(FRANKA_HAND_MAX_WIDTH_M, "finger width (m) of a fully open gripper",
                                       above=0.0)
    image_height: int = setting(0, "> 0 with image_width: resize every camera (bilinear); 0: native size",
                                min=0)
    image_width: int = setting(0, "see image_height (sizes the video codec cannot take, e.g. odd ones for h264, "
                                  "are refused at start)", min=0)
    task: str = setting("", "default instruction; task_topic or StartEpisode.task override it")
    vcodec: str = setting(DEFAULT_VCODEC, "video codec of the dataset (h264, hevc, libsvtav1)")
    queue_size: int = setting(120, "frames waiting for the writer before frames are counted as dropped", min=1)
    max_message_age: tuple = setting(("",), "maximum message age (header stamps) of every held stream: an older "
                                            "stream holds no frame, the frames in between are skipped and the "
                                            "episode is split there. [\"\"]: 3 median periods of the topic, at "
                                            "least 3 frame periods; entries \"SECONDS\" (every topic) or "
                                            "\"TOPIC=SECONDS\"; \"off\": no limit (as lawam-bag-to-lerobot "
                                            "--max-age)")
    image_queue_depth: int = setting(30, "per camera subscription (best effort): slack while the machine is busy",
                                     min=1)


@dataclass
class TeleopSettings:
    embodiment: str = setting("franka_panda", "franka_panda or quanta_x1")
    action_layout: str = setting("", "empty: the embodiment's; or comma-separated names")
    pose_topics: tuple = setting(("",), "ARM=TOPIC measured PoseStamped per arm; [\"\"]: the embodiment's")
    control_rate_hz: float = setting(15.0, "publishing rate (Hz) = the control rate of the demonstrations",
                                     above=0.0)
    frame_id: str = setting("base", "frame of the targets (the bridge's base frame)")
    input: str = setting("auto", "auto (SpaceMouse, else keyboard if a terminal), keyboard, spacemouse or topic "
                                 "(keys as std_msgs/String on ~/key)", choices=TELEOP_INPUTS)
    linear_speed: float = setting(0.1, "m/s at full SpaceMouse deflection")
    angular_speed: float = setting(0.6, "rad/s at full SpaceMouse deflection")
    linear_step: float = setting(0.01, "m per key press")
    angular_step: float = setting(0.05, "rad per key press")
    command_topic: str = setting(COMMAND_TOPIC, "lawam_msgs/ActionChunk output (single-step EEF targets)")


def recorder_params() -> list[Param]:
    """Every parameter of the recorder (lawam_training/recorder, node lawam_recorder)."""
    return params_of(RecorderSettings)


def teleop_params() -> list[Param]:
    """Every parameter of the teleop node (lawam_training/teleop, node lawam_teleop)."""
    return params_of(TeleopSettings)
