"""lawam-eval: closed-loop evaluation in the twin (the paper's fixed-initial-configuration protocol, in sim).

    lawam-eval --system franka_pick_place                                  # shipped checkpoint, 30 seeds
    lawam-eval --system franka_pick_place --checkpoint DIR --seeds 0-9 --json out.json
    lawam-eval --system franka_pick_place --expert --seeds 3,5,7 --task "put the green cube in the bowl"

Brings up twin + bridge + policy node as subprocesses on the workspace configs (``--attach`` uses a system that
is already running, e.g. from the launch files), then per seed and instruction: stop the policy (empty task on
/lawam/set_task) and reset the bridge, reset the twin to the seed with that instruction (Reset.task), reset
the bridge (restart from the measured pose) and the policy (drop chunks and older frames) again, set the
policy's task, and wait for the twin's success signal or the sim-time timeout (`Evaluator.episode` says why
in that order). ``--expert`` evaluates the scripted expert instead (twin only, as fast as it runs): a check of the
evaluation loop itself.

Seeds: ``--seeds`` takes indices into lawam_sim.seeds.EVAL_SEEDS (0..29), a comma list of N or A-B (both
ends included), e.g. ``3,5,7``, ``0-9``, ``0-4,20``; ``--episodes N`` takes the first N (wrapping past 30).
``--selection-seeds`` takes scene seeds themselves in the same syntax (e.g. ``5000-5029``) for choosing between
checkpoints through the full system: model selection must never look at the evaluation seeds (issue 11), so
an evaluation seed there is refused.
Instructions: every instruction of the scene on every seed (paired: one seed, one layout, each instruction),
or only ``--task``. Checkpoint: none given = the scene's shipped default (lawam_bringup.systems); a
checkpoint for another embodiment or another ordered camera-role list than the system's is refused.
Bad input: a one-line error, exit 2, nothing started. Prints one line per episode, the success rate per
instruction and the sim real-time factor; ``--json`` writes all of it.

The stack is supervised as `lawam launch` supervises it (lawam_bringup.runner: SIGINT, then SIGTERM, then
SIGKILL). Ctrl-C or SIGTERM stops the evaluation: the stack is torn down, the episodes finished so far are
reported (and written with ``--json``, marked interrupted), exit 130 / 143. A node of the stack that exits
ends the evaluation with its last line (exit 1) instead of counting timeouts as policy failures.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import rclpy
from lawam_msgs.srv import Reset, SetTask
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool

from lawam_policy import topics
from lawam_policy.runtime import stamps
from lawam_sim.scenes import INSTRUCTIONS
from lawam_sim.seeds import EVAL_SEEDS

STALL_S = 60.0  # wall seconds without /clock progress before the evaluation gives up
LOW_RTF = 0.9   # a run below this real-time factor is flagged: the twin could not keep up with wall time
SET_TASK_SERVICE = topics.SET_TASK_SERVICE  # the policy node's set_task_service default


class UsageError(ValueError):
    """Bad command-line input (one line, exit 2)."""


def _registry():
    # Imported here: lawam_bringup depends on lawam_sim (package.xml), not the other way round.
    from lawam_bringup import systems
    return systems


def scenes() -> dict[str, tuple[str, str, float]]:
    """scene (= --system) -> (twin node, bridge node, default sim timeout s), from the system registry."""
    systems = _registry()
    return {scene: (s.twin, s.bridge, s.eval_timeout_s)
            for scene, s in ((sc, systems.SYSTEMS[name]) for sc, name in systems.SCENE_SYSTEMS.items())}


MAX_SELECTION_SEEDS = 1000  # two instructions each: days of sim on a laptop; also bounds a typo like 0-99999999


def _parse_list(text: str, flag: str, what: str, hint: str, n: int | None = None,
                max_count: int | None = None) -> list[int]:
    """Integers from ``"3,5,7"``, ``"0-9"`` or a mix (``"0-4,20"``); ranges include both ends. `what` names one
    item in errors ("index", "seed"), `hint` follows a syntax error; `n`: items must lie in 0..n-1; `max_count`:
    at most that many items. Raises UsageError for bad syntax, an empty range (B < A), an item out of range, too
    many items or a repeated item."""
    values: list[int] = []
    seen: set[int] = set()
    for item in text.split(","):
        lo, sep, hi = item.strip().partition("-")
        if not lo.isdecimal() or (sep and not hi.isdecimal()):
            raise UsageError(f"{flag} {text!r}: {item.strip()!r} is not {'an' if what[0] in 'aeiou' else 'a'} "
                             f"{what} N or a range A-B ({hint})")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise UsageError(f"{flag} {text!r}: the range {a}-{b} is empty (write the smaller {what} first)")
        if n is not None and b >= n:
            raise UsageError(f"{flag} {text!r}: {what} {b} is out of range: the evaluation seeds are 0..{n - 1}")
        if max_count is not None and len(values) + b - a + 1 > max_count:
            raise UsageError(f"{flag} {text!r}: more than {max_count} {what}s")
        for v in range(a, b + 1):
            if v in seen:
                raise UsageError(f"{flag} {text!r}: {what} {v} is given twice")
            seen.add(v)
            values.append(v)
    return values


def parse_seeds(text: str, n: int = len(EVAL_SEEDS)) -> list[int]:
    """Indices into EVAL_SEEDS from ``"3,5,7"``, ``"0-9"`` or a mix (``"0-4,20"``); ranges include both ends.

    Raises UsageError for bad syntax, an empty range (B < A), an index outside 0..n-1 or a repeated index."""
    return _parse_list(text, "--seeds", "index", f"indices into the {n} evaluation seeds, e.g. 3,5,7 or 0-9", n)


def parse_selection_seeds(text: str) -> list[int]:
    """Scene seeds for model selection, same syntax as parse_seeds. Raises UsageError for bad syntax, an empty
    range, a repeated seed or an evaluation seed (EVAL_SEEDS: selection must not look at them)."""
    seeds = _parse_list(text, "--selection-seeds", "seed", "scene seeds, e.g. 5000-5029",
                        max_count=MAX_SELECTION_SEEDS)
    held = [s for s in seeds if s in EVAL_SEEDS]
    if held:
        raise UsageError(f"--selection-seeds {text!r}: seed {held[0]} is an evaluation seed (index "
                         f"{EVAL_SEEDS.index(held[0])}); model selection must use other seeds, e.g. 5000-5029")
    return seeds


def check_checkpoint(checkpoint: str, system_name: str, embodiment: str, roles: list[str]) -> None:
    """Refuse a checkpoint the system cannot run: its default embodiment or its ordered camera roles for that
    embodiment (lawam_config.json, LaWAMConfig) differ from the system's. Raises UsageError naming both."""
    path = Path(checkpoint) / "lawam_config.json"
    try:
        cfg = json.loads(path.read_text())
        ck_embodiment = cfg["default_embodiment"]
        ck_roles = list(cfg.get("camera_roles", {}).get(ck_embodiment, ["primary"]))  # LaWAMConfig.cameras()
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise UsageError(f"checkpoint {checkpoint}: cannot read its lawam_config.json ({type(e).__name__}: {e}); "
                         f"not a LaWAM checkpoint") from None
    if ck_embodiment != embodiment or ck_roles != roles:
        raise UsageError(f"checkpoint {checkpoint} is for embodiment {ck_embodiment!r} with cameras {ck_roles}; "
                         f"system {system_name} runs {embodiment!r} with cameras {roles}")


