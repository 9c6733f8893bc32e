"""LaWAM policy node: camera frames + task in, ActionChunk out (asynchronously), plus status and a heatmap.

Thin adapter around runtime.InferenceEngine. The model is imported lazily (torch is only needed here). A
model it cannot use stops the node with a one-line reason and a non-zero exit (the launch files and
`lawam launch` then stop the system): a checkpoint that does not exist or does not load, or one trained for
another embodiment or another ordered list of camera roles than `embodiment` / `camera_topics` +
`camera_roles` say. The model can only be substituted through the constructor (`predictor=`; tests and
test/support/fake_policy_node.py do), never through a parameter or a switch in this node.

Clock: frames whose stamps lie more than `stamp_tolerance_s` from the node's clock are refused by reason
(PolicyStatus.rejections); a jump of the clock (rclpy's jump callback, `time_jump_threshold_s`) clears the
frame sync, the latency estimate and the running chunk, is counted (PolicyStatus.events "time_jump") and
inference goes on. Health also goes to /diagnostics.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from lawam_msgs.msg import ActionChunk, PolicyStatus
from lawam_msgs.srv import Reset, SetEnabled, SetTask
from rclpy._rclpy_pybind11 import RCLError
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from ..action_layout import get_layout
from ..embodiments import EMBODIMENTS, get_embodiment
from ..parameters import field_values, policy_params
from ..runtime import stamps
from ..runtime.checkpoint_fit import camera_roles_for, check_fit, control_rate_for
from ..runtime.engine import EngineConfig, InferenceEngine
from ..runtime.health import PolicyHealth
from ..runtime.heatmap import colorize, similarity_map
from ..runtime.images import UnsupportedEncoding, check_image, decode_image
from ..runtime.sync import FrameSynchronizer
from .common import chunk_to_msg, declare_parameters, logger_fn, now_seconds, reason_counts, watch_time_jumps
from .diagnostics import DiagnosticsPublisher
from .main import fail, main_for

# A policy waiting this long (steady time) for a frame set says so in the log, not only in PolicyStatus: the
# robot holds meanwhile, and a wrong topic or a transport that drops large images looks the same from outside.
IMAGE_SILENCE_WARN_S = 10.0

STATES = {"starting": PolicyStatus.STATE_STARTING, "waiting_for_task": PolicyStatus.STATE_WAITING_FOR_TASK,
          "waiting_for_images": PolicyStatus.STATE_WAITING_FOR_IMAGES, "running": PolicyStatus.STATE_RUNNING,
          "paused": PolicyStatus.STATE_PAUSED, "error": PolicyStatus.STATE_ERROR}


def load_model(node):
    """LaWAMPolicy from `checkpoint_dir`, or the `preset` with random weights (imports torch). Raises
    (FileNotFoundError, CheckpointMismatch, ...) when the checkpoint is missing or does not fit the node."""
    import torch

    from ..model import LaWAMConfig, LaWAMPolicy
    device = node.device or "cpu"
    if node.torch_threads > 0:
        # torch's default takes every core (and its OpenMP workers spin between calls), which starves
        # the bridge and a simulated twin on the same machine.
        torch.set_num_threads(node.torch_threads)
    if node.checkpoint_dir:
        # The config first (cheap): a checkpoint for another robot or camera rig is refused before the weights.
        check_fit(LaWAMConfig.load(node.checkpoint_dir), node.embodiment, node.camera_roles, node.checkpoint_dir)
        return LaWAMPolicy.from_pretrained(node.checkpoint_dir, device=device)
    config = LaWAMConfig.from_preset(node.preset)
    check_fit(config, node.embodiment, node.camera_roles, f"preset:{node.preset}")
    policy = LaWAMPolicy(config)
    policy.eval()
    return policy.to(device)


class PolicyNode(Node):
    """`predictor`: an object with LaWAMPolicy.predict_chunk's signature to run instead of loading the model
    (`checkpoint` / `preset`); None: the model is loaded in a background thread."""

    def __init__(self, node_name: str = "policy_node", predictor=None, **kwargs):
        super().__init__(node_name, **kwargs)
        v = declare_parameters(self, policy_params())  # one home: lawam_policy/parameters.py
        self.checkpoint_dir = v["checkpoint"]
        self.preset = v["preset"]
        self.device = v["device"]
        self.torch_threads = v["torch_threads"]
        self.embodiment = v["embodiment"]
        cameras = list(v["camera_topics"])
        roles = list(v["camera_roles"])
        primary = v["primary_camera"]
        frame_id = v["frame_id"] or (get_embodiment(self.embodiment).base_frame
                                     if self.embodiment in EMBODIMENTS else "")
        tolerance = v["sync_tolerance_s"]
        max_age = v["max_frame_age_s"]
        stamp_tolerance = v["stamp_tolerance_s"]
        jump_threshold = v["time_jump_threshold_s"]
        diagnostics_rate = v["diagnostics_rate_hz"]
        task = v["task"]
        heatmap_rate = v["heatmap_rate_hz"]
        self.heatmap_period = 1.0 / heatmap_rate if heatmap_rate > 0 else None
        self.heatmap_patch = v["heatmap_patch"]
        status_rate = v["status_rate_hz"]
        seed = v["seed"]
        config = EngineConfig(embodiment=self.embodiment, control_rate_hz=v["control_rate_hz"],
                              frame_id=frame_id, seed=None if seed < 0 else seed,
                              **field_values(EngineConfig, v))
        if primary and primary not in cameras:
            raise ValueError(f"primary_camera {primary!r} is not one of camera_topics {cameras}")
        self.layout = get_layout(self.embodiment)
        self.camera_topics = cameras
        self.sync = FrameSynchronizer(cameras, tolerance, max_age, primary=cameras.index(primary) if primary else 0,
                                      clock_tolerance_s=stamp_tolerance)
        role_of = dict(zip(cameras, camera_roles_for(self.embodiment, cameras, roles)))
        self.camera_roles = [role_of[c] for c in self.sync.cameras]  # the order the model gets the images in
        self.bad_frames = 0
        self._warned_encodings: set = set()
        self.model_id = self.checkpoint_dir or f"preset:{self.preset}"
        self.last_error = ""
        self.load_error = ""
        self.engine: InferenceEngine | None = None
        self._engine_config = config
        self._initial_task = task
        self._next_heatmap = 0.0
        self._waiting_since: float | None = None  # steady time the engine began waiting for images

        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self._chunk_pub = self.create_publisher(ActionChunk, v["chunk_topic"], reliable)
        self._status_pub = self.create_publisher(PolicyStatus, v["status_topic"], 10)
        # Reliable, depth 1: serves reliable subscribers (RViz's default, the demo monitor) and best-effort ones.
        self._heatmap_pub = self.create_publisher(Image, v["heatmap_topic"],
                                                  QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        for topic in cameras:  # image_transport's naming: a .../compressed topic carries CompressedImage
            kind, msg_type = ("compressed", CompressedImage) if topic.endswith("/compressed") else ("raw", Image)
            self.create_subscription(msg_type, topic, lambda m, t=topic, k=kind: self._on_image(t, m, k),
                                     qos_profile_sensor_data)
        self.create_subscription(String, v["task_topic"], lambda m: self._set_task(m.data), 10)
        self.create_service(SetTask, v["set_task_service"], self._on_set_task)
        self.create_service(SetEnabled, "~/set_enabled", self._on_set_enabled)
        self.create_service(Reset, "~/reset", self._on_reset)
        self.create_timer(1.0 / status_rate, self._publish_status, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._enabled = True
        self._jump_handle = watch_time_jumps(self, jump_threshold, self._on_time_jump)
        self._health = PolicyHealth()
        self.diagnostics = DiagnosticsPublisher(self, "policy", self.embodiment,
                                                lambda: self._health.summary(self.status()), diagnostics_rate)

        # Loading the model takes seconds (minutes for the paper preset): do it off the executor thread so
        # status and services answer meanwhile (state STARTING).
        if predictor is not None:
            self._start_engine(predictor)
        else:
            threading.Thread(target=self._load_and_start, name="lawam-model-load", daemon=True).start()

    # ---- model -----------------------------------------------------------------------------------
    def now_s(self) -> float:
        return now_seconds(self)

    def _load_and_start(self) -> None:
        try:
            t0 = time.perf_counter()
            predictor = load_model(self)
            self.get_logger().info(f"model {self.model_id} loaded on {self.device} in "
                                   f"{time.perf_counter() - t0:.1f} s")
        except Exception as err:  # noqa: BLE001 - any reason the model cannot run ends the node, loudly
            self.load_error = self.last_error = f"cannot load the model ({self.model_id}): {type(err).__name__}: {err}"
            self.get_logger().error(self.last_error)
            fail(self, self.last_error)
            return
        self._start_engine(predictor)

    def _start_engine(self, predictor) -> None:
        cfg = self._engine_config
        cfg.control_rate_hz, warning = control_rate_for(getattr(predictor, "config", None), self.embodiment,
                                                        cfg.control_rate_hz)
        if warning:
            self.get_logger().warning(warning)
        self.get_logger().info(f"chunk steps at {cfg.control_rate_hz:g} Hz (the control rate inside each chunk)")
        engine = InferenceEngine(predictor, self.sync, self.now_s, self._on_chunk, self._engine_config,
                                 decode=self._decode, layout=self.layout, log=logger_fn(self))
        engine.set_task(self._initial_task)
        engine.set_enabled(self._enabled)
        self.engine = engine
        engine.start()

    def destroy_node(self):
        if self.engine is not None:
            self.engine.stop()
        return super().destroy_node()

    # ---- frames --------------------------------------------------------------------------------
    @staticmethod
    def _decode(payload) -> np.ndarray:
        _, msg = payload
        return decode_image(msg)  # the one decoder (runtime.images), shared with the recorder and bag import

    def _stamp(self, msg) -> float:
        t = stamps.stamp_to_seconds(msg.header.stamp)
        return t if t > 0 else self.now_s()  # some drivers leave the stamp empty

    def _add_frame(self, topic: str, stamp: float, payload) -> None:
        now = self.now_s()
        reason = self.sync.add(topic, stamp, payload, now=now)
        if reason is not None:
            if (topic, reason) not in self._warned_encodings:  # once per topic and reason; counted always
                self._warned_encodings.add((topic, reason))
                self.last_error = (f"{topic}: frame stamped {stamp:.3f} s, node clock {now:.3f} s (more than "
                                   f"stamp_tolerance_s apart): refused as {reason}")
                self.get_logger().error(self.last_error)
            return
        if self.engine is not None:
            self.engine.notify_frame()

    def _on_time_jump(self, delta_s: float) -> None:
        if self.engine is not None:
            self.engine.time_jump(delta_s)
        else:  # still loading: nothing runs yet, but the frames are on the old time line
            self.sync.reset()

    def _drop(self, topic: str, why: str) -> None:
        self.bad_frames += 1
        if (topic, why) not in self._warned_encodings:  # a clear error once per topic and cause
            self._warned_encodings.add((topic, why))
            self.last_error = f"{topic}: {why}; frames dropped"
            self.get_logger().error(self.last_error)

    def _on_image(self, topic: str, msg, kind: str) -> None:
        """sensor_msgs/Image (kind "raw") or CompressedImage ("compressed"); decoded later, on the worker."""
        try:
            check_image(msg)
        except UnsupportedEncoding as err:
            self._drop(topic, str(err))
            return
        self._add_frame(topic, self._stamp(msg), (kind, msg))

    # ---- outputs -------------------------------------------------------------------------------
    def _on_chunk(self, chunk, prediction) -> None:
        # Ctrl-C/SIGTERM shut the context down while an inference may still be finishing: its chunk
        # has nowhere to go and is dropped quietly.
        if not self.context.ok():
            return
        try:
            self._chunk_pub.publish(chunk_to_msg(chunk))
        except RCLError:
            if self.context.ok():
                raise
            return
        now = time.monotonic()
        if self.heatmap_period is not None and now >= self._next_heatmap and hasattr(prediction, "subgoal"):
            self._next_heatmap = now + self.heatmap_period
            try:
                self._publish_heatmap(chunk, prediction)
            except Exception as err:  # a heatmap must never stop the chunks
                self.get_logger().warning(f"heatmap failed: {err}", throttle_duration_sec=30.0)

    def _publish_heatmap(self, chunk, prediction) -> None:
        cur = np.asarray(prediction.current_features)
        n = cur.shape[0]
        side = int(round(np.sqrt(n)))
        patch = self.heatmap_patch if 0 <= self.heatmap_patch < n else (side // 2) * side + side // 2
        overlay = colorize(similarity_map(cur, prediction.subgoal, patch))
        msg = Image(height=overlay.shape[0], width=overlay.shape[1], encoding="rgb8", is_bigendian=0,
                    step=overlay.shape[1] * 3, data=overlay.tobytes())
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = chunk.frame_id
        self._heatmap_pub.publish(msg)

    def status(self) -> dict:
        """The engine's status (or the loading state), with the node's counters."""
        if self.engine is None:
            s = {"state": "error" if self.load_error else "starting",
                 "detail": self.load_error or f"loading the model ({self.model_id})", "task": self._initial_task,
                 "last_latency_ms": float("nan"), "chunks_produced": 0, "events": {},
                 "rejections": dict(self.sync.rejections), "last_error": self.last_error, "enabled": self._enabled}
        else:
            s = self.engine.status()
            s["last_error"] = s["last_error"] or self.last_error
        s["model_id"] = self.model_id
        s["frames_dropped"] = int(self.sync.dropped + self.bad_frames)
        s["enabled"] = self._enabled
        return s

    def _publish_status(self) -> None:
        s = self.status()
        self._warn_on_image_silence(s)
        msg = PolicyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.model_id = s["model_id"]
        msg.frames_dropped = s["frames_dropped"]
        msg.enabled = s["enabled"]
        msg.state = STATES[s["state"]]
        msg.state_detail = s["detail"]
        msg.task = s["task"]
        msg.last_inference_latency_ms = float(s["last_latency_ms"])
        msg.chunks_produced = int(s["chunks_produced"])
        msg.last_error = s["last_error"]
        msg.events = reason_counts(s["events"])
        msg.rejections = reason_counts(s["rejections"])
        self._status_pub.publish(msg)

    def _warn_on_image_silence(self, s: dict) -> None:
        """Log, every IMAGE_SILENCE_WARN_S while it lasts, a wait for images with what each camera topic has:
        its publisher count (0: nobody publishes there) and when its last frame came."""
        if s["state"] != "waiting_for_images":
            self._waiting_since = None
            return
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        waited = now - self._waiting_since
        if waited < IMAGE_SILENCE_WARN_S:
            return
        clock = self.now_s()
        topics = []
        for topic in self.camera_topics:
            newest = self.sync.newest(topic)
            last = "no frame yet" if newest is None else f"last frame {clock - newest:.1f} s ago"
            topics.append(f"{topic} ({self.count_publishers(topic)} publisher(s), {last})")
        self.get_logger().warning(
            f"no frame set for {waited:.0f} s, so no chunks: {s['detail']}; {'; '.join(topics)}. A topic with "
            f"publishers but no frames: its images are not delivered (check the DDS transport and QoS)")
        self._waiting_since = now

    # ---- control -------------------------------------------------------------------------------
    def _set_task(self, task: str) -> None:
        self._initial_task = task.strip()
        if self.engine is not None:
            self.engine.set_task(task)
        self.get_logger().info(f"task: {task.strip()!r}" if task.strip() else "task cleared: inference stops")

    def _on_set_task(self, request, response):
        self._set_task(request.task)
        response.success = True
        response.message = "task set" if request.task.strip() else "empty task: inference stopped"
        return response

    def _on_set_enabled(self, request, response):
        self._enabled = bool(request.enabled)
        if self.engine is not None:
            self.engine.set_enabled(self._enabled)
        response.success = True
        response.message = "chunks enabled" if self._enabled else "paused: no chunks are produced"
        return response

    def _on_reset(self, request, response):
        if self.engine is not None:
            self.engine.reset()
        else:  # still loading: no chunk yet, but frames of the old scene may be waiting
            self.sync.clear(reset_time=self.now_s())
        response.success = True
        response.message = "running chunk, inpainting context and frames up to now dropped"
        return response


main = main_for(PolicyNode)


if __name__ == "__main__":
    raise SystemExit(main())
