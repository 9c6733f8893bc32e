"""Atomic episodes on LeRobot v3.0: committed episodes reload exactly; a SIGKILL while recording or while
committing never corrupts what was committed before."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lawam_policy.action_layout import get_layout
from lawam_training.episode_store import DatasetError, EpisodeStore, make_features, read_info, recover

pytest.importorskip("lerobot")
from lawam_training.video_decode import PyAVLeRobotDataset  # noqa: E402

LAYOUT = get_layout("franka_panda")
FEATURES = make_features(LAYOUT, {"primary": (24, 32), "wrist": (24, 32)})


def record(store, task, n, tag):
    """Episode whose frame k has state = tag + k, action = tag + k + 0.5, images filled with 8 k."""
    rec = store.begin_episode(task)
    for k in range(n):
        img = np.full((24, 32, 3), (8 * k) % 240, np.uint8)
        rec.add_frame({"primary": img, "wrist": img}, np.full(8, tag + k), np.full(8, tag + k + 0.5))
    return rec


def check_dataset(root, episodes):
    """episodes: [(task, n, tag)] in order; checks every frame's values, indices and tasks."""
    ds = PyAVLeRobotDataset("local/check", root=root)
    assert ds.meta.total_episodes == len(episodes)
    assert len(ds) == sum(n for _, n, _ in episodes)
    i = 0
    for e, (task, n, tag) in enumerate(episodes):
        for k in (0, n - 1):
            item = ds[i + k]
            assert item["episode_index"].item() == e and item["index"].item() == i + k
            assert item["task"] == task
            assert item["observation.state"][0].item() == pytest.approx(tag + k)
            assert item["action"][0].item() == pytest.approx(tag + k + 0.5)
            assert abs(item["observation.images.wrist"][0, 5, 5].item() * 255 - (8 * k) % 240) <= 3
        i += n
    return ds


def test_episodes_commit_and_reload(tmp_path):
    root = tmp_path / "demos"
    store = EpisodeStore(root, 10, FEATURES, "franka_panda")
    assert record(store, "pick", 6, 0).commit() == 0
    assert record(store, "place", 4, 100).commit() == 1
    rec = record(store, "pick", 3, 900)
    rec.discard()  # discarded episodes leave no trace
    assert record(store, "pick", 5, 200).commit() == 2
    ds = check_dataset(root, [("pick", 6, 0), ("place", 4, 100), ("pick", 5, 200)])
    assert list(ds.meta.tasks.index) == ["pick", "place"]
    assert ds.meta.stats["index"]["max"][0] == 14 and ds.meta.stats["action"]["min"][0] == pytest.approx(0.5)
    info = read_info(root)
    assert info["total_frames"] == 15 and info["splits"] == {"train": "0:3"} and info["robot_type"] == "franka_panda"
    assert not list((root / ".lawam_staging").glob("ep-*"))
    # a reopened store appends after the existing episodes
    assert record(EpisodeStore(root, 10, FEATURES, "franka_panda"), "place", 2, 300).commit() == 3


def test_bad_datasets_are_refused(tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="non-empty directory"):
        EpisodeStore(tmp_path / "other", 10, FEATURES, "franka_panda")
    root = tmp_path / "demos"
    store = EpisodeStore(root, 10, FEATURES, "franka_panda")
    rec = store.begin_episode("pick")
    with pytest.raises(DatasetError, match="empty episode"):
        rec.commit()
    assert not (root / "meta").exists()  # nothing was published
    record(store, "pick", 3, 0).commit()
    with pytest.raises(DatasetError, match="fps 10"):
        EpisodeStore(root, 30, FEATURES, "franka_panda")
    with pytest.raises(DatasetError, match="features"):
        EpisodeStore(root, 10, make_features(LAYOUT, {"primary": (48, 64)}), "franka_panda")
    with pytest.raises(DatasetError, match="robot"):
        EpisodeStore(root, 10, FEATURES, "quanta_x1")
    with pytest.raises(DatasetError, match="task"):
        store.begin_episode("  ")


