"""LaWAM policy node: camera frames + task in, ActionChunk out (asynchronously), plus status and a heatmap.

Thin adapter around runtime.InferenceEngine. The model is imported lazily (torch is only needed here, and
only when no other predictor is injected). Test seam, parameter-free: the environment variable
LAWAM_POLICY_PREDICTOR="package.module:factory" replaces the model; factory(node) returns an object with
LaWAM's predict_chunk signature (e.g. lawam_policy.nodes.policy_node:fake_predictor_factory).
"""
from __future__ import annotations

import importlib
import os
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
from ..runtime.engine import EngineConfig, InferenceEngine
from ..runtime.heatmap import colorize, similarity_map
from ..runtime.images import UnsupportedEncoding, check_image, decode_image
from ..runtime.sync import FrameSynchronizer
from .bridge_node import spin_node
from .common import chunk_to_msg, declare, logger_fn, stamp_to_sec

PREDICTOR_ENV = "LAWAM_POLICY_PREDICTOR"
DEFAULT_FRAMES = {"franka_panda": "panda_link0", "quanta_x1": "base_link"}
STATES = {"starting": PolicyStatus.STATE_STARTING, "waiting_for_task": PolicyStatus.STATE_WAITING_FOR_TASK,
          "waiting_for_images": PolicyStatus.STATE_WAITING_FOR_IMAGES, "running": PolicyStatus.STATE_RUNNING,
          "paused": PolicyStatus.STATE_PAUSED, "error": PolicyStatus.STATE_ERROR}


