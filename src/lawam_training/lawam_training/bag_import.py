"""rosbag2 bags (sqlite3 or MCAP) -> LeRobot v3.0 dataset.

    lawam-bag-to-lerobot BAG [BAG ...] --output DIR [--config topics.yaml] [--fps 15]
        [--embodiment franka_panda | --action-layout NAMES] [--camera NAME=TOPIC ...] [--pose ARM=TOPIC ...]
        [--gripper ARM=TOPIC ...] [--command-topic T | --actions-from-state] [--task-topic T] [--task TEXT]
        [--marker-topic T] [--msg-path DIR ...] [--image-size HxW] [--max-age [TOPIC=]SECONDS ...]

Time synchronisation: frames lie on a grid of 1/fps from the moment every required topic has delivered a
message; each frame takes, per topic, the latest message received at or before the frame time (bag receive
time, the one clock all topics share). All times are integer nanoseconds (header stamps converted with
``lawam_policy.runtime.stamps``): float seconds of an epoch time resolve only ~240 ns, and a message received
exactly at a frame time must be that frame's. Episodes: one per bag, or split by ``--marker-topic``
(std_msgs/String "start"/"stop", std_msgs/Bool true/false; any other message type marks a boundary).
Actions are the teleop command (first step of the lawam_msgs/ActionChunk) or, with ``--actions-from-state``,
the measured state of the next frame.

Nothing is filled or guessed: a non-finite value in any message used (NaN/inf pose, gripper, command) stops
the import naming topic, time and field; images go through the policy's decoder (``lawam_policy.runtime.images``:
8UC3 and other encodings without a channel order are refused); image sizes the video encoder cannot take are
refused before anything is written. A topic that stops delivering for longer than its maximum message age
(``--max-age``; default 3 median periods of the topic, at least 3 frame periods, on header stamps) splits the
episode at the gap (see ``lawam_training.gaps`` for why split); the gaps are reported per episode at the end.
Everything is checked before writing; the dataset appears at ``--output`` only when complete (it is assembled
in a hidden sibling directory and renamed).
"""
from __future__ import annotations

import argparse
import bisect
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lawam_policy.runtime.stamps import NS_PER_S, ns_to_seconds, stamp_to_ns

from .conversions import ConversionError, chunk_first_step, gripper_from_joint_state, image_to_rgb, pose_to_vec
from .episode_store import DEFAULT_VCODEC, DatasetError, EpisodeStore, check_video_size, make_features
from .gaps import Gap, MaxAge, effective_stamps, find_gaps, median_period_ns, split_at_gaps
from .topics import TopicConfig, load_yaml_mapping, make_config


LOOKBACK_NS = 5_000_000_000  # how far before an episode's first frame its camera images are looked for


class ImportErrorBag(ValueError):
    """A bag or option that cannot be imported; the message names the problem."""


@dataclass
class Episode:
    bag: Path
    start_ns: int
    end_ns: int
    task: str
    label: str


def _open_reader(path: Path, typestore):
    from rosbags.highlevel import AnyReader
    if not path.exists():
        raise ImportErrorBag(f"bag {path} does not exist")
    try:
        reader = AnyReader([path], default_typestore=typestore)
        reader.open()
    except Exception as e:  # noqa: BLE001 - rosbags raises several types; all mean "not a readable bag"
        raise ImportErrorBag(f"cannot open bag {path}: {e}") from None
    # A bag may embed some definitions but not others (e.g. lawam_msgs recorded without them): rosbags then
    # ignores the default store, so add what is missing from ours.
    known = reader.typestore.fielddefs
    missing = {c.msgtype for c in reader.connections if c.msgtype not in known}
    reader.unknown_types = {m for m in missing if m not in typestore.fielddefs}  # checked for needed topics only
    reader.typestore.register({name: typestore.fielddefs[name]
                               for name in _with_dependencies(missing - reader.unknown_types, typestore)
                               if name not in known})
    return reader


def _with_dependencies(names, typestore) -> set:
    """Message types plus every type their fields use (rosbags needs them registered together)."""
    out, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in out or name not in typestore.fielddefs:
            continue
        out.add(name)
        for _, (kind, spec) in typestore.fielddefs[name][1]:
            inner = spec[0] if isinstance(spec, tuple) and isinstance(spec[0], tuple) else spec
            if isinstance(inner, tuple) and len(inner) == 2 and isinstance(inner[1], str):
                todo.append(inner[1])
            elif isinstance(inner, str):
                todo.append(inner)
    return out


