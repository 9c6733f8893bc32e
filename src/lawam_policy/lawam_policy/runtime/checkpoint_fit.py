"""Does a checkpoint fit the policy node's parameters? (ROS-free, torch-free)

A checkpoint carries its embodiments (action layouts) and, per embodiment, the ordered camera roles its
images must come in (LaWAMConfig.camera_roles, e.g. ["primary", "wrist"]). The node has an `embodiment` and
`camera_topics` with their `camera_roles`. A mismatch used to load fine and then fail on every inference
(or worse, run with the cameras swapped); here it is a one-line error before the weights are read.
"""
from __future__ import annotations

from ..embodiments import EMBODIMENTS

# The roles of a node's camera_topics when `camera_roles` is not given: the first cameras of the embodiment's
# standard rig, in the registry's order (the recorder's and the twins' naming).
DEFAULT_CAMERA_ROLES = {name: e.camera_roles for name, e in EMBODIMENTS.items()}


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


# Chunk rate of a model that records no training rate (checkpoints from before rates were recorded).
FALLBACK_CONTROL_RATE_HZ = 15.0


def control_rate_for(config, embodiment: str, requested_hz: float) -> tuple[float, str | None]:
    """The chunk rate f_b to query the model at, and a warning (or None).

    `requested_hz` <= 0 means "the checkpoint's": the first rate it was trained at for `embodiment`
    (LaWAMConfig.control_rates_hz), or FALLBACK_CONTROL_RATE_HZ when it records none. A requested rate the
    checkpoint never saw is used, with a warning: its action tokens sit at times k / f_b it was not trained on."""
    trained = [float(r) for r in (getattr(config, "control_rates_hz", {}) or {}).get(embodiment, [])]
    if requested_hz <= 0:
        return (trained[0], None) if trained else (FALLBACK_CONTROL_RATE_HZ, None)
    if trained and all(abs(requested_hz - r) > 1e-6 for r in trained):
        return requested_hz, (f"control_rate_hz {requested_hz:g} Hz: this checkpoint was trained at "
                              f"{', '.join(f'{r:g}' for r in trained)} Hz; chunks at an unseen rate are usually worse "
                              f"(set control_rate_hz to 0 for the trained rate)")
    return requested_hz, None
