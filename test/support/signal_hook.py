#!/usr/bin/env python3
"""Test-support executable: run a node's real entry point and deliver extra stop signals at the two moments
that used to crash or print tracebacks, deterministically.

    python test/support/signal_hook.py MODULE CLASS|PKG.MODULE:CLASS [--ros-args ...]

`CLASS.destroy_node` (of MODULE) is wrapped so that, once the node is being destroyed (after the test's own
first SIGINT), the process sends itself SIGINT and SIGTERM *inside* destroy_node, and again right after
MODULE.main() returned (as `ros2 launch` and a terminal both do: every node gets the signal twice, then
launch escalates). Prints markers the test checks; exits with main()'s code.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys
import time


def _signal_self(where: str) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(os.getpid(), sig)
        time.sleep(0.02)  # let the handler run here (Python runs it between bytecodes of this thread)
    print(f"hook: SIGINT+SIGTERM delivered {where}", flush=True)


def main() -> int:
    module_name, class_name, *ros_args = sys.argv[1:]
    module = importlib.import_module(module_name)
    if ":" in class_name:  # a class defined elsewhere, e.g. rclpy.node:Node for a node class built inside main()
        where, _, class_name = class_name.partition(":")
        cls = getattr(importlib.import_module(where), class_name)
    else:
        cls = getattr(module, class_name)
    original = cls.destroy_node

    def destroy_node(self, *args, **kwargs):
        _signal_self("inside destroy_node")
        return original(self, *args, **kwargs)

    cls.destroy_node = destroy_node
    print("hook: starting", flush=True)
    code = module.main([sys.argv[0], *ros_args])
    print(f"hook: main returned {code}", flush=True)
    _signal_self("after main returned")
    return 0 if code is None else int(code)


if __name__ == "__main__":
    sys.exit(main())
