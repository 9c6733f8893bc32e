"""The one `main` of every LaWAM node: rclpy's own pattern (init, spin, destroy the node, try_shutdown), made
safe for the way nodes are really stopped.

Why not plain ``rclpy.init(); rclpy.spin(node)``: rclpy's signal handlers turn SIGINT into a KeyboardInterrupt
*and* shut the context down from another thread at once. ``ros2 launch`` and a terminal both signal the
process group, so a node usually gets SIGINT twice (and SIGTERM when launch escalates). That made the
second KeyboardInterrupt land inside ``destroy_node`` (skipping the rest of the clean-up: a twin's simulation
thread kept rendering while the interpreter tore down and segfaulted) or after ``main()`` returned (a
traceback), and the context shut down under a still-running executor or publisher thread ("failed to
initialize wait set: the given context is not valid", "publisher's context is invalid").

The mechanism here:
- SIGINT and SIGTERM only *request* a stop (a flag; the spin loop sees it within ``POLL_S``). They never
  raise, so any number of them, at any moment (during clean-up, after ``run`` returned), change nothing.
- The context is shut down only after the node is destroyed and its threads are joined, so nothing runs
  against an invalid context. Errors that still come from an already shut-down context are a normal end.
- No thread of ours may run while the interpreter tears down: if one is still alive after clean-up (a
  model load that is still in progress, a thread blocked on stdin), the process ends with ``os._exit``
  after flushing its output instead of finalising around it.
- A node that cannot do its job exits non-zero with one line ``<name>: error: <reason>`` on stderr: a
  configuration error raised while it is built (ValueError, bad parameter types: exit 2), or a failure it
  reports later with ``fail(node, reason)`` (e.g. a checkpoint it cannot load, from its loading thread:
  exit 1). ``lawam launch`` and the launch files stop the whole system on a required node's exit.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Callable

POLL_S = 0.1  # how long one spin iteration may block: the latency of a stop request
# rclpy's MultiThreadedExecutor.spin_once returns at once while a callback it handed to its pool is still running
# (its entity stays ready): the loop then pauses this long so it never holds the GIL against that callback (a
# recorder's episode commit took 31 s instead of under one while the loop spun).
MT_YIELD_S = 0.002
EXIT_ATTR = "_lawam_exit"  # (code, reason) set on a node by fail() / request_exit()
CONFIG_ERROR_CODE = 2
FAILURE_CODE = 1


class NodeFailure(Exception):
    """Raise while building a node (or from a callback) when it cannot work: one line, exit ``code``."""

    def __init__(self, reason: str, code: int = FAILURE_CODE):
        super().__init__(reason)
        self.code = code


def fail(node, reason: str, code: int = FAILURE_CODE) -> None:
    """From any thread: stop the node's process with exit ``code`` and the one-line ``reason``."""
    if getattr(node, EXIT_ATTR, None) is None:
        setattr(node, EXIT_ATTR, (int(code), str(reason)))


def request_exit(node) -> None:
    """From any thread: stop the node's process normally (exit 0), e.g. a teleop 'quit' key."""
    fail(node, "", 0)


class _StopRequests:
    """SIGINT/SIGTERM handlers that only record the request."""

    def __init__(self):
        self.event = threading.Event()
        self.count = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1
        self.event.set()

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)


def _config_errors() -> tuple:
    from rclpy.exceptions import ParameterException
    return (ValueError, ParameterException)


def _context_gone(context) -> bool:
    try:
        return not context.ok()
    except Exception:  # noqa: BLE001 - a context that cannot even answer is gone
        return True


def _say(name: str, reason: str) -> None:
    # One plain line on stderr: the last line `lawam launch` and the launch files report as the reason.
    print(f"{name}: error: {' '.join(str(reason).split())}", file=sys.stderr, flush=True)


def _label_before_the_node_exists(args) -> str:
    """The node name a one-line error starts with when the node could not be built: a remapped `__node:=`
    name, else the executable's name."""
    argv = list(args if args is not None else sys.argv)
    for item in argv:
        if isinstance(item, str) and item.startswith("__node:="):
            return item.split(":=", 1)[1]
    exe = os.path.basename(str(argv[0])) if argv else ""
    return exe[:-3] if exe.endswith(".py") else (exe or "lawam node")


