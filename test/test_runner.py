"""`lawam launch`: process supervision and command-line errors."""
import io
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from lawam_bringup.runner import ProcessPlan, Runner
from lawam_bringup.systems import NodeSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAWAM = os.path.join(ROOT, ".venv", "bin", "lawam")


def _child(name, body, required=True):
    """A stand-in node: a Python process running `body`, writing what happened to stdout."""
    code = textwrap.dedent("""
        import signal, sys, time
        print("up", flush=True)
    """) + textwrap.dedent(body)
    return ProcessPlan(NodeSpec("pkg", "exe", name, required=required), [sys.executable, "-c", code])



@pytest.fixture(autouse=True)
def children_get_sigint():
    """A pytest started in the background by a non-interactive shell (`cmd &`, nohup) ignores SIGINT, and an
    ignored signal stays ignored across exec: the children would never see the runner's SIGINT. `lawam launch`
    installs its own SIGINT handler before it starts any node (caught signals reset on exec); do the same here."""
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)

STAYS_UP_UNTIL_SIGINT = """
    try:
        while True: time.sleep(0.05)
    except KeyboardInterrupt:
        print("got SIGINT, cleaning up", flush=True)
"""
IGNORES_SIGINT = """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *a: (print("got SIGTERM", flush=True), sys.exit(0)))
    while True: time.sleep(0.05)
"""


def _wait_until_up(runner, out, names):
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(f"[{n}] up" in out.getvalue() for n in names):
        time.sleep(0.05)


def test_required_node_death_stops_everything_with_nonzero_exit():
    out = io.StringIO()
    runner = Runner([_child("steady", STAYS_UP_UNTIL_SIGINT),
                     _child("crashy", "time.sleep(0.5); sys.exit(3)")], dict(os.environ), out=out)
    runner.start()
    code = runner.wait(duration=60)
    log = out.getvalue()
    assert code == 1
    assert "required node crashy exited with code 3" in log
    assert "[steady] got SIGINT, cleaning up" in log
    assert all(p.poll() is not None for p in runner.procs.values())


def test_required_node_failure_reason_is_its_last_line():
    out = io.StringIO()
    runner = Runner([_child("steady", STAYS_UP_UNTIL_SIGINT),
                     _child("picky", "print('picky: error: cannot load the model (/x): no config.json', "
                                     "file=sys.stderr, flush=True); sys.exit(1)")], dict(os.environ), out=out)
    runner.start()
    assert runner.wait(duration=60) == 1
    assert runner.failure == ("required node picky exited with code 1: picky: error: cannot load the model (/x): "
                              "no config.json")
    assert runner.failure in out.getvalue()


def test_optional_node_death_does_not_stop_the_system():
    out = io.StringIO()
    runner = Runner([_child("steady", STAYS_UP_UNTIL_SIGINT),
                     _child("optional", "sys.exit(4)", required=False)], dict(os.environ), out=out)
    runner.start()
    code = runner.wait(duration=2.0)
    assert code == 0
    assert "duration of 2 s reached" in out.getvalue()
    assert "[steady] got SIGINT" in out.getvalue()


def test_sigint_then_sigterm_after_timeout(tmp_path):
    out = io.StringIO()
    runner = Runner([_child("stubborn", IGNORES_SIGINT)], dict(os.environ), log_dir=str(tmp_path),
                    sigint_timeout=1.0, out=out)
    runner.start()
    _wait_until_up(runner, out, ["stubborn"])
    runner.request_stop()
    assert runner.wait() == 0
    log = out.getvalue()
    assert "sending SIGTERM to stubborn" in log and "[stubborn] got SIGTERM" in log
    # each node's output also lands in its own log file, unprefixed
    assert (tmp_path / "stubborn.log").read_text().splitlines()[:1] == ["up"]


@pytest.mark.parametrize("argv,expected", [
    (["launch", "nope"], "unknown system 'nope'; valid: franka_drawer, franka_pick_place, quanta_towel_fold"),
    (["launch", "franka_pick_place", "colour:=red"], "unknown argument 'colour'"),
    (["launch", "franka_pick_place", "use_sim:=maybe"], "bad value 'maybe' for argument 'use_sim'; valid: true, false"),
    (["launch", "franka_pick_place", "use_sim=true"], "expected name:=value"),
    (["fly"], "unknown command 'fly'"),
])
def test_bad_input_is_one_line_with_choices_and_exit_2(argv, expected):
    out = subprocess.run([LAWAM, *argv], capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]


def test_list_shows_systems_with_arguments():
    out = subprocess.run([LAWAM, "launch", "--list"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "use_sim:='true' {true|false}" in out.stdout
    assert "left_wrist_camera:='/cam_left_wrist/image_raw'" in out.stdout
    systems = [line.split(":")[0] for line in out.stdout.splitlines() if line and not line.startswith(" ")]
    assert systems == ["franka_pick_place", "franka_drawer", "quanta_towel_fold"]


@pytest.mark.slow
def test_lawam_launch_stops_the_system_when_the_policy_cannot_load_its_checkpoint(ros_env, worker_domain_id):
    """The real system (twin, policy node, bridge): a checkpoint that does not exist used to leave everything
    running without a policy; now the policy node exits 1 with one line and `lawam launch` stops it all."""
    out = subprocess.run([LAWAM, "launch", "franka_pick_place", "checkpoint:=/nonexistent/ckpt", "--duration",
                          "300", "--domain-id", str(worker_domain_id)], env=ros_env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 1, out.stdout[-3000:]
    (line,) = out.stderr.strip().splitlines()[-1:]
    assert line.startswith("lawam: error: required node policy_node exited with code 1: policy_node: error: "
                           "cannot load the model (/nonexistent/ckpt)"), out.stderr[-2000:]
    assert "duration of" not in out.stdout  # stopped by the failure, not by the timer
    for node in ("franka_twin", "franka_bridge"):
        assert f"[{node}]" in out.stdout
    assert "Traceback" not in out.stdout
