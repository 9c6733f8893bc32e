"""One home per node parameter: each is declared once, with type, default, description and bounds.

In the manner of ros2_control's generate_parameter_library (not on PyPI), but derived from the runtime's
dataclasses: a field made with :func:`setting` carries its parameter's description and bounds in its
metadata, so the dataclass default *is* the parameter default. The nodes declare exactly the lists built
here (``nodes.common.declare_parameters``), the ``config/*.yaml`` files hold only what differs from them,
and ``docs/parameters.md`` is generated from them (``python tools/gen_parameters.py``; a test keeps it
current). Nodes of the other workspace packages (twins, recorder, teleop, demo monitor) keep their lists in
their own ROS-free settings modules, and command-line tools (``finetune``) their settings dataclass; NODES and
TOOLS name them, imported only when asked. ROS-free and torch-free.

Bounds are checked by :meth:`Param.check` (one-line ValueError naming the parameter) both when a node
declares its parameters and in the dataclasses' own ``validate`` (:func:`check_fields`), so a value the
runtime refuses is refused at the same line by the node.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import math
from dataclasses import dataclass
from typing import Any, Iterable

from . import topics
from .embodiments import get_embodiment

_META = "lawam_param"


@dataclass(frozen=True)
class Param:
    """One ROS parameter: `name`, `default` (its type is the parameter's type), `description` (with units),
    inclusive `min`/`max` or exclusive `above` (numbers, or every element of a number array) and `choices`."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    above: float | None = None
    choices: tuple | None = None

    @property
    def type_name(self) -> str:
        """ROS parameter type: bool, integer, double, string or their arrays (`double[]`)."""
        return _type_name(self.default)

    def bounds_text(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"> {self.above:g}")
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        if self.choices:
            parts.append("one of " + ", ".join(str(c) for c in self.choices))
        return ", ".join(parts)

    def check(self, value) -> None:
        """Raise ValueError (one line, naming the parameter) when `value` is outside the bounds."""
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if self.choices and v not in self.choices:
                raise ValueError(f"{self.name} must be one of {tuple(self.choices)}, got {value!r}")
            if isinstance(v, (int, float)) and not isinstance(v, bool) and (
                    math.isnan(v) or (self.above is not None and not v > self.above)
                    or (self.min is not None and v < self.min) or (self.max is not None and v > self.max)):
                raise ValueError(f"{self.name} must be {self.bounds_text()}, got {value!r}")


def _type_name(value) -> str:
    if isinstance(value, (list, tuple)):
        if not value:
            raise TypeError("an array parameter needs a non-empty default (its element type)")
        return _type_name(value[0]) + "[]"
    for kind, name in ((bool, "bool"), (int, "integer"), (float, "double"), (str, "string")):
        if isinstance(value, kind):
            return name
    raise TypeError(f"no ROS parameter type for {value!r}")


def setting(default, description: str, *, name: str | None = None, min: float | None = None,
            max: float | None = None, above: float | None = None, choices: tuple | None = None,
            per_instance: bool = False):
    """A dataclass field that is also a ROS parameter (`name`: the parameter's name when it differs from the
    field's). Lists are stored as tuples (dataclass defaults must be immutable); with `per_instance` a list or
    dict default is instead copied into each instance (settings that are not ROS parameters, e.g. finetune's)."""
    meta = {_META: dict(description=description, name=name, min=min, max=max, above=above, choices=choices)}
    if per_instance and isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata=meta)


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _settings(cls):
    """(field, Param) of each :func:`setting` field of dataclass `cls`, in field order."""
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is not None:
            default = _default(f)
            yield f, Param(meta["name"] or f.name, list(default) if isinstance(default, tuple) else default,
                           meta["description"], meta["min"], meta["max"], meta["above"], meta["choices"])


def params_of(cls, **defaults) -> list[Param]:
    """The parameters of dataclass `cls`'s :func:`setting` fields, in field order; `defaults` (by parameter
    name) replace the dataclass defaults (e.g. per embodiment)."""
    out = []
    for _, p in _settings(cls):
        if p.name in defaults:
            p = dataclasses.replace(p, default=defaults.pop(p.name))
        out.append(p)
    if defaults:
        raise KeyError(f"{cls.__name__} has no parameters {sorted(defaults)}")
    return out


