"""Training samples from LeRobot datasets: frames at t and t + T, the native-rate action chunk, mixed rates."""
import numpy as np
import pytest
import torch

from lawam_policy.action_layout import get_layout
from lawam_training.data import DemoDataset, EmbodimentBatchSampler, MixedDataset, collate, make_dataloader
from lawam_training.episode_store import DatasetError, EpisodeStore, make_features

pytest.importorskip("lerobot")


def make_dataset(root, fps, lengths, embodiment="franka_panda", size=(24, 32), task="stack"):
    """Frame k of episode e: state = 100 e + k / fps (time), action = state + 1000, image value 8 k."""
    layout = get_layout(embodiment)
    cams = {"primary": size} if embodiment == "franka_panda" else {"primary": size, "left_wrist": size,
                                                                     "right_wrist": size}
    store = EpisodeStore(root, fps, make_features(layout, cams), embodiment)
    for e, n in enumerate(lengths):
        rec = store.begin_episode(f"{task} {e}")
        for k in range(n):
            img = np.full(size + (3,), (8 * k) % 240, np.uint8)
            s = np.full(layout.dim, 100 * e + k / fps)
            rec.add_frame({c: img for c in cams}, s, s + 1000)
        rec.commit()
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("data")
    return dict(f10=make_dataset(base / "f10", 10, [12, 8]), f5=make_dataset(base / "f5", 5, [7]),
                quanta=make_dataset(base / "q", 10, [8], embodiment="quanta_x1"))


def test_sample_holds_t_tT_chunk_and_states(datasets):
    ds = DemoDataset(datasets["f10"], horizon_s=0.4)
    assert ds.horizon_steps == 4 and ds.layout.names[0] == "x" and ds.cameras == ["primary"]
    # every frame is a sample, also in the last T of an episode (episode_sample)
    assert len(ds) == 12 + 8
    s = ds[12 + 1]  # episode 1, frame 1
    assert s["images_t"].shape == (1, 24, 32, 3) and s["images_t"].dtype == torch.uint8
    assert abs(int(s["images_t"][0, 4, 4, 0]) - 8) <= 3 and abs(int(s["images_tT"][0, 4, 4, 0]) - 40) <= 3
    np.testing.assert_allclose(s["actions"][:, 0], 1100 + np.array([0.1, 0.2, 0.3, 0.4]), atol=1e-4)
    np.testing.assert_allclose(s["timestamps"], [0, 0.1, 0.2, 0.3], atol=1e-6)
    assert s["action_mask"].all()
    assert s["states_t"][0].item() == pytest.approx(100.1) and s["states_tT"][0].item() == pytest.approx(100.5)
    assert s["instruction"] == "stack 1" and s["embodiment"] == "franka_panda"
    actions, states = ds.wire_arrays()
    assert actions.shape == (20, 8) and states[12, 0] == pytest.approx(100.0)


def test_episode_end_samples_hold_the_last_action(datasets):
    """Issue 11: frames in an episode's last T seconds are samples; the future frame is the episode's last
    and the chunk holds its last action, as real (unmasked) steps."""
    ds = DemoDataset(datasets["f10"], horizon_s=0.4)
    s = ds[12 + 6]  # episode 1 (8 frames), frame 6: one real step left, then held
    np.testing.assert_allclose(s["actions"][:, 0], 1100 + np.array([0.6, 0.7, 0.7, 0.7]), atol=1e-4)
    assert s["action_mask"].all()
    assert s["states_tT"][0].item() == pytest.approx(100.7)  # t + T clamped to the last frame
    assert abs(int(s["images_tT"][0, 4, 4, 0]) - 56) <= 3
    last = ds[12 + 7]
    np.testing.assert_allclose(last["actions"][:, 0], [1100.7] * 4, atol=1e-4)
    long_t = DemoDataset(datasets["f5"], 2.0)  # T longer than the episode: still every frame, all held
    assert len(long_t) == 7 and long_t[0]["states_tT"][0].item() == pytest.approx(6 / 5)


