"""Atomic episode storage on top of LeRobot v3.0 datasets.

Why this exists: LeRobot v3.0 concatenates episodes into shared parquet / mp4 files and keeps its parquet
writers open until ``finalize()``; a recorder killed mid-session would leave footer-less parquet files and
corrupt every episode recorded so far. Here each episode is instead written, through the public
``LeRobotDataset.create / add_frame / save_episode / finalize`` API, as a complete single-episode dataset in a
private staging directory (``<root>/.lawam_staging/``, invisible to LeRobot, which only globs ``data/``,
``meta/`` and ``videos/``). Committing renames that episode's files into the main dataset under file indices
of their own (one data file, one episode-metadata file and one video per camera per episode) and then
replaces the shared metadata, ``meta/info.json`` last. A journal makes the commit all-or-nothing: whoever
opens the dataset next (writer or reader, :func:`recover`) rolls an interrupted commit back (or forward when
``info.json`` already counts the episode). A process killed while an episode is being recorded leaves only a
staging directory, which the next writer deletes.

Integrity: camera sizes the video encoder cannot take are refused when the store is created (before any
episode starts; :func:`check_video_size`), ``add_frame`` refuses non-finite states/actions and images of
another camera set, size or type (DatasetError naming frame and field), and no non-finite statistic is
written to ``meta/stats.json``.
"""
from __future__ import annotations

import contextlib
import fcntl
import inspect
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

STAGING = ".lawam_staging"
JOURNAL = "commit_journal.json"
INFO = "meta/info.json"
STATS = "meta/stats.json"
TASKS = "meta/tasks.parquet"
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
DEFAULT_VCODEC = "h264"  # fast on CPU and decodable everywhere; LeRobot's default (AV1) is ~2x slower here
_DATA_FILE = "data/chunk-{c:03d}/file-{f:03d}.parquet"
_EPISODES_FILE = "meta/episodes/chunk-{c:03d}/file-{f:03d}.parquet"
_VIDEO_FILE = "videos/{key}/chunk-{c:03d}/file-{f:03d}.mp4"


class DatasetError(ValueError):
    """A dataset that cannot be written or read as asked (bad path, mismatched features, ...)."""


def make_features(layout, cameras: dict[str, tuple[int, int]]) -> dict:
    """LeRobot features: one video per camera (name -> (height, width)), EEF state and EEF target action."""
    if not cameras:
        raise DatasetError("at least one camera is needed")
    feats = {f"{IMAGE_PREFIX}{name}": {"dtype": "video", "shape": (int(h), int(w), 3),
                                         "names": ["height", "width", "channels"]}
             for name, (h, w) in cameras.items()}
    for key in (STATE_KEY, ACTION_KEY):
        feats[key] = {"dtype": "float32", "shape": (layout.dim,), "names": list(layout.names)}
    return feats


# ---------------------------------------------------------------------------------------------- checks
_probed: dict = {}  # (vcodec, height, width) -> None (encodable) or the encoder's complaint

# One black frame encoded as LeRobot encodes episodes (yuv420p, its codec options), in a child process:
# an encoder may kill its process instead of raising (SVT-AV1 dies of SIGFPE on frames under 32 rows).
_PROBE = """
import io, json, sys
import av, numpy as np
codec, h, w, fps, options = json.loads(sys.argv[1])
av.logging.set_level(av.logging.ERROR)
try:
    with av.open(io.BytesIO(), "w", format="mp4") as out:
        stream = out.add_stream(codec, fps, options=options)
        stream.pix_fmt, stream.width, stream.height = "yuv420p", w, h
        frame = av.VideoFrame.from_ndarray(np.zeros((h, w, 3), np.uint8), format="rgb24")
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)
except Exception as e:
    print(" ".join(f"{type(e).__name__}: {e}".split()))
    sys.exit(1)
"""


def _probe_encoder(height: int, width: int, vcodec: str, fps: int) -> str | None:
    """None if the encoder takes frames of this size, else what went wrong (cached per process)."""
    key = (vcodec, height, width)
    if key not in _probed:
        import signal
        import subprocess
        import sys

        try:
            from lerobot.datasets.video_utils import _get_codec_options, resolve_vcodec
            codec = resolve_vcodec(vcodec)
            options = _get_codec_options(codec)
        except ImportError:  # another lerobot release: its defaults for the software encoders
            codec, options = vcodec, {"g": "2", "crf": "30"}
        except ValueError as e:  # an unknown codec name
            raise DatasetError(f"video codec {vcodec!r}: {e}") from None
        r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([codec, height, width, int(fps), options])],
                           capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            _probed[key] = None
        elif r.returncode < 0:
            _probed[key] = f"the {codec} encoder crashed ({signal.Signals(-r.returncode).name})"
        else:
            _probed[key] = r.stdout.strip() or r.stderr.strip()[-300:] or f"exit status {r.returncode}"
    return _probed[key]


