"""A rosbags typestore that knows the standard ROS 2 messages plus ours (lawam_msgs, from its .msg files)
and any package given with ``--msg-path`` (e.g. franka_msgs), for bags that do not embed definitions."""
from __future__ import annotations

from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore


def lawam_msgs_dir() -> Path | None:
    """Installed share directory of lawam_msgs, or the source tree next to this package."""
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory("lawam_msgs"))
        if (share / "msg").is_dir():
            return share
    except Exception:  # noqa: BLE001 - not installed through ament: fall back to the source tree
        pass
    src = Path(__file__).resolve().parents[2] / "lawam_msgs"
    return src if (src / "msg").is_dir() else None


def find_msg_files(root: Path) -> dict[str, Path]:
    """All ``<pkg>/msg/<Name>.msg`` below ``root`` (``root`` may itself be a package or its msg dir)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"--msg-path {root} is not a directory")
    out = {}
    for f in sorted(root.rglob("*.msg")):
        if f.parent.name != "msg":
            continue
        out[f"{f.parent.parent.name}/msg/{f.stem}"] = f
    if not out:
        raise ValueError(f"--msg-path {root} holds no <package>/msg/<Name>.msg files")
    return out


def build_typestore(msg_paths=()):
    store = get_typestore(Stores.ROS2_KILTED)
    files = {}
    ours = lawam_msgs_dir()
    if ours is not None:
        files.update(find_msg_files(ours))
    for p in msg_paths:
        files.update(find_msg_files(Path(p)))
    types = {}
    for name, path in files.items():
        types.update(get_types_from_msg(path.read_text(), name))
    # Unqualified field types (``ArmTrajectory[] arms``) resolve inside their own package; register all
    # at once so definitions may refer to each other.
    store.register(types)
    return store
