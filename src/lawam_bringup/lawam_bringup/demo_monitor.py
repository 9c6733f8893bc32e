"""Demo monitor: watches a running system and, on shutdown, writes what a person wants to see.

Outputs in `output_dir`: summary.json (chunks, commands, latencies, seams, safety, episodes),
camera.mp4 (the primary camera), trajectory.png (EEF x/y/z in metres against time in seconds: measured, chunk
targets, streamed commands, chunk arrivals and successes marked) and
subgoal_heatmap.png (the policy's subgoal heatmap that arrived while the arm moved fastest, over the camera
frame of that moment).
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from lawam_bringup.plots import save_video, save_heatmap_overlay, save_trajectory_png


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "p50": None, "p99": None}
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}


class DemoRecord:
    """ROS-free accumulator of everything the summary reports."""

    def __init__(self, system: str):
        self.system = system
        self.started = time.monotonic()
        self.chunk_times: list[float] = []
        self.inference_ms: list[float] = []
        self.e2e_ms: list[float] = []
        self.bridges: dict[str, dict] = {}
        self.success_edges = 0
        self.seeds: list[int] = []          # episodes = distinct twin seeds seen (resets start new ones)
        self.twin_refusals: dict = {}
        self._last_success = False
        self._last_chunks_produced = 0
        # (t, x, y, z) of the first arm, t in seconds of the monitor's clock
        self.eef: list[tuple[float, float, float, float]] = []
        self.targets: list[tuple[float, float, float, float]] = []  # chunk waypoints at stamp + offset
        self.commands: list[tuple[float, float, float, float]] = []  # what the bridge streamed
        self.success_times: list[float] = []
        self.frames: list[np.ndarray] = []

    def on_chunk(self, t: float) -> None:
        self.chunk_times.append(t)

    def on_policy_status(self, chunks_produced: int, latency_ms: float) -> None:
        if chunks_produced > self._last_chunks_produced and latency_ms > 0:
            self.inference_ms.append(latency_ms)
        self._last_chunks_produced = chunks_produced

    def on_bridge_status(self, name: str, status: dict) -> None:
        prev = self.bridges.get(name)
        if status["latency_ms"] > 0 and (prev is None or status["chunks_received"] > prev["chunks_received"]):
            self.e2e_ms.append(status["latency_ms"])
        self.bridges[name] = status

    def on_success(self, success: bool, t: float | None = None) -> None:
        if success and not self._last_success:
            self.success_edges += 1
            if t is not None:
                self.success_times.append(t)
        self._last_success = success

    def on_twin_stats(self, stats: dict) -> None:
        if not self.seeds or self.seeds[-1] != stats.get("seed"):
            self.seeds.append(stats.get("seed"))
        self.twin_refusals = dict(stats.get("refusals", {}))

    def eef_speed(self, window_s: float) -> float:
        """Mean EEF speed (m/s) over the last `window_s` seconds of pose samples (0 with fewer than two)."""
        if len(self.eef) < 2:
            return 0.0
        t1, *p1 = self.eef[-1]
        i = len(self.eef) - 2
        while i > 0 and t1 - self.eef[i][0] < window_s:
            i -= 1
        t0, *p0 = self.eef[i]
        return float(np.linalg.norm(np.subtract(p1, p0)) / (t1 - t0)) if t1 > t0 else 0.0

    def summary(self) -> dict:
        bridges = self.bridges.values()
        return {
            "system": self.system,
            "duration_s": round(time.monotonic() - self.started, 3),
            "chunks": len(self.chunk_times),
            "commands": int(sum(b["commands_sent"] for b in bridges)),
            "inference_latency_ms": _percentiles(self.inference_ms),
            "e2e_latency_ms": {k: v for k, v in _percentiles(self.e2e_ms).items() if k != "p50"},
            "max_seam_step_m": max((b["max_seam_step_m"] for b in bridges), default=None),
            "safety_rejections": int(sum(sum(b["rejections"].values()) for b in bridges)),
            "safety_clamps": int(sum(sum(b["clamps"].values()) for b in bridges)),
            "holds": int(sum(sum(b["holds"].values()) for b in bridges)),
            "twin_refusals": int(sum(self.twin_refusals.values())),
            "episodes": len(self.seeds),
            "successes": self.success_edges,
        }


def main(args=None) -> int:
    from geometry_msgs.msg import PoseStamped
    from lawam_msgs.msg import ActionChunk, BridgeStatus, PolicyStatus
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool, String

    from lawam_policy import topics
    from lawam_policy.nodes.common import declare_parameters
    from lawam_policy.runtime import stamps
    from lawam_policy.runtime.images import decode_raw

    from lawam_bringup.monitor_settings import demo_monitor_params

    def image_msg_to_rgb(m):
        return decode_raw(m.encoding, m.height, m.width, m.step, m.data)

    class DemoMonitor(Node):
        def __init__(self):
            super().__init__("demo_monitor")
            v = declare_parameters(self, demo_monitor_params())  # one home: lawam_bringup/monitor_settings.py
            self.output_dir, self.system = v["output_dir"], v["system"]
            camera, eef_topic = v["camera_topic"], v["eef_pose_topic"]
            command_topic, stats_topic = v["command_pose_topic"], v["twin_stats_topic"]  # "": none
            self.frame_period = 1.0 / v["video_fps"]
            self.record = DemoRecord(self.system)
            self._last_frame = -1e9
            # The heatmap kept is the one that arrived while the arm moved fastest, with the camera frame of
            # that moment: a heatmap of an arm at rest (the end of a solved episode) shows little.
            self.heatmap: np.ndarray | None = None
            self.heatmap_frame: np.ndarray | None = None
            self.heatmap_speed = -1.0
            self._latest_frame: np.ndarray | None = None
            self.create_subscription(ActionChunk, topics.CHUNK_TOPIC, self._on_chunk, 10)
            self.create_subscription(PolicyStatus, topics.POLICY_STATUS_TOPIC, lambda m: self.record.on_policy_status(
                m.chunks_produced, m.last_inference_latency_ms), 10)
            self.create_subscription(BridgeStatus, topics.BRIDGE_STATUS_TOPIC, self._on_bridge, 10)
            self.create_subscription(Bool, "/lawam_sim/success", lambda m: self.record.on_success(m.data, self._now()),
                                     10)
            self.create_subscription(Image, camera, self._on_image, qos_profile_sensor_data)
            self.create_subscription(Image, topics.HEATMAP_TOPIC, self._on_heatmap, 1)
            self.create_subscription(PoseStamped, eef_topic, lambda m: self._append_pose(self.record.eef, m),
                                     qos_profile_sensor_data)
            if command_topic:
                self.create_subscription(PoseStamped, command_topic,
                                         lambda m: self._append_pose(self.record.commands, m), qos_profile_sensor_data)
            if stats_topic:
                self.create_subscription(String, stats_topic,
                                         lambda m: self.record.on_twin_stats(json.loads(m.data)), 10)

        def _now(self) -> float:
            return stamps.ns_to_seconds(self.get_clock().now().nanoseconds)

        def _on_bridge(self, m):
            counts = lambda items: {i.reason: i.count for i in items}  # noqa: E731
            self.record.on_bridge_status(m.bridge_name, {
                "commands_sent": m.commands_sent, "chunks_received": m.chunks_received,
                "max_seam_step_m": m.max_seam_step_m, "latency_ms": m.last_latency_obs_to_first_command_ms,
                "holds": counts(m.holds), "clamps": counts(m.clamps), "rejections": counts(m.rejections)})

        def _on_image(self, m):
            try:
                self._latest_frame = image_msg_to_rgb(m)
            except ValueError:
                return
            t = self._now()
            if t - self._last_frame >= self.frame_period:
                self._last_frame = t
                self.record.frames.append(self._latest_frame)

        def _on_heatmap(self, m):
            speed = self.record.eef_speed(window_s=0.3)
            if speed < self.heatmap_speed:
                return
            try:
                self.heatmap = image_msg_to_rgb(m)
            except ValueError:
                return
            self.heatmap_speed, self.heatmap_frame = speed, self._latest_frame

        def _append_pose(self, samples: list, m) -> None:
            p = m.pose.position
            samples.append((self._now(), p.x, p.y, p.z))

        def _on_chunk(self, m) -> None:
            self.record.on_chunk(self._now())
            if m.arms:  # the first arm's waypoints, at the times the policy stamped them
                t = stamps.stamp_to_seconds(m.header.stamp)
                self.record.targets += [(t + dt, p.position.x, p.position.y, p.position.z)
                                        for dt, p in zip(m.time_offsets_s, m.arms[0].poses)]

        def write(self) -> None:
            os.makedirs(self.output_dir, exist_ok=True)
            with open(os.path.join(self.output_dir, "summary.json"), "w") as f:
                json.dump(self.record.summary(), f, indent=2)
            if self.record.frames:
                save_video(os.path.join(self.output_dir, "camera.mp4"), self.record.frames, fps=1.0 / self.frame_period)
            if self.record.eef:
                r = self.record
                save_trajectory_png(os.path.join(self.output_dir, "trajectory.png"), r.eef, r.chunk_times,
                                    r.targets, r.commands, r.success_times, title=f"{self.system}: EEF position "
                                    "(first arm, robot base frame)")
            if self.heatmap is not None:
                save_heatmap_overlay(os.path.join(self.output_dir, "subgoal_heatmap.png"), self.heatmap,
                                     self.heatmap_frame)

    def write(node) -> None:
        node.write()
        print(f"demo outputs written to {os.path.abspath(node.output_dir)}", flush=True)

    from lawam_policy.nodes.main import run
    return run(DemoMonitor, args, before_destroy=write)
