"""The system descriptions: which nodes each LaWAM system runs, with what parameters and remappings.

This is the single source both launch paths are built from: the ROS 2 launch files in launch/
(`ros2 launch lawam_bringup <system>.launch.py`, see ros_launch.py) and the `lawam launch` runner
for machines without ROS 2's launch tooling (see runner.py). Neither adds nodes or parameters of its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

BOOL_CHOICES = ("true", "false")


class ArgumentError(ValueError):
    """A launch argument that does not exist or has a bad value."""


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NodeSpec:
    package: str
    executable: str
    name: str
    param_files: tuple[str, ...] = ()          # file names under config/
    parameters: dict = field(default_factory=dict)  # overrides, applied after the files
    remappings: tuple[tuple[str, str], ...] = ()
    required: bool = True                      # its death shuts the whole system down


@dataclass(frozen=True)
class System:
    name: str
    description: str
    arguments: tuple[Argument, ...]
    nodes: Callable[[dict], list[NodeSpec]]

    def resolve(self, overrides: dict[str, str] | None = None) -> list[NodeSpec]:
        return self.nodes(self.arguments_with(overrides or {}))

    def arguments_with(self, overrides: dict[str, str]) -> dict[str, str]:
        known = {a.name: a for a in self.arguments}
        values = {a.name: a.default for a in self.arguments}
        for key, value in overrides.items():
            if key not in known:
                raise ArgumentError(f"unknown argument '{key}' for system '{self.name}'; "
                                    f"valid: {', '.join(sorted(known))}")
            choices = known[key].choices
            if choices and value not in choices:
                raise ArgumentError(f"bad value '{value}' for argument '{key}'; valid: {', '.join(choices)}")
            values[key] = value
        return values


def config_dir() -> str:
    """config/ as installed by lawam_bringup (share/lawam_bringup/config)."""
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory("lawam_bringup"), "config")


def _common_arguments(camera_defaults: dict[str, str]) -> tuple[Argument, ...]:
    cams = tuple(Argument(name, topic, f"image topic of the {name.replace('_', ' ')}")
                 for name, topic in camera_defaults.items())
    return (
        Argument("use_sim", "true", "run the embedded MuJoCo twin (true) or talk to the real robot (false)",
                 BOOL_CHOICES),
        Argument("checkpoint", "", "LaWAM checkpoint directory; empty = the untrained 'tiny' preset"),
        Argument("task", "", "initial language instruction; empty = the system's default task"),
        Argument("device", "cpu", "torch device for the policy, e.g. cpu, cuda, cuda:1"),
        *cams,
        Argument("demo_output", "", "directory for demo outputs (summary.json, video, plots); empty = none"),
    )


def _policy(args: dict, embodiment: str, cameras: list[str], roles: list[str], default_task: str,
            **extra) -> NodeSpec:
    return NodeSpec(
        "lawam_policy", "policy_node", "policy_node",
        param_files=("policy.yaml",),
        parameters={
            "use_sim_time": args["use_sim"] == "true",
            "checkpoint": args["checkpoint"],
            "task": args["task"] or default_task,
            "device": args["device"],
            "embodiment": embodiment,
            "camera_topics": cameras,
            "camera_roles": roles,  # the checkpoint must take these cameras in this order
            **extra,
        })


def _monitor(args: dict, system: str, cameras: list[str], eef_pose_topic: str, twin: str) -> list[NodeSpec]:
    if not args["demo_output"]:
        return []
    return [NodeSpec("lawam_bringup", "demo_monitor", "demo_monitor",
                     parameters={"use_sim_time": args["use_sim"] == "true",
                                 "system": system,
                                 "output_dir": args["demo_output"],
                                 "camera_topic": cameras[0],
                                 "eef_pose_topic": eef_pose_topic,
                                 "twin_stats_topic": f"/{twin}/stats" if args["use_sim"] == "true" else ""},
                     required=False)]


# Franka bridge profiles: parameter files applied after franka_bridge.yaml (the Panda profile, which the twin
# follows), and the base frame the policy writes into its chunks. See config/franka_bridge*.yaml.
FRANKA_PROFILES = {"panda": ((), ""), "fr3": (("franka_bridge_fr3.yaml",), "fr3_link0")}


def _franka_pick_place(args: dict) -> list[NodeSpec]:
    sim = args["use_sim"] == "true"
    profile_files, frame = FRANKA_PROFILES[args["robot_profile"]]
    if sim and args["robot_profile"] != "panda":
        raise ArgumentError(f"robot_profile:={args['robot_profile']} needs use_sim:=false: the twin is a Panda "
                            f"(panda_link0)")
    cameras = [args["primary_camera"]] + ([args["wrist_camera"]] if args["wrist_camera"] else [])
    roles = ["primary"] + (["wrist"] if args["wrist_camera"] else [])
    nodes = []
    if sim:
        nodes.append(NodeSpec("lawam_sim", "franka_twin", "franka_twin", param_files=("franka_twin.yaml",),
                              remappings=(("/camera/color/image_raw", args["primary_camera"]),)))
    nodes.append(_policy(args, "franka_panda", cameras, roles, "put the red cube in the bowl",
                         **({"frame_id": frame} if frame else {})))
    # The twin takes the gripper as a width topic, never franka_msgs actions (even where those import).
    nodes.append(NodeSpec("lawam_policy", "franka_bridge", "franka_bridge",
                          param_files=("franka_bridge.yaml",) + profile_files,
                          parameters={"use_sim_time": sim, **({"gripper_mode": "topic"} if sim else {})}))
    return nodes + _monitor(args, "franka_pick_place", cameras, "/franka_robot_state_broadcaster/current_pose",
                             "franka_twin")


def _quanta_towel_fold(args: dict) -> list[NodeSpec]:
    sim = args["use_sim"] == "true"
    cameras = [args["high_camera"], args["left_wrist_camera"], args["right_wrist_camera"]]
    nodes = []
    if sim:
        nodes.append(NodeSpec("lawam_sim", "quanta_twin", "quanta_twin", param_files=("quanta_twin.yaml",),
                              remappings=(("/cam_high/image_raw", args["high_camera"]),
                                          ("/cam_left_wrist/image_raw", args["left_wrist_camera"]),
                                          ("/cam_right_wrist/image_raw", args["right_wrist_camera"]))))
    nodes.append(_policy(args, "quanta_x1", cameras, ["primary", "left_wrist", "right_wrist"],
                         "fold the towel in half"))
    nodes.append(NodeSpec("lawam_policy", "quanta_bridge", "quanta_bridge", param_files=("quanta_bridge.yaml",),
                          parameters={"use_sim_time": sim}))
    return nodes + _monitor(args, "quanta_towel_fold", cameras, "/left_arm/current_pose", "quanta_twin")


SYSTEMS: dict[str, System] = {s.name: s for s in (
    System("franka_pick_place",
           "Franka Panda pick-and-place (and drawer) with the LaWAM policy; MuJoCo twin by default",
           _common_arguments({"primary_camera": "/camera/color/image_raw", "wrist_camera": ""}) + (
               Argument("robot_profile", "panda", "Franka bridge profile: panda (the twin; franka_ros2 humble "
                        "v0.1.x naming) or fr3 (franka_ros2 jazzy); see config/franka_bridge*.yaml",
                        ("panda", "fr3")),),
           _franka_pick_place),
    System("quanta_towel_fold",
           "Quanta X1 bimanual towel fold with the LaWAM policy; MuJoCo twin by default",
           _common_arguments({"high_camera": "/cam_high/image_raw",
                              "left_wrist_camera": "/cam_left_wrist/image_raw",
                              "right_wrist_camera": "/cam_right_wrist/image_raw"}),
           _quanta_towel_fold),
)}


def get_system(name: str) -> System:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ArgumentError(f"unknown system '{name}'; valid: {', '.join(sorted(SYSTEMS))}") from None
