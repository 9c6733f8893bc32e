"""benchmarks/ablations.py plumbing on a tiny recipe run (tiny preset, 4 synthetic episodes, a budget of
seconds): the arms differ exactly in their switches and share the stage-1 weights, a finished arm is read back,
the 5 Hz view is every 2nd frame, the dynamics figures are finite, and bad input is one line with exit 2."""
import importlib.util
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _load_script():
    spec = importlib.util.spec_from_file_location("ablations", ROOT / "benchmarks" / "ablations.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ab = _load_script()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A lawam-sim-train-shaped run: dataset (4 episodes of 20 frames at 10 Hz), recipe.json and a one-step
    stage-1 checkpoint of the tiny preset written by the real Trainer."""
    from lawam_policy.action_layout import get_layout
    from lawam_policy.model import LaWAMConfig, LaWAMPolicy
    from lawam_training.data import DemoDataset, MixedDataset
    from lawam_training.episode_store import EpisodeStore, make_features
    from lawam_training.finetune import apply_data_to_config, dataset_metadata
    from lawam_training.train import Trainer, TrainOptions

    run = tmp_path_factory.mktemp("run")
    write_demos(run / "dataset", 10)
    write_demos(run / "demos_20hz", 20)  # the same 2 s episodes recorded at 20 Hz (Fig. 7)
    (run / "recipe.json").write_text(json.dumps({"settings": {"system": "franka_pick_place", "seed": 0,
                                                              "val_episodes": 1, "batch_size": 4}}))
    torch.manual_seed(0)
    cfg = LaWAMConfig.from_preset("tiny", image_size=64, num_denoise_steps=2)
    demo = DemoDataset(run / "dataset", cfg.horizon_s)
    apply_data_to_config(cfg, dataset_metadata([demo]), from_checkpoint=False)
    opts = TrainOptions(steps=1, batch_size=4, progress=False, val_every=10 ** 9, checkpoint_every=10 ** 9)
    Trainer(LaWAMPolicy(cfg), 1, MixedDataset([demo]), run / "runs", opts, log=lambda m: None).fit()
    return run


def write_demos(path, fps, episodes=4, seconds=2.0):
    from lawam_policy.action_layout import get_layout
    from lawam_training.episode_store import EpisodeStore, make_features

    store = EpisodeStore(path, fps, make_features(get_layout("franka_panda"), {"primary": (64, 64)}), "franka_panda")
    rng = np.random.default_rng(0)
    n = int(seconds * fps)
    for e in range(episodes):
        rec = store.begin_episode(["put the red cube in the bowl", "put the green cube in the bowl"][e % 2])
        for k in range(n):
            img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            s = np.array([0.4 + 0.2 * k / n, 0.0, 0.3, 1, 0, 0, 0, 1 - k / n], np.float32)
            rec.add_frame({"primary": img}, s, s)
        rec.commit()


def cli(run, out, *extra):
    return ["--run", str(run), "--output", str(out), "--budget-min", "0.01", "--eval-seeds", "0", "--no-progress",
            "--threads", "1", *extra]


def test_arms_differ_exactly_in_their_switches_and_share_stage1(tiny_run):
    args = ab.parse_args(cli(tiny_run, tiny_run / "unused"))
    base = ab.build_policy(args, "full", 0)
    base_cfg = base.config.to_dict()
    assert (base_cfg["subgoal_conditioning"], base_cfg["knowledge_insulation"], base_cfg["lambda_distill"],
            base_cfg["time_encoding"]) == (True, True, 1.0, "seconds")
    seen = set()
    for arm, (switches, rates) in ab.ARMS.items():
        policy = ab.build_policy(args, arm, 0)
        cfg = policy.config.to_dict()
        diff = {k for k in cfg if cfg[k] != base_cfg[k]} - {"control_rates_hz"}
        assert diff == set(switches), arm
        assert all(cfg[k] == v for k, v in switches.items())
        assert policy.config.trained_rates_hz() == list(rates)  # the first is the evaluation rate
        for name, p in policy.lawm.state_dict().items():  # the same stage-1 weights for every arm
            assert torch.equal(p, base.lawm.state_dict()[name]), (arm, name)
        seen.add((tuple(sorted(switches.items())), rates))
    assert len(seen) == len(ab.ARMS), "two arms with the same switches"


def test_full_arm_is_the_paper_model_when_the_run_trained_without_knowledge_insulation(tiny_run, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (cfg_path,) = (run / "runs").glob("stage1_*/lawam_config.json")
    cfg = json.loads(cfg_path.read_text())
    cfg["knowledge_insulation"] = False  # as the sim preset trains
    cfg_path.write_text(json.dumps(cfg))
    args = ab.parse_args(cli(run, run / "unused"))
    assert ab.build_policy(args, "full", 0).config.knowledge_insulation is True
    assert ab.build_policy(args, "fig7_seconds", 0).config.knowledge_insulation is True
    assert ab.build_policy(args, "no_ki", 0).config.knowledge_insulation is False


def test_train_table_and_resume_reads_a_finished_arm_back(tiny_run, tmp_path, capsys):
    out = tmp_path / "abl"
    assert ab.main(cli(tiny_run, out, "--arms", "full,no_lawm", "--json", str(tmp_path / "a.json"))) == 0
    text = capsys.readouterr().out
    assert "w/o LaWM" in text and "full LaWAM" in text and "0.01 min" in text and "--arms full,no_lawm" in text
    first = json.loads((tmp_path / "a.json").read_text())
    assert [(r["arm"], r["seed"]) for r in first["results"]] == [("full", 0), ("no_lawm", 0)]
    for r in first["results"]:
        assert r["steps"] >= 1 and np.isfinite(r["heldout"]["action_error_m"])
        assert (Path(r["checkpoint"]) / "model.safetensors").is_file()
    assert first["results"][1]["switches"] == {"subgoal_conditioning": False}

    # a second run trains nothing: both arms are read back unchanged
    stamp = (out / "arms" / "full_s0" / "checkpoint" / "model.safetensors").stat().st_mtime_ns
    assert ab.main(cli(tiny_run, out, "--arms", "full,no_lawm", "--json", str(tmp_path / "b.json"))) == 0
    err = capsys.readouterr().err
    assert err.count("finished earlier") == 2
    assert json.loads((tmp_path / "b.json").read_text())["results"] == first["results"]
    assert (out / "arms" / "full_s0" / "checkpoint" / "model.safetensors").stat().st_mtime_ns == stamp

    # an arm interrupted after its budget was spent (no result.json yet) resumes from its last training
    # checkpoint: no further steps, the same trained weights
    (out / "arms" / "full_s0" / "result.json").unlink()
    assert ab.main(cli(tiny_run, out, "--arms", "full", "--json", str(tmp_path / "c.json"))) == 0
    again = json.loads((tmp_path / "c.json").read_text())["results"][0]
    assert again["steps"] == first["results"][0]["steps"]
    assert again["heldout"] == first["results"][0]["heldout"]


def test_a_step_budget_trains_every_arm_exactly_that_long(tiny_run, tmp_path, capsys):
    """--steps: the same optimiser steps for every arm whatever the machine's load; a re-run of an arm
    reproduces its row."""
    out = tmp_path / "abl"
    assert ab.main(cli(tiny_run, out, "--arms", "full,no_lawm", "--steps", "3", "--json", str(tmp_path / "a.json"))) == 0
    rows = json.loads((tmp_path / "a.json").read_text())["results"]
    assert [(r["arm"], r["steps"], r["steps_planned"]) for r in rows] == [("full", 3, 3), ("no_lawm", 3, 3)]
    assert "3 stage-2 optimiser steps per arm" in capsys.readouterr().out
    again = tmp_path / "again"
    assert ab.main(cli(tiny_run, again, "--arms", "full", "--steps", "3", "--json", str(tmp_path / "b.json"))) == 0
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["heldout"] == rows[0]["heldout"]


def test_seeds_train_the_multi_seed_arms_twice(tiny_run):
    args = ab.parse_args(cli(tiny_run, tiny_run / "unused", "--seeds", "0,1", "--rates"))
    jobs = ab.plan_jobs(args)
    assert jobs[:5] == [("full", 0), ("full", 1), ("no_lawm", 0), ("no_lawm", 1), ("no_distill", 0)]
    assert [j for j in jobs if j[0].startswith("fig7")] == [("fig7_20hz_only", 0), ("fig7_seconds", 0),
                                                            ("fig7_index", 0)]


def test_five_hz_view_takes_every_second_frame(tiny_run):
    from lawam_training.data import DemoDataset
    from lawam_training.frame_cache import CachedDemoDataset
    cache = CachedDemoDataset(DemoDataset(tiny_run / "dataset", 1.2), 64)
    slow = ab.downsample(cache, 2, 6)
    assert slow.fps == 5 and len(slow.frames) == 40 and len(slow.episodes) == 4
    np.testing.assert_array_equal(slow.frames[:10], cache.frames[0:20:2])
    item = slow[0]
    np.testing.assert_allclose(item["timestamps"].numpy(), np.arange(6) / 5.0)
    np.testing.assert_array_equal(item["actions"].numpy(), cache.actions[0:12:2])  # 1.2 s at 5 Hz
    np.testing.assert_array_equal(item["images_tT"].numpy(), cache.frames[12])  # the future is still t + 1.2 s


def test_rates_mode_and_dynamics_figures(tiny_run, tmp_path, capsys):
    args = ab.parse_args(cli(tiny_run, tmp_path / "abl", "--arms", "full", "--rates",
                             "--rates-demos", str(tiny_run / "demos_20hz")))
    assert ab.run(dict_args(args)) == 0
    text = capsys.readouterr().out
    assert ab.RATES_NOTE in text and "index encoding" in text and "physical-time encoding" in text
    rows = {r["arm"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "abl" / "arms").glob("*/result.json"))}
    assert rows["fig7_index"]["switches"] == {"time_encoding": "index"}
    assert rows["fig7_index"]["rates_hz"] == [20, 10, 5] and rows["fig7_20hz_only"]["rates_hz"] == [20]
    # the rate arms are judged on the 20 Hz held-out episode: 1 episode of 40 frames, vs 20 frames at 10 Hz
    assert rows["fig7_seconds"]["heldout"]["samples"] == 2 * rows["full"]["heldout"]["samples"] > 0

    from lawam_policy.model import LaWAMPolicy
    data = ab.Data(args, ab.build_policy(args, "full", 0), progress=False)
    d = ab.lawm_dynamics(LaWAMPolicy.from_pretrained(rows["full"]["checkpoint"]), data.val10)
    assert d["samples"] == len(data.val) > 0
    assert all(np.isfinite(v) and v >= 0 for k, v in d.items() if k != "samples")

    from PIL import Image
    strip = ab.heatmap_strip(Path(rows["full"]["checkpoint"]), "franka_pick_place", (1, 2), tmp_path / "s.png",
                             max_panels=3)
    img = Image.open(strip["png"])
    assert strip["patch"] == [1, 2] and 1 <= strip["panels"] <= 3 and img.width == strip["panels"] * img.height


def dict_args(args):
    args.argv = ["--rates"]
    return args


@pytest.mark.parametrize("extra, message", [
    (["--budget-min", "0"], "--budget-min must be positive"),
    (["--arms", "full,no_brain"], "unknown arm"),
    (["--seeds", "0,x"], "--seeds must be"),
    (["--seeds", "1,1"], "--seeds must be distinct"),
    (["--eval-seeds", "-1"], "--eval-seeds"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--strip-patch", "99,0"], "outside the"),
    (["--rates", "--rates-demos", "/nonexistent"], "not a LeRobot dataset"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_run, tmp_path, capsys, extra, message):
    assert ab.main(cli(tiny_run, tmp_path / "abl") + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ablations: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "abl").exists()


def test_missing_run_and_changed_budget_are_refused(tiny_run, tmp_path, capsys):
    assert ab.main(cli(tmp_path / "nowhere", tmp_path / "abl")) == 2
    assert "holds no lawam-sim-train dataset" in capsys.readouterr().err
    out = tmp_path / "abl"
    out.mkdir()
    (out / "settings.json").write_text(json.dumps({"run": str(tiny_run.absolute()), "budget_min": 5.0}))
    assert ab.main(cli(tiny_run, out)) == 2
    err = capsys.readouterr().err.strip()
    assert "other settings (budget_min" in err and "\n" not in err


def test_strip_patch_projects_the_tool_centre():
    """Seed 1000 of franka_pick_place starts with the gripper in patch (1, 3) of the 8 x 8 grid of the front
    camera (checked by eye on the rendered image); another camera pose or tool centre moves it."""
    from lawam_training.sim_rollout import twin_env
    from lawam_training.sim_train import workspace_root
    env = twin_env("franka_pick_place", workspace_root() / "config")
    try:
        env.scene.reset(1000, env.scene.instructions[0])
        assert ab.project_to_patch(env.scene, env.cameras[0], (224, 224), 8) == (1, 3)
        assert ab.project_to_patch(env.scene, env.cameras[0], (224, 224), 16) in {(2, 6), (2, 7), (3, 6), (3, 7)}
        with pytest.raises(ab.AblationError, match="no camera"):
            ab.project_to_patch(env.scene, "nowhere", (224, 224), 8)
    finally:
        env.close()


def test_rate_demos_at_another_rate_are_refused(tiny_run, tmp_path, capsys):
    assert ab.main(cli(tiny_run, tmp_path / "abl", "--arms", "full", "--steps", "1", "--rates",
                       "--rates-demos", str(tiny_run / "dataset"))) == 2
    assert "recorded at 10 Hz, not 20 Hz" in capsys.readouterr().err
