"""The bootstrap is idempotent and refuses unsupported interpreters without leaving anything behind."""
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_second_bootstrap_run_skips_every_step():
    # `make test` has just bootstrapped: with nothing changed, nothing is installed or rebuilt.
    out = subprocess.run(["bash", "tools/bootstrap.sh"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "installing" not in out.stdout and "colcon build" not in out.stdout, out.stdout
    assert "ready" in out.stdout


def test_console_scripts_are_on_the_venv_path():
    lawam = os.path.join(ROOT, ".venv", "bin", "lawam")
    assert os.access(lawam, os.X_OK)
    # A clean environment: the wrapper sets up the workspace itself.
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")}
    out = subprocess.run([lawam, "launch", "--list"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "franka_pick_place" in out.stdout and "quanta_towel_fold" in out.stdout


def _workspace_copy(tmp_path):
    for name in ("tools", ):
        shutil.copytree(os.path.join(ROOT, name), tmp_path / name)
    for name in ("constraints.txt", "requirements.txt", "requirements-ros-wheels.txt"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    return tmp_path


def _fake_python(tmp_path, version):
    fake = tmp_path / f"python{version}"
    fake.write_text(f"#!/bin/sh\necho {version}\n")
    fake.chmod(0o755)
    return str(fake)


def test_unsupported_python_is_refused_and_no_venv_is_left(tmp_path):
    ws = _workspace_copy(tmp_path / "ws")
    env = {k: v for k, v in os.environ.items() if k != "ROS_DISTRO"}
    env["LAWAM_PYTHON"] = _fake_python(tmp_path, "3.10")
    out = subprocess.run(["bash", "tools/bootstrap.sh"], cwd=ws, env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "is Python 3.10" in out.stderr and "need exactly Python 3.11" in out.stderr
    assert not (ws / ".venv").exists()


def test_ros_distro_without_its_rclpy_is_refused(tmp_path):
    ws = _workspace_copy(tmp_path / "ws")
    env = dict(os.environ, ROS_DISTRO="jazzy", LAWAM_PYTHON=_fake_python(tmp_path, "3.12"))
    # the fake interpreter "imports" anything; make it fail the rclpy probe instead
    fake = tmp_path / "python3.12"
    fake.write_text("#!/bin/sh\ncase \"$2\" in *rclpy*) exit 1;; esac\necho 3.12\n")
    out = subprocess.run(["bash", "tools/bootstrap.sh"], cwd=ws, env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "cannot import rclpy" in out.stderr
    assert not (ws / ".venv").exists()