def launch_stack(scene: str, checkpoint: str, task: str, log_dir: Path, expert: bool = False):
    """Start the nodes of ``scene``'s system exactly as `lawam launch <system> use_sim:=true` would (the one
    system registry: twin, policy node and bridge with their parameter files and overrides); with ``expert`` the
    twin alone, driven by its scripted expert. ``checkpoint``: a directory, ``preset:NAME``, or "" for the
    scene's shipped one (systems.resolve_checkpoint)."""
    from lawam_bringup import runner
    systems = _registry()
    if expert:  # only the twin is started: no checkpoint is needed (a scene may ship none yet)
        checkpoint = systems.PRESET_PREFIX + "tiny"
    plans = runner.plan(systems.SCENE_SYSTEMS[scene], {"use_sim": "true", "checkpoint": checkpoint, "task": task},
                        str(log_dir))
    twin = scenes()[scene][0]
    if expert:
        twin_plan = next(p for p in plans if p.spec.name == twin)
        plans = [runner.ProcessPlan(twin_plan.spec, twin_plan.cmd + ["-p", "expert:=true", "-p",
                                                                     "real_time_factor:=0.0"])]
    stack = runner.Runner(plans, dict(os.environ), log_dir=str(log_dir), out=open(os.devnull, "w"))
    stack.start()  # the nodes' output goes to the log directory
    return stack


