"""The bootstrap checks the system packages first, is idempotent, and refuses unsupported interpreters or
missing packages without leaving anything behind."""
import os
import shutil
import subprocess

import pytest

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


# --- system packages (tools/system_deps.sh), checked before anything is created -----------------------------
SYSTEM_PACKAGES = ("cmake", "g++", "make", "libegl1", "libopengl0", "libgl1-mesa-dri")


def _fake_system(tmp_path, installed, uid):
    """dpkg-query that knows `installed`, apt-get that records its calls, id -u that prints uid: first on PATH."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    calls = tmp_path / "apt-calls"
    (fake / "dpkg-query").write_text(
        "#!/bin/sh\nfor p; do :; done\n"  # the last argument is the package
        f"case \" {' '.join(installed)} \" in *\" $p \"*) echo 'install ok installed';; "
        "*) echo \"dpkg-query: no packages found matching $p\" >&2; exit 1;; esac\n")
    (fake / "apt-get").write_text(f"#!/bin/sh\necho \"$*\" >> '{calls}'\n")
    (fake / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("ROS_DISTRO", "LAWAM_PYTHON")}
    env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
    return env, calls


def test_missing_system_packages_are_installed_with_apt_get_as_root(tmp_path):
    ws = _workspace_copy(tmp_path / "ws")
    env, calls = _fake_system(tmp_path, [p for p in SYSTEM_PACKAGES if p not in ("libegl1", "g++")], uid=0)
    # a fake Python 3.10 stops the bootstrap right after the check, so nothing gets built here
    env["LAWAM_PYTHON"] = _fake_python(tmp_path, "3.10")
    out = subprocess.run(["bash", "tools/bootstrap.sh"], cwd=ws, env=env, capture_output=True, text=True)
    assert "installing system packages: g++ libegl1" in out.stdout, out.stdout + out.stderr
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq g++ libegl1"]
    assert out.returncode != 0 and "is Python 3.10" in out.stderr  # it went on to the interpreter check
    assert not (ws / ".venv").exists()


def test_missing_system_packages_without_root_stop_with_the_exact_command(tmp_path):
    ws = _workspace_copy(tmp_path / "ws")
    before = sorted(p.name for p in ws.iterdir())
    env, calls = _fake_system(tmp_path, [p for p in SYSTEM_PACKAGES if p != "libgl1-mesa-dri"], uid=1000)
    env["LAWAM_PYTHON"] = _fake_python(tmp_path, "3.11")
    out = subprocess.run(["bash", "tools/bootstrap.sh"], cwd=ws, env=env, capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(": sudo apt-get install -y libgl1-mesa-dri"), out.stderr
    assert not calls.exists()  # apt-get never ran
    assert sorted(p.name for p in ws.iterdir()) == before  # no .venv, build/ or install/: nothing half-built


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3.11"), reason="needs the distribution's python3.11")
def test_distribution_python_needs_its_venv_and_dev_packages(tmp_path):
    ws = _workspace_copy(tmp_path / "ws")
    env, calls = _fake_system(tmp_path, list(SYSTEM_PACKAGES) + ["python3.11"], uid=1000)
    env["LAWAM_PYTHON"] = "/usr/bin/python3.11"
    out = subprocess.run(["bash", "tools/bootstrap.sh"], cwd=ws, env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "sudo apt-get install -y python3.11-venv python3.11-dev" in out.stderr
    assert not (ws / ".venv").exists()
