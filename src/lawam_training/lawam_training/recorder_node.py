"""Recorder node: live demonstrations -> LeRobot v3.0 dataset, one atomically committed episode at a time.

    ros2 run lawam_training recorder --ros-args --params-file config/recorder.yaml -p output:=/data/demos

Frames are taken at ``fps`` (the control rate), triggered by the primary (first) camera: each time it
delivers an image at least one frame period after the last recorded frame, the latest image of every other
camera, the measured EEF pose(s) + gripper(s) (state) and the latest teleop command (action = EEF target)
form one frame. Before the first command of an episode the action is the measured state (hold).
Services (node-relative): ``~/start_episode`` (lawam_msgs/StartEpisode), ``~/stop_episode`` (commit),
``~/discard_episode``. Frames are handed to a writer thread; frames it cannot take in time are counted as
dropped (see ``~/status``, std_msgs/String JSON, and the StopEpisode message).

Nothing stale or non-finite is recorded: images are decoded by the policy's decoder
(``lawam_policy.runtime.images``: encodings without a channel order such as 8UC3 are refused), a message with
a non-finite field is refused (logged with topic, stamp and field) and does not refresh its stream, and a
stream whose newest message is older than its maximum age (``max_message_age``; default 3 median periods of
the topic, at least 3 frame periods, on header stamps) holds no frame: the frames in between are skipped and
the episode is split there, as the bag import does (``lawam_training.gaps`` explains why). StopEpisode then
commits the pieces as consecutive episodes and names the gaps. Camera sizes the video encoder cannot take are
refused when the first episode starts.
"""
from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from geometry_msgs.msg import PoseStamped
from lawam_msgs.msg import ActionChunk
from lawam_msgs.srv import DiscardEpisode, StartEpisode, StopEpisode
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from lawam_policy.nodes.common import declare_parameters
from lawam_policy.runtime.stamps import ns_to_seconds, stamp_to_ns

from .conversions import ConversionError, chunk_first_step, gripper_from_joint_state, image_to_rgb, pose_to_vec
from .episode_store import DatasetError, EpisodeStore, make_features
from .gaps import LiveGapMonitor, MaxAge
from .node_settings import recorder_params
from .topics import make_config

_SPLIT = "split"  # writer queue marker: the frames after it form a new episode (a stream gap lies between)


@dataclass
class _Episode:
    """An episode being recorded: its pieces (one EpisodeRecording each; more than one after stream gaps)."""
    task: str
    pieces: list = field(default_factory=list)  # appended by the writer thread only
    gaps: list = field(default_factory=list)    # descriptions, in order


class RecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("lawam_recorder", **kwargs)
        # One home: lawam_training/node_settings.py (type, default, description, bounds of each parameter).
        v = declare_parameters(self, recorder_params())
        self.output = v["output"]
        self.fps = int(v["fps"])
        grippers = list(v["gripper_topics"])
        self.cfg = make_config(v["embodiment"], v["action_layout"] or None, [c for c in v["cameras"] if c] or None,
                               [c for c in v["pose_topics"] if c] or None,
                               None if grippers == [""] else [g for g in grippers if g and g != "none"],
                               v["command_topic"], v["task_topic"], v["gripper_max_width"])
        h, w = int(v["image_height"]), int(v["image_width"])
        self.image_size = (h, w) if h > 0 and w > 0 else None
        self.task = v["task"]
        self.vcodec = v["vcodec"]
        self.queue_size = int(v["queue_size"])
        max_age = [a for a in v["max_message_age"] if a]
        if not self.output:
            raise ValueError("parameter 'output' (dataset directory) is required")
        self.layout = self.cfg.layout
        roles = {t: f"camera {n}" for n, t in self.cfg.cameras.items()}
        roles.update({t: f"pose of arm {a}" for a, t in self.cfg.poses.items()})
        roles.update({t: f"gripper of arm {a}" for a, t in self.cfg.grippers.items()})
        if self.cfg.command_topic:
            roles[self.cfg.command_topic] = "teleop command"
        self._roles = roles
        self._gaps = LiveGapMonitor(MaxAge.parse(max_age), self.fps, roles)  # raises ValueError for a bad one
        self._split_pending = False  # frames were skipped for a stale stream: the next frame starts a new piece
        self._enqueued = 0  # frames handed to the writer in this episode
        self._refused: set = set()  # (topic, reason) of refused messages already logged
        self._in_gap: set[str] = set()
        # Import LeRobot now: importing it on the first StartEpisode would stall the callbacks for seconds.
        import lerobot.datasets.lerobot_dataset  # noqa: F401

        self._lock = threading.Lock()  # guards the latest-message state below
        self._images: dict[str, np.ndarray] = {}
        self._poses: dict[str, np.ndarray] = {}
        self._grippers: dict[str, float] = {}
        self._command: np.ndarray | None = None
        self._next_due: float | None = None
        self._recording = None
        self._queue: queue.Queue | None = None
        self._writer: threading.Thread | None = None
        self._writer_error: str | None = None
        # primary_frames: primary camera images seen while recording = frames + decimated + dropped + gap_frames
        # repeated_images: another camera had no new image since the previous frame (its last one was reused)
        # gaps: stream gaps in this episode (each splits it); gap_frames: frames skipped inside them
        self._counters = dict(frames=0, dropped=0, decimated=0, primary_frames=0, repeated_images=0,
                              conversion_errors=0, gaps=0, gap_frames=0)
        self._image_seq: dict[str, int] = {}  # images received per camera
        self._last_used: dict[str, int] = {}
        self._store: EpisodeStore | None = None
        self._episode_lock = threading.Lock()  # start/stop/discard are serialised

        # Best effort matches reliable and best-effort publishers alike. Images get a deep queue: when the
        # machine is busy the executor may not take them for a while, and a short best-effort queue would
        # silently overwrite them.
        sensor = qos_profile_sensor_data
        image_qos = QoSProfile(depth=int(v["image_queue_depth"]),
                               reliability=ReliabilityPolicy.BEST_EFFORT)
        cams = list(self.cfg.cameras.items())
        self._primary = cams[0][0]
        # One callback group per subscription: a camera never waits behind another stream's callback.
        group = MutuallyExclusiveCallbackGroup
        for name, topic in cams:
            self.create_subscription(Image, topic, lambda m, n=name: self._on_image(n, m), image_qos,
                                     callback_group=group())
        for arm, topic in self.cfg.poses.items():
            self.create_subscription(PoseStamped, topic, lambda m, a=arm: self._on_pose(a, m), sensor,
                                     callback_group=group())
        for arm, topic in self.cfg.grippers.items():
            self.create_subscription(JointState, topic, lambda m, a=arm: self._on_gripper(a, m), sensor,
                                     callback_group=group())
        if self.cfg.command_topic:
            self.create_subscription(ActionChunk, self.cfg.command_topic, self._on_command, sensor,
                                     callback_group=group())
        if self.cfg.task_topic:
            self.create_subscription(String, self.cfg.task_topic, self._on_task, QoSProfile(depth=10),
                                     callback_group=group())
        services = ReentrantCallbackGroup()
        self.create_service(StartEpisode, "~/start_episode", self._start, callback_group=services)
        self.create_service(StopEpisode, "~/stop_episode", self._stop, callback_group=services)
        self.create_service(DiscardEpisode, "~/discard_episode", self._discard, callback_group=services)
        self._status_pub = self.create_publisher(String, "~/status", 10)
        self.create_timer(0.2, self._publish_status, callback_group=services)
        self.get_logger().info(f"recording {self.layout.embodiment} at {self.fps} fps to {self.output}; cameras "
                               f"{self.cfg.cameras}, poses {self.cfg.poses}, "
                               f"grippers {self.cfg.grippers or 'as commanded'}, command {self.cfg.command_topic!r}")

    # ------------------------------------------------------------------ subscriptions
    def _stamp_ns(self, msg) -> int:
        """Header stamp (ns, ROS clock); the node's ROS clock now for drivers that leave it empty."""
        ns = stamp_to_ns(msg.header.stamp)
        return ns if ns > 0 else self.get_clock().now().nanoseconds

    def _convert(self, topic: str, msg, convert):
        """convert(msg), or None after logging a refusal with topic, stamp and field (a refused message, a
        non-finite one included, is never recorded and does not refresh its stream)."""
        try:
            return convert(msg)
        except ConversionError as e:
            self._counters["conversion_errors"] += 1
            # the first of each kind per topic in full (one logging call site: rclpy's throttle would let one
            # topic's refusals hide another's), then one line per 5 s
            key = (topic, str(e))
            text = (f"{self._roles.get(topic, topic)} ({topic}), message stamped "
                    f"{ns_to_seconds(stamp_to_ns(msg.header.stamp)):.3f} s refused: {e}")
            if key not in self._refused and len(self._refused) < 100:
                self._refused.add(key)
                self.get_logger().error(text)
            else:
                self.get_logger().error(text, throttle_duration_sec=5.0)
            return None

    def _on_image(self, name: str, msg: Image) -> None:
        topic = self.cfg.cameras[name]
        img = self._convert(topic, msg, lambda m: image_to_rgb(m, self.image_size))
        if img is None:
            return
        stamp = self._stamp_ns(msg)
        with self._lock:
            self._images[name] = img
            self._image_seq[name] = self._image_seq.get(name, 0) + 1
            interval = self._gaps.observe(topic, stamp)
        if name == self._primary:
            if interval is not None and self._recording is not None and self._enqueued:
                # the primary camera itself was silent (no frame was due in between): split after its frames
                self._gap(topic, interval, self._gaps.limit_ns(topic))
            # The camera's own stamp decides the frame timing (transport jitter must not decimate frames).
            self._maybe_record_frame(stamp)

    def _on_pose(self, arm: str, msg: PoseStamped) -> None:
        topic = self.cfg.poses[arm]
        vec = self._convert(topic, msg, pose_to_vec)
        if vec is not None:
            with self._lock:
                self._poses[arm] = vec
                self._gaps.observe(topic, self._stamp_ns(msg))

    def _on_gripper(self, arm: str, msg: JointState) -> None:
        topic = self.cfg.grippers[arm]
        g = self._convert(topic, msg, lambda m: gripper_from_joint_state(m, self.cfg.gripper_max_width))
        if g is not None:
            with self._lock:
                self._grippers[arm] = g
                self._gaps.observe(topic, self._stamp_ns(msg))

    def _on_command(self, msg: ActionChunk) -> None:
        topic = self.cfg.command_topic
        vec = self._convert(topic, msg, lambda m: chunk_first_step(m, self.layout))
        if vec is not None:
            with self._lock:
                self._command = vec
                self._gaps.observe(topic, self._stamp_ns(msg))

    def _on_task(self, msg: String) -> None:
        self.task = msg.data

    # ------------------------------------------------------------------ frames
    def _state(self) -> np.ndarray | None:
        """Measured EEF pose + gripper per arm; gripper without a sensor topic = last commanded opening."""
        if any(arm not in self._poses for arm in self.layout.arms):
            return None
        parts = []
        for arm in self.layout.arms:
            sl = self.layout.arm_slice(arm)
            if arm in self._grippers:
                g = self._grippers[arm]
            elif self._command is not None:
                g = float(self._command[sl.stop - 1])
            else:
                g = 1.0
            parts += [self._poses[arm], [g]]
        return np.concatenate(parts)

    def _gap(self, topic: str, age_ns: int, limit_ns) -> None:
        """A stream went stale during the episode: log it once per gap, split the episode at it."""
        self._split_pending = True
        if topic in self._in_gap:
            return
        self._in_gap.add(topic)
        self._counters["gaps"] += 1
        text = (f"{self._roles.get(topic, topic)} ({topic}) had no message for {ns_to_seconds(age_ns):.3f} s "
                f"(max age {ns_to_seconds(limit_ns or 0):.3f} s) after frame {self._counters['frames']}")
        if self._recording is not None:
            self._recording.gaps.append(text)
        self.get_logger().warn(f"{text}: no frame is taken until it delivers again; the episode is split there")

    def _maybe_record_frame(self, now_ns: int) -> None:
        if self._recording is None:
            return
        self._counters["primary_frames"] += 1
        now = ns_to_seconds(now_ns)
        period = 1.0 / self.fps
        # Frames are due on a fixed grid; 30 % of a period of slack absorbs stamp jitter, so a camera at
        # exactly fps is never decimated and a faster one is decimated evenly.
        if self._next_due is not None and now < self._next_due - 0.3 * period:
            self._counters["decimated"] += 1
            return
        with self._lock:
            if len(self._images) < len(self.cfg.cameras):
                return
            state = self._state()
            if state is None:
                return
            held = [t for t in self._roles if t != self.cfg.command_topic or self._command is not None]
            stale = self._gaps.stale(now_ns, held)
            action = self._command.copy() if self._command is not None else state.copy()
            images = dict(self._images)
            seq = dict(self._image_seq)
        if stale:  # a frame now would repeat an old message: skip it, split the episode here
            self._counters["gap_frames"] += 1
            for topic, age, limit in stale:
                self._gap(topic, age, limit)
            return
        self._in_gap.clear()
        if self._split_pending:
            self._split_pending = False
            self._put(_SPLIT)
        for name, n in seq.items():
            if name != self._primary and self._last_used.get(name) == n:
                self._counters["repeated_images"] += 1
            self._last_used[name] = n
        due = now if self._next_due is None else self._next_due
        self._next_due = due + period if abs(now - due) < period else now + period  # resync after a gap
        if self._put((images, state, action)):
            self._enqueued += 1
        else:
            self._counters["dropped"] += 1

    def _put(self, item) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except (queue.Full, AttributeError):
            return False

    def _write_loop(self, episode: _Episode, q: queue.Queue) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            if self._writer_error is not None:
                continue  # the episode is lost already; keep draining so nothing blocks
            try:
                if item == _SPLIT:
                    if episode.pieces[-1].num_frames:
                        episode.pieces.append(self._store.begin_episode(episode.task))
                    continue
                episode.pieces[-1].add_frame(*item)
            except Exception as e:  # noqa: BLE001 - e.g. a camera changed resolution mid-episode
                self._writer_error = f"frame {self._counters['frames']} could not be written: {e}"
                self.get_logger().error(f"{self._writer_error}; stop or discard the episode")
                continue
            self._counters["frames"] += 1

    # ------------------------------------------------------------------ services
    def _ensure_store(self) -> EpisodeStore:
        if self._store is None:
            with self._lock:
                missing = [n for n in self.cfg.cameras if n not in self._images]
                shapes = {n: self._images[n].shape[:2] for n in self.cfg.cameras if n in self._images}
            if missing:
                raise DatasetError(f"camera(s) {missing} have not published yet "
                                   f"(topics {[self.cfg.cameras[n] for n in missing]})")
            features = make_features(self.layout, shapes)
            try:
                self._store = EpisodeStore(self.output, self.fps, features, self.layout.embodiment, self.vcodec)
            except DatasetError as e:
                if "cannot be encoded" not in str(e):
                    raise
                raise DatasetError(f"{e} (the image_height/image_width parameters resize every camera)") from None
        return self._store

    def _start(self, req, res):
        with self._episode_lock:
            if self._recording is not None:
                res.success, res.message = False, "an episode is already being recorded; stop or discard it first"
                return res
            task = req.task or self.task
            try:
                if not task.strip():
                    raise DatasetError("no task: pass one in the request, set the 'task' parameter or publish "
                                       f"on {self.cfg.task_topic}")
                with self._lock:
                    if any(a not in self._poses for a in self.layout.arms):
                        missing = [self.cfg.poses[a] for a in self.layout.arms if a not in self._poses]
                        raise DatasetError(f"no measured pose yet on {missing}")
                store = self._ensure_store()
                recording = store.begin_episode(task)
                index = store.num_episodes
            except (DatasetError, ValueError) as e:
                res.success, res.message = False, str(e)
                self.get_logger().error(f"cannot start an episode: {e}")
                return res
            self._counters.update(frames=0, dropped=0, decimated=0, primary_frames=0, repeated_images=0, gaps=0,
                                  gap_frames=0)
            with self._lock:
                self._command = None  # a command from before the episode is no target of this demo
                if self.cfg.command_topic:
                    self._gaps.forget(self.cfg.command_topic)
            self._split_pending = False
            self._in_gap = set()
            self._enqueued = 0
            self._writer_error = None
            episode = _Episode(task, [recording])
            self._queue = queue.Queue(maxsize=self.queue_size)
            self._writer = threading.Thread(target=self._write_loop, args=(episode, self._queue), daemon=True)
            self._writer.start()
            self._next_due = None
            self._recording = episode
            res.success, res.episode_index = True, index
            res.message = f"recording episode {index}: {task!r}"
            self.get_logger().info(res.message)
            return res

    def _finish_recording(self) -> _Episode:
        episode, self._recording = self._recording, None
        self._queue.put(None)
        self._writer.join()
        return episode

    @staticmethod
    def _discard_all(episode: _Episode) -> None:
        for piece in episode.pieces:
            piece.discard()

    def _stop(self, req, res):
        with self._episode_lock:
            if self._recording is None:
                res.success, res.message = False, "no episode is being recorded"
                return res
            episode = self._finish_recording()
            if self._writer_error is not None:
                self._discard_all(episode)
                res.success, res.message = False, f"episode discarded: {self._writer_error}"
                self.get_logger().error(res.message)
                return res
            pieces = [p for p in episode.pieces if p.num_frames] or episode.pieces[:1]
            for p in episode.pieces:
                if p not in pieces:
                    p.discard()  # the empty piece after a final gap
            t0 = time.monotonic()
            indices = []
            try:
                for piece in pieces:
                    indices.append(piece.commit())
            except Exception as e:  # noqa: BLE001 - report any failure to the caller, the dataset is intact
                self._discard_all(episode)
                done = f" (episodes {indices} of its earlier pieces were committed)" if indices else ""
                res.success, res.message = False, f"episode not committed: {e}{done}"
                self.get_logger().error(res.message)
                return res
            frames = sum(p.num_frames for p in pieces)
            res.success, res.episode_index, res.num_frames = True, indices[0], frames
            res.message = (f"episode {res.episode_index} committed: {frames} frames, "
                           f"{self._counters['dropped']} dropped, {time.monotonic() - t0:.1f} s to write")
            if len(indices) > 1:
                res.message += (f"; split at stream gaps into episodes {indices} "
                                f"({' + '.join(str(p.num_frames) for p in pieces)} frames): {'; '.join(episode.gaps)}")
            elif episode.gaps:  # at the start or the end: frames were skipped, nothing to split
                res.message += f"; frames skipped in stream gaps: {'; '.join(episode.gaps)}"
            self.get_logger().info(res.message)
            return res

    def _discard(self, req, res):
        with self._episode_lock:
            if self._recording is None:
                res.success, res.message = False, "no episode is being recorded"
                return res
            self._discard_all(self._finish_recording())
            res.success, res.message = True, "episode discarded"
            self.get_logger().info(res.message)
            return res

    def _publish_status(self):
        # writer_error: this episode can no longer be written (stop will discard it); null while all is well
        status = dict(self._counters, recording=self._recording is not None,
                      queued=self._queue.qsize() if self._queue is not None else 0, writer_error=self._writer_error)
        self._status_pub.publish(String(data=json.dumps(status)))

    def shutdown(self):
        """Ctrl-C: an episode in progress is discarded (never half-committed)."""
        if self._recording is not None:
            self._discard_all(self._finish_recording())


def main(args=None) -> int:
    """The shared node main (lawam_policy.nodes.main): a bad parameter or dataset is one line and exit 2; on
    Ctrl-C / SIGTERM an episode in progress is discarded before the node is destroyed."""
    from lawam_policy.nodes.main import run
    return run(RecorderNode, args, name="lawam recorder",
               executor_factory=lambda: MultiThreadedExecutor(num_threads=6),
               before_destroy=lambda node: node.shutdown())


if __name__ == "__main__":
    raise SystemExit(main())
