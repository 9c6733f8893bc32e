"""The twins' ROS parameters, each declared once (type, default, description, bounds; ROS-free, MuJoCo-free).

The nodes (``lawam_sim.nodes.franka_twin`` / ``quanta_twin``) declare exactly these lists through
``lawam_policy.nodes.common.declare_parameters``; ``docs/parameters.md`` is generated from them and
``config/{franka,quanta}_twin.yaml`` hold only what differs. The robot contract topics default to the
embodiment registry (``lawam_policy.embodiments``), the task and teleop topics to ``lawam_policy.topics``.
"""
from __future__ import annotations

from dataclasses import dataclass

from lawam_policy import topics
from lawam_policy.embodiments import get_embodiment
from lawam_policy.parameters import Param, params_of, setting

_FRANKA = get_embodiment("franka_panda")


@dataclass
class TwinSettings:
    """Parameters both twins declare; `scene` defaults per twin."""

    scene: str = setting("", "scene to run; Franka twin: franka_pick_place (the red or the green cube into the "
                             "bowl, as the task says) or franka_drawer (open the drawer); Quanta twin: "
                             "quanta_towel_fold (fold the towel in half). The launch files and `lawam launch` set "
                             "it from the system")
    physics_hz: float = setting(500.0, "physics rate (Hz); the controller (operational-space on the Franka, "
                                       "joint servos tracking the IK solution on the ViperX pair) runs every "
                                       "step", min=500.0)
    real_time_factor: float = setting(1.0, "pace of sim time vs wall time (1.0: real time, 0: as fast as "
                                           "possible); when rendering makes the sim slower, /clock just advances "
                                           "slower (consumers use use_sim_time)", min=0.0)
    state_rate_hz: float = setting(250.0, "rate (Hz, sim time) of /clock, the EEF poses and the joint states",
                                   above=0.0)
    camera_rate_hz: float = setting(15.0, "camera frame rate (Hz, sim time), every camera", above=0.0)
    image_width: int = setting(224, "image width (px, rgb8), every camera", min=1)
    image_height: int = setting(224, "image height (px, rgb8), every camera", min=1)
    publish_clock: bool = setting(True, "publish /clock (rosgraph_msgs/Clock) as the sim advances")
    expert: bool = setting(False, "drive the robot with the scripted expert (from privileged sim state); its "
                                  "actions go out as single-step lawam_msgs/ActionChunk on teleop_topic, exactly "
                                  "like a human teleoperator's, so the recorder works identically")
    expert_apply_directly: bool = setting(True, "with expert: also apply the expert's actions to the twin "
                                                "directly (no bridge needed); false: only publish them for a "
                                                "bridge to forward")
    teleop_topic: str = setting(topics.TELEOP_COMMAND_TOPIC, "lawam_msgs/ActionChunk output of the expert")
    success_topic: str = setting("/lawam_sim/success", "per-task success signal (std_msgs/Bool), published on "
                                                       "change and at 1 Hz")
    seed: int = setting(-1, "initial scene seed; negative: the first of the fixed evaluation seeds "
                            "(lawam_sim.seeds.EVAL_SEEDS)")
    task: str = setting("", "initial instruction the success test and the expert follow (empty: the scene's "
                            "first); later ones come from task_topic or a Reset request's task. One the scene "
                            "does not know is warned about once, listed in ~/stats (unknown_tasks) and the "
                            "default is used")
    task_topic: str = setting(topics.TASK_TOPIC, "std_msgs/String instruction input (the policy node's)")
    workspace_min: tuple = setting((0.0,), "workspace box lower corner (m, x y z in the robot base frame): "
                                           "targets outside are refused (the last admitted target is kept) and "
                                           "counted in ~/stats, like the bridge's safety layer; anything but 3 "
                                           "numbers: the scene's own box (default_workspace in "
                                           "lawam_sim/scenes, a superset of the bridge's)")
    workspace_max: tuple = setting((0.0,), "workspace box upper corner (m); see workspace_min")


@dataclass
class FrankaTwinSettings:
    """The Franka twin's contract topics (franka_ros2 names, from the embodiment registry)."""

    pose_target_topic: str = setting(_FRANKA.target_topics[0], "PoseStamped EEF target input (frame "
                                                               "panda_link0)")
    gripper_width_topic: str = setting(_FRANKA.gripper_command_topics[0], "std_msgs/Float64 gripper width "
                                                                          "input (m)")
    current_pose_topic: str = setting(_FRANKA.measured_pose_topics[0], "measured EEF PoseStamped output "
                                                                       "(best effort)")
    joint_states_topic: str = setting("/joint_states", "sensor_msgs/JointState of <arm_id>_joint1..7")
    finger_joint_states_topic: str = setting(_FRANKA.gripper_state_topics["arm"], "finger JointState output "
                                                                                  "(each finger = width / 2)")
    arm_id: str = setting("panda", "joint name prefix")
    camera_topic: str = setting(_FRANKA.camera_topic("primary"), "primary camera image output (rgb8)")
    wrist_camera: bool = setting(False, "also render the hand camera (the model's wrist camera)")
    wrist_camera_topic: str = setting(_FRANKA.camera_topic("wrist"), "wrist camera image output (rgb8), with "
                                                                     "wrist_camera")


def franka_twin_params() -> list[Param]:
    """Every parameter of the Franka twin (lawam_sim/franka_twin)."""
    return params_of(TwinSettings, scene="franka_pick_place") + params_of(FrankaTwinSettings)


def quanta_twin_params() -> list[Param]:
    """Every parameter of the Quanta X1 twin (lawam_sim/quanta_twin); per-arm topics from the registry."""
    e = get_embodiment("quanta_x1")
    arms = []
    for i, arm in enumerate(e.layout.arms):
        arms += [Param(f"{arm}_target_topic", e.target_topics[i], f"PoseStamped EEF target input of the {arm} "
                                                                  f"arm (frame {e.base_frame})"),
                 Param(f"{arm}_gripper_topic", e.gripper_command_topics[i], f"std_msgs/Float64 opening input of "
                                                                            f"the {arm} gripper (0 closed .. 1 "
                                                                            f"open)"),
                 Param(f"{arm}_current_pose_topic", e.measured_pose_topics[i], f"measured EEF PoseStamped output "
                                                                               f"of the {arm} arm (best effort)")]
    cameras = [Param("joint_states_topic", "/joint_states", "sensor_msgs/JointState of both arms"),
               Param("camera_topic", e.camera_topic("primary"), "primary (high) camera image output (rgb8)"),
               Param("wrist_cameras", True, "also render the wrist cameras (the model's left_wrist / "
                                            "right_wrist)")]
    cameras += [Param(f"{arm}_wrist_camera_topic", e.camera_topic(f"{arm}_wrist"),
                      f"{arm} wrist camera image output (rgb8), with wrist_cameras") for arm in e.layout.arms]
    return params_of(TwinSettings, scene="quanta_towel_fold") + arms + cameras


def workspace_box(values: dict):
    """(min, max) corners (m) of the twin's workspace box from its parameter `values`, or None for the scene's
    own box (the default: anything but 3 numbers each)."""
    lo, hi = list(values["workspace_min"]), list(values["workspace_max"])
    return (lo, hi) if len(lo) == 3 and len(hi) == 3 else None