# Home EEF poses of the MuJoCo twins (base frame): the fake circles around them, so a bridge accepts it.
FAKE_HOMES = {
    "franka_panda": ([[0.5, 0.0, 0.4]], [[1.0, 0.0, 0.0, 0.0]]),
    "quanta_x1": ([[-0.18, 0.0, 0.3], [0.17, 0.0, 0.3]], [[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]),
}


def fake_predictor_factory(node):
    """Deterministic stand-in for the model (slow circles around `fake_center`, one xyz per arm, default: the
    twin's home pose), for tests and bring-up without torch."""
    from ..runtime.fake_predictor import FakePredictor
    centers, quats = FAKE_HOMES.get(node.embodiment, FAKE_HOMES["franka_panda"])
    flat = node.declare_parameter("fake_center", [v for c in centers for v in c]).value
    return FakePredictor(center=np.reshape(flat, (-1, 3)), orientation=np.array(quats), clock=node.now_s,
                         embodiment=node.embodiment)


def load_model(node):
    """LaWAMPolicy from `checkpoint_dir`, or the `preset` with random weights (imports torch)."""
    import torch

    from ..model import LaWAMConfig, LaWAMPolicy
    device = node.device or "cpu"
    if node.torch_threads > 0:
        # torch's default takes every core (and its OpenMP workers spin between calls), which starves
        # the bridge and a simulated twin on the same machine.
        torch.set_num_threads(node.torch_threads)
    if node.checkpoint_dir:
        return LaWAMPolicy.from_pretrained(node.checkpoint_dir, device=device)
    policy = LaWAMPolicy(LaWAMConfig.preset(node.preset))
    policy.eval()
    return policy.to(device)


class PolicyNode(Node):
    def __init__(self, node_name: str = "policy_node", predictor=None, **kwargs):
        super().__init__(node_name, **kwargs)
        p = lambda name, default, desc: declare(self, name, default, desc)  # noqa: E731
        self.checkpoint_dir = p("checkpoint", "", "LaWAM checkpoint directory; empty: `preset` with random "
                                                  "weights")
        self.preset = p("preset", "tiny", "model preset when no checkpoint is given (tiny, paper)")
        self.device = p("device", "cpu", "torch device (cpu, cuda, cuda:0)")
        self.torch_threads = p("torch_threads", 1, "CPU threads for inference (torch.set_num_threads); "
                                                   "0: torch's default, every core")
        self.embodiment = p("embodiment", "franka_panda", "action layout of the chunks")
        cameras = list(p("camera_topics", ["/camera/color/image_raw"], "image topics; names ending in "
                                                                       "/compressed are CompressedImage"))
        primary = p("primary_camera", "", "which camera topic is the primary view; empty: the first")
        frame_id = p("frame_id", "", "robot base frame written into the chunks; empty: the embodiment's "
                                     "(panda_link0, base_link)") or DEFAULT_FRAMES.get(self.embodiment, "")
        tolerance = p("sync_tolerance_s", 0.05, "all cameras' stamps must lie within this of the primary's")
        max_age = p("max_frame_age_s", 0.0, "frames older than this are not used (0: no limit)")
        task = p("task", "", "initial instruction; empty: no inference until one is set")
        task_topic = p("task_topic", "/lawam/task", "std_msgs/String instruction input")
        set_task_srv = p("set_task_service", "/lawam/set_task", "lawam_msgs/SetTask service")
        chunk_topic = p("chunk_topic", "/lawam/action_chunk", "ActionChunk output")
        status_topic = p("status_topic", "/lawam/policy_status", "PolicyStatus output")
        heatmap_topic = p("heatmap_topic", "/lawam/subgoal_heatmap", "subgoal heatmap image (rgb8) for RViz")
        heatmap_rate = p("heatmap_rate_hz", 1.0, "heatmap rate limit (Hz); 0 disables")
        self.heatmap_period = 1.0 / heatmap_rate if heatmap_rate > 0 else None
        self.heatmap_patch = p("heatmap_patch", -1, "current patch index the heatmap compares; -1: centre")
        status_rate = p("status_rate_hz", 2.0, "PolicyStatus rate (Hz)")
        seed = p("seed", -1, "sampling seed per chunk; negative: random")
        config = EngineConfig(
            embodiment=self.embodiment,
            control_rate_hz=p("control_rate_hz", 15.0, "f_b of the chunks (Hz)"),
            horizon_s=p("horizon_s", 0.0, "chunk horizon (s); 0: the model's"),
            execution_delay_s=p("execution_delay_s", 0.0, "same value as the bridges' execution_delay_s"),
            latency_margin_s=p("latency_margin_s", 0.05, "start the next inference this much earlier (s)"),
            inpaint_prev_actions=p("inpaint_prev_actions", False, "give the model the previous chunk's "
                                                                  "next steps (real-time chunking)"),
            inpaint_extra_s=p("inpaint_extra_s", 0.2, "inpaint the steps up to latency + margin + this (s)"),
            frame_id=frame_id, seed=None if seed < 0 else seed)
        if primary and primary not in cameras:
            raise ValueError(f"primary_camera {primary!r} is not one of camera_topics {cameras}")
        self.layout = get_layout(self.embodiment)
        self.camera_topics = cameras
        self.sync = FrameSynchronizer(cameras, tolerance, max_age, primary=cameras.index(primary) if primary else 0)
        self.bad_frames = 0
        self._warned_encodings: set = set()
        self.model_id = self.checkpoint_dir or f"preset:{self.preset}"
        self.last_error = ""
        self.engine: InferenceEngine | None = None
        self._engine_config = config
        self._initial_task = task
        self._next_heatmap = 0.0

        reliable = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self._chunk_pub = self.create_publisher(ActionChunk, chunk_topic, reliable)
        self._status_pub = self.create_publisher(PolicyStatus, status_topic, 10)
        # Reliable, depth 1: serves reliable subscribers (RViz's default, the demo monitor) and best-effort ones.
        self._heatmap_pub = self.create_publisher(Image, heatmap_topic,
                                                  QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        for topic in cameras:
            if topic.endswith("/compressed"):
                self.create_subscription(CompressedImage, topic, lambda m, t=topic: self._on_compressed(t, m),
                                         qos_profile_sensor_data)
            else:
                self.create_subscription(Image, topic, lambda m, t=topic: self._on_image(t, m),
                                         qos_profile_sensor_data)
        self.create_subscription(String, task_topic, lambda m: self._set_task(m.data), 10)
        self.create_service(SetTask, set_task_srv, self._on_set_task)
        self.create_service(SetEnabled, "~/set_enabled", self._on_set_enabled)
        self.create_service(Reset, "~/reset", self._on_reset)
        self.create_timer(1.0 / status_rate, self._publish_status, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._enabled = True

        # Loading the model takes seconds (minutes for the paper preset): do it off the executor thread so
        # status and services answer meanwhile (state STARTING).
        if predictor is not None:
            self._start_engine(predictor)
        else:
            threading.Thread(target=self._load_and_start, name="lawam-model-load", daemon=True).start()

    # ---- model -----------------------------------------------------------------------------------
    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _load_and_start(self) -> None:
        try:
            spec = os.environ.get(PREDICTOR_ENV, "")
            if spec:
                module, _, attr = spec.partition(":")
                predictor = getattr(importlib.import_module(module), attr)(self)
                self.model_id = f"injected:{spec}"
            else:
                t0 = time.perf_counter()
                predictor = load_model(self)
                self.get_logger().info(f"model {self.model_id} loaded on {self.device} in "
                                       f"{time.perf_counter() - t0:.1f} s")
        except Exception as err:  # status reports it; the node stays up for diagnosis
            self.last_error = f"cannot load the model ({self.model_id}): {type(err).__name__}: {err}"
            self.get_logger().error(self.last_error)
            return
        self._start_engine(predictor)

    def _start_engine(self, predictor) -> None:
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
        t = stamp_to_sec(msg.header.stamp)
        return t if t > 0 else self.now_s()  # some drivers leave the stamp empty

    def _drop(self, topic: str, why: str) -> None:
        self.bad_frames += 1
        if (topic, why) not in self._warned_encodings:  # a clear error once per topic and cause
            self._warned_encodings.add((topic, why))
            self.last_error = f"{topic}: {why}; frames dropped"
            self.get_logger().error(self.last_error)

    def _on_image(self, topic: str, msg: Image) -> None:
        try:
            check_image(msg)
        except UnsupportedEncoding as err:
            self._drop(topic, str(err))
            return
        self.sync.add(topic, self._stamp(msg), ("raw", msg))
        if self.engine is not None:
            self.engine.notify_frame()

    def _on_compressed(self, topic: str, msg: CompressedImage) -> None:
        try:
            check_image(msg)
        except UnsupportedEncoding as err:
            self._drop(topic, str(err))
            return
        self.sync.add(topic, self._stamp(msg), ("compressed", msg))
        if self.engine is not None:
            self.engine.notify_frame()

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

    def _publish_status(self) -> None:
        msg = PolicyStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.model_id = self.model_id
        msg.frames_dropped = int(self.sync.dropped + self.bad_frames)
        msg.enabled = self._enabled
        if self.engine is None:
            msg.state = PolicyStatus.STATE_ERROR if self.last_error else PolicyStatus.STATE_STARTING
            msg.state_detail = self.last_error or f"loading the model ({self.model_id})"
            msg.task = self._initial_task
            msg.last_error = self.last_error
        else:
            s = self.engine.status()
            msg.state = STATES[s["state"]]
            msg.state_detail = s["detail"]
            msg.task = s["task"]
            msg.last_inference_latency_ms = float(s["last_latency_ms"])
            msg.chunks_produced = int(s["chunks_produced"])
            msg.last_error = s["last_error"] or self.last_error
        self._status_pub.publish(msg)

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
        response.success = True
        response.message = "running chunk and inpainting context dropped"
        return response


def main(args=None):
    spin_node(PolicyNode, args)


if __name__ == "__main__":
    main()