def check_fields(obj) -> None:
    """Check every :func:`setting` field of dataclass instance `obj` against its bounds (ValueError)."""
    for f, p in _settings(type(obj)):
        p.check(getattr(obj, f.name))


def field_values(cls, values: dict) -> dict:
    """{field name: value} for dataclass `cls` from {parameter name: value} (tuples for lists)."""
    out = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            continue
        name = meta["name"] or f.name
        if name in values:
            v = values[name]
            out[f.name] = tuple(v) if isinstance(v, list) else v
    return out


GRIPPER_MODES = ("auto", "action", "topic", "none")  # the Franka bridge's gripper_mode


# ---- node-level settings (what no runtime dataclass holds) ------------------------------------------------
@dataclass
class PolicyNodeSettings:
    checkpoint: str = setting("", "LaWAM checkpoint directory; empty: `preset` with random weights")
    preset: str = setting("tiny", "model preset when no checkpoint is given (tiny, sim, paper)")
    device: str = setting("cpu", "torch device (cpu, cuda, cuda:0)")
    torch_threads: int = setting(1, "CPU threads for inference (torch.set_num_threads); 0: torch's default, "
                                    "every core (starves other nodes on the machine)")
    embodiment: str = setting("franka_panda", "action layout of the chunks (franka_panda: 1 arm; quanta_x1: "
                                              "left, right)")
    camera_topics: tuple = setting((get_embodiment("franka_panda").primary_camera_topic,),
                                   "image topics; names ending in /compressed subscribe CompressedImage")
    camera_roles: tuple = setting(("",), "the model's camera role of each camera topic, same order (e.g. "
                                         "primary, wrist); [\"\"]: the embodiment's standard order. A checkpoint "
                                         "trained for other roles, another order or another embodiment stops "
                                         "the node (exit 1)")
    primary_camera: str = setting("", "which camera topic is the primary (LaWM) view; empty: the first")
    frame_id: str = setting("", "robot base frame written into the chunks; empty: the embodiment's "
                                "(panda_link0, base_link)")
    sync_tolerance_s: float = setting(0.05, "all cameras' stamps must lie within this of the primary's (s)",
                                      min=0.0)
    max_frame_age_s: float = setting(0.0, "frames older than this (s, ROS clock) are not used; 0: no limit",
                                     min=0.0)
    stamp_tolerance_s: float = setting(2.0, "frames stamped further than this from the node's clock (s) are "
                                            "refused by reason; 0: no check", min=0.0)
    diagnostics_rate_hz: float = setting(1.0, "diagnostic_msgs/DiagnosticArray rate on /diagnostics (Hz); "
                                              "0: off", min=0.0)
    task: str = setting("", "initial instruction; empty: no inference until one is set")
    task_topic: str = setting(topics.TASK_TOPIC, "std_msgs/String instruction input")
    set_task_service: str = setting(topics.SET_TASK_SERVICE, "lawam_msgs/SetTask service")
    chunk_topic: str = setting(topics.CHUNK_TOPIC, "lawam_msgs/ActionChunk output")
    status_topic: str = setting(topics.POLICY_STATUS_TOPIC, "lawam_msgs/PolicyStatus output")
    heatmap_topic: str = setting(topics.HEATMAP_TOPIC, "subgoal heatmap image (rgb8) for RViz")
    heatmap_rate_hz: float = setting(1.0, "heatmap rate limit (Hz); 0: off", min=0.0)
    heatmap_patch: int = setting(-1, "current patch index the heatmap compares with the subgoal; -1: the "
                                     "image centre")
    status_rate_hz: float = setting(2.0, "PolicyStatus rate (Hz)", above=0.0)
    control_rate_hz: float = setting(0.0, "f_b of the chunks (Hz): step k is k / f_b s after the observation; "
                                          "0: the rate the checkpoint was trained at (15 Hz if it records none)",
                                     min=0.0)
    seed: int = setting(-1, "sampling seed per chunk; negative: random")