def check_video_size(height: int, width: int, vcodec: str, fps: int = 30, what: str = "camera") -> None:
    """Refuse frames of height x width that the video encoder cannot take, before any frame is recorded.

    The encoder itself is asked (one black frame, encoded as LeRobot encodes episodes, in a child process;
    the answer is cached), so every codec's own limits are caught; odd sizes get the rule spelled out: LeRobot
    encodes yuv420p, colour at half resolution, and h264/hevc then need an even height and width. Raises
    DatasetError naming the size and the rule (``what`` names the camera or option)."""
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise DatasetError(f"{what}: image size {height}x{width} (HxW) has no pixels")
    problem = _probe_encoder(height, width, vcodec, fps)
    if problem is None:
        return
    if height % 2 or width % 2:
        raise DatasetError(f"{what}: frames of {height}x{width} (HxW) cannot be encoded as {vcodec} video: it "
                           "stores colour at half resolution (yuv420p), so height and width must be even; resize "
                           f"to e.g. {height - height % 2}x{width - width % 2}")
    raise DatasetError(f"{what}: frames of {height}x{width} (HxW) cannot be encoded as {vcodec} video "
                       f"(the encoder says: {problem}); choose another image size or codec")


def _finite_vector(values, key: str, names, frame: int) -> np.ndarray:
    """float32 vector of a state/action, or DatasetError naming the frame and every non-finite entry."""
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf here: caught below
        arr = np.asarray(values, np.float32)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        labels = [f"{names[i] if names and i < len(names) else i} = {arr.reshape(-1)[i]}" for i in bad]
        raise DatasetError(f"frame {frame}: {key} is not finite ({', '.join(labels)}); nothing non-finite is "
                           "stored (a NaN in the data makes the statistics and every model trained on them NaN)")
    return arr


def _check_finite_stats(stats: dict, where: str) -> None:
    for feat, d in stats.items():
        for stat, val in d.items():
            arr = np.asarray(val)
            if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
                raise DatasetError(f"{where}: statistic {feat}/{stat} is not finite ({arr.tolist()}); refusing "
                                   "to write it")


