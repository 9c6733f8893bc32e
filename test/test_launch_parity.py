"""The ROS 2 launch files and `lawam launch` start the same nodes with the same parameters.

launch/launch_ros are not installable from PyPI, so the launch files are imported against small
recording stand-ins of the names they use; where the real packages are importable, against those too.
"""
import importlib.util
import os
import sys
import types

import pytest
import yaml

from lawam_bringup.runner import plan
from lawam_bringup.systems import SYSTEMS, config_dir

LAUNCH_DIR = os.path.join(os.path.dirname(config_dir()), "launch")  # as installed by lawam_bringup


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _standins():
    launch = types.ModuleType("launch")
    launch.LaunchDescription = type("LaunchDescription", (Recorded,), {})
    actions = types.ModuleType("launch.actions")
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "Shutdown"):
        setattr(actions, name, type(name, (Recorded,), {}))
    launch.actions = actions
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (Recorded,), {})
    launch_ros.actions = ros_actions
    return {"launch": launch, "launch.actions": actions, "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


def _load_launch_file(system):
    path = os.path.join(LAUNCH_DIR, f"{system}.launch.py")
    spec = importlib.util.spec_from_file_location(f"launch_file_{system}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch_file_nodes(system, overrides, monkeypatch):
    for name, module in _standins().items():
        monkeypatch.setitem(sys.modules, name, module)
    ld = _load_launch_file(system).generate_launch_description()
    entities = ld.args[0]
    declared = {e.args[0]: e.kwargs for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    opaque = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1
    # What `ros2 launch` does: defaults of the declared arguments, then the command line's values.
    config = {name: kw["default_value"] for name, kw in declared.items()} | overrides
    context = types.SimpleNamespace(launch_configurations=config)
    return declared, opaque[0].kwargs["function"](context)


def _as_started(node_kwargs):
    """Normalise a launch_ros Node's kwargs to what a process gets: params merged in order."""
    files, params = [], {}
    for p in node_kwargs["parameters"]:
        if isinstance(p, dict):
            params.update(p)
        else:
            files.append(p)
    return {"package": node_kwargs["package"], "executable": node_kwargs["executable"],
            "name": node_kwargs["name"], "param_files": files, "overrides": params,
            "remappings": [tuple(r) for r in node_kwargs["remappings"]],
            "required": node_kwargs["on_exit"] is not None}


def _runner_as_started(p):
    exe = p.cmd[0]
    files = [f for flag, f in zip(p.cmd, p.cmd[1:]) if flag == "--params-file"]
    overrides = {}
    if files and files[-1].endswith(".overrides.yaml"):
        with open(files.pop()) as f:
            overrides = yaml.safe_load(f)[p.spec.name]["ros__parameters"]
    remaps = [tuple(v.split(":=", 1)) for flag, v in zip(p.cmd, p.cmd[1:]) if flag == "-r"]
    assert remaps[0] == ("__node", p.spec.name)
    return {"package": exe.split(os.sep)[-2], "executable": os.path.basename(exe), "name": p.spec.name,
            "param_files": files, "overrides": overrides, "remappings": remaps[1:],
            "required": p.spec.required}


CASES = [
    ("franka_pick_place", {}),
    ("franka_pick_place", {"use_sim": "false", "checkpoint": "/ckpt", "task": "open the drawer",
                           "wrist_camera": "/wrist/image", "demo_output": "/tmp/demo"}),
    ("quanta_towel_fold", {}),
    ("quanta_towel_fold", {"device": "cuda", "high_camera": "/top/image"}),
]


@pytest.mark.parametrize("system,overrides", CASES)
def test_launch_file_and_runner_start_the_same_nodes(system, overrides, monkeypatch, tmp_path):
    declared, nodes = _launch_file_nodes(system, overrides, monkeypatch)
    assert set(declared) == {a.name for a in SYSTEMS[system].arguments}
    from_launch = [_as_started(n.kwargs) for n in nodes]
    from_runner = [_runner_as_started(p) for p in plan(system, overrides, str(tmp_path))]
    assert from_launch == from_runner
    for started in from_runner:
        for f in started["param_files"]:
            assert os.path.isfile(f), f"{started['name']}: missing parameter file {f}"


def test_parity_check_notices_a_divergence(monkeypatch, tmp_path):
    # Guard against a comparison that cannot fail: change one parameter on one side only.
    _, nodes = _launch_file_nodes("franka_pick_place", {"task": "a"}, monkeypatch)
    from_runner = [_runner_as_started(p) for p in plan("franka_pick_place", {"task": "b"}, str(tmp_path))]
    assert [_as_started(n.kwargs) for n in nodes] != from_runner


def test_use_sim_switches_the_twin_and_sim_time():
    sim = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({})}
    real = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({"use_sim": "false"})}
    assert "franka_twin" in sim and "franka_twin" not in real
    assert sim["policy_node"].parameters["use_sim_time"] is True
    assert real["policy_node"].parameters["use_sim_time"] is False
    assert real["franka_bridge"].parameters["use_sim_time"] is False


def test_against_real_launch_packages_when_installed():
    pytest.importorskip("launch_ros")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    ld = _load_launch_file("franka_pick_place").generate_launch_description()
    context = LaunchContext()
    for entity in ld.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)
    nodes = [e for e in ld.entities if isinstance(e, OpaqueFunction)][0].visit(context)
    assert [n.node_executable for n in nodes] == [s.executable for s in SYSTEMS["franka_pick_place"].resolve({})]