def _header_ns(msg) -> int:
    header = getattr(msg, "header", None)
    return stamp_to_ns(header.stamp) if header is not None else 0


def _where(topic, t, origin, stamp) -> str:
    """Topic and time of a message, for errors: receive time into the bag, absolute ns, header stamp."""
    return (f"topic {topic}, message received {ns_to_seconds(t - origin):.3f} s into the bag (t = {t} ns, "
            f"header stamp {stamp} ns)")


def _series(reader, topic, convert, origin=0):
    """_Series of a (small) topic: (receive t_ns, converted value) with the header stamps alongside.

    A message that does not convert, or converts to anything non-finite, stops the import naming the topic,
    the time and the field: nothing non-finite enters a dataset (ImportErrorBag)."""
    conns = [c for c in reader.connections if c.topic == topic]
    out, stamps = [], []
    for conn, t, raw in reader.messages(connections=conns):
        msg = reader.deserialize(raw, conn.msgtype)
        stamp = _header_ns(msg)
        try:
            value = convert(msg)
        except ConversionError as e:
            raise ImportErrorBag(f"{_where(topic, t, origin, stamp)}: {e}") from None
        # (a converter that forgot a field must not let NaN through either)
        if isinstance(value, (float, np.ndarray)) and not np.all(np.isfinite(value)):
            raise ImportErrorBag(f"{_where(topic, t, origin, stamp)}: non-finite value {np.asarray(value).tolist()}")
        out.append((t, value))
        stamps.append(stamp)
    return _Series(out, stamps)


def _latest(series, t):
    """Value of the last sample at or before t (sample and hold), or None."""
    i = bisect.bisect_right(series.times, t) - 1
    return series[i][1] if i >= 0 else None


class _Series(list):
    """[(t_ns, value)] in time order, with the (receive) times alongside for bisection and the header
    stamps (ns; 0 where a message has none)."""

    def __init__(self, items, stamps=None):
        super().__init__(items)
        self.times = [t for t, _ in items]
        self.stamps = list(stamps) if stamps is not None else [0] * len(items)


def _marker_segments(markers, end_ns):
    """[(t, value)] marker messages -> [(from, to)] episode spans."""
    spans, open_at = [], None
    for t, v in markers:
        if isinstance(v, bool) or v in ("start", "begin", "stop", "end"):
            is_start = v is True or v in ("start", "begin")
            if is_start:
                if open_at is not None:
                    spans.append((open_at, t))
                open_at = t
            elif open_at is not None:
                spans.append((open_at, t))
                open_at = None
        else:  # boundary marker
            if open_at is not None:
                spans.append((open_at, t))
            open_at = t
    if open_at is not None:
        spans.append((open_at, end_ns))
    return spans


def _marker_value(msg):
    if hasattr(msg, "data") and isinstance(msg.data, (bool, np.bool_)):
        return bool(msg.data)
    if hasattr(msg, "data") and isinstance(msg.data, str):
        return msg.data.strip().lower()
    return "boundary"


