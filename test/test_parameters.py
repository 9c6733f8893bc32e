"""Each node parameter is declared once (lawam_policy/parameters.py): the reference in docs is generated from
the declarations, the YAML files hold only differences, and bounds give a one-line error."""
import subprocess
import sys
from pathlib import Path

import pytest

from lawam_policy import parameters as P
from lawam_policy.runtime.bridge_core import BridgeConfig
from lawam_policy.runtime.safety import SafetyLimits

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
# parameter file -> the node it configures, and the files loaded before it
FILES = {"policy.yaml": ("policy_node", ()), "franka_bridge.yaml": ("franka_bridge", ()),
         "franka_bridge_fr3.yaml": ("franka_bridge", ("franka_bridge.yaml",)),
         "quanta_bridge.yaml": ("quanta_bridge", ()), "franka_twin.yaml": ("franka_twin", ()),
         "quanta_twin.yaml": ("quanta_twin", ()), "recorder.yaml": ("lawam_recorder", ()),
         "teleop.yaml": ("lawam_teleop", ())}


def test_parameter_reference_is_current():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_parameters.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + " (regenerate: python tools/gen_parameters.py)"


def test_reference_lists_every_parameter_with_type_and_default():
    text = P.reference_markdown()
    for node, make in P.NODES.items():
        assert f"## {node}" in text
        for p in make():
            assert f"| `{p.name}` | {p.type_name} |" in text


@pytest.mark.parametrize("tool", sorted(P.TOOLS))
def test_reference_lists_every_tool_setting_with_type_default_and_description(tool):
    import dataclasses
    import importlib
    module, name = P.TOOLS[tool]
    cls = getattr(importlib.import_module(module), name)
    listed = P.tool_settings(tool)
    # every field is a setting() (a field without one would be missing from the reference)
    assert [p.name for p, _ in listed] == [f.name for f in dataclasses.fields(cls)]
    text = P.reference_markdown()
    assert f"## {tool} " in text
    for p, type_name in listed:
        assert p.description
        assert f"| `{p.name}` | {type_name.replace('|', 'or')} | `{P._cell(p.default)}` |" in text
    assert {p.name: p.default for p, _ in listed} == dataclasses.asdict(cls())


def test_finetune_settings_refuse_out_of_bounds_values_with_one_line():
    from lawam_training.finetune import FinetuneError, parse_args
    with pytest.raises(FinetuneError, match=r"^num_workers must be >= 0, got -1$"):
        parse_args(["--num-workers", "-1"])


@pytest.mark.parametrize("name", sorted(FILES))
def test_yaml_files_hold_only_declared_parameters_that_differ(name):
    node, before = FILES[name]
    base = P.node_values(node, [CONFIG / f for f in before])
    overrides = P.yaml_overrides(CONFIG / name, node)
    for key, value in overrides.items():
        assert key in base, f"{name}: {key} is not a parameter of {node}"
        assert value != base[key], f"{name}: {key}: {value!r} repeats the default; leave it out"


def test_bridge_defaults_come_from_the_embodiment_registry():
    from lawam_policy.embodiments import get_embodiment
    for node, emb in (("franka_bridge", "franka_panda"), ("quanta_bridge", "quanta_x1")):
        v = P.node_values(node)
        e = get_embodiment(emb)
        assert v["frame_id"] == e.base_frame and v["arm_names"] == list(e.layout.arms)
        assert v["workspace_min"] == list(e.workspace_min) and v["control_rate_hz"] == e.control_rate_hz
    assert P.node_values("franka_bridge")["gripper_max_width_m"] == get_embodiment("franka_panda").gripper_max_width_m


def test_dataclass_defaults_are_the_parameter_defaults():
    v = P.node_values("quanta_bridge")
    assert v["blend_window_s"] == BridgeConfig().blend_window_s
    assert v["max_linear_speed"] == SafetyLimits().max_linear_speed


def test_bounds_refuse_with_one_line_naming_the_parameter():
    p = P.by_name(P.franka_bridge_params())
    with pytest.raises(ValueError, match=r"^max_linear_speed must be > 0, got -1.0$"):
        p["max_linear_speed"].check(-1.0)
    with pytest.raises(ValueError, match=r"^blend_window_s must be >= 0, got -0.1$"):
        p["blend_window_s"].check(-0.1)
    with pytest.raises(ValueError, match=r"^interpolation must be one of \('linear', 'cubic'\), got 'spline'$"):
        p["interpolation"].check("spline")
    p["blend_window_s"].check(0.0)
    with pytest.raises(ValueError, match="startup_speed_scale"):
        SafetyLimits(startup_speed_scale=1.5).validate()


def test_declared_parameters_carry_description_and_range(worker_domain_id):
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from lawam_policy.nodes.common import declare_parameters

    rclpy.init()
    try:
        node = Node("param_probe", parameter_overrides=[Parameter("blend_window_s", value=0.3)])
        values = declare_parameters(node, P.bridge_params("quanta_x1"))
        assert values["blend_window_s"] == 0.3 and values["frame_id"] == "base_link"
        d = node.describe_parameter("max_start_distance_m")
        assert "measured pose" in d.description
        d = node.describe_parameter("startup_speed_scale")
        assert d.floating_point_range[0].to_value == 1.0 and d.additional_constraints == "> 0, <= 1"
        bad = Node("param_probe_bad", parameter_overrides=[Parameter("blend_window_s", value=-0.5)])
        with pytest.raises(ValueError, match="^blend_window_s must be >= 0, got -0.5$"):
            declare_parameters(bad, P.bridge_params("quanta_x1"))
    finally:
        rclpy.try_shutdown()


def test_finetune_settings_take_the_training_options_defaults():
    # num_workers was 2 in FinetuneSettings and 0 in TrainOptions
    from lawam_training.finetune import TRAIN_FIELDS, FinetuneSettings
    from lawam_training.train_options import TrainOptions
    settings, options = FinetuneSettings(), TrainOptions()
    assert {k: getattr(settings, k) for k in TRAIN_FIELDS} == {k: getattr(options, k) for k in TRAIN_FIELDS}
    assert settings.steps == options.steps
