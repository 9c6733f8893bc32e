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
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "Shutdown", "RegisterEventHandler"):
        setattr(actions, name, type(name, (Recorded,), {}))
    launch.actions = actions
    handlers = types.ModuleType("launch.event_handlers")
    handlers.OnProcessIO = type("OnProcessIO", (Recorded,), {})
    launch.event_handlers = handlers
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (Recorded,), {})
    launch_ros.actions = ros_actions
    return {"launch": launch, "launch.actions": actions, "launch.event_handlers": handlers, "launch_ros": launch_ros,
            "launch_ros.actions": ros_actions}


def _load_launch_file(system):
    path = os.path.join(LAUNCH_DIR, f"{system}.launch.py")
    spec = importlib.util.spec_from_file_location(f"launch_file_{system}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _launch_file_entities(system, overrides, monkeypatch):
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


def _launch_file_nodes(system, overrides, monkeypatch):
    declared, entities = _launch_file_entities(system, overrides, monkeypatch)
    return declared, [e for e in entities if type(e).__name__ == "Node"]


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


@pytest.fixture(autouse=True)
def shipped_checkpoints(tmp_path_factory, monkeypatch):
    """Every scene ships a checkpoint here, so the default cases resolve one on both paths alike."""
    from lawam_bringup import systems
    root = tmp_path_factory.mktemp("checkpoints")
    for scene in systems.SCENE_SYSTEMS:
        (root / scene).mkdir()
        (root / scene / "lawam_config.json").write_text("{}")
    monkeypatch.setattr(systems, "checkpoints_root", lambda: str(root))


CASES = [
    ("franka_pick_place", {}),
    ("franka_pick_place", {"use_sim": "false", "checkpoint": "/ckpt", "task": "open the drawer",
                           "wrist_camera": "/wrist/image", "demo_output": "/tmp/demo"}),
    ("franka_pick_place", {"use_sim": "false", "checkpoint": "/ckpt", "robot_profile": "fr3"}),
    ("franka_drawer", {}),
    ("franka_drawer", {"checkpoint": "preset:tiny", "task": "open the drawer"}),
    ("franka_drawer", {"use_sim": "false", "checkpoint": "/ckpt", "robot_profile": "fr3",
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


def test_every_system_has_its_launch_file_and_every_launch_file_a_system():
    files = {f[:-len(".launch.py")] for f in os.listdir(LAUNCH_DIR) if f.endswith(".launch.py")}
    assert files == set(SYSTEMS)


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_launch_file_runs_its_own_systems_scene(system, monkeypatch):
    """A launch file built from another system (e.g. a copied file still naming franka_pick_place) would
    start the twin in that system's scene."""
    _, nodes = _launch_file_nodes(system, {}, monkeypatch)
    twin = next(n for n in nodes if n.kwargs["name"].endswith("_twin"))
    (overrides,) = [p for p in twin.kwargs["parameters"] if isinstance(p, dict)]
    assert overrides["scene"] == SYSTEMS[system].scene == system


def test_parity_check_notices_a_divergence(monkeypatch, tmp_path):
    # Guard against a comparison that cannot fail: change one parameter on one side only.
    _, nodes = _launch_file_nodes("franka_pick_place", {"task": "a"}, monkeypatch)
    from_runner = [_runner_as_started(p) for p in plan("franka_pick_place", {"task": "b"}, str(tmp_path))]
    assert [_as_started(n.kwargs) for n in nodes] != from_runner


def test_use_sim_switches_the_twin_and_sim_time():
    sim = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({})}
    real = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({"use_sim": "false", "checkpoint": "/ckpt"})}
    assert "franka_twin" in sim and "franka_twin" not in real
    assert sim["policy_node"].parameters["use_sim_time"] is True
    assert real["policy_node"].parameters["use_sim_time"] is False
    assert real["franka_bridge"].parameters["use_sim_time"] is False


def _real_launch_nodes(system, overrides):
    """Evaluate a launch file with the real launch/launch_ros as `ros2 launch` would, without starting
    processes: the declared arguments (defaults, choices) fill the context, then the OpaqueFunction."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction

    ld = _load_launch_file(system).generate_launch_description()
    context = LaunchContext()
    context.launch_configurations.update(overrides)  # what `name:=value` on the command line does
    for entity in ld.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.visit(context)  # sets the default where no value was given; rejects bad choices
    opaque = [e for e in ld.entities if isinstance(e, OpaqueFunction)]
    assert len(opaque) == 1
    return context, opaque[0].visit(context)


def _real_node_as_started(node, context):
    """What the process gets: launch_ros expands the Node's name, parameters and remappings into its
    command line (`cmd`); dict parameters become launch_params_* files, missing files are dropped."""
    from launch.substitutions import LocalSubstitution
    from launch.utilities import perform_substitutions

    node._perform_substitutions(context)  # the expansion Node.execute() does before spawning
    cmd = [None if any(isinstance(s, LocalSubstitution) for s in part) else perform_substitutions(context, part)
           for part in node.cmd]
    files = [f for flag, f in zip(cmd, cmd[1:]) if flag == "--params-file"]
    config_files, overrides = [], {}
    for path in files:
        if os.path.basename(path).startswith("launch_params_"):
            with open(path) as f:
                # launch_ros writes lists as !!python/tuple (rcl reads them as plain sequences).
                overrides.update(yaml.load(f, Loader=yaml.FullLoader)["/**"]["ros__parameters"])
            os.remove(path)
        else:
            config_files.append(path)
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}
    return {"package": node.node_package, "executable": node.node_executable,
            "name": node.node_name.rsplit("/", 1)[-1], "param_files": config_files, "overrides": overrides,
            "remappings": [tuple(r) for r in node.expanded_remapping_rules or []]}


@pytest.mark.parametrize("system,overrides", CASES)
def test_against_real_launch_packages_when_installed(system, overrides):
    pytest.importorskip("launch_ros")
    from launch_ros.actions import Node
    context, entities = _real_launch_nodes(system, overrides)
    from_launch = [_real_node_as_started(n, context) for n in entities if isinstance(n, Node)]
    cfg = config_dir()
    expected = [{"package": s.package, "executable": s.executable, "name": s.name,
                 "param_files": [os.path.join(cfg, f) for f in s.param_files],
                 "overrides": dict(s.parameters), "remappings": list(s.remappings)}
                for s in SYSTEMS[system].resolve(overrides)]
    # A config file that does not exist is silently dropped by launch_ros (with a warning), while
    # `lawam launch` passes it on: a difference in param_files here means a missing config file.
    assert from_launch == expected


def test_real_launch_rejects_a_bad_choice():
    pytest.importorskip("launch_ros")
    with pytest.raises(Exception, match="use_sim"):
        _real_launch_nodes("franka_pick_place", {"use_sim": "maybe"})


def test_required_node_exit_shuts_the_launch_down_with_its_reason(monkeypatch):
    """A required node that exits stops the whole launch (on_exit -> Shutdown) with the same reason
    `lawam launch` prints: which node, its exit code and its last stderr line."""
    _, entities = _launch_file_entities("franka_pick_place", {"checkpoint": "/nonexistent/ckpt"}, monkeypatch)
    nodes = {e.kwargs["name"]: e for e in entities if type(e).__name__ == "Node"}
    watchers = [e for e in entities if type(e).__name__ == "RegisterEventHandler"]
    policy = nodes["policy_node"]
    (io,) = [w.args[0] for w in watchers if w.args[0].kwargs["target_action"] is policy]
    line = "policy_node: error: cannot load the model (/nonexistent/ckpt): FileNotFoundError: no lawam_config.json"
    io.kwargs["on_stderr"](types.SimpleNamespace(text=f"[INFO] loading\n{line}\n".encode()))
    shutdown = policy.kwargs["on_exit"](types.SimpleNamespace(returncode=1), None)
    assert type(shutdown).__name__ == "Shutdown"
    assert shutdown.kwargs["reason"] == f"required node policy_node exited with code 1: {line}"
    assert all(nodes[n].kwargs["on_exit"] is not None for n in ("franka_twin", "policy_node", "franka_bridge"))


def test_fr3_profile_needs_hardware_and_sets_frames_and_gripper_names():
    from lawam_bringup.systems import ArgumentError
    with pytest.raises(ArgumentError, match="use_sim:=false"):
        SYSTEMS["franka_pick_place"].resolve({"robot_profile": "fr3"})
    nodes = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({"use_sim": "false", "checkpoint": "/ckpt",
                                                                      "robot_profile": "fr3"})}
    assert nodes["franka_bridge"].param_files == ("franka_bridge.yaml", "franka_bridge_fr3.yaml")
    assert nodes["policy_node"].parameters["frame_id"] == "fr3_link0"
    fr3 = yaml.safe_load(open(os.path.join(config_dir(), "franka_bridge_fr3.yaml")))["franka_bridge"]["ros__parameters"]
    assert fr3["frame_id"] == "fr3_link0" and fr3["grasp_action"] == "/fr3_gripper/grasp"
    sim = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({})}
    assert sim["franka_bridge"].parameters["gripper_mode"] == "topic"  # the twin has no franka_msgs actions


def test_fr3_frame_has_one_home_the_profile_file(tmp_path, monkeypatch):
    """The policy's chunk frame under a hardware profile is the bridge's frame_id from that profile's file
    (written nowhere else): change the file and the policy follows."""
    import shutil
    from lawam_bringup import systems
    for name in ("franka_bridge.yaml", "franka_bridge_fr3.yaml"):
        shutil.copy(os.path.join(config_dir(), name), tmp_path / name)
    fr3 = tmp_path / "franka_bridge_fr3.yaml"
    fr3.write_text(fr3.read_text().replace("frame_id: fr3_link0", "frame_id: fr3_base_test"))
    monkeypatch.setattr(systems, "config_dir", lambda: str(tmp_path))
    nodes = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({"use_sim": "false", "checkpoint": "/ckpt",
                                                                      "robot_profile": "fr3"})}
    assert nodes["policy_node"].parameters["frame_id"] == "fr3_base_test"
    panda = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({"use_sim": "false", "checkpoint": "/ckpt"})}
    assert "frame_id" not in panda["policy_node"].parameters  # the policy's default: the embodiment's frame
