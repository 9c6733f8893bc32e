"""lawam-sim-train's pieces: sample semantics at episode ends, the frame/feature cache, the budget plan, bad input,
and the ROS-free closed loop (scene + bridge core + a policy)."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lawam_training.data import episode_sample
from lawam_training import sim_train
from lawam_training.sim_train import RecipeError, main, steps_for_budget


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


def test_budget_plan():
    assert steps_for_budget(10, 0.25, {1: 0.5, 2: 1.5}, 100) == (300, 300)
    with pytest.raises(RecipeError, match="less than one epoch"):
        steps_for_budget(1, 0.25, {1: 0.5, 2: 1.5}, 100)


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
