"""Does a checkpoint fit the policy node's parameters? (ROS-free, torch-free)

A checkpoint carries its embodiments (action layouts) and, per embodiment, the ordered camera roles its
images must come in (LaWAMConfig.camera_roles, e.g. ["primary", "wrist"]). The node has an `embodiment` and
`camera_topics` with their `camera_roles`. A mismatch used to load fine and then fail on every inference
(or worse, run with the cameras swapped); here it is a one-line error before the weights are read.
"""
from __future__ import annotations

# The roles of a node's camera_topics when `camera_roles` is not given: the first cameras of the embodiment's
# standard rig, in this order (the recorder's and the twins' naming).
DEFAULT_CAMERA_ROLES = {"franka_panda": ("primary", "wrist"),
                        "quanta_x1": ("primary", "left_wrist", "right_wrist")}


class CheckpointMismatch(ValueError):
    """The checkpoint was trained for another embodiment or another ordered list of cameras."""


def camera_roles_for(embodiment: str, camera_topics: list[str], roles: list[str]) -> list[str]:
    """The role of each camera topic (same order). `roles` empty (or [""]): the embodiment's defaults.
    Raises ValueError on a count mismatch, duplicates, or no defaults for this embodiment."""
    roles = [r.strip() for r in roles if r and r.strip()]
    n = len(camera_topics)
    if not roles:
        defaults = DEFAULT_CAMERA_ROLES.get(embodiment)
        if defaults is None or n > len(defaults):
            raise ValueError(f"camera_roles must be given for {n} cameras of embodiment {embodiment!r} "
                             f"(defaults exist for {sorted(DEFAULT_CAMERA_ROLES)})")
        return list(defaults[:n])
    if len(roles) != n:
        raise ValueError(f"camera_roles {roles} must name one role per camera topic {camera_topics}")
    if len(set(roles)) != n:
        raise ValueError(f"camera_roles {roles} has duplicates")
    return roles


def check_fit(config, embodiment: str, roles: list[str], source: str) -> None:
    """Raise CheckpointMismatch unless `config` (a LaWAMConfig: `embodiments`, `camera_roles`) knows
    `embodiment` and takes the cameras `roles` in this order (a prefix of its list: fewer cameras than it
    was trained with are allowed, another order or other cameras are not)."""
    known = sorted(getattr(config, "embodiments", {}) or {})
    if embodiment not in known:
        raise CheckpointMismatch(f"checkpoint {source} is for embodiment(s) {known}, this node runs "
                                 f"{embodiment!r}")
    trained = list((getattr(config, "camera_roles", {}) or {}).get(embodiment, ["primary"]))
    if len(roles) > len(trained) or list(roles) != trained[:len(roles)]:
        raise CheckpointMismatch(f"checkpoint {source} takes the cameras {trained} in this order, this node "
                                 f"gives {list(roles)} (camera_topics / camera_roles / primary_camera)")