@dataclass
class BridgeNodeSettings:
    """The bridge node's own parameters; robot-specific defaults come from the embodiment registry."""

    embodiment: str = setting("franka_panda", "action layout name the chunks must have")
    arm_names: tuple = setting(("arm",), "arms in chunk order")
    frame_id: str = setting("panda_link0", "robot base frame of the streamed targets")
    chunk_topic: str = setting(topics.CHUNK_TOPIC, "lawam_msgs/ActionChunk input")
    status_topic: str = setting(topics.BRIDGE_STATUS_TOPIC, "lawam_msgs/BridgeStatus output")
    target_topics: tuple = setting(("/target",), "PoseStamped target per arm (controller input)")
    measured_pose_topics: tuple = setting(("/pose",), "measured EEF PoseStamped per arm (best effort)")
    control_rate_hz: float = setting(1000.0, "command stream rate (Hz, steady clock); under use_sim_time at "
                                             "most the /clock rate", above=0.0)
    status_rate_hz: float = setting(10.0, "BridgeStatus rate (Hz)", above=0.0)
    initial_gripper: float = setting(-1.0, "opening (0..1) commanded once before the first chunk; negative: no "
                                           "gripper command until a chunk is accepted (keep it so on hardware: a "
                                           "hand holding an object keeps it)")
    diagnostics_rate_hz: float = setting(1.0, "diagnostic_msgs/DiagnosticArray rate on /diagnostics (Hz); 0: off",
                                         min=0.0)


@dataclass
class FrankaGripperSettings:
    gripper_mode: str = setting("auto", "auto (franka_msgs actions if they import, else the width topic), "
                                        "action, topic or none", choices=GRIPPER_MODES)
    grasp_action: str = setting("/panda_gripper/grasp", "franka_msgs/action/Grasp server (franka_gripper node "
                                                        "<arm_id>_gripper)")
    move_action: str = setting("/panda_gripper/move", "franka_msgs/action/Move server")
    gripper_width_topic: str = setting(get_embodiment("franka_panda").gripper_command_topics[0],
                                       "std_msgs/Float64 width (m) when actions are not used")


@dataclass
class QuantaGripperSettings:
    gripper_topics: tuple = setting(get_embodiment("quanta_x1").gripper_command_topics,
                                    "std_msgs/Float64 opening 0..1 per arm, sent on change")


def _robot_defaults(embodiment: str) -> dict:
    e = get_embodiment(embodiment)
    return {"embodiment": e.name, "arm_names": list(e.layout.arms), "frame_id": e.base_frame,
            "target_topics": list(e.target_topics), "measured_pose_topics": list(e.measured_pose_topics),
            "control_rate_hz": e.control_rate_hz}


def policy_params() -> list[Param]:
    """Every parameter of the policy node (lawam_policy/policy_node)."""
    from .runtime.engine import EngineConfig
    return params_of(PolicyNodeSettings) + params_of(EngineConfig)


def bridge_params(embodiment: str) -> list[Param]:
    """The parameters every bridge declares, with `embodiment`'s defaults (frame, topics, rate, workspace)."""
    from .runtime.bridge_core import BridgeConfig
    from .runtime.safety import SafetyLimits
    e = get_embodiment(embodiment)
    return (params_of(BridgeNodeSettings, **_robot_defaults(embodiment)) + params_of(BridgeConfig)
            + params_of(SafetyLimits, workspace_min=list(e.workspace_min), workspace_max=list(e.workspace_max)))


def franka_bridge_params() -> list[Param]:
    """Every parameter of the Franka bridge (lawam_policy/franka_bridge)."""
    from .runtime.gripper import GripperGoalConfig
    width = get_embodiment("franka_panda").gripper_max_width_m
    return (bridge_params("franka_panda") + params_of(FrankaGripperSettings)
            + params_of(GripperGoalConfig, gripper_max_width_m=width))