@pytest.mark.parametrize("vcodec,size,rule", [
    ("h264", (49, 65), "height and width must be even"),  # issue 13's camera
    ("h264", (48, 65), "height and width must be even"),
    ("hevc", (8, 8), "Image size is too small"),          # the encoder's own minimum, in its words
    ("libsvtav1", (16, 16), "crashed (SIGFPE)"),           # SVT-AV1 kills its process on small frames
])
def test_sizes_the_video_encoder_cannot_take_are_refused_before_an_episode_starts(tmp_path, vcodec, size, rule):
    """Issue 13: a 49x65 camera, one frame, commit() -> av.error.ExternalError (libx264) without a word about
    the size, the episode lost. Now the store refuses the size when it is created, naming size and rule."""
    h, w = size
    with pytest.raises(DatasetError) as err:
        EpisodeStore(tmp_path / "ds", 10, make_features(LAYOUT, {"primary": (48, 64), "odd": size}), "franka_panda",
                     vcodec=vcodec)
    assert f"camera 'odd': frames of {h}x{w} (HxW)" in str(err.value) and rule in str(err.value), str(err.value)
    assert not (tmp_path / "ds").exists()
    with pytest.raises(DatasetError, match="video codec 'vp9'"):
        EpisodeStore(tmp_path / "ds", 10, FEATURES, "franka_panda", vcodec="vp9")


@pytest.mark.parametrize("field,index,name", [("state", 7, "gripper"), ("action", 0, "x"), ("state", 3, "qx")])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300])  # (1e300 is inf in the stored float32)
def test_add_frame_refuses_non_finite_values_and_the_episode_goes_on(tmp_path, field, index, name, bad):
    store = EpisodeStore(tmp_path / "ds", 10, FEATURES, "franka_panda")
    rec = record(store, "pick", 2, 0)
    img = np.zeros((24, 32, 3), np.uint8)
    state, action = np.full(8, 1.0), np.full(8, 1.5)
    (state if field == "state" else action)[index] = bad
    key = "observation.state" if field == "state" else "action"
    with pytest.raises(DatasetError, match=f"frame 2: {key} is not finite \\({name} = (nan|inf)\\)"):
        rec.add_frame({"primary": img, "wrist": img}, state, action)
    rec.add_frame({"primary": img, "wrist": img}, np.full(8, 2.0), np.full(8, 2.5))
    assert rec.commit() == 0
    stats = json.loads((tmp_path / "ds" / "meta" / "stats.json").read_text())
    assert np.all(np.isfinite(stats["observation.state"]["mean"])) and read_info(tmp_path / "ds")["total_frames"] == 3


def test_add_frame_refuses_images_of_another_size_type_or_camera(tmp_path):
    store = EpisodeStore(tmp_path / "ds", 10, FEATURES, "franka_panda")
    rec = store.begin_episode("pick")
    ok = np.zeros((24, 32, 3), np.uint8)
    s = np.zeros(8)
    with pytest.raises(DatasetError, match="camera 'wrist' image is uint8 \\(10, 10, 3\\).*uint8 \\(24, 32, 3\\)"):
        rec.add_frame({"primary": ok, "wrist": np.zeros((10, 10, 3), np.uint8)}, s, s)
    with pytest.raises(DatasetError, match="camera 'wrist' image is float32"):
        rec.add_frame({"primary": ok, "wrist": np.full((24, 32, 3), np.nan, np.float32)}, s, s)
    with pytest.raises(DatasetError, match="cameras \\['primary'\\], the dataset has \\['primary', 'wrist'\\]"):
        rec.add_frame({"primary": ok}, s, s)
    rec.discard()


