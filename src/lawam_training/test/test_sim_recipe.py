"""lawam-sim-train's pieces: sample semantics at episode ends, the frame/feature cache, the budget plan, bad input,
and the ROS-free closed loop (scene + bridge core + a policy)."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lawam_training.data import episode_sample
from lawam_training import sim_train
from lawam_training.sim_train import RecipeError, main, stage2_steps_left, stage2_steps_measured, steps_for_budget


def test_episode_sample_clamps_future_and_holds_last_action():
    assert episode_sample(10, 2, 4)[0] == 6
    future, steps = episode_sample(10, 8, 4)
    assert future == 9 and steps.tolist() == [8, 9, 9, 9]
    future, steps = episode_sample(3, 0, 5)  # T longer than the episode
    assert future == 2 and steps.tolist() == [0, 1, 2, 2, 2]


def test_frame_cache_reads_every_frame_once(tmp_path):
    pytest.importorskip("lerobot")
    from lawam_policy.action_layout import get_layout
    from lawam_training.data import DemoDataset
    from lawam_training.episode_store import EpisodeStore, make_features
    from lawam_training.frame_cache import CachedDemoDataset

    layout = get_layout("franka_panda")
    store = EpisodeStore(tmp_path / "d", 10, make_features(layout, {"primary": (32, 48)}), "franka_panda")
    lengths = (6, 4)
    for e, n in enumerate(lengths):
        rec = store.begin_episode(["put the red cube in the bowl", "put the green cube in the bowl"][e])
        for k in range(n):
            s = np.full(layout.dim, 100 * e + k, np.float32)
            rec.add_frame({"primary": np.full((32, 48, 3), 20 * k + 10, np.uint8)}, s, s + 1000)
        rec.commit()
    demo = DemoDataset(tmp_path / "d", horizon_s=0.3)
    calls = []

    def encoder(unit):  # (B, 3, S, S) -> (B, 1, 1): the mean grey value, to check alignment
        calls.append(len(unit))
        return unit.mean(dim=(1, 2, 3))[:, None, None]

    cache = CachedDemoDataset(demo, image_size=32, encoder=encoder, batch_size=4)
    assert len(cache) == sum(lengths) and sum(calls) == sum(lengths)  # each frame encoded once
    s = cache[6 + 2]  # episode 1, frame 2 of 4: one real step left (H = 3)
    assert s["instruction"] == "put the green cube in the bowl"
    assert s["images_t"].shape == (1, 32, 32, 3)
    assert abs(int(s["images_t"][0, 8, 8, 0]) - 50) <= 3 and abs(int(s["images_tT"][0, 8, 8, 0]) - 70) <= 3
    np.testing.assert_allclose(s["actions"][:, 0], [1102, 1103, 1103])
    assert s["action_mask"].all() and s["states_tT"][0].item() == 103
    assert s["features_t"].item() == pytest.approx(50 / 255, abs=0.02)
    assert s["features_tT"].item() == pytest.approx(70 / 255, abs=0.02)
    assert "z_star" not in s

    # z* cached per sample: the teacher sees that sample's (f_t, f_tT), the future clamped at the episode end
    cache.cache_teacher_latents(lambda f_t, f_tT: torch.stack([f_t, f_tT], 1)[:, :, 0], batch_size=3)
    for i, (t, future) in enumerate([(1, 3), (3, 3)]):  # episode 1, frames 1 and 3 (last)
        z = cache[6 + t]["z_star"]
        assert z[0].item() == pytest.approx((20 * t + 10) / 255, abs=0.02)
        assert z[1].item() == pytest.approx((20 * future + 10) / 255, abs=0.02)


def test_budget_plan():
    assert steps_for_budget(10, 0.25, {"1": 0.5, "2": 1.5}, 100) == (300, 300)
    with pytest.raises(RecipeError, match="less than one epoch"):
        steps_for_budget(1, 0.25, {"1": 0.5, "2": 1.5}, 100)


def test_stage2_is_replanned_from_the_speed_stage1_ran_at():
    # the plan as a resumed run reads it back from recipe.json (regression: integer keys in the process that
    # planned, string keys after a resume: a run stopped in stage 1 died with KeyError entering stage 2)
    plan = json.loads(json.dumps({"s_per_step": {"1": 0.5, "2": 1.5}, "stage2_steps": 300, "epoch_steps": 100}))
    # the probe ran on a loaded machine: stage 1 took 150 s for its 300 steps, half the probe's time
    assert stage2_steps_left(10, plan, 75.0, 300) == 700  # (600 - 75) s at 1.5 * 0.5 s/step
    assert stage2_steps_left(10, plan, 200.0, 300) == 200  # slower than probed: fewer steps (400 s at 2 s)
    assert stage2_steps_left(10, plan, 590.0, 300) == 100  # never less than one epoch


def test_stage2_steps_from_its_own_measured_speed():
    # 100 s of stage 1 and 50 s for 100 stage-2 steps (0.5 s/step): 450 s left of 600 buy 900 more steps
    assert stage2_steps_measured(10, 100.0, 50.0, 100, 0.5, 10) == 1000
    assert stage2_steps_measured(10, 500.0, 150.0, 100, 1.5, 10) == 100  # over budget: stop where it is
    assert stage2_steps_measured(10, 590.0, 5.0, 3, 1.0, 10) == 10  # never less than one epoch


def _replan_fixture(tmp_path, monkeypatch, budget_min):
    """A recipe in stage 2 on a tiny policy: 40 steps planned, 5 % of them (step 2) the go/no-go mark."""
    pytest.importorskip("lerobot")
    from lawam_policy.action_layout import get_layout
    from lawam_policy.model import LaWAMConfig, LaWAMPolicy
    from lawam_training.data import DemoDataset, MixedDataset
    from lawam_training.episode_store import EpisodeStore, make_features
    from lawam_training.finetune import apply_data_to_config, dataset_metadata

    store = EpisodeStore(tmp_path / "dataset", 10, make_features(get_layout("franka_panda"), {"primary": (32, 32)}),
                         "franka_panda")
    rng = np.random.default_rng(0)
    for e in range(2):
        rec = store.begin_episode("put the red cube in the bowl")
        for k in range(16):
            s = np.array([0.4 + 0.01 * k, 0.0, 0.3, 1, 0, 0, 0, 1.0], np.float32)
            rec.add_frame({"primary": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}, s, s)
        rec.commit()
    torch.manual_seed(0)
    cfg = LaWAMConfig.from_preset("tiny", image_size=32, num_denoise_steps=2)
    demo = DemoDataset(tmp_path / "dataset", cfg.horizon_s)
    apply_data_to_config(cfg, dataset_metadata([demo]), from_checkpoint=False)
    data = MixedDataset([demo])

    recipe = sim_train.Recipe.__new__(sim_train.Recipe)
    recipe.args = SimpleNamespace(budget_min=budget_min, batch_size=4, seed=0, init=None, ground_weight=0.0)
    recipe.out, recipe.state_path, recipe.progress = tmp_path, tmp_path / "recipe.json", False
    plan = {"s_per_step": {"1": 0.1, "2": 0.1}, "stage2_steps": 40, "epoch_steps": 5, "stage2_steps_final": 40}
    recipe.state = {"settings": {}, "phases": {"stage1": {"wall_s": 0.0, "steps": 1}, "plan": plan}}
    monkeypatch.setattr(recipe, "cache_teacher_latents", lambda *a: None)  # z* from the IDM in each step
    monkeypatch.setattr(sim_train, "load_weights", lambda *a, **k: None)  # the tiny policy's own stage 1
    monkeypatch.setattr(sim_train, "heldout_figures", lambda policy, val: {"action_error_m": 0.1,
                        "first_error_m": 0.1, "start_within_share": 1.0, "start_accepted_share": 1.0})
    return recipe, LaWAMPolicy(cfg), data


def test_stage2_is_replanned_at_its_first_mark_and_finishes_the_new_total(tmp_path, monkeypatch):
    """pp_v3 planned 0.35 s per stage-2 step from stage 1's speed, ran 0.39 s and trained 66 of 60 minutes: the
    recipe now re-plans stage 2 once from its own measured speed, and the trainer resumes with the new total."""
    recipe, policy, data = _replan_fixture(tmp_path, monkeypatch, budget_min=0.0)  # no budget left after the mark
    recipe.stage2(policy, data, data, 40)

    state = json.loads((tmp_path / "recipe.json").read_text())
    plan = state["phases"]["plan"]
    assert plan["stage2_steps_final"] == 5 and plan["stage2_measured_s_per_step"] > 0
    assert state["phases"]["stage2"]["steps"] == 5
    steps = [r["step"] for r in state["stage2_reports"]]
    assert steps[0] == 2 and steps[-1] == 5 and steps == sorted(set(steps))  # go/no-go at 5 % of 40, then on
    saved = torch.load(sorted((tmp_path / "runs").glob("stage2_*"))[-1] / "trainer_state.pt", weights_only=False)
    assert saved["step"] == 5


def test_a_longer_replanned_stage2_reports_go_no_go_once(tmp_path, monkeypatch):
    """pp_v4: re-planned from 6,395 to 6,805 steps at its go/no-go mark (319), it reported again at 340, 5 % of
    the new total. The later marks are the new total's sixths only."""
    recipe, policy, data = _replan_fixture(tmp_path, monkeypatch, budget_min=60.0)

    def replan(plan, step, steps):
        plan.update(stage2_measured_s_per_step=0.1, stage2_steps_final=60)
        return 60
    monkeypatch.setattr(recipe, "replan_from_stage2", replan)
    recipe.stage2(policy, data, data, 40)
    reports = json.loads((tmp_path / "recipe.json").read_text())["stage2_reports"]
    assert [r["step"] for r in reports] == [2, 10, 20, 30, 40, 50, 60]
    assert [r["go_no_go"] for r in reports] == [True] + [False] * 6


