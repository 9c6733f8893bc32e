"""The system descriptions: which nodes each LaWAM system runs, with what parameters and remappings.

This is the single source both launch paths are built from: the ROS 2 launch files in launch/
(`ros2 launch lawam_bringup <system>.launch.py`, see ros_launch.py) and the `lawam launch` runner
for machines without ROS 2's launch tooling (see runner.py). Neither adds nodes or parameters of its own.

Each system runs one task, i.e. one simulated scene of its twin (``System.scene``, a key of
lawam_sim.scenes.INSTRUCTIONS); the scene picks the twin's scene, the default task and the default checkpoint.
The Franka tasks are separate systems (franka_pick_place, franka_drawer) with the same arguments.

Default checkpoint, resolved here only (``resolve_checkpoint``): a given ``checkpoint`` is used as is; with
``use_sim:=true`` and none given, the simulated scene's shipped checkpoint
``share/lawam_bringup/checkpoints/<scene>/`` (source: src/lawam_bringup/checkpoints/<scene>/); with
``use_sim:=false`` and none given, a one-line CheckpointError and nothing starts. ``preset:NAME`` (sim only)
runs the untrained preset NAME (random weights), e.g. for plumbing tests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from lawam_policy.embodiments import get_embodiment

BOOL_CHOICES = ("true", "false")
# Arguments earlier versions had, with what to do instead (said in the unknown-argument error).
REMOVED_ARGUMENTS = {"scene": "each system runs one scene: pick the system, e.g. franka_drawer; "
                              "see lawam launch --list"}


class ArgumentError(ValueError):
    """A launch argument that does not exist or has a bad value."""


class CheckpointError(ArgumentError):
    """No checkpoint can be used for this configuration (one line: what is missing and how to pass one)."""


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
    embodiment: str = ""
    scene: str = ""                                    # the simulated scene its twin runs (default task, checkpoint)
    cameras: tuple[tuple[str, str], ...] = ()          # (launch argument of a camera topic, LaWAM camera role)
    twin: str = ""                                     # node (and config/<twin>.yaml) of its simulated robot
    bridge: str = ""                                   # node (and config/<bridge>.yaml) of its robot bridge
    eval_timeout_s: float = 30.0                       # lawam-eval: default sim seconds per episode

    def camera_roles(self, values: dict[str, str] | None = None) -> list[str]:
        """Ordered camera roles the policy gets with these argument values (cameras with an empty topic are off)."""
        values = self.arguments_with(values or {})
        return [role for arg, role in self.cameras if values[arg]]

    def camera_topics(self, values: dict[str, str] | None = None) -> list[str]:
        values = self.arguments_with(values or {})
        return [values[arg] for arg, _ in self.cameras if values[arg]]

    def resolve(self, overrides: dict[str, str] | None = None) -> list[NodeSpec]:
        return self.nodes(self.arguments_with(overrides or {}))

    def arguments_with(self, overrides: dict[str, str]) -> dict[str, str]:
        known = {a.name: a for a in self.arguments}
        values = {a.name: a.default for a in self.arguments}
        for key, value in overrides.items():
            if key not in known:
                hint = f" ({REMOVED_ARGUMENTS[key]})" if key in REMOVED_ARGUMENTS else ""
                raise ArgumentError(f"unknown argument '{key}' for system '{self.name}'{hint}; "
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


# What makes a directory a LaWAM checkpoint (lawam_policy.model.config.CONFIG_NAME; not imported: that
# package pulls in torch).
CHECKPOINT_CONFIG = "lawam_config.json"
PRESET_PREFIX = "preset:"


def checkpoints_root() -> str:
    """share/lawam_bringup/checkpoints: one shipped default checkpoint directory per simulated scene."""
    from ament_index_python.packages import get_package_share_directory
    return os.path.join(get_package_share_directory("lawam_bringup"), "checkpoints")


def shipped_checkpoint(scene: str) -> str:
    """The installed default checkpoint directory of a simulated scene (it may not hold a checkpoint yet)."""
    return os.path.join(checkpoints_root(), scene)


def resolve_checkpoint(checkpoint: str, use_sim: bool, scene: str, option: str = "checkpoint:=") -> str:
    """The checkpoint the policy runs: ``checkpoint`` when given (a directory or ``preset:NAME``), else the
    scene's shipped default in sim. ``option`` is how the caller's user passes one (for the error text).

    Raises CheckpointError (one line) on hardware without a checkpoint, for a preset on hardware, and in sim
    when none is given and the shipped directory holds no checkpoint."""
    if checkpoint.startswith(PRESET_PREFIX):
        if not use_sim:
            raise CheckpointError(f"{option}{checkpoint} runs random weights and is refused with use_sim:=false: "
                                  f"pass a trained checkpoint with {option}DIR")
        return checkpoint
    if checkpoint:
        return checkpoint
    if not use_sim:
        raise CheckpointError(f"use_sim:=false needs a checkpoint: pass {option}DIR (a LaWAM checkpoint "
                              f"directory); nothing was started")
    shipped = shipped_checkpoint(scene)
    if not os.path.isfile(os.path.join(shipped, CHECKPOINT_CONFIG)):
        raise CheckpointError(f"no checkpoint given and the shipped default of scene '{scene}' ({shipped}) holds "
                              f"none yet: pass {option}DIR (a LaWAM checkpoint directory), or "
                              f"{option}{PRESET_PREFIX}tiny for the untrained model")
    return shipped


def default_task(scene: str) -> str:
    """A scene's default instruction (the first of lawam_sim.scenes.INSTRUCTIONS[scene])."""
    from lawam_sim.scenes import INSTRUCTIONS
    return INSTRUCTIONS[scene][0]


