"""lawam-eval's command line (seed selection, instructions, checkpoint compatibility) and its summary; all
bad input is one line on stderr with exit 2, before anything starts. The ROS run itself: test_twin_nodes."""
import json
import threading

import pytest

pytest.importorskip("rclpy")
from lawam_sim.nodes import evaluate  # noqa: E402
from lawam_sim.nodes.evaluate import (UsageError, parse_args, parse_seeds, parse_selection_seeds,  # noqa: E402
                                      summarise)
from lawam_sim.scenes import INSTRUCTIONS  # noqa: E402
from lawam_sim.seeds import EVAL_SEEDS  # noqa: E402

RED, GREEN = INSTRUCTIONS["franka_pick_place"]


@pytest.mark.parametrize("text,expected", [
    ("3,5,7", [3, 5, 7]),
    ("0-9", list(range(10))),
    ("7", [7]),
    ("4-4", [4]),
    ("0-2, 20,29", [0, 1, 2, 20, 29]),
    ("29,0", [29, 0]),
])
def test_seed_indices(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("", "is not an index"),
    ("3,,5", "is not an index"),
    ("a-b", "is not an index"),
    ("5-", "is not an index"),
    ("-3", "is not an index"),
    ("1.5", "is not an index"),
    ("1-2-3", "is not an index"),
    ("9-3", "range 9-3 is empty"),
    ("30", "index 30 is out of range"),
    ("25-31", "index 31 is out of range"),
    ("1000", "index 1000 is out of range"),
    ("1,2,1", "index 1 is given twice"),
    ("0-3,2", "index 2 is given twice"),
])
def test_bad_seed_lists_are_refused(text, expected):
    with pytest.raises(UsageError, match=expected):
        parse_seeds(text)


def test_selection_seeds_are_scene_seeds_and_never_evaluation_seeds():
    assert parse_selection_seeds("5000-5002, 7") == [5000, 5001, 5002, 7]
    for index in (0, 13, 29):  # every evaluation seed is refused, named with its index
        with pytest.raises(UsageError, match=f"seed {EVAL_SEEDS[index]} is an evaluation seed \\(index {index}\\)"):
            parse_selection_seeds(f"5000,{EVAL_SEEDS[index]}")
    with pytest.raises(UsageError, match=f"seed {EVAL_SEEDS[0]} is an evaluation seed"):
        parse_selection_seeds(f"{EVAL_SEEDS[0] - 1}-{EVAL_SEEDS[0] + 1}")  # inside a range too
    for text, expected in [("5000-4999", "range 5000-4999 is empty"), ("5000,5000", "seed 5000 is given twice"),
                           ("50x", "is not a seed"), ("0-99999999", "more than 1000 seeds")]:
        with pytest.raises(UsageError, match=expected):
            parse_selection_seeds(text)


def _exit2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lawam-eval: error: "), err
    return err[0]


@pytest.mark.parametrize("argv,expected", [
    (["--seeds", "0-3", "--episodes", "4"], "not allowed with argument"),
    (["--seeds", "5-2"], "is empty"),
    (["--seeds", "0-30"], "out of range"),
    (["--seeds", "x"], "is not an index"),
    (["--selection-seeds", "5000-5009", "--seeds", "0-3"], "not allowed with argument"),
    (["--selection-seeds", "5000-5009", "--episodes", "4"], "not allowed with argument"),
    (["--selection-seeds", f"{EVAL_SEEDS[3]}"], "is an evaluation seed (index 3)"),
    (["--episodes", "0"], "--episodes 0"),
    (["--task", "stack the cubes"], "not an instruction of franka_pick_place"),
])
def test_bad_command_lines_exit_2_with_one_line(argv, expected, capsys):
    line = _exit2(["--system", "franka_pick_place", "--expert", *argv], capsys)
    assert expected in line


def test_seeds_and_instructions_are_paired():
    args, seeds, instructions = parse_args(["--system", "franka_pick_place", "--expert", "--seeds", "3,5"])
    assert seeds == [(3, EVAL_SEEDS[3]), (5, EVAL_SEEDS[5])] and instructions == [RED, GREEN]
    _, seeds, instructions = parse_args(["--system", "franka_pick_place", "--expert", "--task", GREEN.upper()])
    assert seeds == list(enumerate(EVAL_SEEDS)) and instructions == [GREEN]
    _, seeds, instructions = parse_args(["--system", "franka_drawer", "--expert", "--episodes", "32"])
    assert seeds == list(enumerate(EVAL_SEEDS)) + [(0, EVAL_SEEDS[0]), (1, EVAL_SEEDS[1])]
    assert instructions == ["open the drawer"]
    _, seeds, _ = parse_args(["--system", "franka_pick_place", "--expert", "--selection-seeds", "5000-5001"])
    assert seeds == [(None, 5000), (None, 5001)]  # scene seeds as given, no evaluation index


