"""`lawam`: the workspace's command line.

  lawam launch --list
  lawam launch <system> [name:=value ...] [--duration S] [--log-dir DIR] [--domain-id N]
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile

from lawam_bringup.systems import SYSTEMS, ArgumentError, get_system


def _usage_error(msg: str) -> int:
    print(f"lawam: error: {msg}", file=sys.stderr)
    return 2


def list_systems() -> str:
    lines = []
    for system in SYSTEMS.values():
        lines.append(f"{system.name}: {system.description}")
        for a in system.arguments:
            choices = f" {{{'|'.join(a.choices)}}}" if a.choices else ""
            lines.append(f"    {a.name}:={a.default!r}{choices}  {a.description}")
    return "\n".join(lines)


def parse_assignments(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ArgumentError(f"bad argument '{item}': expected name:=value")
        values[name] = value
    return values


def isolated_domain_id() -> int:
    # 1..100: valid on every platform, never 0 (the default domain a lab robot most likely uses).
    return 1 + os.getpid() % 100


def launch_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="lawam launch", description="Run a LaWAM system, every node its own process.")
    parser.add_argument("system", nargs="?", help=f"one of: {', '.join(SYSTEMS)}")
    parser.add_argument("assignments", nargs="*", metavar="name:=value")
    parser.add_argument("--list", action="store_true", help="list systems and their arguments")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many wall-clock seconds")
    parser.add_argument("--log-dir", default=None, help="also write each node's output to DIR/<node>.log")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="ROS_DOMAIN_ID (default: the environment's; with use_sim:=true and none set, an isolated one)")
    args = parser.parse_args(argv)
    if args.list:
        print(list_systems())
        return 0
    if not args.system:
        return _usage_error(f"missing system; valid: {', '.join(SYSTEMS)}")
    try:
        system = get_system(args.system)
        overrides = parse_assignments(args.assignments)
        values = system.arguments_with(overrides)
    except ArgumentError as e:
        return _usage_error(str(e))
    if args.duration is not None and args.duration <= 0:
        return _usage_error("--duration must be positive")

    from lawam_bringup.runner import Runner, plan

    env = dict(os.environ)
    sim = values.get("use_sim") == "true"
    if sim:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # a twin's commands never leave this machine
    if args.domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(args.domain_id)
    elif sim and "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(isolated_domain_id())
    env.setdefault("PYTHONUNBUFFERED", "1")

    with tempfile.TemporaryDirectory(prefix=f"lawam-{system.name}-") as scratch:
        try:
            plans = plan(system.name, overrides, scratch)
        except ArgumentError as e:  # e.g. no checkpoint for this configuration: nothing has started
            return _usage_error(str(e))
        except FileNotFoundError as e:
            print(f"lawam: error: {e}", file=sys.stderr)
            return 1
        runner = Runner(plans, env, log_dir=args.log_dir)
        runner.log("lawam", f"system {system.name}: {len(plans)} nodes, ROS_DOMAIN_ID="
                            f"{env.get('ROS_DOMAIN_ID', '0 (default)')}, discovery "
                            f"{env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET (default)')}")
        signal.signal(signal.SIGINT, runner.request_stop)
        signal.signal(signal.SIGTERM, runner.request_stop)
        runner.start()
        code = runner.wait(args.duration)
    runner.log("lawam", f"all nodes stopped (exit {code})")
    if runner.failure:
        print(f"lawam: error: {runner.failure}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "launch":
        return launch_main(rest)
    return _usage_error(f"unknown command '{command}'; valid: launch")


if __name__ == "__main__":
    sys.exit(main())
