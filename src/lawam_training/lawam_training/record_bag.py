"""lawam-record-bag: record the demonstration topics into a rosbag2 MCAP bag, without ``ros2 bag``.

    lawam-record-bag --output demo_001 [--embodiment quanta_x1] [--config topics.yaml] [--topic /extra ...]
        [--duration 60] [--msg-path DIR ...]

Messages are stored serialised as received (CDR) with their receive time; the bag (metadata.yaml +
MCAP with embedded message definitions, written by ``rosbags``) is the format ``ros2 bag`` and
``lawam-bag-to-lerobot`` read. Topics that have no publisher yet are picked up when one appears. Stop
with Ctrl-C / SIGTERM (or --duration): the bag is closed properly.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


def message_class(type_name: str):
    """'pkg/msg/Type' -> the rclpy message class."""
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class BagRecorder(Node):
    def __init__(self, writer, typestore, topics: list[str]):
        super().__init__("lawam_record_bag")
        self.writer, self.typestore, self.wanted = writer, typestore, list(topics)
        self.counts: dict[str, int] = {}
        self._conns = {}
        self._lock = threading.Lock()
        self._subs = []
        self.create_timer(0.2, self._discover)
        self._discover()

    def _discover(self):
        types = dict(self.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self._conns or topic not in types:
                continue
            msgtype = types[topic][0]
            try:
                cls = message_class(msgtype)
                conn = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
            except Exception as e:  # noqa: BLE001 - unknown type: say so once, keep recording the rest
                self.get_logger().error(f"cannot record {topic} ({msgtype}): {e}; give --msg-path for its .msg")
                self._conns[topic] = None
                continue
            # Reliable only if every publisher is reliable (a reliable reader never matches a best-effort writer).
            infos = self.get_publishers_info_by_topic(topic)
            reliable = infos and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE if reliable
                             else ReliabilityPolicy.BEST_EFFORT)
            self._conns[topic] = conn
            self.counts[topic] = 0
            self._subs.append(self.create_subscription(cls, topic, lambda raw, c=conn, t=topic: self._on(c, t, raw),
                                                       qos, raw=True))
            self.get_logger().info(f"recording {topic} ({msgtype})")

    def _on(self, conn, topic, raw: bytes):
        t = self.get_clock().now().nanoseconds
        with self._lock:
            if self.writer is not None:
                self.writer.write(conn, t, raw)
                self.counts[topic] += 1

    def close(self):
        with self._lock:
            w, self.writer = self.writer, None
        if w is not None:
            w.close()


def main(argv=None) -> int:
    from rosbags.rosbag2 import StoragePlugin, Writer

    from .msgdefs import build_typestore
    from .topics import load_yaml_mapping, make_config

    ap = argparse.ArgumentParser(prog="lawam-record-bag", description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", "-o", required=True, help="bag directory to create")
    ap.add_argument("--config", help="YAML topic mapping (same keys as lawam-bag-to-lerobot)")
    ap.add_argument("--embodiment", help="franka_panda (default) or quanta_x1: its default topics")
    ap.add_argument("--camera", action="append", metavar="NAME=TOPIC")
    ap.add_argument("--pose", action="append", metavar="ARM=TOPIC")
    ap.add_argument("--topic", action="append", default=[], help="extra topic to record")
    ap.add_argument("--only", action="store_true", help="record only the --topic topics")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--msg-path", action="append", default=[], metavar="DIR")
    args, ros_args = ap.parse_known_args(argv)
    out = Path(args.output).expanduser().absolute()
    try:
        if out.exists():
            raise ValueError(f"output {out} already exists")
        if not out.parent.is_dir():
            raise ValueError(f"output parent directory {out.parent} does not exist")
        if args.only:
            topics = list(args.topic)
        else:
            y = load_yaml_mapping(args.config) if args.config else {}
            cfg = make_config(args.embodiment or y.get("embodiment"), y.get("action_layout"),
                              args.camera or y.get("cameras"), args.pose or y.get("poses"), y.get("grippers"),
                              y.get("command_topic"), y.get("task_topic"))
            topics = list(cfg.all_topics()) + ([y["marker_topic"]] if y.get("marker_topic") else []) + args.topic
        if not topics:
            raise ValueError("no topic to record")
        typestore = build_typestore(args.msg_path)
    except ValueError as e:
        print(f"lawam-record-bag: error: {e}", file=sys.stderr)
        return 2

    from lawam_policy.nodes.main import run

    writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    counts: dict = {}
    deadline = time.monotonic() + args.duration if args.duration else None

    def close(node) -> None:  # runs before destroy_node, also after Ctrl-C / SIGTERM: the bag is complete
        node.close()
        counts.update(node.counts)

    print(f"recording {topics} to {out} (Ctrl-C to stop)", flush=True)
    code = run(lambda: BagRecorder(writer, typestore, topics), ros_args, name="lawam-record-bag",
               until=lambda node: deadline is not None and time.monotonic() >= deadline, before_destroy=close)
    missing = [t for t in topics if t not in counts]
    print(f"bag {out} closed: {counts}" + (f"; never published: {missing}" if missing else ""), flush=True)
    return code


def cli():
    sys.exit(main())


if __name__ == "__main__":
    cli()