def test_init_post_trains_the_checkpoint_in_stage2_only(tmp_path, monkeypatch):
    """--init: the run starts from the checkpoint's weights and keeps its normalisation (not the demos'), skips
    stages 0 and 1, gives stage 2 the whole budget and trains it from --extend-lr; the frozen stage-1 modules
    stay the checkpoint's."""
    recipe, policy, _ = _replan_fixture(tmp_path, monkeypatch, budget_min=60.0)
    for p in policy.parameters():  # weights no fresh construction gives
        p.data.add_(0.01)
    policy.config.normalization["franka_panda"]["action"]["mean"][0] = 0.123  # statistics the demos do not give
    policy.save_pretrained(tmp_path / "ckpt")
    recipe.args = SimpleNamespace(budget_min=60.0, batch_size=4, seed=0, init=str(tmp_path / "ckpt"), val_episodes=1,
                                  extend_lr=2e-4, grounding_steps=0, stage1_share=0.2, ground_weight=0.0)
    recipe.state["phases"] = {"collect": {"episodes_per_demo": 1}}

    built, train, val = recipe.build()
    assert built.config.normalization["franka_panda"]["action"]["mean"][0] == pytest.approx(0.123)
    ref = policy.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in built.state_dict().items())
    plan = recipe.plan(built, train)
    assert plan["stage1_steps"] == 0 and set(plan["s_per_step"]) == {"2"} and plan["stage2_steps"] > 0
    recipe.stage1(built, train, val, plan["stage1_steps"])
    assert recipe.phase("stage1")["steps"] == 0 and "latent" in recipe.phase("stage1")
    assert not list((tmp_path / "runs").glob("stage1_*"))
    recipe.args.budget_min = 0.0  # re-planned at the go/no-go mark: nothing left, it stops there
    recipe.stage2(built, train, val, 40)
    saved = torch.load(sorted((tmp_path / "runs").glob("stage2_*"))[-1] / "trainer_state.pt", weights_only=False)
    assert {g["initial_lr"] for g in saved["optimizer"]["param_groups"]} == {2e-4}
    after = built.state_dict()
    frozen = [k for k in after if k.split(".", 1)[0] in ("encoder", "idm")]
    assert frozen and all(torch.equal(after[k], ref[k]) for k in frozen)
    assert not all(torch.equal(after[k], ref[k]) for k in after if k.startswith("expert."))


