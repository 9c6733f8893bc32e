"""A policy node that cannot use its model exits non-zero with one line (issue 12, part 3): a checkpoint that
does not exist, one for another embodiment, one trained with another ordered list of camera roles. It used
to log "cannot load the model" and keep running with no policy output."""
import os
import pathlib
import subprocess
import sys
from types import SimpleNamespace

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PKG))  # before the package is installed

from lawam_policy.runtime.checkpoint_fit import CheckpointMismatch, camera_roles_for, check_fit  # noqa: E402

CONFIG = PKG.parents[1] / "config"


def cfg(embodiments=("franka_panda",), roles=None):
    return SimpleNamespace(embodiments={e: {} for e in embodiments},
                           camera_roles=roles or {"franka_panda": ["primary", "wrist"]})


def test_checkpoint_fit_embodiment_and_ordered_camera_roles():
    check_fit(cfg(), "franka_panda", ["primary"], "ckpt")  # fewer cameras than trained with: fine
    check_fit(cfg(), "franka_panda", ["primary", "wrist"], "ckpt")
    with pytest.raises(CheckpointMismatch, match=r"embodiment\(s\) \['franka_panda'\], this node runs 'quanta_x1'"):
        check_fit(cfg(), "quanta_x1", ["primary"], "ckpt")
    with pytest.raises(CheckpointMismatch, match=r"takes the cameras \['primary', 'wrist'\] in this order"):
        check_fit(cfg(), "franka_panda", ["wrist", "primary"], "ckpt")
    with pytest.raises(CheckpointMismatch):
        check_fit(cfg(), "franka_panda", ["primary", "wrist", "extra"], "ckpt")


def test_camera_roles_default_to_the_embodiments_rig_and_must_match_the_topics():
    assert camera_roles_for("franka_panda", ["/a"], [""]) == ["primary"]
    assert camera_roles_for("quanta_x1", ["/a", "/b", "/c"], []) == ["primary", "left_wrist", "right_wrist"]
    assert camera_roles_for("franka_panda", ["/a", "/b"], ["wrist", "primary"]) == ["wrist", "primary"]
    with pytest.raises(ValueError, match="one role per camera"):
        camera_roles_for("franka_panda", ["/a", "/b"], ["primary"])
    with pytest.raises(ValueError, match="must be given"):
        camera_roles_for("franka_panda", ["/a", "/b", "/c"], [""])


def _config_only_checkpoint(path, **changes):
    torch = pytest.importorskip("torch")  # noqa: F841 - LaWAMConfig lives in the model package
    from lawam_policy.model import LaWAMConfig
    c = LaWAMConfig.from_preset("tiny")
    for k, v in changes.items():
        setattr(c, k, v)
    path.mkdir(parents=True)
    c.save(path)
    return path


@pytest.mark.parametrize("case", ["nonexistent", "embodiment", "camera_roles"])
def test_policy_node_exits_nonzero_with_one_line_reason(case, tmp_path, ros_env):
    if case == "nonexistent":
        ckpt, extra, expect = "/nonexistent/ckpt", [], "FileNotFoundError: no lawam_config.json in /nonexistent/ckpt"
    elif case == "embodiment":  # a Franka-only checkpoint behind the Quanta's three cameras
        pytest.importorskip("torch")
        from lawam_policy.model import LaWAMConfig
        franka = LaWAMConfig.from_preset("tiny").embodiments["franka_panda"]
        ckpt = _config_only_checkpoint(tmp_path / "franka_only", embodiments={"franka_panda": franka})
        extra = ["-p", "embodiment:=quanta_x1", "-p", "camera_topics:=['/a','/b','/c']"]
        expect = "CheckpointMismatch: checkpoint"
    else:  # trained with the wrist camera first
        ckpt = _config_only_checkpoint(tmp_path / "wrist_first",
                                       camera_roles={"franka_panda": ["wrist", "primary"],
                                                     "quanta_x1": ["primary", "left_wrist", "right_wrist"]})
        extra, expect = [], "takes the cameras ['wrist', 'primary'] in this order, this node gives ['primary']"
    env = dict(ros_env, PYTHONPATH=os.pathsep.join([str(PKG), ros_env.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "lawam_policy.nodes.policy_node", "--ros-args", "--params-file",
                          str(CONFIG / "policy.yaml"), "-p", f"checkpoint:={ckpt}", "-p", "task:=go", *extra],
                         env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"policy_node: error: cannot load the model ({ckpt}): "), out.stderr[-2000:]
    assert expect in last
    assert "Traceback" not in out.stderr
