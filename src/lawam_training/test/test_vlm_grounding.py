"""Stage 0 of the sim recipe: grounding pretraining of the VLM prior (vlm_grounding.py) and its hand-over to
stage 2."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lawam_training import sim_train
from lawam_training.sim_train import RecipeError, parse_args, stage2_steps_left
from lawam_training.vlm_grounding import load_vlm, pretrain_grounding, save_vlm

RED, GREEN = "put the red cube in the bowl", "put the green cube in the bowl"


def tiny_policy():
    from lawam_policy.model import LaWAMConfig, LaWAMPolicy
    torch.manual_seed(0)
    return LaWAMPolicy(LaWAMConfig.from_preset("tiny", image_size=32))


def test_grounding_targets_name_the_instructed_cube_first():
    from lawam_sim.scenes import make_scene
    scene = make_scene("franka_pick_place")
    scene.reset(500_123, RED)
    red, green = scene.cube_pose("red")[0][:2], scene.cube_pose("green")[0][:2]
    np.testing.assert_allclose(scene.grounding_targets(), [red, green])
    scene.set_instruction(GREEN)
    np.testing.assert_allclose(scene.grounding_targets(), [green, red])


def test_stage0_learns_from_the_instruction_and_trains_only_the_vlm():
    """Labels that depend on the instruction alone: only a VLM that reads it gets below the mean guess; every
    module but the VLM is left as it was."""
    policy = tiny_policy()
    n = 40
    units = torch.rand(n, 3, 32, 32).to(torch.float16)
    named = {0: [0.6, 0.1], 1: [0.4, -0.1]}  # instruction 0 names the cube at (0.6, 0.1), 1 the other one
    objects = torch.tensor([[named[0], named[1]], [named[1], named[0]]], dtype=torch.float32).expand(n, 2, 2, 2)
    data = {"units": units, "objects": objects.clone(), "instructions": [RED, GREEN]}
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    figures = pretrain_grounding(policy, data, steps=150, batch_size=8, lr=3e-3, held_out=8)
    assert figures["mean_guess_error_m"] == pytest.approx(np.hypot(0.1, 0.1), rel=1e-3)
    assert figures["named_error_m"] < 0.3 * figures["mean_guess_error_m"]
    assert figures["other_error_m"] < 0.3 * figures["mean_guess_error_m"]
    after = policy.state_dict()
    changed = {k.split(".", 1)[0] for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"vlm"}


def test_stage0_label_statistics_come_from_the_training_renders_alone():
    """Held-out labels far from the training ones: the mean guess is the training mean's error on them."""
    policy = tiny_policy()
    n, held_out = 20, 4
    objects = torch.zeros(n, 2, 2, 2)
    objects[:n - held_out] = torch.tensor([0.4, 0.6]).repeat((n - held_out) // 2)[:, None, None, None]  # mean 0.5
    objects[n - held_out:] = torch.tensor([0.8, 0.9])
    data = {"units": torch.rand(n, 3, 32, 32).to(torch.float16), "objects": objects,
            "instructions": [RED, GREEN]}
    figures = pretrain_grounding(policy, data, steps=1, batch_size=4, held_out=held_out)
    assert figures["mean_guess_error_m"] == pytest.approx(np.hypot(0.3, 0.4), rel=1e-4)


def test_stage0_vlm_is_saved_and_restored_exactly(tmp_path):
    trained, fresh = tiny_policy(), tiny_policy()
    with torch.no_grad():
        for p in trained.vlm.parameters():
            p.add_(0.01)
    save_vlm(trained, tmp_path / "runs" / "stage0_vlm.safetensors")
    load_vlm(fresh, tmp_path / "runs" / "stage0_vlm.safetensors")
    for (k, a), b in zip(trained.vlm.state_dict().items(), fresh.vlm.state_dict().values()):
        assert torch.equal(a, b), k


def test_stage2_starts_from_the_grounded_vlm(tmp_path, monkeypatch):
    """A fresh stage 2 takes stage 1's modules from its checkpoint and the VLM from stage 0, not from the
    initialisation a stage-1 checkpoint also stores."""
    grounded = tiny_policy()
    with torch.no_grad():
        for p in grounded.vlm.parameters():
            p.mul_(0.5)
    save_vlm(grounded, tmp_path / "runs" / "stage0_vlm.safetensors")
    recipe = sim_train.Recipe.__new__(sim_train.Recipe)
    recipe.out, recipe.args = tmp_path, SimpleNamespace(init=None)
    recipe.state = {"phases": {"stage0": {"wall_s": 60.0}}}
    monkeypatch.setattr(sim_train, "load_weights", lambda *a, **k: None)
    monkeypatch.setattr("lawam_training.train.latest_checkpoint", lambda *a: None)
    policy = tiny_policy()
    recipe.start_stage2(policy)
    for a, b in zip(policy.vlm.parameters(), grounded.vlm.parameters()):
        assert torch.equal(a, b)


def test_stage0_time_counts_against_the_budget():
    plan = {"s_per_step": {"1": 0.1, "2": 0.2}, "epoch_steps": 10}
    # 60 min budget, stage 1 ran at its probe's speed for 600 s; stage 0 took another 600 s
    assert stage2_steps_left(60, plan, 600.0, 6000) == 15000  # 3000 s left at 0.2 s/step
    assert stage2_steps_left(60, plan, 600.0, 6000, trained_s=1200.0) == 12000  # 2400 s left
    assert stage2_steps_left(60, plan, 600.0, 6000, trained_s=3600.0) == 10  # never under one epoch


def test_the_recipe_replans_stage2_after_stages_0_and_1(tmp_path):
    """The stage-2 plan made when stage 1 ends leaves out stage 0's minutes as well as stage 1's."""
    recipe = sim_train.Recipe.__new__(sim_train.Recipe)
    recipe.args = SimpleNamespace(budget_min=60.0)
    recipe.out, recipe.state_path = tmp_path, tmp_path / "recipe.json"
    plan = {"s_per_step": {"1": 0.1, "2": 0.2}, "epoch_steps": 10, "stage2_steps": 100}
    recipe.state = {"settings": {}, "phases": {"stage1": {"wall_s": 600.0, "steps": 6000}, "plan": plan,
                                               "stage0": {"wall_s": 600.0}}}
    assert recipe.replan_stage2(plan) == 12000  # 2400 s left at 0.2 s/step; without stage 0: 15000


def test_grounding_steps_per_system_and_older_runs(tmp_path):
    assert parse_args(["--system", "franka_pick_place", "--output", "x"]).grounding_steps == 3000
    assert parse_args(["--system", "franka_drawer", "--output", "x"]).grounding_steps == 0
    with pytest.raises(RecipeError, match="--grounding-steps"):
        parse_args(["--system", "franka_drawer", "--output", "x", "--grounding-steps", "100"])
    with pytest.raises(RecipeError, match="--grounding-steps"):
        parse_args(["--system", "franka_pick_place", "--output", "x", "--grounding-steps", "-1"])
    # recipe.json of a run from before stage 0 has no grounding_steps: it had none
    base = ["--system", "franka_pick_place", "--output", str(tmp_path / "run")]
    first = sim_train.Recipe(parse_args(base + ["--grounding-steps", "0"]))
    del first.state["settings"]["grounding_steps"]
    first.save()
    assert sim_train.Recipe(parse_args(base + ["--resume", "--grounding-steps", "0"])).state["phases"] == {}
    with pytest.raises(RecipeError, match="grounding_steps"):
        sim_train.Recipe(parse_args(base + ["--resume"]))
    assert json.loads((tmp_path / "run" / "recipe.json").read_text())["settings"].get("grounding_steps") is None


def test_recipe_stage0_renders_trains_records_and_saves_the_vlm(tmp_path, monkeypatch):
    """The recipe's phase end to end on a tiny policy: twin renders, training, figures in recipe.json, and the
    VLM file stage 2 will load; a finished stage 0 is not run again."""
    monkeypatch.setattr(sim_train, "GROUNDING_FRAMES", 6)
    recipe = sim_train.Recipe.__new__(sim_train.Recipe)
    recipe.args = SimpleNamespace(grounding_steps=2, batch_size=2, seed=0)
    recipe.out, recipe.state_path, recipe.progress = tmp_path, tmp_path / "recipe.json", False
    recipe.scene_name = "franka_pick_place"
    recipe.state = {"settings": {}, "phases": {}}
    policy = tiny_policy()
    recipe.stage0(policy)
    g = json.loads((tmp_path / "recipe.json").read_text())["phases"]["stage0"]
    assert g["steps"] == 2 and g["frames"] == 6 and g["held_out"] == 1
    assert 0.0 < g["mean_guess_error_m"] < 0.5 and np.isfinite(g["named_error_m"])
    fresh = tiny_policy()
    load_vlm(fresh, tmp_path / "runs" / "stage0_vlm.safetensors")
    for a, b in zip(policy.vlm.state_dict().values(), fresh.vlm.state_dict().values()):
        assert torch.equal(a, b)
    monkeypatch.setattr(sim_train, "GROUNDING_FRAMES", None)  # would fail if the phase ran again
    recipe.stage0(policy)


def test_stage2_grounding_loss_reuses_stage0s_renders_and_holds_out_the_same_frames(tmp_path, monkeypatch):
    """--ground-weight: stage 2's objective trains on stage 0's render set (rendered once per run, kept for
    resumes) minus the same held-out frames; off (None) at weight 0."""
    monkeypatch.setattr(sim_train, "GROUNDING_FRAMES", 30)
    recipe = sim_train.Recipe.__new__(sim_train.Recipe)
    recipe.args = SimpleNamespace(grounding_steps=1, batch_size=2, seed=0, ground_weight=0.0)
    recipe.out, recipe.state_path, recipe.progress = tmp_path, tmp_path / "recipe.json", False
    recipe.scene_name = "franka_pick_place"
    recipe.state = {"settings": {}, "phases": {}}
    policy = tiny_policy()
    assert recipe.grounding_objective(policy) is None
    recipe.stage0(policy)
    rendered = torch.load(tmp_path / "runs" / "grounding_set.pt", weights_only=False)
    monkeypatch.setattr("lawam_training.vlm_grounding.render_grounding_set", None)  # no second rendering
    recipe.args.ground_weight = 0.5
    aux = recipe.grounding_objective(policy)
    assert aux.train_n == 30 - 2 and aux.weight == 0.5  # stage 0 held out the last 30 // 15 frames
    assert torch.equal(aux.grounding.data["units"], rendered["units"])
    assert aux.grounding.data["objects"].shape == (30, 2, 2, 2)
    assert aux.loss(torch.Generator().manual_seed(0)).detach().item() > 0
    assert aux.held_out_errors_m().shape == (2,)


def test_ground_weight_needs_a_grounded_system_and_older_runs_had_none(tmp_path):
    assert parse_args(["--system", "franka_pick_place", "--output", "x"]).ground_weight == 0.0
    assert parse_args(["--system", "franka_pick_place", "--output", "x", "--ground-weight", "1"]).ground_weight == 1.0
    for bad in (["--system", "franka_drawer", "--ground-weight", "1"],
                ["--system", "franka_pick_place", "--ground-weight", "-0.5"]):
        with pytest.raises(RecipeError, match="--ground-weight"):
            parse_args(bad + ["--output", "x"])
    base = ["--system", "franka_pick_place", "--output", str(tmp_path / "run")]
    first = sim_train.Recipe(parse_args(base))
    del first.state["settings"]["ground_weight"]  # recipe.json of a run from before the option
    first.save()
    assert sim_train.Recipe(parse_args(base + ["--resume"])).state["phases"] == {}
    with pytest.raises(RecipeError, match="ground_weight"):
        sim_train.Recipe(parse_args(base + ["--resume", "--ground-weight", "1"]))