def test_init_refuses_a_checkpoint_of_other_cameras_or_rates():
    from lawam_policy.action_layout import get_layout
    from lawam_policy.model import LaWAMConfig
    cfg = LaWAMConfig.from_preset("tiny")
    cfg.camera_roles["franka_panda"], cfg.control_rates_hz["franka_panda"] = ["primary", "wrist"], [10.0]
    meta = {"franka_panda": {"layout": get_layout("franka_panda"), "cameras": ["primary", "wrist"], "rates": [10]}}
    sim_train.check_init_fits(cfg, meta, "ckpt")
    with pytest.raises(RecipeError, match=r"cameras \['primary', 'wrist'\] differ from the demos' \['primary'\]"):
        sim_train.check_init_fits(cfg, dict(meta, franka_panda=dict(meta["franka_panda"], cameras=["primary"])), "ckpt")
    with pytest.raises(RecipeError, match=r"rate\(s\) \[15\] Hz"):
        sim_train.check_init_fits(cfg, dict(meta, franka_panda=dict(meta["franka_panda"], rates=[15])), "ckpt")


def test_bad_input_exits_2_and_keeps_the_output(tmp_path, capsys):
    assert main(["--system", "franka_teleport", "--output", str(tmp_path / "x")]) == 2
    assert "unknown system 'franka_teleport'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["--system", "franka_pick_place", "--output", str(other)]) == 2
    assert "not empty" in capsys.readouterr().err
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.json").write_text(json.dumps({"settings": {}, "phases": {}}))
    assert main(["--system", "franka_pick_place", "--output", str(run)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert json.loads((run / "recipe.json").read_text()) == {"settings": {}, "phases": {}}
    assert main(["--system", "franka_pick_place", "--output", str(tmp_path / "y"), "--budget-min", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--budget-min" in err
    assert main(["--system", "franka_pick_place", "--output", str(tmp_path / "y"), "--extend-min", "-5"]) == 2
    assert "--extend-min" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_an_extension_is_not_a_settings_change(tmp_path):
    """--extend-min on a finished run resumes it (the extension has its own record), other changes do not."""
    from lawam_training.sim_train import Recipe, parse_args
    base = ["--system", "franka_pick_place", "--output", str(tmp_path / "run")]
    first = Recipe(parse_args(base))
    first.save()
    again = Recipe(parse_args(base + ["--resume", "--extend-min", "30", "--extend-lr", "1e-4"]))
    assert again.state["settings"] == first.state["settings"]
    with pytest.raises(RecipeError, match="batch_size"):
        Recipe(parse_args(base + ["--resume", "--batch-size", "64"]))


def test_a_run_from_before_counterfactual_renderings_resumes(tmp_path):
    """recipe.json of an older run has no distractor_moves: it had none, so --resume with 0 continues it and
    the system's default (2) is a settings change."""
    from lawam_training.sim_train import Recipe, parse_args
    base = ["--system", "franka_pick_place", "--output", str(tmp_path / "run")]
    first = Recipe(parse_args(base + ["--distractor-moves", "0"]))
    del first.state["settings"]["distractor_moves"]
    first.save()
    assert Recipe(parse_args(base + ["--resume", "--distractor-moves", "0"])).state["settings"]["distractor_moves"] == 0
    with pytest.raises(RecipeError, match="distractor_moves"):
        Recipe(parse_args(base + ["--resume"]))


class GoToPolicy:
    """Every chunk: H steps moving linearly from the measured EEF to `goal` (position), gripper open."""

    def __init__(self, scene, goal, H=12):
        self.scene, self.goal, self.H = scene, np.asarray(goal, float), H
        self.stamps = []

    def predict_chunk(self, images, instruction, control_hz, embodiment=None, seed=None):
        assert images[0].dtype == np.uint8 and images[0].ndim == 3
        p, q = self.scene.eef_pose("arm")
        self.stamps.append(self.scene.time)
        w = np.linspace(0.25, 1.0, self.H)[:, None]
        pos = p + w * (self.goal - p)
        actions = np.concatenate([pos, np.tile(q, (self.H, 1)), np.ones((self.H, 1))], axis=1)
        return SimpleNamespace(actions=actions, timestamps=np.arange(self.H) / control_hz)


def test_closed_loop_executes_chunks_in_sim_time():
    from lawam_sim.rendering import CameraRig
    from lawam_sim.scenes import make_scene
    from lawam_training.sim_rollout import rollout

    scene = make_scene("franka_pick_place")
    rig = CameraRig(scene.model, 64, 64)
    scene.reset(5)
    start, _ = scene.eef_pose("arm")
    goal = start + np.array([0.0, 0.08, -0.05])
    policy = GoToPolicy(scene, goal)
    r = rollout(policy, scene, rig, "front", 5, scene.instructions[0], 10.0, "franka_panda", timeout_s=4.0)
    rig.close()
    assert not r.success and r.refused_chunks == 0
    assert r.chunks >= 3 and np.all(np.diff(policy.stamps) > 0.5)  # a new chunk when the running one ends
    reached, _ = scene.eef_pose("arm")
    assert np.linalg.norm(reached - goal) < 0.02


def test_closed_loop_counts_refused_far_chunks():
    from lawam_sim.rendering import CameraRig
    from lawam_sim.scenes import make_scene
    from lawam_training.sim_rollout import rollout

    scene = make_scene("franka_pick_place")
    rig = CameraRig(scene.model, 64, 64)
    scene.reset(5)
    start, _ = scene.eef_pose("arm")

    class FarPolicy(GoToPolicy):  # first target 0.4 m away: the bridge's start-up check refuses it
        def predict_chunk(self, *a, **k):
            out = super().predict_chunk(*a, **k)
            out.actions[:, :3] = self.goal
            return out

    r = rollout(FarPolicy(scene, start + [0.4, 0, 0]), scene, rig, "front", 5, scene.instructions[0], 10.0,
                "franka_panda", timeout_s=2.0)
    rig.close()
    assert r.refused_chunks == r.chunks >= 1
    assert np.linalg.norm(scene.eef_pose("arm")[0] - start) < 0.03  # the arm held


# ---------------------------------------------------------------------------------------------- several arms
# and cameras (franka_drawer, quanta_towel_fold go through the same code as pick-and-place)
def test_per_system_defaults_and_pick_place_settings_unchanged():
    from lawam_training.sim_train import SYSTEMS, parse_args
    assert {k: v[1] for k, v in SYSTEMS.items()} == {"franka_pick_place": 150, "franka_drawer": 150,
                                                     "quanta_towel_fold": 280}
    # A pick-and-place run started before per-system DART defaults resumes with the same settings.
    assert parse_args(["--system", "franka_pick_place", "--output", "x"]).dart_sigma == 0.015
    assert parse_args(["--system", "franka_drawer", "--output", "x"]).dart_sigma == SYSTEMS["franka_drawer"][3]
    assert parse_args(["--system", "quanta_towel_fold", "--output", "x", "--dart-sigma", "0"]).dart_sigma == 0.0
    with pytest.raises(RecipeError, match="--dart-sigma"):
        parse_args(["--system", "franka_drawer", "--output", "x", "--dart-sigma", "-0.01"])
    # a smoke run with few demos must keep some for training (6 held out by default)
    with pytest.raises(RecipeError, match="--val-episodes must be in 0..3 for 4 demos"):
        parse_args(["--system", "quanta_towel_fold", "--output", "x", "--demos", "4"])
    assert parse_args(["--system", "quanta_towel_fold", "--output", "x", "--demos", "4", "--val-episodes", "1"])
    # counterfactual renderings: only pick-and-place has them
    assert parse_args(["--system", "franka_pick_place", "--output", "x"]).distractor_moves == 2
    assert parse_args(["--system", "franka_pick_place", "--output", "x", "--distractor-moves", "0"]).distractor_moves == 0
    assert parse_args(["--system", "franka_drawer", "--output", "x"]).distractor_moves == 0
    for bad in (["--system", "franka_drawer", "--distractor-moves", "1"],
                ["--system", "franka_pick_place", "--distractor-moves", "-1"]):
        with pytest.raises(RecipeError, match="--distractor-moves"):
            parse_args(bad + ["--output", "x"])


def test_twin_cameras_in_role_order():
    from lawam_training.sim_demos import twin_cameras
    assert twin_cameras("franka_drawer") == [("front", "primary")]
    assert twin_cameras("franka_pick_place") == [("front", "primary"), ("handcam_rgb", "wrist")]
    assert twin_cameras("quanta_towel_fold") == [("cam_high", "primary"), ("left_wrist", "left_wrist"),
                                                 ("right_wrist", "right_wrist")]


def test_heldout_positions_cover_every_arm():
    from lawam_training.sim_train import _positions
    wire = np.arange(16, dtype=float)  # left: x y z qx qy qz qw g, right: the same
    np.testing.assert_array_equal(_positions(wire), [[0, 1, 2], [8, 9, 10]])
    assert _positions(np.zeros((5, 8))).shape == (5, 1, 3)


def test_start_acceptance_checks_distance_and_angle_of_every_arm():
    """The held-out start figure as the bridge judges a first target: the towel's arms start horizontal and
    work pointing down, so a policy can be near in position and still refused for the angle."""
    from lawam_policy.runtime.safety import SafetyLimits
    from lawam_training.sim_train import start_accepted
    lim = SafetyLimits()
    down = [0.0, 0.7071068, 0.0, 0.7071068]          # 90 deg about y
    arm = lambda p, q: np.r_[p, q, 1.0]              # noqa: E731
    state = np.r_[arm([0.1, 0.0, 0.2], [0, 0, 0, 1]), arm([-0.1, 0.0, 0.2], [0, 0, 0, 1])]
    assert start_accepted(state, state, lim)
    near = np.r_[arm([0.15, 0.05, 0.2], [0, 0, 0, 1]), arm([-0.1, 0.1, 0.15], [0, 0, 0, 1])]
    assert start_accepted(near, state, lim)
    assert not start_accepted(np.r_[state[:8], arm([-0.1, 0.0, 0.2], down)], state, lim)   # right arm's angle
    assert not start_accepted(np.r_[arm([0.1, 0.2, 0.2], [0, 0, 0, 1]), state[8:]], state, lim)  # left distance
    assert not start_accepted(arm([0.5, 0, 0.3], [0, 0, 0, 1]), arm([0.5, 0, 0.1], [0, 0, 0, 1]), lim)


def test_report_renders_stage2_figures_with_and_without_start_acceptance():
    from lawam_training.sim_train import render_report
    old = {"step": 10, "training_wall_s": 60, "action_error_m": 0.1, "first_error_m": 0.1,
           "start_within_share": 0.5}
    rep = {"system": "quanta_towel_fold", "settings": {"batch_size": 32}, "phases": {},
           "stage2_reports": [old, dict(old, step=20, start_accepted_share=0.25)]}
    md = render_report(rep)
    assert "| 10 | 1.0 | 10.0 | 10.0 | 50 % | - |" in md and "| 20 | 1.0 | 10.0 | 10.0 | 50 % | 25 % |" in md


ROLES3 = ("primary", "left_wrist", "right_wrist")


def test_frame_cache_keeps_every_camera_in_role_order(tmp_path):
    pytest.importorskip("lerobot")
    from lawam_policy.action_layout import get_layout
    from lawam_training.data import DemoDataset
    from lawam_training.episode_store import EpisodeStore, make_features
    from lawam_training.frame_cache import CachedDemoDataset

    layout = get_layout("quanta_x1")
    store = EpisodeStore(tmp_path / "d", 10, make_features(layout, {r: (32, 32) for r in ROLES3}), "quanta_x1")
    rec = store.begin_episode("fold the towel in half")
    for k in range(5):
        s = np.full(layout.dim, k, np.float32)
        rec.add_frame({r: np.full((32, 32, 3), 40 * v + 10 * k + 20, np.uint8) for v, r in enumerate(ROLES3)},
                      s, s)
    rec.commit()
    demo = DemoDataset(tmp_path / "d", horizon_s=0.2)
    assert demo.cameras == list(ROLES3)
    cache = CachedDemoDataset(demo, image_size=32, encoder=lambda u: u.mean(dim=(1, 2, 3))[:, None, None])
    s = cache[1]
    assert s["images_t"].shape == (3, 32, 32, 3)
    for v in range(3):  # view v of frame 1 and of frame 1 + H = 3
        assert abs(int(s["images_t"][v, 8, 8, 0]) - (40 * v + 30)) <= 3
        assert abs(int(s["images_tT"][v, 8, 8, 0]) - (40 * v + 50)) <= 3
    assert s["features_t"].item() == pytest.approx(30 / 255, abs=0.02)  # features: the primary view only
    assert s["actions"].shape == (2, layout.dim)


class TwoArmGoToPolicy:
    """Every chunk: H steps moving both arms linearly from their measured EEF poses to `goals`, grippers open.
    Records the images it was given and what the twin's cameras showed at that moment."""

    def __init__(self, env, goals, H=12):
        from lawam_sim.rendering import CameraRig
        self.env, self.goals, self.H = env, goals, H
        self.config = SimpleNamespace(cameras=lambda embodiment: list(ROLES3))  # a checkpoint's camera roles
        self.check_rig = CameraRig(env.scene.model, 224, 224)
        self.views = []

    def predict_chunk(self, images, instruction, control_hz, embodiment=None, seed=None):
        scene = self.env.scene
        self.views.append((images, [self.check_rig.render(scene.data, c) for c in ("cam_high", "left_wrist",
                                                                                    "right_wrist")]))
        w = np.linspace(0.25, 1.0, self.H)[:, None]
        parts = []
        for arm in scene.arms:
            p, q = scene.eef_pose(arm)
            parts += [p + w * (self.goals[arm] - p), np.tile(q, (self.H, 1)), np.ones((self.H, 1))]
        return SimpleNamespace(actions=np.concatenate(parts, axis=1), timestamps=np.arange(self.H) / control_hz)


def test_closed_loop_two_arms_three_cameras_with_the_quanta_bridge_limits():
    """The towel system's loop: the policy gets cam_high, left_wrist, right_wrist (its camera roles, primary
    first) at the twin's size; both arms follow their chunks inside the Quanta bridge's workspace (the left arm
    works at x < 0, outside the Franka box the loop used to apply to every embodiment)."""
    from lawam_training.sim_rollout import twin_env

    env = twin_env("quanta_towel_fold", sim_train.workspace_root() / "config")
    assert env.cameras == ["cam_high", "left_wrist", "right_wrist"] and env.embodiment == "quanta_x1"
    env.scene.reset(5)
    goals = {arm: env.scene.eef_pose(arm)[0] + [0.0, 0.05, -0.04] for arm in env.scene.arms}
    assert goals["left"][0] < 0 < goals["right"][0]
    policy = TwoArmGoToPolicy(env, goals)
    r = env.rollout(policy, 5, env.scene.instructions[0], 10.0, timeout_s=3.0)
    reached = {arm: env.scene.eef_pose(arm)[0] for arm in env.scene.arms}
    policy.check_rig.close()
    env.close()
    assert r.refused_chunks == 0 and r.chunks >= 2
    for arm in env.scene.arms:
        assert np.linalg.norm(reached[arm] - goals[arm]) < 0.02, arm
    for images, truth in policy.views:  # each view is the camera of its role, rendered at that moment
        assert [im.shape for im in images] == [(224, 224, 3)] * 3  # config/quanta_twin.yaml
        for v, im in enumerate(images):
            assert [np.array_equal(im, t) for t in truth] == [u == v for u in range(3)]


def test_collect_records_every_camera_of_the_system(tmp_path):
    """One towel demonstration: a dataset with the three camera roles, primary first, each the view of its
    twin camera, two arms' state and action."""
    pytest.importorskip("lerobot")
    from lawam_sim.rendering import CameraRig
    from lawam_sim.scenes import make_scene
    from lawam_training.video_decode import decode_all_frames
    from lawam_training.sim_demos import collect, training_seeds

    info = collect("quanta_towel_fold", sim_train.workspace_root() / "config", tmp_path / "d", 1, 10,
                   dart_sigma_m=0.0, progress=False)
    assert info["episodes"] == 1 and info["frames"] > 20
    meta = json.loads((tmp_path / "d" / "meta" / "info.json").read_text())
    cams = [k.split(".")[-1] for k in meta["features"] if k.startswith("observation.images.")]
    assert cams == list(ROLES3)
    assert meta["features"]["action"]["shape"] == [16] and meta["robot_type"] == "quanta_x1"
    scene = make_scene("quanta_towel_fold")  # the first frame is taken right after the reset
    scene.reset(training_seeds(1)[0], scene.instructions[0])
    rig = CameraRig(scene.model, 224, 224)
    truth = [rig.render(scene.data, c).astype(float) for c in ("cam_high", "left_wrist", "right_wrist")]
    rig.close()
    for v, role in enumerate(ROLES3):
        (video,) = (tmp_path / "d" / "videos" / f"observation.images.{role}").rglob("*.mp4")
        first = decode_all_frames(video)[1][0].astype(float)
        errors = [float(np.abs(first - t).mean()) for t in truth]
        assert int(np.argmin(errors)) == v, (role, errors)


def test_collect_adds_each_demos_counterfactual_renderings(tmp_path):
    """Pick-and-place, one demo, colours exchanged and one distractor move: 4 episodes with the demo's states
    and actions; the exchanged ones under the other instruction. Each episode's first frame is the matching
    rendering (wrist view too): the cubes' colours exchanged, the other cube moved, or both."""
    pytest.importorskip("lerobot")
    import pandas as pd
    from lawam_sim.rendering import CameraRig
    from lawam_sim.scenes import make_scene
    from lawam_training.video_decode import decode_all_frames
    from lawam_training.sim_demos import RenderVariant, collect, draw_variants, training_seeds, twin_cameras

    info = collect("franka_pick_place", sim_train.workspace_root() / "config", tmp_path / "d", 1, 10,
                   dart_sigma_m=0.0, exchange_colours=True, distractor_moves=1, progress=False)
    assert info["episodes"] == 4 and info["episodes_per_demo"] == 4 and info["demos"] == 1
    data = pd.concat([pd.read_parquet(f) for f in sorted((tmp_path / "d" / "data").rglob("*.parquet"))])
    tasks = pd.read_parquet(tmp_path / "d" / "meta" / "tasks.parquet")
    task_of = {int(i): name for name, i in zip(tasks.index, tasks["task_index"])}
    eps = [data[data.episode_index == e] for e in range(4)]
    red, green = "put the red cube in the bowl", "put the green cube in the bowl"
    assert [task_of[int(ep.task_index.iloc[0])] for ep in eps] == [red, green, red, green]
    for ep in eps[1:]:
        assert np.array_equal(np.stack(ep.action), np.stack(eps[0].action))
        assert np.array_equal(np.stack(ep["observation.state"]), np.stack(eps[0]["observation.state"]))
    scene = make_scene("franka_pick_place")  # the first frame is taken right after the reset
    seed = training_seeds(1)[0]
    scene.reset(seed, red)
    variants = draw_variants(scene, np.random.default_rng(seed + 104729), True, 1)
    assert [v.exchanged for v in variants] == [True, False, True] and variants[0].distractor is None
    moved = variants[1].distractor
    assert np.linalg.norm(moved[0] - scene.cube_pose("green")[0][:2]) > 0.01  # the green cube stands elsewhere
    rig = CameraRig(scene.model, 224, 224)
    for camera, role in twin_cameras("franka_pick_place"):
        truth = [v.render(scene, rig, [camera])[0].astype(float) for v in [RenderVariant()] + variants]
        videos = sorted((tmp_path / "d" / "videos" / f"observation.images.{role}").rglob("*.mp4"))
        frames = np.concatenate([decode_all_frames(v)[1] for v in videos]).astype(float)
        starts = np.cumsum([0] + [len(ep) for ep in eps[:-1]])
        for e, start in enumerate(starts):
            errors = [float(np.abs(frames[start] - t).mean()) for t in truth]
            assert int(np.argmin(errors)) == e, (role, e, errors)
    rig.close()


def test_a_demo_and_its_counterfactual_renderings_are_held_out_together():
    from lawam_training.sim_train import held_out_episodes
    groups = [list(range(6 * d, 6 * d + 6)) for d in range(100)]
    held = held_out_episodes(groups, 6, seed=0)
    assert len(held) == 36 and all(set(groups[e // 6]) <= held for e in held)
    singles = [[e] for e in range(150)]  # runs without renderings keep the held-out split they had
    assert held_out_episodes(singles, 6, seed=0) == set(np.random.default_rng(0).permutation(150)[:6].tolist())


def test_collect_resumes_after_a_stop_between_one_demos_renderings(tmp_path):
    """The dataset lists each demo's episodes (lawam_demos.json). Episodes committed after the last listed demo
    (a stop between its renderings) are kept as that demo's group, and collection goes on with the next demo;
    a dataset without the list (collected before it) is cut into groups of the episodes per demo."""
    pytest.importorskip("lerobot")
    import json as js
    from lawam_training.sim_demos import DEMO_GROUPS_FILE, collect, demo_groups

    config = sim_train.workspace_root() / "config"
    out = tmp_path / "d"
    collect("franka_pick_place", config, out, 1, 10, exchange_colours=True, progress=False)
    assert demo_groups(out) == [[0, 1]]
    (out / DEMO_GROUPS_FILE).write_text(js.dumps({"groups": []}))  # stopped before the list was written
    assert demo_groups(out, 2) == [[0, 1]]
    info = collect("franka_pick_place", config, out, 2, 10, exchange_colours=True, progress=False)
    assert info["episodes"] == 4 and info["demos"] == 2 and demo_groups(out) == [[0, 1], [2, 3]]
    (out / DEMO_GROUPS_FILE).unlink()
    assert demo_groups(out, 2) == [[0, 1], [2, 3]] and demo_groups(out, 3) == [[0, 1, 2], [3]]


def test_collect_records_in_a_child_process_what_it_records_in_its_own(tmp_path):
    """record_workers=1 (the recipe's: a spawned process simulates and renders while the caller writes) stores
    the same episodes as recording in the caller: tasks, states, actions and video frames, counterfactual
    renderings included. The child records no demo beyond those still wanted (one left over, blocked sending
    its frames, once kept the pool from closing: the test hung)."""
    pytest.importorskip("lerobot")
    import pandas as pd
    from lawam_training.sim_demos import collect
    from lawam_training.video_decode import decode_all_frames

    config = sim_train.workspace_root() / "config"
    infos, data, frames = [], [], []
    for workers in (0, 1):
        out = tmp_path / f"w{workers}"
        infos.append(collect("franka_pick_place", config, out, 1, 10, exchange_colours=True, progress=False,
                             record_workers=workers))
        data.append(pd.concat([pd.read_parquet(f) for f in sorted((out / "data").rglob("*.parquet"))]))
        frames.append([decode_all_frames(v)[1] for v in sorted((out / "videos").rglob("*.mp4"))])
    assert infos[0] == dict(infos[1], dataset=infos[0]["dataset"]) and infos[0]["episodes"] == 2
    for key in ("action", "observation.state"):
        assert np.array_equal(np.stack(data[0][key]), np.stack(data[1][key]))
    assert data[0]["task_index"].tolist() == data[1]["task_index"].tolist()
    assert len(frames[0]) == len(frames[1]) > 0
    # Not bit-exact: two recordings in the same process differ too, in a few pixels (max 112, mean 0.05 of 255);
    # another rendering (colours exchanged, cube moved) differs in whole objects.
    assert all(a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 0.5 for a, b in zip(*frames))
    with pytest.raises(ValueError, match="record_workers"):
        collect("franka_pick_place", config, tmp_path / "bad", 1, 10, progress=False, record_workers=-1)