def _crash_point(name: str) -> None:
    """Test hook: SIGKILL ourselves at a named step of the commit (LAWAM_TEST_KILL_AT=name)."""
    if os.environ.get("LAWAM_TEST_KILL_AT") == name:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=4)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(root: Path):
    """One committer at a time per dataset (advisory lock; released by the kernel if we die)."""
    (root / STAGING).mkdir(parents=True, exist_ok=True)
    with open(root / STAGING / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _owner_alive(stage: Path) -> bool:
    try:
        pid = int((stage / "owner.pid").read_text())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def recover(root: str | Path) -> str | None:
    """Finish or undo a commit interrupted by a crash; returns what was done (None if nothing)."""
    root = Path(root)
    journal = root / STAGING / JOURNAL
    if not journal.exists():
        return None
    with _locked(root):
        if not journal.exists():
            return None
        j = json.loads(journal.read_text())
        info = json.loads((root / INFO).read_text()) if (root / INFO).exists() else {"total_episodes": 0}
        if info["total_episodes"] > j["episode_index"]:
            action = "rolled forward"
        else:
            # info.json still says the episode is not there: put the old shared metadata back, drop its files.
            for rel in (TASKS, STATS):
                backup = root / STAGING / "backup" / Path(rel).name
                if backup.exists():
                    os.replace(backup, root / rel)
            for rel in j["files"]:
                with contextlib.suppress(FileNotFoundError):
                    (root / rel).unlink()
                # directories the commit created (all of them for a first episode) go too
                parent = (root / rel).parent
                while parent != root and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
            action = "rolled back"
        shutil.rmtree(root / STAGING / "backup", ignore_errors=True)
        journal.unlink()
        return f"interrupted commit of episode {j['episode_index']} {action}"


def _clean_stale_staging(root: Path) -> None:
    """Remove staging directories of dead recorders (a killed episode is lost, by design)."""
    for stage in (root / STAGING).glob("ep-*"):
        if not _owner_alive(stage):
            shutil.rmtree(stage, ignore_errors=True)


def read_info(root: str | Path) -> dict:
    path = Path(root) / INFO
    if not path.is_file():
        raise DatasetError(f"{root} is not a LeRobot dataset (no {INFO})")
    return json.loads(path.read_text())


class EpisodeStore:
    """Appends episodes to the LeRobot dataset at ``root`` (created on the first commit).

    ``root`` must be absent, empty, or a LeRobot dataset with the same fps, features and robot type.
    """

    def __init__(self, root: str | Path, fps: int, features: dict, robot_type: str,
                 vcodec: str = DEFAULT_VCODEC, image_writer_threads: int = 4):
        self.root = Path(root).expanduser().absolute()
        self.fps = int(fps)
        self.features = features
        self.robot_type = robot_type
        self.vcodec = vcodec
        self.image_writer_threads = image_writer_threads
        if self.fps <= 0:
            raise DatasetError(f"fps must be positive, got {fps}")
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"dataset path {self.root} exists and is not a directory")
        for key, feat in features.items():  # before any episode starts, not at its commit
            if feat.get("dtype") == "video":
                h, w = feat["shape"][:2]
                check_video_size(h, w, vcodec, self.fps, f"camera {key[len(IMAGE_PREFIX):]!r}")
        if self.root.is_dir():
            recover(self.root)
        if self.root.is_dir() and (self.root / INFO).exists():
            self._check_compatible(read_info(self.root))
            _clean_stale_staging(self.root)
        elif self.root.is_dir() and any(p.name != STAGING for p in self.root.iterdir()):
            raise DatasetError(f"dataset path {self.root} is a non-empty directory that is not a LeRobot dataset")
        elif self.root.is_dir():
            _clean_stale_staging(self.root)

    def _check_compatible(self, info: dict) -> None:
        if info.get("fps") != self.fps:
            raise DatasetError(f"dataset {self.root} has fps {info.get('fps')}, the recorder is set to {self.fps}")
        if info.get("robot_type") != self.robot_type:
            raise DatasetError(f"dataset {self.root} is for robot {info.get('robot_type')!r}, not {self.robot_type!r}")
        theirs = {k: (v["dtype"], list(v["shape"]), v.get("names")) for k, v in info["features"].items()
                  if k.startswith(IMAGE_PREFIX) or k in (STATE_KEY, ACTION_KEY)}
        ours = {k: (v["dtype"], list(v["shape"]), v.get("names")) for k, v in self.features.items()}
        if theirs != ours:
            raise DatasetError(f"dataset {self.root} has features {theirs}, the recorder writes {ours}")

    @property
    def num_episodes(self) -> int:
        return read_info(self.root)["total_episodes"] if (self.root / INFO).exists() else 0

    def begin_episode(self, task: str) -> "EpisodeRecording":
        if not isinstance(task, str) or not task.strip():
            raise DatasetError("an episode needs a non-empty task")
        return EpisodeRecording(self, task)


