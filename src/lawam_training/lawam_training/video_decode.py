"""The one place where the workspace decodes video frames: PyAV, whose wheels carry their own FFmpeg libraries,
so reading datasets needs no system FFmpeg (torchcodec, LeRobot's default decoder, needs one; LeRobot's own
'pyav' path needs torchvision.io.VideoReader, which torchvision 0.29 no longer has).

    frames = decode_frames(path, [0.0, 1.2], tolerance_s=1e-4)      # (2, 3, H, W) float32 in [0, 1]
    ds = PyAVLeRobotDataset("local/x", root="/data/demos")         # a LeRobotDataset decoding through this module

Timestamps are seconds on the video's own timeline (frame pts * time_base, as LeRobot's `from_timestamp` and
torchcodec's `pts_seconds` count them). Each query gets the frame whose timestamp is nearest; a query whose
nearest frame is `tolerance_s` or more away, an unreadable file or a file without a video stream raises
DatasetError naming the video (LeRobot raises FrameTimestampError/AssertionError there).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .episode_store import DatasetError

_MAX_OPEN = 16  # open containers kept per process (LeRobot v3 packs many episodes into few files)


class _Containers:
    """Open PyAV containers by path, per process: DataLoader workers must not share one inherited by fork."""

    def __init__(self):
        self._lock = threading.Lock()
        self._open: OrderedDict = OrderedDict()
        self._inherited: list = []
        self._pid = os.getpid()

    def get(self, path: str):
        import av
        with self._lock:
            if self._pid != os.getpid():  # forked (a DataLoader worker): the parent's containers are not ours
                # ... and must never be freed here: freeing a decoder joins its slice threads, which did not
                # survive the fork (the join can hang the worker for good), so they are kept, unused.
                self._inherited.append(self._open)
                self._open = OrderedDict()
                self._pid = os.getpid()
            try:
                st = os.stat(path)
            except OSError as e:
                raise DatasetError(f"video {path} cannot be read: {e}") from None
            # a file rewritten since it was opened (a recorder appended episodes) is opened again
            version = (st.st_ino, st.st_size, st.st_mtime_ns)
            entry = self._open.get(path)
            if entry is not None and entry[2] == version:
                self._open.move_to_end(path)
                return entry
            if entry is not None:
                self._close(self._open.pop(path))
            try:
                container = av.open(path)
            except (OSError, av.error.FFmpegError) as e:
                raise DatasetError(f"video {path} cannot be read: {e}") from None
            if not container.streams.video:
                container.close()
                raise DatasetError(f"video {path} has no video stream")
            entry = (container, threading.Lock(), version)
            self._open[path] = entry
            while len(self._open) > _MAX_OPEN:
                self._close(self._open.popitem(last=False)[1])
            return entry

    @staticmethod
    def _close(entry):
        with entry[1]:  # not while another thread decodes from it
            entry[0].close()

    def drop(self, path: str):
        with self._lock:
            entry = self._open.pop(path, None)
        if entry is not None:
            self._close(entry)


_containers = _Containers()


def _nearest_frame(container, stream, ts: float, tolerance_s: float, path: str):
    """Seek to the keyframe at or before ts, decode forward; return (time, rgb24 ndarray) of the nearest frame."""
    tb = stream.time_base
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    # Seeking goes by decode time; with B-frames the keyframe found may show after ts: then seek further back.
    for back in (0.0, 1.0, None):
        target = start if back is None else max(ts - back, start)
        container.seek(int(round(target / tb)), stream=stream, backward=True)
        prev = None
        best = None
        for frame in container.decode(stream):
            if frame.pts is None:
                raise DatasetError(f"video {path} has frames without timestamps")
            t = float(frame.pts * tb)
            if t >= ts:
                best = (t, frame) if prev is None or t - ts < ts - prev[0] else prev
                break
            prev = (t, frame)
        else:
            best = prev  # ts lies after the last frame
        if best is not None and (prev is not None or best[0] - ts < tolerance_s):
            break  # decoding started at or before ts, or its first frame is near enough
    if best is None:
        raise DatasetError(f"video {path}: no frame could be decoded near {ts:.4f} s")
    if not abs(best[0] - ts) < tolerance_s:
        raise DatasetError(f"video {path}: the frame nearest {ts:.4f} s is at {best[0]:.4f} s, farther than the "
                           f"tolerance {tolerance_s:g} s (timestamps and video disagree)")
    return best[0], best[1].to_ndarray(format="rgb24")


def decode_frames_uint8(path, timestamps_s, tolerance_s: float) -> np.ndarray:
    """Frames nearest the given timestamps (seconds on the video's timeline), (N, H, W, 3) uint8 RGB, in query order.

    Raises DatasetError for an unreadable file, no video stream, or a query with no frame within tolerance_s.
    """
    import av
    path = str(Path(path))
    container, lock, _ = _containers.get(path)
    stream = container.streams.video[0]
    got = {}
    try:
        with lock:
            for ts in sorted(set(float(t) for t in timestamps_s)):
                got[ts] = _nearest_frame(container, stream, ts, tolerance_s, path)[1]
    except DatasetError:
        raise
    except av.error.FFmpegError as e:  # a corrupt stream: forget the container, its state is unknown
        _containers.drop(path)
        raise DatasetError(f"video {path} cannot be decoded: {e}") from None
    return np.stack([got[float(t)] for t in timestamps_s])


def decode_all_frames(path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of a video in order (one sequential pass: what caching a whole dataset wants):
    (timestamps (N,) seconds on the video's timeline, frames (N, H, W, 3) uint8 RGB). Raises DatasetError."""
    import av

    times, frames = [], []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"video {path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if frame.pts is None:
                    raise DatasetError(f"video {path}: a frame without a timestamp")
                times.append(float(frame.pts * stream.time_base))
                frames.append(frame.to_ndarray(format="rgb24"))
    except (OSError, av.error.FFmpegError) as e:
        raise DatasetError(f"video {path} cannot be read: {e}") from None
    if not frames:
        raise DatasetError(f"video {path} holds no frames")
    order = np.argsort(times, kind="stable")  # presentation order (B-frames decode out of it)
    return np.asarray(times)[order], np.stack(frames)[order]


def decode_frames(path, timestamps_s, tolerance_s: float) -> torch.Tensor:
    """Like decode_frames_uint8, as (N, 3, H, W) float32 in [0, 1]: what LeRobotDataset items hold."""
    frames = torch.from_numpy(decode_frames_uint8(path, timestamps_s, tolerance_s))
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def _lerobot_dataset_class():
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    class PyAVLeRobotDataset(LeRobotDataset):
        """LeRobotDataset whose video frames come from decode_frames (no system FFmpeg, no torchcodec).
        Same constructor; `video_backend` is ignored."""

        def __init__(self, *args, **kwargs):
            kwargs["video_backend"] = "pyav"  # (None would make LeRobot probe for torchcodec and warn)
            super().__init__(*args, **kwargs)

        def _query_videos(self, query_timestamps: dict[str, list[float]], ep_idx: int) -> dict[str, torch.Tensor]:
            ep = self.meta.episodes[ep_idx]
            item = {}
            for key, query_ts in query_timestamps.items():
                # episodes are concatenated in one file: shift to this episode's start in it
                start = ep[f"videos/{key}/from_timestamp"]
                path = self.root / self.meta.get_video_file_path(ep_idx, key)
                item[key] = decode_frames(path, [start + t for t in query_ts], self.tolerance_s).squeeze(0)
            return item

    PyAVLeRobotDataset.__qualname__ = PyAVLeRobotDataset.__name__ = "PyAVLeRobotDataset"
    PyAVLeRobotDataset.__module__ = __name__
    return PyAVLeRobotDataset


def __getattr__(name):
    # lerobot is imported only when the dataset class is asked for (it is slow to import)
    if name == "PyAVLeRobotDataset":
        cls = _lerobot_dataset_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