def _stray_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and t.daemon]


def _exit_now_if_threads_remain(code: int) -> None:
    """A daemon thread still alive here would run during interpreter teardown (where touching MuJoCo, EGL
    or rclpy crashes the process): end the process without finalising around it."""
    if not _stray_threads():
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


def run(factory: Callable[[], object], args=None, *, name: str | None = None,
        executor_factory: Callable[[], object] | None = None,
        started: Callable[[object], None] | None = None,
        until: Callable[[object], bool] | None = None,
        before_destroy: Callable[[object], None] | None = None) -> int:
    """Build the node with ``factory()``, spin it until a stop request, destroy it, shut down; exit code.

    ``args``: command line for rclpy (``--ros-args ...``); ``name``: prefix of the one-line errors (default:
    the node's name); ``executor_factory``: e.g. a MultiThreadedExecutor (default single-threaded);
    ``started(node)``: runs once after the node is built; ``until(node)``: True ends the spin normally;
    ``before_destroy(node)``: runs before ``destroy_node`` (close files, write outputs), also on failures.
    Raises nothing for a stop, a shut-down context or a reported failure; an unexpected exception while the
    context is still valid is a bug: it propagates after the clean-up.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = _StopRequests()
    stop.install()  # before init: a signal during start-up is a stop request too
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    context = rclpy.get_default_context()
    node = executor = None
    code = 0
    label = name or _label_before_the_node_exists(args)
    pending: BaseException | None = None
    try:
        node = factory()
        label = name or node.get_name()
        executor = executor_factory() if executor_factory else SingleThreadedExecutor()
        executor.add_node(node)
        multi_threaded = isinstance(executor, MultiThreadedExecutor)
        if started is not None:
            started(node)
        while not stop.event.is_set() and context.ok():
            request = getattr(node, EXIT_ATTR, None)
            if request is not None:
                code, reason = request
                if code:
                    _say(label, reason)
                break
            if until is not None and until(node):
                break
            t0 = time.monotonic()
            executor.spin_once(timeout_sec=POLL_S)
            if multi_threaded and time.monotonic() - t0 < MT_YIELD_S:
                time.sleep(MT_YIELD_S)
    except NodeFailure as err:
        code = err.code
        _say(label, err)
    except _config_errors() as err:
        if node is None:  # raised while building: bad parameters
            code = CONFIG_ERROR_CODE
            _say(label, f"{type(err).__name__}: {err}" if not str(err) else err)
        elif _context_gone(context):
            pass
        else:
            pending = err
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # a KeyboardInterrupt raised explicitly by code we call: still a normal stop
    except Exception as err:  # noqa: BLE001
        if not _context_gone(context):
            pending = err  # a real bug: reported after the clean-up
    finally:
        code = _clean_up(node, executor, before_destroy, code, label)
    if pending is not None:
        raise pending
    _exit_now_if_threads_remain(code)
    return code


def _clean_up(node, executor, before_destroy, code: int, label: str) -> int:
    import rclpy
    context = rclpy.get_default_context()
    if node is not None and before_destroy is not None:
        try:
            before_destroy(node)
        except Exception as err:  # noqa: BLE001 - report, and still destroy and shut down
            _say(label, f"clean-up failed: {type(err).__name__}: {err}")
            code = code or FAILURE_CODE
    if executor is not None:
        try:
            executor.shutdown(timeout_sec=5.0)
        except Exception:  # noqa: BLE001 - an executor of a shut-down context: nothing left to stop
            pass
    if node is not None:
        try:
            node.destroy_node()
        except Exception as err:  # noqa: BLE001
            if not _context_gone(context):
                _say(label, f"destroy failed: {type(err).__name__}: {err}")
                code = code or FAILURE_CODE
    rclpy.try_shutdown()
    return code


def main_for(factory: Callable[[], object], **kwargs) -> Callable[..., int]:
    """``main = main_for(MyNode)``: a console-script entry point (``sys.exit(main())``)."""
    def main(args=None) -> int:
        return run(factory, args, **kwargs)
    return main