class EpisodeRecording:
    """One episode being recorded: frames go to a private single-episode LeRobot dataset until commit()."""

    def __init__(self, store: EpisodeStore, task: str):
        import av
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        # LeRobot hands libav its default log callback back after each encode; libav's own level then keeps
        # x264's per-episode statistics (a dozen lines per episode) off the console.
        av.logging.set_libav_level(av.logging.ERROR)

        self.store = store
        self.task = task
        self.num_frames = 0
        self._closed = False
        self._stage = store.root / STAGING / f"ep-{uuid.uuid4().hex[:12]}"
        self._stage.mkdir(parents=True)
        (self._stage / "owner.pid").write_text(str(os.getpid()))
        kwargs = dict(repo_id="lawam/staging", fps=store.fps, features=store.features, root=self._stage / "ds",
                      robot_type=store.robot_type, use_videos=True, image_writer_threads=store.image_writer_threads)
        if "vcodec" in inspect.signature(LeRobotDataset.create).parameters:  # (not in every lerobot release)
            kwargs["vcodec"] = store.vcodec
        self._ds = LeRobotDataset.create(**kwargs)

    def add_frame(self, images: dict[str, np.ndarray], state: np.ndarray, action: np.ndarray) -> None:
        """One frame: {camera: (H, W, 3) uint8 RGB} of the store's cameras and sizes, state and action
        vectors. Raises DatasetError (naming the frame and the field) for anything else, non-finite values
        included; the episode is unchanged then."""
        feats = self.store.features
        frame = {}
        cams = {k[len(IMAGE_PREFIX):]: f for k, f in feats.items() if k.startswith(IMAGE_PREFIX)}
        if set(images) != set(cams):
            raise DatasetError(f"frame {self.num_frames}: cameras {sorted(images)}, the dataset has {sorted(cams)}")
        for name, img in images.items():
            shape = tuple(cams[name]["shape"])
            if getattr(img, "dtype", None) != np.uint8 or tuple(img.shape) != shape:
                raise DatasetError(f"frame {self.num_frames}: camera {name!r} image is "
                                   f"{getattr(img, 'dtype', type(img).__name__)} {tuple(np.shape(img))}, the "
                                   f"dataset stores uint8 {shape} (HxWx3)")
            frame[f"{IMAGE_PREFIX}{name}"] = img
        for key, value in ((STATE_KEY, state), (ACTION_KEY, action)):
            arr = _finite_vector(value, key, feats[key].get("names"), self.num_frames)
            if arr.shape != tuple(feats[key]["shape"]):
                raise DatasetError(f"frame {self.num_frames}: {key} has shape {arr.shape}, the dataset stores "
                                   f"{tuple(feats[key]['shape'])}")
            frame[key] = arr
        frame["task"] = self.task
        self._ds.add_frame(frame)
        self.num_frames += 1

    def discard(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            if self._ds.image_writer is not None:
                self._ds.stop_image_writer()
        shutil.rmtree(self._stage, ignore_errors=True)

    def commit(self) -> int:
        """Encode and append the episode to the dataset; returns its episode index."""
        if self._closed:
            raise DatasetError("episode already committed or discarded")
        if self.num_frames == 0:
            self.discard()
            raise DatasetError("empty episode: no frames were recorded, nothing committed")
        try:
            self._ds.save_episode()
            self._ds.finalize()
            if self._ds.image_writer is not None:
                self._ds.stop_image_writer()
            with _locked(self.store.root):
                index = _merge_episode(self._stage / "ds", self.store.root, self._stage)
        finally:
            self._closed = True
            shutil.rmtree(self._stage, ignore_errors=True)
        return index


def _read_table(path: Path):
    import pyarrow.parquet as pq
    return pq.read_table(path)


def _set_column(table, name, values):
    import pyarrow as pa
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))


def _shift_stats(stats: dict, frames_before: int, episode: int, task_index: int) -> dict:
    """Per-episode stats of the bookkeeping columns, moved to their place in the main dataset."""
    out = json.loads(json.dumps(stats))
    for key in ("index", "episode_index", "task_index"):
        s = out.get(key)
        if not s:
            continue
        for stat, val in s.items():
            if stat == "count":
                continue
            arr = np.asarray(val, dtype=np.float64)
            if key == "index":
                arr = arr if stat == "std" else arr + frames_before
            else:
                arr = np.zeros_like(arr) if stat == "std" else np.full_like(arr, episode if key == "episode_index"
                                                                             else task_index)
            s[stat] = arr.tolist()
    return out


