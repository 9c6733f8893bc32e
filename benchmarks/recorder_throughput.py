#!/usr/bin/env python3
"""Recorder throughput: does the recorder node keep up with 3 cameras x 30 Hz at 224x224 (+ a 100 Hz pose
and a 15 Hz teleop command) without dropping frames, and how fast does an episode get written?

    python benchmarks/recorder_throughput.py [--seconds 20] [--fps 30] [--cameras 3] [--size 224] [--episodes 2]

The recorder runs as its own process (the real node, `python -m lawam_training.recorder_node`); this process
publishes the stand-in robot's topics. Per episode it prints: primary-camera images published / seen by the
recorder / recorded as frames, frames dropped by the recorder (writer queue full), images of the other cameras
reused because none newer had arrived, and the write (commit) time and throughput. Images are a moving
smooth texture with sensor noise (about as hard to encode as camera images; --flat for uniform ones).
Exit status 1 if the recorder dropped a frame or recorded fewer than 99 % of the published ones.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# test support (demo_data, ros_isolation) is not installed: it lives under test/
sys.path[:0] = [str(ROOT / "src" / "lawam_training"), str(ROOT / "src" / "lawam_policy"), str(ROOT / "test"),
                str(ROOT / "test" / "support")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each episode")
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--flat", action="store_true", help="uniform images (trivial to encode) instead of texture")
    ap.add_argument("--keep", help="keep the dataset in this directory")
    args = ap.parse_args()

    import rclpy
    from lawam_msgs.srv import StartEpisode, StopEpisode
    from std_msgs.msg import String

    from demo_data import DemoPublisher, private_ros_env, wait_for

    env = private_ros_env()
    env["PYTHONPATH"] = os.pathsep.join(sys.path[:4] + [env.get("PYTHONPATH", "")])
    work = Path(tempfile.mkdtemp(prefix="lawam_bench_"))
    out = Path(args.keep).absolute() if args.keep else work / "demos"
    cams = [f"/bench/cam{i}" for i in range(args.cameras)]
    names = ["primary"] + [f"cam{i}" for i in range(1, args.cameras)]
    cam_param = "[" + ",".join(f"'{n}={t}'" for n, t in zip(names, cams)) + "]"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lawam_training.recorder_node", "--ros-args", "-p", f"output:={out}",
         "-p", f"fps:={args.fps}", "-p", f"cameras:={cam_param}", "-p", "pose_topics:=['arm=/bench/pose']",
         "-p", "gripper_topics:=['arm=/bench/grip']", "-p", "task:=benchmark"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rclpy.init()
    node = rclpy.create_node("recorder_benchmark")
    pub = DemoPublisher(node, cams, {"arm": "/bench/pose"}, gripper_topic="/bench/grip", cam_hz=30.0,
                        size=(args.size, args.size), texture=not args.flat).start()
    status = {}
    node.create_subscription(String, "/lawam_recorder/status", lambda m: status.update(json.loads(m.data)), 10)
    start = node.create_client(StartEpisode, "/lawam_recorder/start_episode")
    stop = node.create_client(StopEpisode, "/lawam_recorder/stop_episode")
    spinner = threading.Thread(target=rclpy.spin, args=(node,), daemon=True)
    spinner.start()
    ok = True
    try:
        wait_for(lambda: proc.poll() is None and all(p.get_subscription_count() for p in pub.publishers()), 60,
                 what="the recorder")
        wait_for(lambda: "recording" in status, 30, what="recorder status")
        print(f"recorder: {args.cameras} cameras x 30 Hz at {args.size}x{args.size}, dataset fps {args.fps}, "
              f"{args.seconds:.0f} s episodes, {os.cpu_count()} CPU cores")
        for ep in range(args.episodes):
            fut = start.call_async(StartEpisode.Request(task="benchmark"))
            wait_for(fut.done, 60, what="start_episode")
            assert fut.result().success, fut.result().message
            published0 = pub.counts["cam"]
            time.sleep(args.seconds)
            published = pub.counts["cam"] - published0
            snap = dict(status)
            t0 = time.monotonic()
            fut = stop.call_async(StopEpisode.Request())
            wait_for(fut.done, 600, what="stop_episode")
            write_s = time.monotonic() - t0
            res = fut.result()
            assert res.success, res.message
            wait_for(lambda: not status.get("recording", True), 10, what="final status")
            final = dict(status)
            n = res.num_frames
            mb = n * args.cameras * args.size * args.size * 3 / 1e6
            expected = round(published * args.fps / 30.0)
            print(f"episode {ep}: primary images published {published} (during recording, ~{snap['primary_frames']} "
                  f"seen by the recorder by then), frames recorded {n} (expected ~{expected}), "
                  f"recorder-dropped {final['dropped']}, decimated {final['decimated']}, other-camera images "
                  f"reused {final['repeated_images']}, conversion errors {final['conversion_errors']}")
            print(f"episode {ep}: commit (encode + write) {write_s:.1f} s for {n} frames x {args.cameras} cameras = "
                  f"{n / write_s:.1f} frames/s, {n * args.cameras / write_s:.0f} images/s, {mb / write_s:.1f} MB/s raw "
                  f"RGB; realtime factor {args.seconds / write_s:.2f}")
            lost = max(0, expected - n)
            pct = 100 * lost / max(1, expected)
            print(f"episode {ep}: frames lost in all (published - recorded) {lost} ({pct:.1f} %)")
            ok &= final["dropped"] == 0 and lost <= 0.01 * expected
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
        print(f"dataset on disk: {size:.1f} MB ({out})")
    finally:
        pub.stop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        node.destroy_node()
        rclpy.try_shutdown()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("PASS: the recorder kept up (nothing dropped by it, >= 99 % of the published frames recorded)" if ok
          else "FAIL: frames were dropped (see above; a machine busy with other work loses them in transport)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
