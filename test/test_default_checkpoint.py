"""Default-checkpoint resolution, one place (lawam_bringup.systems): sim without a checkpoint runs the scene's
shipped checkpoint; hardware without one, or a scene whose shipped directory holds none yet, stops with a
one-line error before anything starts, in the runner (exit 2) and in the launch files alike."""
import os
import subprocess

import pytest

from lawam_bringup import systems
from lawam_bringup.runner import plan
from lawam_bringup.systems import CheckpointError, SCENE_SYSTEMS, SYSTEMS, resolve_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAWAM = os.path.join(ROOT, ".venv", "bin", "lawam")


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A checkpoints root where franka_pick_place holds a checkpoint and the other scenes do not."""
    for scene in SCENE_SYSTEMS:
        (tmp_path / scene).mkdir()
    (tmp_path / "franka_pick_place" / "lawam_config.json").write_text("{}")
    monkeypatch.setattr(systems, "checkpoints_root", lambda: str(tmp_path))
    return tmp_path


def _policy(system, overrides):
    return next(n for n in SYSTEMS[system].resolve(overrides) if n.name == "policy_node")


def test_sim_without_checkpoint_runs_the_scenes_shipped_checkpoint(shipped):
    assert _policy("franka_pick_place", {}).parameters["checkpoint"] == str(shipped / "franka_pick_place")
    assert resolve_checkpoint("", True, "franka_pick_place") == str(shipped / "franka_pick_place")


def test_a_given_checkpoint_wins_over_the_shipped_one(shipped):
    for use_sim in ("true", "false"):
        assert _policy("franka_pick_place", {"use_sim": use_sim, "checkpoint": "/m"}).parameters["checkpoint"] == "/m"


def test_hardware_without_checkpoint_is_a_one_line_error(shipped):
    with pytest.raises(CheckpointError) as e:
        SYSTEMS["franka_pick_place"].resolve({"use_sim": "false"})
    msg = str(e.value)
    assert "\n" not in msg and "use_sim:=false" in msg and "checkpoint:=DIR" in msg


def test_missing_shipped_checkpoint_is_a_one_line_error_saying_how_to_pass_one(shipped):
    with pytest.raises(CheckpointError) as e:
        SYSTEMS["franka_drawer"].resolve({})   # its directory has no checkpoint
    msg = str(e.value)
    assert "\n" not in msg and "franka_drawer" in msg and "checkpoint:=DIR" in msg
    with pytest.raises(CheckpointError):
        SYSTEMS["quanta_towel_fold"].resolve({})


def test_untrained_preset_only_in_sim(shipped):
    params = _policy("franka_pick_place", {"checkpoint": "preset:tiny"}).parameters
    assert params["checkpoint"] == "" and params["preset"] == "tiny"
    with pytest.raises(CheckpointError, match="use_sim:=false"):
        SYSTEMS["franka_pick_place"].resolve({"use_sim": "false", "checkpoint": "preset:tiny"})


def test_each_system_runs_its_scene_with_its_default_task_and_checkpoint(shipped):
    (shipped / "franka_drawer" / "lawam_config.json").write_text("{}")
    nodes = {n.name: n for n in SYSTEMS["franka_drawer"].resolve({})}
    assert nodes["franka_twin"].parameters == {"scene": "franka_drawer", "task": "open the drawer"}
    assert nodes["policy_node"].parameters["task"] == "open the drawer"
    assert nodes["policy_node"].parameters["checkpoint"] == str(shipped / "franka_drawer")
    assert nodes["policy_node"].parameters["embodiment"] == "franka_panda"
    nodes = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({})}
    assert nodes["franka_twin"].parameters == {"scene": "franka_pick_place", "task": "put the red cube in the bowl",
                                               "wrist_camera": True}  # its policy takes the hand camera
    assert nodes["policy_node"].parameters["checkpoint"] == str(shipped / "franka_pick_place")
    task = "put the green cube in the bowl"
    nodes = {n.name: n for n in SYSTEMS["franka_pick_place"].resolve({"task": task})}
    assert nodes["franka_twin"].parameters["task"] == task and nodes["policy_node"].parameters["task"] == task


def test_every_scene_is_one_systems_scene():
    from lawam_sim.scenes import INSTRUCTIONS
    assert sorted(SCENE_SYSTEMS) == sorted(INSTRUCTIONS) == sorted(s.scene for s in SYSTEMS.values())
    assert all(SCENE_SYSTEMS[s.scene] == name for name, s in SYSTEMS.items())


def test_the_former_scene_argument_says_which_system_to_pick():
    with pytest.raises(systems.ArgumentError) as e:
        SYSTEMS["franka_pick_place"].resolve({"scene": "franka_drawer"})
    msg = str(e.value)
    assert "\n" not in msg and "unknown argument 'scene'" in msg and "franka_drawer" in msg


def test_every_scene_has_an_installed_checkpoint_directory():
    """setup.py installs src/lawam_bringup/checkpoints/<scene>/ (found through ament_index)."""
    for scene in SCENE_SYSTEMS:
        installed = systems.shipped_checkpoint(scene)
        assert os.path.isdir(installed), installed
        assert os.path.isfile(os.path.join(installed, "README.md"))


def test_launch_file_fails_before_any_node_starts(shipped, monkeypatch):
    from test_launch_parity import _launch_file_nodes
    with pytest.raises(CheckpointError) as e:
        _launch_file_nodes("franka_pick_place", {"use_sim": "false"}, monkeypatch)  # the OpaqueFunction raises
    assert "\n" not in str(e.value)


def test_runner_plan_fails_the_same_way(shipped, tmp_path):
    with pytest.raises(CheckpointError):
        plan("franka_pick_place", {"use_sim": "false"}, str(tmp_path))


@pytest.mark.parametrize("argv,expected", [
    (["use_sim:=false"], "use_sim:=false needs a checkpoint"),
    (["use_sim:=false", "checkpoint:=preset:tiny"], "refused with use_sim:=false"),
])
def test_lawam_launch_exits_2_with_one_line_and_starts_nothing(argv, expected):
    out = subprocess.run([LAWAM, "launch", "franka_pick_place", *argv, "--duration", "30"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert "started" not in out.stdout
