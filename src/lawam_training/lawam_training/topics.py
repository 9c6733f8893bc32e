"""Which topics make up a demonstration, per embodiment, and how a user overrides them.

The same :class:`TopicConfig` drives the live recorder (ROS parameters), the bag importer (arguments or a
YAML mapping) and ``lawam-record-bag``. Cameras are ordered: the first one is the primary view (view 0);
the default names are the policy's camera roles (``primary``, ``wrist``, ``left_wrist``, ``right_wrist``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lawam_policy.action_layout import KNOWN_LAYOUTS, ActionLayout
from lawam_policy.embodiments import EMBODIMENTS, FRANKA_HAND_MAX_WIDTH_M
from lawam_policy.topics import TASK_TOPIC, TELEOP_COMMAND_TOPIC

COMMAND_TOPIC = TELEOP_COMMAND_TOPIC

# Per embodiment, from the embodiment registry (lawam_policy.embodiments): the cameras used by default (a
# Franka wrist camera is added with wrist=TOPIC), the measured EEF poses and the gripper joint states.
DEFAULTS = {
    name: dict(cameras=e.camera_topics, poses=dict(zip(e.layout.arms, e.measured_pose_topics)),
               grippers=dict(e.gripper_state_topics))
    for name, e in EMBODIMENTS.items()
}


@dataclass
class TopicConfig:
    embodiment: str
    layout: ActionLayout
    cameras: dict[str, str]          # camera name -> sensor_msgs/Image topic (first = primary)
    poses: dict[str, str]            # arm -> geometry_msgs/PoseStamped topic (measured EEF)
    grippers: dict[str, str] = field(default_factory=dict)  # arm -> sensor_msgs/JointState (optional)
    command_topic: str = COMMAND_TOPIC  # lawam_msgs/ActionChunk; "" = actions are the next measured state
    task_topic: str = TASK_TOPIC
    gripper_max_width: float = FRANKA_HAND_MAX_WIDTH_M

    def validate(self) -> "TopicConfig":
        if not self.cameras:
            raise ValueError("no camera topics configured")
        missing = [a for a in self.layout.arms if a not in self.poses]
        if missing or set(self.poses) - set(self.layout.arms):
            raise ValueError(f"pose topics are for arms {sorted(self.poses)}, the action layout "
                             f"{self.layout.embodiment!r} has arms {list(self.layout.arms)}")
        if set(self.grippers) - set(self.layout.arms):
            raise ValueError(f"gripper topics for unknown arms {sorted(set(self.grippers) - set(self.layout.arms))}")
        for name in self.cameras:
            if not name or "/" in name or "." in name:
                raise ValueError(f"bad camera name {name!r}: use letters, digits and '_'")
        return self

    def all_topics(self) -> dict[str, str]:
        """topic -> role, for checks and for bag recording."""
        roles = {t: f"camera {n}" for n, t in self.cameras.items()}
        roles.update({t: f"pose of arm {a}" for a, t in self.poses.items()})
        roles.update({t: f"gripper of arm {a}" for a, t in self.grippers.items()})
        if self.command_topic:
            roles[self.command_topic] = "teleop command"
        if self.task_topic:
            roles[self.task_topic] = "task"
        return roles


def parse_layout(spec: str | None, embodiment: str | None) -> ActionLayout:
    """``--action-layout``: a known embodiment name or comma-separated feature names; an unknown one is an
    error, never a guess."""
    if spec:
        if spec in KNOWN_LAYOUTS:
            return KNOWN_LAYOUTS[spec]
        if "," in spec:
            return ActionLayout.from_names([s.strip() for s in spec.split(",") if s.strip()], embodiment)
        raise ValueError(f"unknown action layout {spec!r}: give one of {sorted(KNOWN_LAYOUTS)} or the feature "
                         "names, e.g. 'x,y,z,qx,qy,qz,qw,gripper'")
    emb = embodiment or "franka_panda"
    if emb not in KNOWN_LAYOUTS:
        raise ValueError(f"unknown embodiment {emb!r} and no --action-layout; known: {sorted(KNOWN_LAYOUTS)}")
    return KNOWN_LAYOUTS[emb]


def parse_pairs(items, what: str) -> dict[str, str]:
    """['front=/camera/image', ...] (or a mapping) -> ordered dict."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items or []:
        name, sep, topic = str(item).partition("=")
        if not sep or not name.strip() or not topic.strip():
            raise ValueError(f"bad {what} entry {item!r}: expected NAME=/topic")
        out[name.strip()] = topic.strip()
    return out


def make_config(embodiment: str | None = None, layout_spec: str | None = None, cameras=None, poses=None,
                grippers=None, command_topic: str | None = None, task_topic: str | None = None,
                gripper_max_width: float | None = None) -> TopicConfig:
    """Defaults of the embodiment, overridden by whatever is given (None = keep the default)."""
    layout = parse_layout(layout_spec, embodiment)
    emb = embodiment or layout.embodiment
    base = DEFAULTS.get(emb, dict(cameras={}, poses={}, grippers={}))
    cfg = TopicConfig(emb, layout, dict(base["cameras"]), dict(base["poses"]), dict(base["grippers"]))
    if cameras:
        cfg.cameras = parse_pairs(cameras, "camera")
    if poses:
        cfg.poses = parse_pairs(poses, "pose")
    if grippers is not None:
        cfg.grippers = parse_pairs(grippers, "gripper")
    if command_topic is not None:
        cfg.command_topic = command_topic
    if task_topic is not None:
        cfg.task_topic = task_topic
    if gripper_max_width is not None:
        cfg.gripper_max_width = float(gripper_max_width)
    return cfg.validate()


def load_yaml_mapping(path: str | Path) -> dict:
    """A YAML topic mapping (keys as in :func:`make_config`: embodiment, action_layout, fps, cameras, poses,
    grippers, command_topic, task_topic, marker_topic, task, gripper_max_width, image_size, max_age)."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"topic mapping {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"topic mapping {path} must be a YAML mapping, got {type(data).__name__}")
    known = {"embodiment", "action_layout", "fps", "cameras", "poses", "grippers", "command_topic", "task_topic",
             "marker_topic", "task", "gripper_max_width", "image_size", "max_age"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"topic mapping {path}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return data