def quanta_bridge_params() -> list[Param]:
    """Every parameter of the Quanta X1 bridge (lawam_policy/quanta_bridge)."""
    return bridge_params("quanta_x1") + params_of(QuantaGripperSettings)


def _elsewhere(module: str, function: str):
    """`module.function` of another workspace package, imported only when called (this package does not
    depend on the packages whose nodes it lists)."""
    def make() -> list[Param]:
        return getattr(importlib.import_module(module), function)()
    make.__name__ = function
    return make


# node (as launched) -> its parameters; the reference and the YAML checks go through this.
NODES = {
    "policy_node": policy_params,
    "franka_bridge": franka_bridge_params,
    "quanta_bridge": quanta_bridge_params,
    "franka_twin": _elsewhere("lawam_sim.twin_settings", "franka_twin_params"),
    "quanta_twin": _elsewhere("lawam_sim.twin_settings", "quanta_twin_params"),
    "lawam_recorder": _elsewhere("lawam_training.node_settings", "recorder_params"),
    "lawam_teleop": _elsewhere("lawam_training.node_settings", "teleop_params"),
    "demo_monitor": _elsewhere("lawam_bringup.monitor_settings", "demo_monitor_params"),
}

# command-line tool -> (module, dataclass) of its settings (YAML keys / options, not ROS parameters).
TOOLS = {
    "finetune": ("lawam_training.finetune", "FinetuneSettings"),
}


def tool_settings(tool: str) -> list[tuple[Param, str]]:
    """(Param, Python type as annotated) of each :func:`setting` field of command-line tool `tool`'s settings
    dataclass (a key of TOOLS), in field order."""
    module, name = TOOLS[tool]
    cls = getattr(importlib.import_module(module), name)
    return [(p, str(f.type)) for f, p in _settings(cls)]


def by_name(params: Iterable[Param]) -> dict[str, Param]:
    return {p.name: p for p in params}


def defaults_of(params: Iterable[Param]) -> dict:
    return {p.name: p.default for p in params}


def yaml_overrides(path, node: str) -> dict:
    """{name: value} that the parameter file `path` sets for `node` (its ``ros__parameters``; {} if none)."""
    import yaml
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    return dict((data.get(node) or {}).get("ros__parameters") or {})


def node_values(node: str, param_files=()) -> dict:
    """The parameter values node `node` (a key of NODES) runs with: its defaults, then each file in
    `param_files` in order (as ``--params-file`` applies them). Raises KeyError for a parameter a file sets
    that the node does not declare."""
    values = defaults_of(NODES[node]())
    for path in param_files:
        overrides = yaml_overrides(path, node)
        unknown = sorted(set(overrides) - set(values) - {"use_sim_time"})
        if unknown:
            raise KeyError(f"{path}: {node} has no parameters {unknown}")
        values.update(overrides)
    return values


def _cell(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def reference_markdown() -> str:
    """docs/parameters.md: every parameter of every node in NODES and every setting of every tool in TOOLS
    (type, default, bounds, description)."""
    lines = ["# Node parameters and tool settings", "",
             "Generated from the declarations in `lawam_policy/parameters.py` (and the dataclasses it reads);",
             "do not edit: run `python tools/gen_parameters.py`. The `config/*.yaml` files hold only what",
             "differs from these defaults.", ""]
    for node, make in NODES.items():
        lines += [f"## {node}", "", "| parameter | type | default | bounds | description |", "|---|---|---|---|---|"]
        for p in make():
            lines.append(f"| `{p.name}` | {p.type_name} | `{_cell(p.default)}` | {p.bounds_text()} | "
                         f"{p.description.replace('|', '/')} |")
        lines.append("")
    for tool in TOOLS:
        lines += [f"## {tool} (settings: YAML keys of `--config`)", "",
                  "| setting | type | default | bounds | description |", "|---|---|---|---|---|"]
        for p, type_name in tool_settings(tool):
            lines.append(f"| `{p.name}` | {type_name.replace('|', 'or')} | `{_cell(p.default)}` | "
                         f"{p.bounds_text()} | {p.description.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)
