"""Run a system description without ROS 2's launch tooling: every node its own process.

Same nodes, parameters and remappings as the launch files (both come from systems.py); each
child's output is prefixed with its node name; Ctrl-C sends SIGINT to the children, then SIGTERM
(and finally SIGKILL) after timeouts; a required node that exits takes the system down with a
non-zero exit and the node's last output line as the reason (the nodes' shared main ends a node that
cannot work with one line `<node>: error: <reason>`).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import yaml

from lawam_bringup.systems import NodeSpec, config_dir, get_system


@dataclass
class ProcessPlan:
    spec: NodeSpec
    cmd: list[str]
    param_files: list[str] = field(default_factory=list)  # config files, then the overrides file


def executable_path(package: str, executable: str) -> str:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    try:
        prefix = get_package_prefix(package)
    except PackageNotFoundError:
        raise FileNotFoundError(f"package '{package}' is not built/installed (run `make build`)") from None
    path = os.path.join(prefix, "lib", package, executable)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"executable '{executable}' of package '{package}' not found at {path}")
    return path


def plan(system_name: str, overrides: dict[str, str], scratch_dir: str) -> list[ProcessPlan]:
    """The exact command lines `lawam launch` would start (what the parity test inspects)."""
    cfg = config_dir()
    plans = []
    for spec in get_system(system_name).resolve(overrides):
        files = [os.path.join(cfg, f) for f in spec.param_files]
        for path in files:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"parameter file {path} of node '{spec.name}' is not installed "
                                        f"(rebuild: make build)")
        if spec.parameters:
            # Overrides go through a params file, as launch_ros does with dict parameters: no
            # re-quoting of strings, lists or empty values on a command line.
            path = os.path.join(scratch_dir, f"{spec.name}.overrides.yaml")
            with open(path, "w") as f:
                yaml.safe_dump({spec.name: {"ros__parameters": dict(spec.parameters)}}, f)
            files.append(path)
        cmd = [executable_path(spec.package, spec.executable), "--ros-args", "-r", f"__node:={spec.name}"]
        for path in files:
            cmd += ["--params-file", path]
        for src, dst in spec.remappings:
            cmd += ["-r", f"{src}:={dst}"]
        plans.append(ProcessPlan(spec, cmd, files))
    return plans


class Runner:
    def __init__(self, plans: list[ProcessPlan], env: dict[str, str], log_dir: str | None = None,
                 sigint_timeout: float = 8.0, sigterm_timeout: float = 4.0, out=sys.stdout):
        self.plans, self.env, self.log_dir = plans, env, log_dir
        self.sigint_timeout, self.sigterm_timeout = sigint_timeout, sigterm_timeout
        self.out = out
        self.procs: dict[str, subprocess.Popen] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.last_line: dict[str, str] = {}  # each node's last non-empty output line
        self.failure: str | None = None  # why the system was stopped, when a required node exited
        self._print_lock = threading.Lock()
        self._stop = threading.Event()

    def log(self, name: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"[{name}] {line.rstrip()}\n")
            self.out.flush()

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        logfile = open(os.path.join(self.log_dir, f"{name}.log"), "w") if self.log_dir else None
        try:
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode(errors="replace")
                if line.strip():
                    self.last_line[name] = line.strip()
                self.log(name, line)
                if logfile:
                    logfile.write(line)
                    logfile.flush()
        finally:
            if logfile:
                logfile.close()

    def start(self) -> None:
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
        for p in self.plans:
            # Own session: a terminal's Ctrl-C reaches only the runner, which then stops the
            # children in order instead of all at once.
            proc = subprocess.Popen(p.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            self.procs[p.spec.name] = proc
            self.log("lawam", f"started {p.spec.name} (pid {proc.pid}): {' '.join(p.cmd)}")
            t = threading.Thread(target=self._pump, args=(p.spec.name, proc), daemon=True)
            t.start()
            self._threads[p.spec.name] = t

    def request_stop(self, *_):
        self._stop.set()

    def wait(self, duration: float | None = None) -> int:
        """Block until Ctrl-C, the duration, or a required node's death; then shut down. Exit code."""
        deadline = time.monotonic() + duration if duration else None
        code = 0
        while not self._stop.is_set():
            if deadline and time.monotonic() >= deadline:
                self.log("lawam", f"duration of {duration:g} s reached, shutting down")
                break
            if self.check_required():
                self.log("lawam", f"{self.failure}; shutting down")
                code = 1
                break
            if all(pr.poll() is not None for pr in self.procs.values()):
                break
            time.sleep(0.05)
        self.shutdown()
        return code

    def check_required(self) -> str | None:
        """Why the system cannot go on (also kept in `failure`): a required node that has exited, with its
        exit code and its last output line; None while every required node runs."""
        required = {p.spec.name for p in self.plans if p.spec.required}
        for name, proc in self.procs.items():
            if name in required and proc.poll() is not None:
                self._threads[name].join(timeout=2.0)  # its last words are still in the pipe
                reason = self.last_line.get(name, "")
                self.failure = f"required node {name} exited with code {proc.returncode}" + (
                    f": {reason}" if reason else "")
                return self.failure
        return None

    def shutdown(self) -> None:
        alive = lambda: [(n, p) for n, p in self.procs.items() if p.poll() is None]  # noqa: E731
        for sig, timeout in ((signal.SIGINT, self.sigint_timeout), (signal.SIGTERM, self.sigterm_timeout),
                             (signal.SIGKILL, 2.0)):
            procs = alive()
            if not procs:
                break
            if sig != signal.SIGINT:
                self.log("lawam", f"sending {sig.name} to {', '.join(n for n, _ in procs)}")
            for _, p in procs:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + timeout
            while alive() and time.monotonic() < end:
                time.sleep(0.05)
        for t in self._threads.values():
            t.join(timeout=2.0)
