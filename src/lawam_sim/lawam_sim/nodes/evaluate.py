"""lawam-eval: closed-loop evaluation in the twin (the paper's fixed-initial-configuration protocol, in sim).

    lawam-eval --system franka_pick_place --checkpoint DIR --episodes 30

Brings up twin + bridge + policy node as subprocesses on the workspace configs (``--attach`` uses a system that
is already running, e.g. from the launch files), then per episode: reset the twin to the next fixed evaluation
seed, reset the bridge (restart from the measured pose) and the policy (drop chunks), and wait for the twin's
success signal or the sim-time timeout. Prints one line per episode and the success rate; ``--json`` writes
the results. ``--expert`` evaluates the scripted expert instead (twin only, as fast as it runs): a check of the
evaluation loop itself.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rclpy
from lawam_msgs.srv import Reset
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool

from lawam_sim.seeds import EVAL_SEEDS

SYSTEMS = {
    # system: (twin module, twin node, bridge module, bridge node, embodiment, scene, camera topics, sim timeout s)
    "franka_pick_place": ("franka_twin", "franka_bridge", "franka_panda", "franka_pick_place",
                          ["/camera/color/image_raw"], 30.0),
    "franka_drawer": ("franka_twin", "franka_bridge", "franka_panda", "franka_drawer",
                      ["/camera/color/image_raw"], 30.0),
    "quanta_towel_fold": ("quanta_twin", "quanta_bridge", "quanta_x1", "quanta_towel_fold",
                          ["/cam_high/image_raw", "/cam_left_wrist/image_raw", "/cam_right_wrist/image_raw"], 45.0),
}
TASKS = {"franka_pick_place": "put the red cube in the bowl", "franka_drawer": "open the drawer",
         "quanta_towel_fold": "fold the towel in half"}
STALL_S = 60.0  # wall seconds without /clock progress before the evaluation gives up


def workspace_root() -> Path:
    env = os.environ.get("LAWAM_WS")
    return Path(env) if env else Path.cwd()


def launch_stack(system: str, checkpoint: str, task: str, log_dir: Path, expert: bool = False
                 ) -> list[subprocess.Popen]:
    twin, bridge, embodiment, scene, cameras, _ = SYSTEMS[system]
    cfg = workspace_root() / "config"
    cams = "[" + ",".join(f"'{c}'" for c in cameras) + "]"
    if expert:
        cmds = {twin: [sys.executable, "-m", f"lawam_sim.nodes.{twin}", "--ros-args",
                       "--params-file", str(cfg / f"{twin}.yaml"), "-p", f"scene:={scene}", "-p", "expert:=true",
                       "-p", "real_time_factor:=0.0"]}
        return _spawn(cmds, log_dir)
    cmds = {
        twin: [sys.executable, "-m", f"lawam_sim.nodes.{twin}", "--ros-args", "--params-file", str(cfg / f"{twin}.yaml"),
               "-p", f"scene:={scene}"],
        bridge: [sys.executable, "-m", f"lawam_policy.nodes.{bridge}", "--ros-args",
                 "--params-file", str(cfg / f"{bridge}.yaml"), "-p", "use_sim_time:=true"],
        "policy_node": [sys.executable, "-m", "lawam_policy.nodes.policy_node", "--ros-args",
                        "--params-file", str(cfg / "policy.yaml"), "-p", "use_sim_time:=true",
                        "-p", f"embodiment:={embodiment}", "-p", f"camera_topics:={cams}", "-p", f"task:={task}"]
                       + (["-p", f"checkpoint:={checkpoint}"] if checkpoint else []),
    }
    return _spawn(cmds, log_dir)


def _spawn(cmds: dict, log_dir: Path) -> list[subprocess.Popen]:
    procs = []
    for name, cmd in cmds.items():
        with open(log_dir / f"{name}.log", "w") as log:  # the child keeps its own handle
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    return procs


class Evaluator:
    def __init__(self, node, twin: str, bridge: str | None):
        self.node = node
        self.sim_time = 0.0
        self.last_clock_wall = time.monotonic()
        self.success: bool | None = None
        self.cond = threading.Condition()
        node.create_subscription(Clock, "/clock", self._on_clock, 10)
        node.create_subscription(Bool, "/lawam_sim/success", self._on_success, 10)
        others = (bridge, "policy_node") if bridge else ()
        self.resets = {n: node.create_client(Reset, f"/{n}/reset") for n in (twin, *others)}
        self.twin = twin

    def _on_clock(self, m: Clock) -> None:
        with self.cond:
            self.sim_time = m.clock.sec + m.clock.nanosec * 1e-9
            self.last_clock_wall = time.monotonic()
            self.cond.notify_all()

    def _on_success(self, m: Bool) -> None:
        with self.cond:
            self.success = bool(m.data)
            self.cond.notify_all()

    def wait_ready(self, timeout: float = 120.0) -> None:
        t0 = time.monotonic()
        for name, cli in self.resets.items():
            if not cli.wait_for_service(timeout_sec=max(1.0, timeout - (time.monotonic() - t0))):
                raise RuntimeError(f"/{name}/reset did not come up")

    def _call(self, name: str, seed: int) -> str:
        fut = self.resets[name].call_async(Reset.Request(seed=seed))
        t0 = time.monotonic()
        while not fut.done():
            if time.monotonic() - t0 > 30:
                raise RuntimeError(f"/{name}/reset did not answer")
            time.sleep(0.01)
        r = fut.result()
        if not r.success:
            raise RuntimeError(f"/{name}/reset failed: {r.message}")
        return r.message

    def episode(self, seed: int, timeout_s: float) -> tuple[bool, float]:
        with self.cond:
            self.success = None
        self._call(self.twin, seed)
        for name in self.resets:
            if name != self.twin:
                self._call(name, -1)
        with self.cond:
            # the twin announces the new episode with success=False; ignore anything older
            self.cond.wait_for(lambda: self.success is False, timeout=30)
            start = self.sim_time
            while True:
                if self.success:
                    return True, self.sim_time - start
                if self.sim_time - start >= timeout_s:
                    return False, self.sim_time - start
                if time.monotonic() - self.last_clock_wall > STALL_S:
                    raise RuntimeError("/clock stopped advancing")
                self.cond.wait(timeout=1.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lawam-eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    ap.add_argument("--checkpoint", default="", help="checkpoint dir; empty: the policy's preset (random weights)")
    ap.add_argument("--episodes", type=int, default=len(EVAL_SEEDS))
    ap.add_argument("--timeout-s", type=float, help="sim seconds per episode (default per system)")
    ap.add_argument("--task", help="instruction (default per system)")
    ap.add_argument("--attach", action="store_true", help="use an already running twin, bridge and policy")
    ap.add_argument("--expert", action="store_true", help="evaluate the twin's scripted expert (no policy)")
    ap.add_argument("--json", type=Path, help="write per-episode results here")
    args = ap.parse_args(argv)
    twin, bridge, *_rest, default_timeout = SYSTEMS[args.system]
    timeout_s = args.timeout_s or default_timeout
    procs, log_dir = [], Path(tempfile.mkdtemp(prefix="lawam-eval-"))
    if not args.attach:
        procs = launch_stack(args.system, args.checkpoint, args.task or TASKS[args.system], log_dir, args.expert)
        print(f"started {'the twin with its expert' if args.expert else 'twin, bridge and policy'} "
              f"(logs in {log_dir})", flush=True)
    rclpy.init()
    node = rclpy.create_node("lawam_eval")
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    results = []
    try:
        ev = Evaluator(node, twin, None if args.expert else bridge)
        ev.wait_ready()
        for i in range(args.episodes):
            seed = EVAL_SEEDS[i % len(EVAL_SEEDS)]
            ok, t = ev.episode(seed, timeout_s)
            results.append({"episode": i, "seed": seed, "success": ok, "sim_time_s": round(t, 2)})
            print(f"episode {i:3d} seed {seed}: {'success' if ok else 'timeout'} after {t:.1f} s sim", flush=True)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    n_ok = sum(r["success"] for r in results)
    rate = n_ok / max(1, len(results))
    print(f"{args.system}: success rate {n_ok}/{len(results)} = {100 * rate:.1f} %")
    if args.json:
        args.json.write_text(json.dumps({"system": args.system, "checkpoint": args.checkpoint,
                                         "episodes": results, "success_rate": rate}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