def test_mixed_rates_are_padded_with_masks_and_physical_time(datasets):
    f10, f5 = DemoDataset(datasets["f10"], 0.4), DemoDataset(datasets["f5"], 0.4)
    assert f5.horizon_steps == 2
    batch = collate([f10[0], f5[0]])
    assert batch["actions"].shape == (2, 4, 8)
    assert batch["action_mask"].tolist() == [[True] * 4, [True, True, False, False]]
    np.testing.assert_allclose(batch["timestamps"][1], [0, 0.2, 0, 0], atol=1e-6)
    np.testing.assert_allclose(batch["actions"][1, :2, 0], [1000.0, 1000.2], atol=1e-4)
    assert batch["control_hz"].tolist() == [10.0, 5.0]
    assert batch["embodiment"] == "franka_panda" and batch["instructions"] == ["stack 0", "stack 0"]


def test_dataloader_groups_embodiments(datasets):
    loader = make_dataloader([datasets["f10"], datasets["f5"], datasets["quanta"]], horizon_s=0.4, batch_size=4,
                             image_size=32)
    seen = {"franka_panda": 0, "quanta_x1": 0}
    for batch in loader:
        B = len(batch["instructions"])
        assert set(batch["embodiments"]) == {batch["embodiment"]}
        D = 8 if batch["embodiment"] == "franka_panda" else 16
        V = 1 if batch["embodiment"] == "franka_panda" else 3
        assert batch["images_t"].shape == (B, V, 32, 32, 3) and batch["actions"].shape[::2] == (B, D)
        assert batch["states_tT"].shape == (B, D)
        seen[batch["embodiment"]] += B
    assert seen == {"franka_panda": 20 + 7, "quanta_x1": 8}
    mixed = MixedDataset([DemoDataset(datasets["f10"], 0.4)])
    a, b = EmbodimentBatchSampler(mixed, 4, seed=3), EmbodimentBatchSampler(mixed, 4, seed=3)
    assert list(a) == list(b)  # reproducible order for exact resume
    a.set_epoch(1)
    assert sorted(sum(list(a), [])) == list(range(20))


def test_layout_from_option_when_feature_names_say_nothing(datasets, tmp_path):
    import json
    import shutil
    root = tmp_path / "anon"
    shutil.copytree(datasets["f5"], root)
    info = json.loads((root / "meta/info.json").read_text())
    for key in ("action", "observation.state"):
        info["features"][key]["names"] = [f"motor_{i}" for i in range(8)]
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="unknown action layout.*--action-layout"):
        DemoDataset(root, 0.4)
    ds = DemoDataset(root, 0.4, action_layout="x,y,z,qx,qy,qz,qw,gripper")
    assert ds.layout.dim == 8 and len(ds) == 7
    with pytest.raises(DatasetError, match="shape"):
        DemoDataset(root, 0.4, action_layout="quanta_x1")


def test_collate_refuses_mixed_embodiments(datasets):
    f10, q = DemoDataset(datasets["f10"], 0.4), DemoDataset(datasets["quanta"], 0.4)
    with pytest.raises(ValueError, match="one embodiment"):
        collate([f10[0], q[0]])


def test_bad_datasets(datasets, tmp_path):
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        DemoDataset(tmp_path / "missing", 0.4)
    with pytest.raises(DatasetError, match="layout"):
        DemoDataset(datasets["f10"], 0.4, action_layout="quanta_x1")
    assert DemoDataset(datasets["f10"], 0.4, action_layout="franka_panda").layout.arms == ("arm",)
    with pytest.raises(DatasetError, match="unknown action layout"):
        DemoDataset(datasets["f10"], 0.4, action_layout="ur5")
    with pytest.raises(DatasetError, match="no camera"):
        DemoDataset(datasets["f10"], 0.4, cameras=["wrist"])
