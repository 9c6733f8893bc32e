"""Video decoding needs no system FFmpeg (issue 10): every LeRobot item and video clip is decoded by
lawam_training.video_decode through PyAV's bundled libraries; random access returns the frame at each timestamp
(also in videos with B-frames and long GOPs); a timestamp the video does not hold is a clear DatasetError."""
import gc
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

av = pytest.importorskip("av")
pytest.importorskip("lerobot")

from lawam_policy.action_layout import get_layout  # noqa: E402
from lawam_training.data import DemoDataset  # noqa: E402
from lawam_training.episode_store import DatasetError, EpisodeStore, make_features  # noqa: E402
from lawam_training.video_decode import decode_frames, decode_frames_uint8  # noqa: E402

FPS = 24
FRAMES = 48
SIZE = (32, 32)


def level(k: int) -> int:
    return 20 + 4 * k


# x264 with its defaults (B-frames, one keyframe); x265 with short open GOPs and B-frames, where the keyframe a
# seek lands on can show after the asked time (the recorder's `vcodec: hevc`)
CODECS = {"h264": ("libx264", {"crf": "0"}),
          "hevc": ("libx265", {"crf": "0", "x265-params": "keyint=8:bframes=4:log-level=none"})}


def write_mp4(path: Path, codec="h264") -> Path:
    """Frame k is grey level(k), shown at k / FPS."""
    name, options = CODECS[codec]
    with av.open(str(path), "w") as c:
        s = c.add_stream(name, rate=FPS)
        s.width, s.height, s.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        s.options = options
        for k in range(FRAMES):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full(SIZE + (3,), level(k), np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_mp4(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_random_access_gives_the_frame_at_each_timestamp(codec, tmp_path):
    clip = write_mp4(tmp_path / "clip.mp4", codec)
    order = list(range(FRAMES))
    random.Random(0).shuffle(order)
    for k in order:  # training reads (t, t + T) pairs in random order: every seek must land on the right frame
        k2 = min(k + 10, FRAMES - 1)
        got = decode_frames_uint8(clip, [k / FPS, k2 / FPS], tolerance_s=1e-4)
        assert got.shape == (2,) + SIZE + (3,) and got.dtype == np.uint8
        assert np.abs(got.reshape(2, -1).mean(1) - [level(k), level(k2)]).max() <= 1.5, (k, k2)
    x = decode_frames(clip, [0.5, 0.5, 0.0], tolerance_s=1e-4)  # repeated and unordered queries keep their order
    assert x.shape == (3, 3) + SIZE and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert np.allclose(x.mean(dim=(1, 2, 3)).numpy() * 255, [level(12), level(12), level(0)], atol=1.5)


def test_timestamps_the_video_lacks_and_unreadable_files_are_clear_errors(clip, tmp_path):
    with pytest.raises(DatasetError, match=r"clip\.mp4: the frame nearest 0\.5200 s is at 0\.5000 s.*tolerance"):
        decode_frames(clip, [0.0, 0.52], tolerance_s=1e-4)  # between frames 12 and 13
    with pytest.raises(DatasetError, match="nearest 5.0000 s"):
        decode_frames(clip, [5.0], tolerance_s=1e-4)  # after the last frame
    assert decode_frames_uint8(clip, [0.52], tolerance_s=0.5 / FPS).shape == (1,) + SIZE + (3,)  # within tolerance
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(DatasetError, match="bad.mp4 cannot be read"):
        decode_frames(tmp_path / "bad.mp4", [0.0], tolerance_s=1e-4)


def test_dataloader_workers_decode_on_their_own(clip):
    decode_frames_uint8(clip, [0.0], 1e-4)  # the parent holds an open container before the workers fork

    class Frames(torch.utils.data.Dataset):
        def __len__(self):
            return FRAMES

        def __getitem__(self, k):
            frame = decode_frames_uint8(clip, [k / FPS], 1e-4)[0]
            gc.collect()  # a worker that frees the parent's decoder hangs joining threads the fork did not copy
            return torch.from_numpy(frame).float().mean()

    loader = torch.utils.data.DataLoader(Frames(), batch_size=4, num_workers=2, timeout=120)
    got = torch.cat(list(loader)).numpy()
    assert np.abs(got - [level(k) for k in range(FRAMES)]).max() <= 1.5


def _ffmpeg_libraries_mapped() -> list[str]:
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if "/libavutil" in line or "/libavcodec" in line})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_lerobot_items_decode_without_torchcodec_or_system_ffmpeg(tmp_path, monkeypatch):
    # torchcodec (LeRobot's default) needs a system FFmpeg; LeRobot's fallback needs torchvision.io.VideoReader,
    # which this torchvision lacks. With torchcodec unimportable, items must still decode.
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    layout = get_layout("franka_panda")
    store = EpisodeStore(tmp_path / "ds", 10, make_features(layout, {"primary": SIZE}), "franka_panda")
    for e in range(2):
        rec = store.begin_episode(f"task {e}")
        for k in range(12):
            s = np.full(layout.dim, 100 * e + k, np.float32)
            rec.add_frame({"primary": np.full(SIZE + (3,), level(k + 10 * e), np.uint8)}, s, s)
        rec.commit()
    ds = DemoDataset(tmp_path / "ds", horizon_s=0.4)
    for i in (0, 5, len(ds) - 1):
        item = ds[i]
        e, k = divmod(int(item["states_t"][0]), 100)
        assert abs(float(item["images_t"].float().mean()) - level(k + 10 * e)) <= 1.5
        future = min(k + 4, 11)  # t + T clamped to the episode's last frame (data.episode_sample)
        assert abs(float(item["images_tT"].float().mean()) - level(future + 10 * e)) <= 1.5
    # the only FFmpeg in the process is the one inside the av wheel
    bundled = os.path.dirname(os.path.dirname(av.__file__))
    mapped = _ffmpeg_libraries_mapped()
    assert mapped and all(p.startswith(bundled) for p in mapped), mapped


def test_a_rewritten_file_is_read_anew(tmp_path):
    # a recorder appending episodes rewrites the dataset's video: an open decoder must not serve the old file
    path = write_mp4(tmp_path / "v.mp4")
    assert abs(decode_frames_uint8(path, [0.0], 1e-4).mean() - level(0)) <= 1.5
    other = tmp_path / "other.mp4"
    with av.open(str(other), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = SIZE[1], SIZE[0], "yuv420p"
        for k in range(2 * FRAMES):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full(SIZE + (3,), 200, np.uint8), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    os.replace(other, path)
    got = decode_frames_uint8(path, [0.0, (2 * FRAMES - 1) / FPS], 1e-4)  # the new file is also longer
    assert np.abs(got.reshape(2, -1).mean(1) - 200).max() <= 1.5