CHILD = textwrap.dedent("""
    import sys, numpy as np
    from lawam_policy.action_layout import get_layout
    from lawam_training.episode_store import EpisodeStore, make_features
    root, mode = sys.argv[1], sys.argv[2]
    store = EpisodeStore(root, 10, make_features(get_layout("franka_panda"), {"primary": (24, 32), "wrist": (24, 32)}),
                         "franka_panda")
    def rec(task, n, tag):
        r = store.begin_episode(task)
        for k in range(n):
            img = np.full((24, 32, 3), (8 * k) % 240, np.uint8)
            r.add_frame({"primary": img, "wrist": img}, np.full(8, tag + k), np.full(8, tag + k + 0.5))
        return r
    if mode == "setup":
        rec("pick", 6, 0).commit(); rec("place", 4, 100).commit()
    elif mode == "record":
        r = rec("doomed", 7, 500)
        print("RECORDING", flush=True)
        sys.stdin.readline()  # the parent SIGKILLs us here, mid-episode
    elif mode == "first":  # the very first commit, killed (LAWAM_TEST_KILL_AT) half-way
        rec("pick", 6, 0).commit()
    else:  # commit, with LAWAM_TEST_KILL_AT set by the parent
        rec("third", 5, 200).commit()
        print("COMMITTED", flush=True)
""")


def run_child(root, mode, env_extra=None, **kw):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-c", CHILD, str(root), mode], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def two_episodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("base") / "demos"
    p = run_child(root, "setup")
    assert p.wait(timeout=120) == 0
    return root


def copy_dataset(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_sigkill_mid_episode_keeps_earlier_episodes(two_episodes, tmp_path):
    root = copy_dataset(two_episodes, tmp_path / "demos")
    p = run_child(root, "record")
    assert p.stdout.readline().strip() == "RECORDING"
    assert list((root / ".lawam_staging").glob("ep-*")), "the episode is staged outside the dataset"
    p.send_signal(signal.SIGKILL)
    assert p.wait(timeout=30) == -signal.SIGKILL
    check_dataset(root, [("pick", 6, 0), ("place", 4, 100)])  # readable as is, the doomed episode is absent
    store = EpisodeStore(root, 10, FEATURES, "franka_panda")  # the next writer cleans the dead staging
    assert not list((root / ".lawam_staging").glob("ep-*"))
    assert record(store, "third", 5, 200).commit() == 2
    check_dataset(root, [("pick", 6, 0), ("place", 4, 100), ("third", 5, 200)])


@pytest.mark.parametrize("point,committed", [("after_journal", False), ("after_file", False),
                                             ("before_info", False), ("after_info", True)])
def test_sigkill_during_commit_is_all_or_nothing(two_episodes, tmp_path, point, committed):
    root = copy_dataset(two_episodes, tmp_path / "demos")
    p = run_child(root, "commit", {"LAWAM_TEST_KILL_AT": point})
    out, _ = p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL and "COMMITTED" not in out
    assert json.loads((root / ".lawam_staging" / "commit_journal.json").read_text())["episode_index"] == 2
    assert "rolled " + ("forward" if committed else "back") in recover(root)
    expected = [("pick", 6, 0), ("place", 4, 100)] + ([("third", 5, 200)] if committed else [])
    check_dataset(root, expected)
    store = EpisodeStore(root, 10, FEATURES, "franka_panda")
    assert record(store, "fourth", 3, 700).commit() == len(expected)
    check_dataset(root, expected + [("fourth", 3, 700)])


def test_sigkill_during_first_commit_leaves_an_empty_dataset_dir(tmp_path):
    root = tmp_path / "demos"
    p = run_child(root, "first", {"LAWAM_TEST_KILL_AT": "after_file"})
    p.communicate(timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert (root / "data").exists() and not (root / "meta" / "info.json").exists()
    store = EpisodeStore(root, 10, FEATURES, "franka_panda")  # recovers: the half-published files go
    assert sorted(p.name for p in root.iterdir()) == [".lawam_staging"]
    assert record(store, "pick", 4, 0).commit() == 0
    check_dataset(root, [("pick", 4, 0)])