def _common_arguments(camera_defaults: dict[str, str]) -> tuple[Argument, ...]:
    cams = tuple(Argument(name, topic, f"image topic of the {name.replace('_', ' ')} (empty: the policy takes no "
                                       f"such camera; the checkpoint's camera roles must match)")
                 for name, topic in camera_defaults.items())
    return (
        Argument("use_sim", "true", "run the embedded MuJoCo twin (true) or talk to the real robot (false)",
                 BOOL_CHOICES),
        Argument("checkpoint", "", "LaWAM checkpoint directory; empty = the system's shipped sim checkpoint with "
                                   "use_sim:=true (required with use_sim:=false); preset:tiny = untrained (sim)"),
        Argument("task", "", "initial language instruction; empty = the system's default instruction"),
        Argument("device", "cpu", "torch device for the policy, e.g. cpu, cuda, cuda:1"),
        *cams,
        Argument("demo_output", "", "directory for demo outputs (summary.json, video, plots); empty = none"),
    )


def _task(args: dict, scene: str) -> str:
    return args["task"] or default_task(scene)


def _policy(args: dict, scene: str, embodiment: str, cameras: list[str], roles: list[str], **extra) -> NodeSpec:
    checkpoint = resolve_checkpoint(args["checkpoint"], args["use_sim"] == "true", scene)
    preset = {}
    if checkpoint.startswith(PRESET_PREFIX):  # the policy node runs `preset` when `checkpoint` is empty
        checkpoint, preset = "", {"preset": checkpoint[len(PRESET_PREFIX):]}
    return NodeSpec(
        "lawam_policy", "policy_node", "policy_node",
        param_files=("policy.yaml",),
        parameters={
            "use_sim_time": args["use_sim"] == "true",
            "checkpoint": checkpoint,
            **preset,
            "task": _task(args, scene),
            "device": args["device"],
            "embodiment": embodiment,
            "camera_topics": cameras,
            "camera_roles": roles,  # the checkpoint must take these cameras in this order
            **extra,
        })


def _monitor(args: dict, system: str, cameras: list[str], eef_pose_topic: str, command_pose_topic: str,
             twin: str) -> list[NodeSpec]:
    if not args["demo_output"]:
        return []
    return [NodeSpec("lawam_bringup", "demo_monitor", "demo_monitor",
                     parameters={"use_sim_time": args["use_sim"] == "true",
                                 "system": system,
                                 "output_dir": args["demo_output"],
                                 "camera_topic": cameras[0],
                                 "eef_pose_topic": eef_pose_topic,
                                 "command_pose_topic": command_pose_topic,
                                 "twin_stats_topic": f"/{twin}/stats" if args["use_sim"] == "true" else ""},
                     required=False)]


# Robot facts (base frames, topics, camera roles) come from the embodiment registry (torch-free).
FRANKA, QUANTA = get_embodiment("franka_panda"), get_embodiment("quanta_x1")
# Quanta launch argument of each camera topic, with its role, in the policy's camera order.
QUANTA_CAMERAS = (("high_camera", "primary"), ("left_wrist_camera", "left_wrist"),
                  ("right_wrist_camera", "right_wrist"))

# Franka bridge profiles: parameter files applied after franka_bridge.yaml (the Panda profile, which the twin
# follows). See config/franka_bridge*.yaml; the base frame the policy writes into its chunks is read from them.
FRANKA_PROFILES = {"panda": (), "fr3": ("franka_bridge_fr3.yaml",)}


def franka_bridge_frame(profile_files: tuple) -> str:
    """The Franka bridge's `frame_id` with `profile_files` applied after franka_bridge.yaml (its one home is
    the profile's file: the policy must write the frame the bridge streams in). Raises KeyError for a file
    naming a parameter the bridge lacks."""
    from lawam_policy.parameters import node_values
    files = [os.path.join(config_dir(), f) for f in ("franka_bridge.yaml",) + tuple(profile_files)]
    return node_values("franka_bridge", files)["frame_id"]