def _checkpoint(tmp_path, embodiment, roles):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "lawam_config.json").write_text(json.dumps({"default_embodiment": embodiment,
                                                     "camera_roles": {embodiment: roles}}))
    return str(d)


def test_a_matching_checkpoint_is_accepted(tmp_path):
    ckpt = _checkpoint(tmp_path, "franka_panda", ["primary", "wrist"])
    args, _, _ = parse_args(["--system", "franka_pick_place", "--checkpoint", ckpt, "--seeds", "0"])
    assert args.checkpoint == ckpt


@pytest.mark.parametrize("system,embodiment,roles,named", [
    ("franka_pick_place", "quanta_x1", ["primary", "left_wrist", "right_wrist"], "'quanta_x1'"),
    ("franka_pick_place", "franka_panda", ["primary"], "['primary']"),  # pick-and-place takes the wrist camera
    ("franka_drawer", "franka_panda", ["primary", "wrist"], "['primary', 'wrist']"),
    ("franka_drawer", "quanta_x1", ["primary", "left_wrist", "right_wrist"], "'quanta_x1'"),
    ("quanta_towel_fold", "quanta_x1", ["primary", "right_wrist", "left_wrist"], "['primary', 'right_wrist', 'left_wrist']"),
])
def test_a_checkpoint_for_another_embodiment_or_cameras_is_refused_naming_both(system, embodiment, roles, named,
                                                                              tmp_path, capsys):
    ckpt = _checkpoint(tmp_path, embodiment, roles)
    line = _exit2(["--system", system, "--checkpoint", ckpt], capsys)
    from lawam_bringup.systems import SCENE_SYSTEMS, SYSTEMS
    ours = SYSTEMS[SCENE_SYSTEMS[system]]
    assert named in line and repr(ours.embodiment) in line and str(ours.camera_roles()) in line


def test_not_a_checkpoint_is_refused(tmp_path, capsys):
    assert "lawam_config.json" in _exit2(["--system", "franka_pick_place", "--checkpoint", str(tmp_path)], capsys)


def test_no_checkpoint_uses_the_shipped_one_or_says_how_to_pass_one(tmp_path, monkeypatch, capsys):
    from lawam_bringup import systems
    monkeypatch.setattr(systems, "checkpoints_root", lambda: str(tmp_path))
    (tmp_path / "franka_pick_place").mkdir()
    line = _exit2(["--system", "franka_pick_place"], capsys)          # the shipped directory is still empty
    assert "franka_pick_place" in line and "--checkpoint DIR" in line
    shipped = tmp_path / "franka_pick_place"
    (shipped / "lawam_config.json").write_text(json.dumps({"default_embodiment": "franka_panda",
                                                           "camera_roles": {"franka_panda": ["primary", "wrist"]}}))
    args, _, _ = parse_args(["--system", "franka_pick_place"])
    assert args.checkpoint == str(shipped)


def test_summary_per_instruction_with_time_to_success_and_real_time_factor():
    eps = [
        {"instruction": RED, "success": True, "sim_time_s": 6.0, "wall_time_s": 10.0},
        {"instruction": GREEN, "success": False, "sim_time_s": 30.0, "wall_time_s": 40.0},
        {"instruction": RED, "success": True, "sim_time_s": 8.0, "wall_time_s": 10.0},
        {"instruction": GREEN, "success": True, "sim_time_s": 7.0, "wall_time_s": 10.0},
    ]
    s = summarise(eps, [RED, GREEN])
    assert s["success_rate"] == 0.75
    assert s["per_instruction"][RED] == {"episodes": 2, "successes": 2, "success_rate": 1.0,
                                         "mean_time_to_success_s": 7.0}
    assert s["per_instruction"][GREEN] == {"episodes": 2, "successes": 1, "success_rate": 0.5,
                                           "mean_time_to_success_s": 7.0}
    assert s["real_time_factor"] == round(51 / 70, 3) and s["real_time_factor_low"] is True
    fast = summarise([dict(e, wall_time_s=e["sim_time_s"]) for e in eps], [RED, GREEN])
    assert fast["real_time_factor"] == 1.0 and fast["real_time_factor_low"] is False
    none = summarise([eps[1]], [GREEN])
    assert none["per_instruction"][GREEN]["mean_time_to_success_s"] is None


