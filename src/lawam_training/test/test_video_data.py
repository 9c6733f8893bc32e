"""Action-free video for stage 1 (issue 7, item 5): VideoClipDataset over a folder of mp4 files and over a
camera-only LeRobot dataset (pairs T = 0.4 s apart at the video's fps, resized), `finetune --video` mixing
video batches into stage 1 with the auxiliary state loss masked for them, and the bad-input errors."""
import contextlib
import io
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("lerobot")
av = pytest.importorskip("av")

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_policy.model import LaWAMPolicy  # noqa: E402
from lawam_training.data import collate  # noqa: E402
from lawam_training.episode_store import DatasetError, EpisodeStore, make_features  # noqa: E402
from lawam_training.finetune import main  # noqa: E402
from lawam_training.video_data import VIDEO_EMBODIMENT, VideoClipDataset  # noqa: E402

torch.set_num_threads(1)
SIZE = (32, 32)


def level(k: int) -> int:
    """Grey level of frame k (recoverable after lossy coding)."""
    return 20 + 10 * k


def frame_of(img) -> int:
    return int(round((float(torch.as_tensor(img).float().mean()) - 20) / 10))


def write_mp4(path, frames: int, fps: int, size=SIZE):
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[1], size[0], "yuv420p"
        s.options = {"crf": "0"}
        for k in range(frames):
            img = np.full(size + (3,), level(k), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_camera_only(root, frames=12, fps=10):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    feats = {"observation.images.ego": {"dtype": "video", "shape": SIZE + (3,),
                                        "names": ["height", "width", "channels"]}}
    ds = LeRobotDataset.create(repo_id="local/ego", fps=fps, features=feats, root=root, use_videos=True)
    for k in range(frames):
        ds.add_frame({"observation.images.ego": np.full(SIZE + (3,), level(k), np.uint8), "task": "ego"})
    ds.save_episode()
    ds.finalize()
    return root


def make_demos(root, episodes=2, frames=8, fps=10):
    layout = get_layout("franka_panda")
    store = EpisodeStore(root, fps, make_features(layout, {"primary": SIZE}), "franka_panda")
    for e in range(episodes):
        rec = store.begin_episode(f"push {e}")
        for k in range(frames):
            s = np.array([0.3 + 0.02 * k, 0.1 * e, 0.4, 0, 0, 0, 1, k / frames], np.float32)
            rec.add_frame({"primary": np.full(SIZE + (3,), 10 * k, np.uint8)}, s, s)
        rec.commit()
    return root


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    write_mp4(d / "clips" / "a.mp4", 10, 10)
    write_mp4(d / "clips" / "sub" / "b.mp4", 14, 25)
    write_mp4(d / "short" / "c.mp4", 3, 10)
    (d / "empty").mkdir()
    make_camera_only(d / "ego_lerobot")
    make_demos(d / "demos")
    return d


def test_folder_pairs_are_T_apart_at_each_fps_and_resized(videos):
    ds = VideoClipDataset(videos / "clips", image_size=16)
    assert [v.fps for v in ds.videos] == [10.0, 25.0] and ds._steps == [4, 10]  # round(0.4 s * fps)
    assert len(ds) == (10 - 4) + (14 - 10)
    for i in range(len(ds)):
        s = ds[i]
        t, tT, fps = ds.frame_indices(i)
        assert tT - t == round(0.4 * fps)
        assert s["images_t"].shape == (1, 16, 16, 3) and s["images_t"].dtype == torch.uint8
        assert (frame_of(s["images_t"]), frame_of(s["images_tT"])) == (t, tT)
        assert s["embodiment"] == VIDEO_EMBODIMENT and s["instruction"] == ""
    batch = collate([ds[0], ds[1]])
    assert batch["images_t"].shape == (2, 1, 16, 16, 3)
    assert not {"states_t", "states_tT", "actions"} & set(batch) and batch["instructions"] == ["", ""]


def test_camera_only_lerobot_dataset(videos):
    ds = VideoClipDataset(videos / "ego_lerobot", horizon_s=0.4, image_size=24)
    assert ds.kind == "lerobot" and ds.horizon_steps == 4 and len(ds) == 12 - 4
    for i in (0, 3, len(ds) - 1):
        s = ds[i]
        assert s["images_tT"].shape == (1, 24, 24, 3)
        assert (frame_of(s["images_t"]), frame_of(s["images_tT"])) == (i, i + 4)


def test_bad_video_inputs(videos, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        VideoClipDataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="shorter than the video T"):
        VideoClipDataset(videos / "short")
    with pytest.raises(DatasetError, match="neither a LeRobot dataset nor a folder"):
        VideoClipDataset(videos / "empty")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match="cannot be read"):
        VideoClipDataset(tmp_path / "bad.mp4")


def _finetune(videos, out, *extra):
    args = ["--dataset", str(videos / "demos"), "--output", str(out), "--batch-size", "2", "--num-workers", "0",
            "--horizon", "0.4", "--log-every", "1", "--val-fraction", "0", "--no-progress", *extra]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(args)
    return rc, err.getvalue()


def test_stage1_mixes_video_and_masks_state_loss(videos, tmp_path, monkeypatch):
    seen = []
    original = LaWAMPolicy.latent_action_losses

    def spy(self, batch, generator=None):
        out = original(self, batch, generator)
        seen.append((batch["embodiment"], "states_t" in batch, sorted(out)))
        return out

    monkeypatch.setattr(LaWAMPolicy, "latent_action_losses", spy)
    out = tmp_path / "out"
    # robot: 2 episodes x 8 frames (every frame a sample: data.episode_sample) = 8 batches; video: the a.mp4
    # clip, 6 pairs = 3 batches: one epoch = 11
    rc, log = _finetune(videos, out, "--stage", "1", "--steps", "11", "--video", str(videos / "clips" / "a.mp4"))
    assert rc == 0, log
    assert "action-free video pairs (state loss masked)" in log
    video = [s for s in seen if s[0] == VIDEO_EMBODIMENT]
    robot = [s for s in seen if s[0] == "franka_panda"]
    assert len(video) == 3 and len(robot) == 8
    assert all(not has_states and "state" not in keys for _, has_states, keys in video)
    assert all(has_states and "state" in keys for _, has_states, keys in robot)
    policy = LaWAMPolicy.from_pretrained(out, components="all")
    assert policy.config.horizon_s == 0.4 and VIDEO_EMBODIMENT not in policy.config.embodiments


def test_finetune_bad_video_inputs_exit_2_and_leave_nothing(videos, tmp_path):
    cases = [(["--video", str(tmp_path / "missing")], "does not exist"),
             (["--video", str(videos / "short")], "shorter than the video T"),
             (["--stage", "2", "--video", str(videos / "clips")], "used only in stage 1")]
    for i, (extra, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        rc, log = _finetune(videos, out, "--steps", "1", *extra)
        assert rc == 2 and message in log, log
        assert not out.exists()