def _merge_episode(src: Path, root: Path, stage: Path) -> int:
    """Move the single-episode dataset at ``src`` into ``root`` as its next episode (journaled).

    The episode keeps files of its own (data, episode metadata, one video per camera) at file index
    ``episode`` (chunked as LeRobot does); its bookkeeping columns (episode_index, index, task_index and their
    per-episode stats) are rewritten for its place in the dataset."""
    from lerobot.datasets.compute_stats import aggregate_stats

    src_info = json.loads((src / INFO).read_text())
    _check_finite_stats(json.loads((src / STATS).read_text()), f"episode staged in {src}")
    if not (root / INFO).exists():
        # First episode: the staged dataset already is the whole dataset; info.json is published last.
        files = {str(p.relative_to(src)): p for p in sorted(src.rglob("*"))
                 if p.is_file() and p.relative_to(src).as_posix() != INFO}
        _publish(root, stage, 0, files, {}, src_info)
        return 0

    info = json.loads((root / INFO).read_text())
    episode, frames_before = info["total_episodes"], info["total_frames"]
    chunk, fidx = divmod(episode, int(info.get("chunks_size", 1000)))
    tasks, task_index = _merged_tasks(root, src)
    out = stage / "commit"
    files: dict[str, Path] = {}  # final relative path -> prepared file

    data = _read_table(src / _DATA_FILE.format(c=0, f=0))
    n = data.num_rows
    data = _set_column(data, "episode_index", [episode] * n)
    data = _set_column(data, "index", (np.asarray(data.column("index")) + frames_before).tolist())
    data = _set_column(data, "task_index", [task_index] * n)
    files[_DATA_FILE.format(c=chunk, f=fidx)] = _write_parquet(data, out / _DATA_FILE.format(c=chunk, f=fidx))

    ep_table = _read_table(src / _EPISODES_FILE.format(c=0, f=0))
    if ep_table.num_rows != 1:
        raise DatasetError(f"staged episode has {ep_table.num_rows} episode rows, expected 1")
    row = ep_table.to_pylist()[0]
    row.update({"episode_index": episode, "data/chunk_index": chunk, "data/file_index": fidx,
                "meta/episodes/chunk_index": chunk, "meta/episodes/file_index": fidx,
                "dataset_from_index": row["dataset_from_index"] + frames_before,
                "dataset_to_index": row["dataset_to_index"] + frames_before})
    stats = {}
    for k in row:
        if k.startswith("stats/"):
            feat, stat = k[len("stats/"):].rsplit("/", 1)
            stats.setdefault(feat, {})[stat] = row[k]
    for feat, d in _shift_stats(stats, frames_before, episode, task_index).items():
        for stat, v in d.items():  # same dtype as before: the parquet schema is reused
            row[f"stats/{feat}/{stat}"] = np.asarray(v).astype(np.asarray(row[f"stats/{feat}/{stat}"]).dtype).tolist()
    for key, feat in src_info["features"].items():
        if feat["dtype"] == "video":
            row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = chunk, fidx
            files[_VIDEO_FILE.format(key=key, c=chunk, f=fidx)] = src / _VIDEO_FILE.format(key=key, c=0, f=0)
    import pyarrow as pa
    rel = _EPISODES_FILE.format(c=chunk, f=fidx)
    files[rel] = _write_parquet(pa.Table.from_pylist([row], schema=ep_table.schema), out / rel)

    src_stats = json.loads((src / STATS).read_text())
    stats = aggregate_stats([_as_arrays(json.loads((root / STATS).read_text())),
                             _as_arrays(_shift_stats(src_stats, frames_before, episode, task_index))])
    _check_finite_stats(stats, f"dataset {root}")
    (out / "meta").mkdir(parents=True, exist_ok=True)
    _write_json_atomic(out / "stats.json", _to_lists(stats))
    tasks.to_parquet(out / "tasks.parquet")
    new_info = dict(info, total_episodes=episode + 1, total_frames=frames_before + n, total_tasks=len(tasks),
                    splits={"train": f"0:{episode + 1}"})
    _publish(root, stage, episode, files, {TASKS: out / "tasks.parquet", STATS: out / "stats.json"}, new_info)
    return episode


def _merged_tasks(root: Path, src: Path):
    """The dataset's task table with the staged episode's (single) task added if new, and that task's index."""
    import pandas as pd
    tasks = pd.read_parquet(root / TASKS)
    src_tasks = pd.read_parquet(src / TASKS)
    if len(src_tasks) != 1:
        raise DatasetError(f"staged episode has {len(src_tasks)} tasks, expected 1")
    name = src_tasks.index[0]
    if name not in tasks.index:
        index_name = tasks.index.name
        tasks = pd.concat([tasks, pd.DataFrame({"task_index": [len(tasks)]}, index=[name])])
        tasks.index.name = index_name
    return tasks, int(tasks.loc[name, "task_index"])


def _write_parquet(table, path: Path) -> Path:
    import pyarrow.parquet as pq
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _publish(root: Path, stage: Path, episode: int, files: dict, shared: dict, new_info: dict) -> None:
    """Journal, move the episode's own files in, replace the shared metadata, then info.json (commit point)."""
    for rel in files:
        if (root / rel).exists():
            raise DatasetError(f"refusing to overwrite {root / rel}: the dataset is inconsistent with info.json")
    backup = stage.parent / "backup"
    shutil.rmtree(backup, ignore_errors=True)
    backup.mkdir()
    for rel in shared:
        os.link(root / rel, backup / Path(rel).name)  # the old version survives the replace below
    # Journal first: from here on a crash is undone (or completed) by recover().
    _write_json_atomic(stage.parent / JOURNAL, {"episode_index": episode, "files": sorted(files)})
    _crash_point("after_journal")
    for rel, path in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, root / rel)
        _crash_point("after_file")
    for rel, path in shared.items():
        os.replace(path, root / rel)
    _crash_point("before_info")
    _write_json_atomic(root / INFO, new_info)  # the commit point
    _crash_point("after_info")
    shutil.rmtree(backup, ignore_errors=True)
    (stage.parent / JOURNAL).unlink()


def _as_arrays(stats: dict) -> dict:
    return {k: {s: np.asarray(v) for s, v in d.items()} for k, d in stats.items()}


def _to_lists(stats: dict) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}