def test_module_reads_the_system_registry():
    """Embodiment, camera roles and topics come from lawam_bringup.systems, instructions from the scenes."""
    from lawam_bringup.systems import SCENE_SYSTEMS
    assert set(evaluate.scenes()) == set(SCENE_SYSTEMS) == set(INSTRUCTIONS)


def test_the_evaluated_stack_is_the_launched_system(tmp_path, monkeypatch):
    """lawam-eval starts the nodes `lawam launch` plans (same parameter files and overrides): the policy node
    gets the system's camera roles and the bridge drives the twin's gripper by topic."""
    import yaml
    from lawam_bringup.runner import Runner
    started = {}
    monkeypatch.setattr(Runner, "start", lambda stack: started.update({p.spec.name: p.cmd for p in stack.plans}))
    evaluate.launch_stack("franka_pick_place", "preset:tiny", "put the red cube in the bowl", tmp_path)
    assert set(started) == {"franka_twin", "policy_node", "franka_bridge"}

    def overrides(name):
        cmd = started[name]
        files = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--params-file"]
        return yaml.safe_load(open(files[-1]))[name]["ros__parameters"]
    assert overrides("policy_node")["camera_roles"] == ["primary", "wrist"]
    assert overrides("franka_twin")["wrist_camera"] is True
    assert overrides("policy_node")["task"] == "put the red cube in the bowl"
    assert overrides("franka_bridge")["gripper_mode"] == "topic"
    started.clear()
    evaluate.launch_stack("franka_pick_place", "", "put the red cube in the bowl", tmp_path, expert=True)
    assert list(started) == ["franka_twin"] and started["franka_twin"][-4:] == [
        "-p", "expert:=true", "-p", "real_time_factor:=0.0"]
    # the expert needs no checkpoint, so a scene that ships none yet can still check its evaluation loop
    monkeypatch.setattr("lawam_bringup.systems.shipped_checkpoint", lambda scene: tmp_path / "none", raising=False)
    started.clear()
    evaluate.launch_stack("quanta_towel_fold", "", "fold the towel in half", tmp_path, expert=True)
    assert list(started) == ["quanta_twin"]


def test_lawam_eval_leaves_no_spin_thread_behind_when_it_stops_on_an_error(monkeypatch, capsys):
    """Regression (CI): after a node of its stack died, lawam-eval printed its reason and then aborted
    (SIGABRT, 'terminate called without an active exception'): its executor thread was still inside rcl when
    the interpreter exited, because Executor.shutdown() does not wait for a spin in another thread."""
    def stack_died(self, timeout=120.0):
        raise RuntimeError("required node franka_twin exited with code -9")

    monkeypatch.setattr(evaluate.Evaluator, "wait_ready", stack_died)
    before = set(threading.enumerate())
    assert evaluate.main(["--system", "franka_drawer", "--expert", "--attach", "--seeds", "0"]) == 1
    assert "error: required node franka_twin exited" in capsys.readouterr().err
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


# Regression (lawam-eval through the full system): the bridge went on streaming the previous episode's pose
# and gripper commands until its own reset, after the twin's, so an episode that ended with the gripper closed
# left the freshly reset gripper closed. Seen: after a red timeout on one seed, every first chunk of its green
# episode was refused as too far from the arm (0.22 m) until the timeout; in the ROS-free loop a gripper closed
# at the start gets the first chunk refused on every seed tried, and never when it is open.
def test_an_episode_stops_the_policy_and_resets_the_bridge_before_the_twin_and_again_after():
    ev = evaluate.Evaluator.__new__(evaluate.Evaluator)
    calls = []

    def reset(name, seed, task=""):
        calls.append(("reset", name, seed, task))
        if name == ev.twin:
            ev.success = False  # the twin announces the new episode
        return "ok"

    ev.twin, ev.stack, ev.set_task = "franka_twin", None, object()
    ev.resets = dict.fromkeys(["franka_twin", "franka_bridge", "policy_node"])
    ev.cond, ev.success, ev.sim_time, ev.last_clock_wall = threading.Condition(), None, 0.0, float("inf")
    ev._call = reset
    ev._policy_task = lambda task: calls.append(("task", task))
    assert ev.episode(EVAL_SEEDS[3], GREEN, timeout_s=0.0)[0] is False
    followers = [("reset", "franka_bridge", -1, ""), ("reset", "policy_node", -1, "")]
    assert calls == [("task", ""), *followers, ("reset", "franka_twin", EVAL_SEEDS[3], GREEN), *followers,
                     ("task", GREEN)]