class BagImporter:
    def __init__(self, cfg: TopicConfig, fps: int, typestore, task: str | None = None,
                 marker_topic: str | None = None, image_size=None, vcodec: str = DEFAULT_VCODEC,
                 max_age: MaxAge | None = None):
        self.cfg, self.fps, self.typestore = cfg, int(fps), typestore
        self.task, self.marker_topic, self.image_size, self.vcodec = task, marker_topic, image_size, vcodec
        self.max_age = max_age or MaxAge()
        self.report: list[tuple[str, list[str]]] = []  # (source episode, lines) of episodes with gaps
        if self.fps <= 0:
            raise ImportErrorBag(f"--fps must be positive, got {fps}")
        if image_size is not None:  # refused now, not after the bags have been read
            try:
                check_video_size(image_size[0], image_size[1], vcodec, self.fps, "--image-size")
            except DatasetError as e:
                raise ImportErrorBag(str(e)) from None

    def gap_topics(self) -> dict[str, str]:
        """topic -> role of the streams a frame holds (cameras, poses, grippers, command)."""
        roles = {t: f"camera {n}" for n, t in self.cfg.cameras.items()}
        roles.update({t: f"pose of arm {a}" for a, t in self.cfg.poses.items()})
        roles.update({t: f"gripper of arm {a}" for a, t in self.cfg.grippers.items()})
        if self.cfg.command_topic:
            roles[self.cfg.command_topic] = "teleop command"
        return roles

    def required_topics(self) -> dict[str, str]:
        roles = self.cfg.all_topics()
        if self.task:
            roles.pop(self.cfg.task_topic, None)  # a fixed --task needs no task topic
        if self.marker_topic:
            roles[self.marker_topic] = "episode marker"
        return roles

    def check_bag(self, reader, path: Path) -> None:
        present = {c.topic for c in reader.connections}
        missing = [f"{t} ({role})" for t, role in self.required_topics().items() if t not in present]
        if missing:
            raise ImportErrorBag(f"bag {path} lacks the configured topic(s) {', '.join(missing)}; it has "
                                 f"{sorted(present)}")
        undefined = sorted({c.msgtype for c in reader.connections
                            if c.topic in self.required_topics() and c.msgtype in reader.unknown_types})
        if undefined:
            raise ImportErrorBag(f"bag {path}: no message definition for {undefined} (not embedded in the bag); "
                                 "give --msg-path DIR holding <package>/msg/<Type>.msg")

    def plan(self, path: Path) -> tuple[list[Episode], dict]:
        """Read the small topics of one bag and decide its episodes (no image is decoded here)."""
        reader = _open_reader(path, self.typestore)
        try:
            self.check_bag(reader, path)
            origin = reader.start_time
            lay = self.cfg.layout
            small = {f"pose:{a}": (t, pose_to_vec) for a, t in self.cfg.poses.items()}
            small.update({f"gripper:{a}": (t, lambda m: gripper_from_joint_state(m, self.cfg.gripper_max_width))
                          for a, t in self.cfg.grippers.items()})
            if self.cfg.command_topic:
                small["command"] = (self.cfg.command_topic, lambda m: chunk_first_step(m, lay))
            if not self.task:
                small["task"] = (self.cfg.task_topic, lambda m: m.data)
            if self.marker_topic:
                small["marker"] = (self.marker_topic, _marker_value)
            series = {k: _series(reader, topic, conv, origin) for k, (topic, conv) in small.items()}
            cam_times, cam_stamps = {}, {}
            for name, topic in self.cfg.cameras.items():
                conns = [c for c in reader.connections if c.topic == topic]
                cam_times[name], cam_stamps[name] = [], []
                for conn, t, raw in reader.messages(connections=conns):
                    cam_times[name].append(t)
                    cam_stamps[name].append(_header_ns(reader.deserialize(raw, conn.msgtype)))
            bag_start, bag_end = reader.start_time, reader.end_time
        finally:
            reader.close()
        if self.marker_topic:
            spans = _marker_segments(series.pop("marker"), bag_end)
            if not spans:
                raise ImportErrorBag(f"bag {path}: no episode marker on {self.marker_topic}")
        else:
            spans = [(bag_start, bag_end)]
        episodes = []
        for k, (a, b) in enumerate(spans):
            label = f"episode {k} of bag {path}" if self.marker_topic else f"bag {path}"
            task = self.task or _latest(series["task"], a) or next(
                (v for t, v in series["task"] if a <= t <= b), None)
            if not task or not str(task).strip():
                raise ImportErrorBag(f"{label}: no task (nothing on {self.cfg.task_topic}); pass --task")
            episodes.append(Episode(path, a, b, str(task), label))
        # Per gap-checked topic: receive times, the times its age is measured on, and its maximum age.
        streams = {}
        by_topic = {t: f"camera:{n}" for n, t in self.cfg.cameras.items()}
        by_topic.update({t: k for k, (t, _) in small.items() if k not in ("task", "marker")})
        for topic, role in self.gap_topics().items():
            key = by_topic[topic]
            if key.startswith("camera:"):
                recv, header = cam_times[key[7:]], cam_stamps[key[7:]]
            else:
                recv, header = series[key].times, series[key].stamps
            stamps, _ = effective_stamps(header, recv)
            limit = self.max_age.for_topic(topic, median_period_ns(stamps), self.fps)
            streams[topic] = dict(role=role, recv=recv, stamps=stamps, max_age=limit)
        return episodes, dict(series=series, cam_times=cam_times, streams=streams, origin=bag_start)

    def frame_times(self, ep: Episode, data) -> list[int]:
        """The grid: starts once every required stream has a sample, ends at the episode end."""
        firsts = [s.times[0] for k, s in data["series"].items() if k != "task" and s.times]
        firsts += [ts[0] for ts in data["cam_times"].values() if ts]
        empty = [k for k, s in data["series"].items() if k != "task" and not s.times]
        empty += [f"camera {n}" for n, ts in data["cam_times"].items() if not ts]
        if empty:
            raise ImportErrorBag(f"{ep.label}: no messages for {empty}")
        start = max([ep.start_ns] + firsts)
        # the end: the last moment every stream has delivered (no hold beyond a stream's last message)
        lasts = [s.times[-1] for k, s in data["series"].items() if k not in ("task", "command")]
        lasts += [ts[-1] for ts in data["cam_times"].values()]
        end = min([ep.end_ns] + lasts)
        # integer ns: frame k at start + k * 1e9 / fps rounded to the nearest ns, exactly
        n = (end - start) * self.fps // NS_PER_S + 1 if end >= start else 0
        times = [start + (2 * k * NS_PER_S + self.fps) // (2 * self.fps) for k in range(n)]
        if self.marker_topic:
            times = [t for t in times if t < ep.end_ns]  # the stop marker ends the episode
        need = 2 if not self.cfg.command_topic else 1
        if len(times) < need:
            raise ImportErrorBag(f"{ep.label}: empty episode (no frame where all topics "
                                 f"{sorted(self.required_topics())} have data)")
        return times

    def state_at(self, data, t) -> np.ndarray:
        lay = self.cfg.layout
        parts = []
        for arm in lay.arms:
            pose = _latest(data["series"][f"pose:{arm}"], t)
            if f"gripper:{arm}" in data["series"]:
                g = _latest(data["series"][f"gripper:{arm}"], t)
            elif "command" in data["series"] and _latest(data["series"]["command"], t) is not None:
                g = _latest(data["series"]["command"], t)[lay.arm_slice(arm)][-1]
            else:
                g = 1.0
            parts += [pose, [1.0 if g is None else g]]
        return np.concatenate(parts)

    def episode_gaps(self, ep: Episode, data, times: list[int]) -> list[Gap]:
        """Gaps of every held stream that would put stale data into a frame of ``times``: two consecutive
        messages too far apart, or the stream's last message too long before the episode's last frame."""
        out = []
        for topic, st in data["streams"].items():
            limit = st["max_age"]
            if limit is None:
                continue
            for g in find_gaps(topic, st["role"], st["stamps"], st["recv"], limit):
                if g.recv_from_ns < times[-1] and g.recv_to_ns > times[0]:
                    out.append(g)
            i = bisect.bisect_right(st["recv"], times[-1]) - 1
            if i >= 0 and times[-1] - st["recv"][i] > limit and (i + 1 >= len(st["recv"]) or
                                                                  st["recv"][i + 1] > ep.end_ns):
                out.append(Gap(topic, st["role"], times[-1] - st["recv"][i], limit, st["recv"][i], None))
        return sorted(out, key=lambda g: g.recv_from_ns)

    def write_episode(self, store_factory, ep: Episode, data) -> list[int]:
        """Write one source episode: one dataset episode, or one per piece between gaps. Returns the
        dataset episode indices."""
        times = self.frame_times(ep, data)
        gaps = self.episode_gaps(ep, data, times)
        need = 2 if not self.cfg.command_topic else 1
        written, lines = [], []
        for run in split_at_gaps(times, gaps):
            if len(run) < need:
                lines.append(f"  {len(run)} frame(s) at {ns_to_seconds(run[0] - data['origin']):.3f} s between gaps: "
                             "too short, left out")
                continue
            index = self._write_piece(store_factory, ep, data, run)
            written.append(index)
            if gaps:
                lines.append(f"  -> dataset episode {index}: {len(run) - (need - 1)} frames from "
                             f"{ns_to_seconds(run[0] - data['origin']):.3f} s to "
                             f"{ns_to_seconds(run[-1] - data['origin']):.3f} s")
        if gaps:
            self.report.append((ep.label, [f"  gap: {g.describe(data['origin'])}" for g in gaps] + lines))
        if not written:
            raise ImportErrorBag(f"{ep.label}: no frames outside the gaps: "
                                 + "; ".join(g.describe(data["origin"]) for g in gaps))
        return written

    def _write_piece(self, store_factory, ep: Episode, data, times: list[int]) -> int:
        states = [self.state_at(data, t) for t in times]
        if self.cfg.command_topic:
            cmds = [_latest(data["series"]["command"], t) for t in times]
            actions = [c if c is not None else s for c, s in zip(cmds, states)]  # hold until the first command
        else:  # the target of frame k is where the arm was at frame k + 1
            actions, times, states = states[1:], times[:-1], states[:-1]
        frames = self._images_at(ep, times)
        store = store_factory({n: img.shape[:2] for n, img in frames.peek()[1].items()})
        rec = store.begin_episode(ep.task)
        try:
            for k, (t, images) in enumerate(frames):
                rec.add_frame(images, states[k], actions[k])
            return rec.commit()
        except BaseException:
            rec.discard()
            raise

    def _images_at(self, ep: Episode, times: list[int]):
        """Generator of (t, {camera: rgb}) streaming the bag once; the first item is peeked for shapes."""
        import itertools
        gen = self._image_stream(ep, times)
        first = next(gen)
        return _Peekable(itertools.chain([first], gen), first)

    def _image_stream(self, ep, times):
        reader = _open_reader(ep.bag, self.typestore)
        try:
            by_topic = {t: n for n, t in self.cfg.cameras.items()}
            conns = [c for c in reader.connections if c.topic in by_topic]
            latest: dict[str, tuple] = {}
            decoded: dict[str, tuple] = {}
            k = 0

            def frame(t):
                out = {}
                for name in self.cfg.cameras:
                    if name not in latest:
                        raise ImportErrorBag(f"{ep.label}: camera {name} has no image in the "
                                             f"{ns_to_seconds(LOOKBACK_NS):.0f} s before frame time "
                                             f"{ns_to_seconds(t):.3f}")
                    conn, raw, tm = latest[name]
                    if decoded.get(name, (None,))[0] != tm:  # decode each message at most once
                        msg = reader.deserialize(raw, conn.msgtype)
                        try:
                            img = image_to_rgb(msg, self.image_size)
                        except ConversionError as e:
                            raise ImportErrorBag(f"{ep.label}: camera {name}, "
                                                 f"{_where(conn.topic, tm, reader.start_time, _header_ns(msg))}: "
                                                 f"{e}") from None
                        decoded[name] = (tm, img)
                    out[name] = decoded[name][1]
                return out

            # Only a short look-back before the first frame is read (episodes of a long bag stay cheap).
            for conn, t, raw in reader.messages(connections=conns, start=max(0, times[0] - LOOKBACK_NS)):
                while k < len(times) and t > times[k]:
                    yield times[k], frame(times[k])
                    k += 1
                if k >= len(times):
                    break
                latest[by_topic[conn.topic]] = (conn, raw, t)
            while k < len(times):
                yield times[k], frame(times[k])
                k += 1
        finally:
            reader.close()


class _Peekable:
    """An iterator whose first item can be looked at (for the image shapes) before iterating."""

    def __init__(self, it, first):
        self._it, self._first = it, first

    def __iter__(self):
        return self._it

    def peek(self):
        return self._first


def import_bags(bags, output, importer: BagImporter) -> int:
    """Check every bag, then write all episodes into a hidden sibling and rename it to ``output``."""
    output = Path(output).expanduser().absolute()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ImportErrorBag(f"output {output} already exists and is not empty")
    if not output.parent.is_dir():
        raise ImportErrorBag(f"output parent directory {output.parent} does not exist")
    if not bags:
        raise ImportErrorBag("no bag given")
    plans = [importer.plan(Path(b).expanduser().absolute()) for b in bags]  # all checks before any write
    tmp = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    stores = {}
    lay = importer.cfg.layout

    def store_factory(shapes):
        if "store" not in stores:
            try:
                stores["store"] = EpisodeStore(tmp, importer.fps, make_features(lay, shapes), lay.embodiment,
                                               importer.vcodec)
            except DatasetError as e:  # e.g. a camera size the video encoder cannot take
                raise ImportErrorBag(f"{e}; --image-size HxW resizes every camera") from None
        elif any(tuple(stores["shapes"][n]) != tuple(s) for n, s in shapes.items()):
            raise ImportErrorBag(f"image sizes {shapes} differ from the first episode's {stores['shapes']}; "
                                 "pass --image-size HxW")
        stores.setdefault("shapes", shapes)
        return stores["store"]

    n = sources = 0
    try:
        for episodes, data in plans:
            for ep in episodes:
                indices = importer.write_episode(store_factory, ep, data)
                n += len(indices)
                sources += 1
                which = f"episode {indices[0]}" if len(indices) == 1 else f"episodes {indices} (split at gaps)"
                print(f"{ep.label}: written as {which} ({ep.task!r})", flush=True)
        print_gap_report(importer.report, sources)
        shutil.rmtree(tmp / ".lawam_staging", ignore_errors=True)
        if output.exists():
            output.rmdir()
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return n


def print_gap_report(report, sources: int) -> None:
    """Per source episode with gaps: each gap (topic, span, max age) and the dataset episodes written."""
    if not report:
        print(f"gap report: no stream gaps in {sources} episode(s)", flush=True)
        return
    print(f"gap report: {len(report)} of {sources} episode(s) had stream gaps (no frame is taken inside a gap; "
          "the episode is split there; --max-age sets the limits):", flush=True)
    for label, lines in report:
        print(f"{label}:", flush=True)
        for line in lines:
            print(line, flush=True)


def _parse_size(text):
    if text is None:
        return None
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
        assert h > 0 and w > 0
    except (ValueError, AssertionError):
        raise ImportErrorBag(f"bad image size {text!r}: expected HxW, e.g. 224x224") from None
    return h, w


def build_parser():
    ap = argparse.ArgumentParser(prog="lawam-bag-to-lerobot", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bags", nargs="+", help="rosbag2 bag directories (or .mcap / .db3 files)")
    ap.add_argument("--output", "-o", required=True, help="dataset directory to create")
    ap.add_argument("--config", help="YAML topic mapping (keys: lawam_training.topics.load_yaml_mapping)")
    ap.add_argument("--fps", type=int, help="dataset frame rate = control rate (default 15)")
    ap.add_argument("--embodiment", help="franka_panda (default) or quanta_x1")
    ap.add_argument("--action-layout", help="embodiment name or comma-separated feature names")
    ap.add_argument("--camera", action="append", metavar="NAME=TOPIC", help="camera (first = primary)")
    ap.add_argument("--pose", action="append", metavar="ARM=TOPIC", help="measured EEF PoseStamped per arm")
    ap.add_argument("--gripper", action="append", metavar="ARM=TOPIC", help="gripper JointState per arm")
    ap.add_argument("--no-gripper-topics", action="store_true", help="no gripper sensor topics")
    ap.add_argument("--command-topic", help="teleop lawam_msgs/ActionChunk topic")
    ap.add_argument("--actions-from-state", action="store_true", help="action = next frame's measured state")
    ap.add_argument("--task-topic")
    ap.add_argument("--task", help="instruction for every episode (instead of the task topic)")
    ap.add_argument("--marker-topic", help="split episodes on this topic")
    ap.add_argument("--msg-path", action="append", default=[], metavar="DIR", help="extra .msg definitions")
    ap.add_argument("--image-size", metavar="HxW", help="resize all cameras")
    ap.add_argument("--max-age", action="append", metavar="[TOPIC=]SECONDS",
                    help="maximum message age (header stamps) before a stream counts as stopped and the episode "
                         "is split; bare: every topic; 'off': no limit (default: 3 median periods of the topic, at "
                         "least 3 frame periods)")
    ap.add_argument("--vcodec", default=DEFAULT_VCODEC)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from .msgdefs import build_typestore
        y = load_yaml_mapping(args.config) if args.config else {}
        pick = lambda a, k, default=None: a if a is not None else y.get(k, default)  # noqa: E731
        command = "" if args.actions_from_state else pick(args.command_topic, "command_topic")
        grippers = [] if args.no_gripper_topics else pick(args.gripper, "grippers")
        cfg = make_config(pick(args.embodiment, "embodiment"), pick(args.action_layout, "action_layout"),
                          pick(args.camera, "cameras"), pick(args.pose, "poses"), grippers, command,
                          pick(args.task_topic, "task_topic"), y.get("gripper_max_width"))
        importer = BagImporter(cfg, pick(args.fps, "fps", 15), build_typestore(args.msg_path),
                               task=pick(args.task, "task"), marker_topic=pick(args.marker_topic, "marker_topic"),
                               image_size=_parse_size(pick(args.image_size, "image_size")), vcodec=args.vcodec,
                               max_age=MaxAge.parse(pick(args.max_age, "max_age")))
        n = import_bags(args.bags, args.output, importer)
    except (ImportErrorBag, DatasetError, ValueError) as e:
        print(f"lawam-bag-to-lerobot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {n} episode(s) to {Path(args.output).absolute()}")
    return 0


def cli():
    sys.exit(main())


if __name__ == "__main__":
    cli()
