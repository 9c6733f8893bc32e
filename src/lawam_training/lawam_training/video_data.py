"""Stage-1 samples from action-free video (e.g. egocentric human clips): (images at t, images at t + T), no
actions, no states, so `LaWAMPolicy.latent_action_losses` leaves out its auxiliary state term for them.

    ds = VideoClipDataset("/data/ego_clips", horizon_s=0.4, image_size=224)   # folder of mp4/mov/... files
    ds = VideoClipDataset("/data/ego_lerobot")                                # LeRobot v3.0, cameras only

A source is either a LeRobot dataset (meta/info.json; only its camera features are read, action/state may be
absent) or a directory (searched recursively) / a single file of videos decoded with PyAV. Pairs are
H = round(T * fps) frames apart at the video's own fps; T defaults to 0.4 s and is independent of the robot
data's T. Samples (collated by data.collate into a batch without actions/states):
    images_t, images_tT   (1, H, W, 3) uint8 (one view; resized to image_size when given)
    embodiment            VIDEO_EMBODIMENT ("human_video"; a batch-sampler group, no action layout)
    instruction           ""
A video shorter than T, an unreadable file or a bad path is a DatasetError naming it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .episode_store import IMAGE_PREFIX, DatasetError
from .video_decode import decode_frames_uint8

VIDEO_EMBODIMENT = "human_video"
VIDEO_HORIZON_S = 0.4
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def _resize_uint8(frames: torch.Tensor, size) -> torch.Tensor:
    """(N, h, w, 3) uint8 -> (N, H, W, 3) uint8."""
    if size is None or tuple(frames.shape[1:3]) == tuple(size):
        return frames
    x = frames.permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


class _VideoFile:
    """Frame count, fps and random access (by frame index) of one video file, with PyAV (video_decode)."""

    def __init__(self, path: Path):
        import av
        self.path = path
        try:
            with av.open(str(path)) as c:
                if not c.streams.video:
                    raise DatasetError(f"video {path} has no video stream")
                s = c.streams.video[0]
                rate = s.average_rate or s.guessed_rate
                if not rate:
                    raise DatasetError(f"video {path}: unknown frame rate")
                self.fps = float(rate)
                self.start = float(s.start_time * s.time_base) if s.start_time is not None else 0.0
                self.shape = (int(s.codec_context.height), int(s.codec_context.width))
                # count the frames by demuxing (container frame counts are often missing or wrong)
                self.frames = sum(1 for p in c.demux(s) if p.size > 0)
        except DatasetError:
            raise
        except Exception as e:  # av.error.InvalidDataError and friends
            raise DatasetError(f"video {path} cannot be read: {e}") from None

    def read(self, indices) -> np.ndarray:
        """Frames at the given indices, (N, h, w, 3) uint8 RGB (DatasetError if one cannot be decoded)."""
        # frame k shows at start + k / fps; the nearest frame within one frame period is it (variable-rate
        # clips jitter around the nominal grid)
        return decode_frames_uint8(self.path, [self.start + k / self.fps for k in indices], 1.0 / self.fps)


class VideoClipDataset(Dataset):
    def __init__(self, root, horizon_s: float = VIDEO_HORIZON_S, image_size=None, camera: str | None = None,
                 embodiment: str = VIDEO_EMBODIMENT):
        self.root = Path(root).expanduser().absolute()
        if not self.root.exists():
            raise DatasetError(f"video path {self.root} does not exist")
        if not horizon_s or horizon_s <= 0:
            raise DatasetError(f"video horizon T must be positive, got {horizon_s}")
        self.horizon_s = float(horizon_s)
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else image_size
        self._embodiment = embodiment
        self.samples: list[tuple[int, int]] = []  # (source, frame t)
        if (self.root / "meta" / "info.json").is_file():
            self._open_lerobot(camera)
        else:
            self._open_files()
        if not self.samples:
            raise DatasetError(f"video source {self.root} holds no pair of frames T = {self.horizon_s} s apart")

    # ------------------------------------------------------------------ sources
    def _open_lerobot(self, camera):
        from .video_decode import PyAVLeRobotDataset
        self.kind = "lerobot"
        info = json.loads((self.root / "meta" / "info.json").read_text())
        cams = [k[len(IMAGE_PREFIX):] for k in info["features"] if k.startswith(IMAGE_PREFIX)]
        if not cams:
            raise DatasetError(f"dataset {self.root} has no camera feature (observation.images.*) to train on")
        if camera is not None and camera not in cams:
            raise DatasetError(f"dataset {self.root} has no camera {camera!r}; it has {cams}")
        self.camera = camera or cams[0]
        self.fps = float(info["fps"])
        self.horizon_steps = max(1, int(round(self.horizon_s * self.fps)))
        self._key = IMAGE_PREFIX + self.camera
        self._ds = PyAVLeRobotDataset("local/lawam_video", root=self.root,
                                      delta_timestamps={self._key: [0.0, self.horizon_steps / self.fps]})
        self._shape = tuple(info["features"][self._key]["shape"][:2])
        for ep in range(self._ds.meta.total_episodes):
            row = self._ds.meta.episodes[ep]
            a, b = int(row["dataset_from_index"]), int(row["dataset_to_index"])
            if b - a <= self.horizon_steps:
                raise DatasetError(f"dataset {self.root}: episode {ep} ({b - a} frames at {self.fps:g} fps) is "
                                   f"shorter than the video T = {self.horizon_s} s ({self.horizon_steps} frames)")
            self.samples.extend((0, i) for i in range(a, b - self.horizon_steps))

    def _open_files(self):
        self.kind = "files"
        if self.root.is_file():
            paths = [self.root]
        else:
            paths = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not paths:
                raise DatasetError(f"video path {self.root} is neither a LeRobot dataset nor a folder holding video "
                                   f"files ({', '.join(VIDEO_SUFFIXES)})")
        self.videos = [_VideoFile(p) for p in paths]
        fps = {v.fps for v in self.videos}
        self.fps = self.videos[0].fps if len(fps) == 1 else None  # per video otherwise
        self._steps = []
        for vi, v in enumerate(self.videos):
            h = max(1, int(round(self.horizon_s * v.fps)))
            self._steps.append(h)
            if v.frames <= h:
                raise DatasetError(f"video {v.path} ({v.frames} frames at {v.fps:g} fps) is shorter than the "
                                   f"video T = {self.horizon_s} s ({h} frames)")
            self.samples.extend((vi, t) for t in range(v.frames - h))
        self.horizon_steps = self._steps[0] if len(set(self._steps)) == 1 else None
        shapes = {v.shape for v in self.videos}
        if self.image_size is None and len(shapes) > 1:
            raise DatasetError(f"videos in {self.root} have different sizes {sorted(shapes)}: give an image size")
        self._shape = self.videos[0].shape

    # ------------------------------------------------------------------ samples
    @property
    def embodiment(self) -> str:
        return self._embodiment

    def __len__(self):
        return len(self.samples)

    def frame_indices(self, i: int) -> tuple[int, int, float]:
        """(t, t + H, fps) of sample i in its source."""
        src, t = self.samples[i]
        if self.kind == "lerobot":
            return t, t + self.horizon_steps, self.fps
        return t, t + self._steps[src], self.videos[src].fps

    def __getitem__(self, i: int) -> dict:
        src, t = self.samples[i]
        if self.kind == "lerobot":
            item = self._ds[t]
            frames = (item[self._key].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
            fps = self.fps
        else:
            v = self.videos[src]
            frames = torch.from_numpy(v.read([t, t + self._steps[src]]))
            fps = v.fps
        frames = _resize_uint8(frames, self.image_size)
        return dict(images_t=frames[0][None], images_tT=frames[1][None], embodiment=self.embodiment,
                    instruction="", control_hz=float(fps), video=True)

    def group_key(self):
        return self.embodiment, 1, tuple(self.image_size or self._shape)