class Interrupted(Exception):
    """SIGINT or SIGTERM during an evaluation."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


def _wait(fut, what: str, timeout: float = 30.0):
    t0 = time.monotonic()
    while not fut.done():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{what} did not answer")
        time.sleep(0.01)
    return fut.result()


class StackDied(RuntimeError):
    """A node of the evaluated stack exited (runner.Runner.check_required says which and why)."""


class Evaluator:
    def __init__(self, node, twin: str, bridge: str | None, stack=None):
        self.node = node
        self.stack = stack  # runner.Runner of the nodes lawam-eval started; None with --attach
        self.sim_time = 0.0
        self.last_clock_wall = time.monotonic()
        self.success: bool | None = None
        self.cond = threading.Condition()
        node.create_subscription(Clock, "/clock", self._on_clock, 10)
        node.create_subscription(Bool, "/lawam_sim/success", self._on_success, 10)
        others = (bridge, "policy_node") if bridge else ()
        self.resets = {n: node.create_client(Reset, f"/{n}/reset") for n in (twin, *others)}
        self.set_task = node.create_client(SetTask, SET_TASK_SERVICE) if bridge else None
        self.twin = twin

    def _on_clock(self, m: Clock) -> None:
        with self.cond:
            self.sim_time = stamps.stamp_to_seconds(m.clock)
            self.last_clock_wall = time.monotonic()
            self.cond.notify_all()

    def _on_success(self, m: Bool) -> None:
        with self.cond:
            self.success = bool(m.data)
            self.cond.notify_all()

    def wait_ready(self, timeout: float = 120.0) -> None:
        t0 = time.monotonic()
        clients = {f"/{n}/reset": c for n, c in self.resets.items()}
        if self.set_task is not None:
            clients[SET_TASK_SERVICE] = self.set_task
        for name, cli in clients.items():
            while not cli.wait_for_service(timeout_sec=1.0):
                self.check_stack()
                if time.monotonic() - t0 > timeout:
                    raise RuntimeError(f"{name} did not come up within {timeout:g} s")

    def check_stack(self) -> None:
        """Raise StackDied when a node lawam-eval started has exited (its reason, not the symptom)."""
        if self.stack is not None and self.stack.check_required():
            raise StackDied(self.stack.failure)

    def _call(self, name: str, seed: int, task: str = "") -> str:
        r = _wait(self.resets[name].call_async(Reset.Request(seed=seed, task=task)), f"/{name}/reset")
        if not r.success:
            raise RuntimeError(f"/{name}/reset failed: {r.message}")
        return r.message

    def _policy_task(self, task: str) -> None:
        r = _wait(self.set_task.call_async(SetTask.Request(task=task)), SET_TASK_SERVICE)
        if not r.success:
            raise RuntimeError(f"{SET_TASK_SERVICE} refused {task!r}: {r.message}")

    def _reset_followers(self) -> None:
        """Reset the bridge and the policy node (not the twin)."""
        for name in self.resets:
            if name != self.twin:
                self._call(name, -1)

    def episode(self, seed: int, instruction: str, timeout_s: float) -> tuple[bool, float, float]:
        """One episode: (success, sim seconds, wall seconds) from the reset to success or the timeout.

        Nothing of the previous episode may reach this one. Before the twin resets, the policy stops (empty
        task) and the bridge is reset, so it forgets its chunks and sends no gripper command until it accepts
        a new chunk: a bridge still streaming the old episode's commands after the twin's reset closed the
        reset gripper again when that episode ended holding a cube. After the twin's reset the bridge and the
        policy are reset again, to start from the new scene, and the policy gets the instruction."""
        if self.set_task is not None:
            self._policy_task("")
            self._reset_followers()
        with self.cond:
            self.success = None
        message = self._call(self.twin, seed, instruction)
        if "unknown task" in message:  # an attached twin running another scene
            raise RuntimeError(f"/{self.twin}/reset: {message}")
        self._reset_followers()
        if self.set_task is not None:
            self._policy_task(instruction)
        with self.cond:
            # the twin announces the new episode with success=False; ignore anything older
            self.cond.wait_for(lambda: self.success is False, timeout=30)
            start, wall0 = self.sim_time, time.monotonic()
            while True:
                if self.success:
                    return True, self.sim_time - start, time.monotonic() - wall0
                if self.sim_time - start >= timeout_s:
                    return False, self.sim_time - start, time.monotonic() - wall0
                self.check_stack()
                if time.monotonic() - self.last_clock_wall > STALL_S:
                    raise RuntimeError("/clock stopped advancing")
                self.cond.wait(timeout=1.0)


def summarise(results: list[dict], instructions: list[str]) -> dict:
    """Success rate overall and per instruction, mean sim time to success per instruction (None without a
    success), and the real-time factor reached (sim s / wall s over all episodes; flagged below LOW_RTF)."""
    per = {}
    for instruction in instructions:
        eps = [r for r in results if r["instruction"] == instruction]
        times = [r["sim_time_s"] for r in eps if r["success"]]
        per[instruction] = {"episodes": len(eps), "successes": len(times),
                            "success_rate": len(times) / len(eps) if eps else None,
                            "mean_time_to_success_s": round(sum(times) / len(times), 2) if times else None}
    wall = sum(r["wall_time_s"] for r in results)
    rtf = sum(r["sim_time_s"] for r in results) / wall if wall > 0 else None
    return {"success_rate": sum(r["success"] for r in results) / max(1, len(results)),
            "per_instruction": per,
            "real_time_factor": round(rtf, 3) if rtf is not None else None,
            "real_time_factor_low": rtf is not None and rtf < LOW_RTF}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's default also prints the usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv=None) -> tuple[argparse.Namespace, list[tuple[int | None, int]], list[str]]:
    """Arguments, the (evaluation seed index or None, scene seed) pairs and the instructions to run. Exits 2 with
    one line on bad input."""
    ap = _Parser(prog="lawam-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=sorted(scenes()), required=True, help="the simulated scene")
    ap.add_argument("--checkpoint", default="",
                    help="checkpoint dir; empty: the scene's shipped default; preset:tiny: untrained")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--episodes", type=int, help="the first N evaluation seeds (default: all 30)")
    which.add_argument("--seeds", metavar="LIST|A-B", help="indices into the evaluation seeds: 3,5,7 or 0-9")
    which.add_argument("--selection-seeds", metavar="LIST|A-B",
                       help="scene seeds for model selection, never evaluation seeds: e.g. 5000-5029")
    ap.add_argument("--timeout-s", type=float, help="sim seconds per episode (default per system)")
    ap.add_argument("--task", help="run only this instruction of the scene (default: each one on every seed)")
    ap.add_argument("--attach", action="store_true", help="use an already running twin, bridge and policy")
    ap.add_argument("--expert", action="store_true", help="evaluate the twin's scripted expert (no policy)")
    ap.add_argument("--json", type=Path, help="write per-episode and per-instruction results here")
    args = ap.parse_args(argv)
    try:
        if args.selection_seeds is not None:
            seeds = [(None, s) for s in parse_selection_seeds(args.selection_seeds)]
        elif args.seeds is not None:
            seeds = [(i, EVAL_SEEDS[i]) for i in parse_seeds(args.seeds)]
        else:
            n = len(EVAL_SEEDS) if args.episodes is None else args.episodes
            if n < 1:
                raise UsageError(f"--episodes {n}: must be at least 1")
            seeds = [(i % len(EVAL_SEEDS), EVAL_SEEDS[i % len(EVAL_SEEDS)]) for i in range(n)]
        known = INSTRUCTIONS[args.system]
        if args.task is None:
            instructions = list(known)
        else:
            match = [i for i in known if i.lower() == " ".join(args.task.split()).lower()]
            if not match:
                raise UsageError(f"--task {args.task!r} is not an instruction of {args.system}; known: "
                                 + ", ".join(repr(i) for i in known))
            instructions = match
        if not args.expert and not args.attach:
            systems = _registry()
            system = systems.SYSTEMS[systems.SCENE_SYSTEMS[args.system]]
            args.checkpoint = systems.resolve_checkpoint(args.checkpoint, True, args.system, "--checkpoint ")
            if not args.checkpoint.startswith(systems.PRESET_PREFIX):
                check_checkpoint(args.checkpoint, system.name, system.embodiment, system.camera_roles())
    except ValueError as e:  # UsageError, and the registry's CheckpointError
        ap.error(str(e))
    return args, seeds, instructions


def _spin(executor, spinning: threading.Event) -> None:
    """Spin until `spinning` is cleared. Executor.shutdown() does not wait for a spin in another thread."""
    while spinning.is_set():
        executor.spin_once(timeout_sec=0.1)


def main(argv=None) -> int:
    args, seeds, instructions = parse_args(argv)
    twin, bridge, default_timeout = scenes()[args.system]
    timeout_s = args.timeout_s or default_timeout
    stack, log_dir = None, Path(tempfile.mkdtemp(prefix="lawam-eval-"))
    results, stopped, status = [], None, 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    node = executor = spinner = None
    spinning = threading.Event()
    try:
        if not args.attach:
            stack = launch_stack(args.system, args.checkpoint, instructions[0], log_dir, args.expert)
            print(f"started {'the twin with its expert' if args.expert else 'twin, bridge and policy'} "
                  f"(logs in {log_dir})", flush=True)
        # rclpy's own handlers would swallow SIGTERM (the process went on with its stack running)
        rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        node = rclpy.create_node("lawam_eval")
        executor = rclpy.executors.SingleThreadedExecutor()
        executor.add_node(node)
        spinning.set()
        spinner = threading.Thread(target=_spin, args=(executor, spinning), daemon=True)
        spinner.start()
        ev = Evaluator(node, twin, None if args.expert else bridge, stack)
        ev.wait_ready()
        for index, seed in seeds:
            for instruction in instructions:  # paired: the same layout for each instruction
                ok, t, wall = ev.episode(seed, instruction, timeout_s)
                results.append({"episode": len(results), "seed_index": index, "seed": seed,
                                "instruction": instruction, "success": ok, "sim_time_s": round(t, 2),
                                "wall_time_s": round(wall, 2)})
                print(f"episode {len(results) - 1:3d} seed {seed} {instruction!r}: "
                      f"{'success' if ok else 'timeout'} after {t:.1f} s sim", flush=True)
    except Interrupted as e:
        stopped, status = f"interrupted ({e})", 128 + e.signum
    except RuntimeError as e:  # StackDied (a node exited), a service that never came up, a stalled clock
        # a dead node is the cause of any symptom here (an unanswered reset, a stalled clock): name it
        cause = stack.check_required() if stack is not None else None
        stopped, status = f"error: {cause or e}", 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the teardown short
            signal.signal(sig, signal.SIG_IGN)
        if spinner is not None:
            # a spin still inside rcl at exit keeps DDS threads joinable: the process aborted (SIGABRT,
            # 'terminate called without an active exception') after printing its result
            spinning.clear()
            spinner.join()
        if executor is not None:
            executor.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
        if stack is not None:
            stack.shutdown()
    if stopped:
        print(f"lawam-eval: {stopped}; stack stopped after {len(results)} episode(s)"
              + ("; the results so far:" if results else ""), file=sys.stderr, flush=True)
        if not results:
            return status
    summary = summarise(results, instructions)
    n_ok = sum(r["success"] for r in results)
    print(f"{args.system}: success rate {n_ok}/{len(results)} = {100 * summary['success_rate']:.1f} %")
    for instruction, st in summary["per_instruction"].items():
        mean_t = st["mean_time_to_success_s"]
        print(f"  {instruction!r}: {st['successes']}/{st['episodes']}"
              + (f", mean time to success {mean_t:.1f} s sim" if mean_t is not None else ""))
    if summary["real_time_factor"] is not None:
        low = summary["real_time_factor_low"]
        print(f"sim real-time factor {summary['real_time_factor']:.2f}"
              + (f" (below {LOW_RTF}: the twin ran slower than wall time)" if low else ""))
    if args.json:
        args.json.write_text(json.dumps({"system": args.system, "checkpoint": args.checkpoint,
                                         "expert": args.expert, "instructions": instructions,
                                         "interrupted": stopped,
                                         "seeds": [seed for _, seed in seeds],
                                         "evaluation_seeds": args.selection_seeds is None,
                                         "episodes": results, **summary}, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