def _franka(args: dict, system: str, scene: str) -> list[NodeSpec]:
    """Twin (sim) + policy + Franka bridge for one Franka task; `scene` is the twin's scene."""
    sim = args["use_sim"] == "true"
    profile_files = FRANKA_PROFILES[args["robot_profile"]]
    if sim and args["robot_profile"] != "panda":
        raise ArgumentError(f"robot_profile:={args['robot_profile']} needs use_sim:=false: the twin is a Panda "
                            f"(panda_link0)")
    cameras = [args["primary_camera"]] + ([args["wrist_camera"]] if args["wrist_camera"] else [])
    roles = ["primary"] + (["wrist"] if args["wrist_camera"] else [])
    nodes = []
    if sim:
        # The twin renders the hand camera only when the policy takes a wrist view.
        wrist = {"wrist_camera": True} if args["wrist_camera"] else {}
        nodes.append(NodeSpec("lawam_sim", "franka_twin", "franka_twin", param_files=("franka_twin.yaml",),
                              parameters={"scene": scene, "task": _task(args, scene), **wrist},
                              remappings=((FRANKA.camera_topic("primary"), args["primary_camera"]),)
                              + (((FRANKA.camera_topic("wrist"), args["wrist_camera"]),) if wrist else ())))
    frame = franka_bridge_frame(profile_files) if profile_files else FRANKA.base_frame
    nodes.append(_policy(args, scene, "franka_panda", cameras, roles,
                         **({"frame_id": frame} if frame != FRANKA.base_frame else {})))
    # The twin takes the gripper as a width topic, never franka_msgs actions (even where those import).
    nodes.append(NodeSpec("lawam_policy", "franka_bridge", "franka_bridge",
                          param_files=("franka_bridge.yaml",) + profile_files,
                          parameters={"use_sim_time": sim, **({"gripper_mode": "topic"} if sim else {})}))
    return nodes + _monitor(args, system, cameras, FRANKA.measured_pose_topics[0], FRANKA.target_topics[0],
                            "franka_twin")


def _quanta(args: dict, system: str, scene: str) -> list[NodeSpec]:
    """Twin (sim) + policy + Quanta bridge for one bimanual task; `scene` is the twin's scene."""
    sim = args["use_sim"] == "true"
    cameras = [args[arg] for arg, _ in QUANTA_CAMERAS]
    nodes = []
    if sim:
        nodes.append(NodeSpec("lawam_sim", "quanta_twin", "quanta_twin", param_files=("quanta_twin.yaml",),
                              parameters={"scene": scene, "task": _task(args, scene)},
                              remappings=tuple((QUANTA.camera_topic(role), args[arg])
                                               for arg, role in QUANTA_CAMERAS)))
    nodes.append(_policy(args, scene, "quanta_x1", cameras, [role for _, role in QUANTA_CAMERAS]))
    nodes.append(NodeSpec("lawam_policy", "quanta_bridge", "quanta_bridge", param_files=("quanta_bridge.yaml",),
                          parameters={"use_sim_time": sim}))
    return nodes + _monitor(args, system, cameras, QUANTA.measured_pose_topics[0], QUANTA.target_topics[0],
                            "quanta_twin")


def _franka_system(name: str, description: str, wrist: bool) -> System:
    """A Franka task: the system `name` runs the twin scene of the same name; all Franka tasks share arguments.
    `wrist`: its policy takes the hand camera by default (its shipped checkpoint's camera roles)."""
    wrist_topic = FRANKA.camera_topic("wrist") if wrist else ""
    return System(name, description,
                  _common_arguments({"primary_camera": FRANKA.camera_topic("primary"), "wrist_camera": wrist_topic}) + (
                      Argument("robot_profile", "panda", "Franka bridge profile: panda (the twin; franka_ros2 humble "
                               "v0.1.x naming) or fr3 (franka_ros2 jazzy); see config/franka_bridge*.yaml",
                               ("panda", "fr3")),),
                  partial(_franka, system=name, scene=name), embodiment="franka_panda", scene=name,
                  cameras=(("primary_camera", "primary"), ("wrist_camera", "wrist")), twin="franka_twin",
                  bridge="franka_bridge", eval_timeout_s=30.0)


SYSTEMS: dict[str, System] = {s.name: s for s in (
    _franka_system("franka_pick_place", "Franka Panda pick-and-place (the red or the green cube into the bowl) "
                                        "with the LaWAM policy; MuJoCo twin by default", wrist=True),
    _franka_system("franka_drawer", "Franka Panda drawer opening with the LaWAM policy; MuJoCo twin by default",
                   wrist=False),
    System("quanta_towel_fold",
           "Quanta X1 bimanual towel fold with the LaWAM policy; MuJoCo twin by default",
           _common_arguments({arg: QUANTA.camera_topic(role) for arg, role in QUANTA_CAMERAS}),
           partial(_quanta, system="quanta_towel_fold", scene="quanta_towel_fold"), embodiment="quanta_x1",
           scene="quanta_towel_fold",
           cameras=QUANTA_CAMERAS, twin="quanta_twin", bridge="quanta_bridge", eval_timeout_s=45.0),
)}
# simulated scene -> the system whose twin runs it
SCENE_SYSTEMS: dict[str, str] = {s.scene: s.name for s in SYSTEMS.values()}


def get_system(name: str) -> System:
    try:
        return SYSTEMS[name]
    except KeyError:
        raise ArgumentError(f"unknown system '{name}'; valid: {', '.join(sorted(SYSTEMS))}") from None
