"""The embodiment registry: everything about a robot that more than one package needs, defined once.

Per embodiment: its action layout (action_layout.py), the ordered camera roles with their default image
topics (the first is the primary view), the robot base frame the chunks and targets are in, the home pose
of each arm's end effector (the MuJoCo twins start there), the gripper geometry, the bridge's controller
topics, rate and workspace box, and the recorder's measured-state topics. ROS-free and torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .action_layout import KNOWN_LAYOUTS, ActionLayout

# Franka Hand: opening 1.0 is this finger width (m), 0.0 is closed.
FRANKA_HAND_MAX_WIDTH_M = 0.08


@dataclass(frozen=True)
class Embodiment:
    name: str
    layout: ActionLayout
    base_frame: str                                # chunks and targets are in this frame
    cameras: tuple[tuple[str, str], ...]           # ordered (camera role, image topic); first: primary
    home_positions: tuple[tuple[float, ...], ...]  # per arm, EEF position (m, base frame)
    home_quats: tuple[tuple[float, ...], ...]      # per arm, EEF orientation (x, y, z, w)
    target_topics: tuple[str, ...]                 # per arm, PoseStamped controller input
    measured_pose_topics: tuple[str, ...]          # per arm, measured EEF PoseStamped
    control_rate_hz: float                         # bridge command rate (Hz)
    workspace_min: tuple[float, float, float]      # bridge workspace box (m, base frame)
    workspace_max: tuple[float, float, float]
    gripper_max_width_m: float | None = None       # finger width at opening 1.0 (m); None: openings only
    gripper_state_topics: dict = field(default_factory=dict)  # arm -> sensor_msgs/JointState (recorder)
    gripper_command_topics: tuple[str, ...] = ()   # per arm, std_msgs/Float64 gripper command
    optional_cameras: tuple[str, ...] = ()         # roles not used unless asked for (e.g. a wrist camera)

    @property
    def camera_roles(self) -> tuple[str, ...]:
        return tuple(role for role, _ in self.cameras)

    @property
    def camera_topics(self) -> dict[str, str]:
        """role -> image topic of the cameras used by default, in camera order."""
        return {role: topic for role, topic in self.cameras if role not in self.optional_cameras}

    def camera_topic(self, role: str) -> str:
        """The image topic of camera `role` (KeyError for a role this robot has no camera for)."""
        return dict(self.cameras)[role]

    @property
    def primary_camera_topic(self) -> str:
        return self.cameras[0][1]


EMBODIMENTS: dict[str, Embodiment] = {e.name: e for e in (
    Embodiment(
        "franka_panda", KNOWN_LAYOUTS["franka_panda"], base_frame="panda_link0",
        cameras=(("primary", "/camera/color/image_raw"), ("wrist", "/wrist_camera/color/image_raw")),
        optional_cameras=("wrist",),  # not mounted by default
        home_positions=((0.5, 0.0, 0.4),), home_quats=((1.0, 0.0, 0.0, 0.0),),
        target_topics=("/cartesian_impedance_example_controller/equilibrium_pose",),
        measured_pose_topics=("/franka_robot_state_broadcaster/current_pose",),
        # Safety box in front of the robot; the Panda's Cartesian limits are ~1.7 m/s, 2.5 rad/s.
        control_rate_hz=1000.0, workspace_min=(0.2, -0.6, 0.0), workspace_max=(0.85, 0.6, 0.8),
        gripper_max_width_m=FRANKA_HAND_MAX_WIDTH_M,
        gripper_state_topics={"arm": "/franka_gripper/joint_states"},
        gripper_command_topics=("/franka_gripper/width_command",)),
    Embodiment(
        "quanta_x1", KNOWN_LAYOUTS["quanta_x1"], base_frame="base_link",
        cameras=(("primary", "/cam_high/image_raw"), ("left_wrist", "/cam_left_wrist/image_raw"),
                 ("right_wrist", "/cam_right_wrist/image_raw")),
        home_positions=((-0.18, 0.0, 0.3), (0.17, 0.0, 0.3)),
        home_quats=((0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 1.0, 0.0)),
        target_topics=("/left_arm/target_pose", "/right_arm/target_pose"),
        measured_pose_topics=("/left_arm/current_pose", "/right_arm/current_pose"),
        # inside the twin's outer guard box
        control_rate_hz=250.0, workspace_min=(-0.7, -0.55, 0.0), workspace_max=(0.7, 0.55, 0.55),
        gripper_command_topics=("/left_gripper/command", "/right_gripper/command")),
)}


def get_embodiment(name: str) -> Embodiment:
    """The registry entry of `name`; raises ValueError naming the known ones."""
    try:
        return EMBODIMENTS[name]
    except KeyError:
        raise ValueError(f"unknown embodiment {name!r}; known: {sorted(EMBODIMENTS)}") from None
