"""End-effector action layouts shared by the model, the runtime and the training package.

An action (and a state) is, per arm in a fixed order: position x, y, z (m, robot base frame), unit
quaternion qx, qy, qz, qw (ROS order), then the gripper opening in [0 closed, 1 open].
Feature names: ``x, y, z, qx, qy, qz, qw, gripper`` for one arm; the same with an ``<arm>_`` prefix
(``left_x`` …) for several arms.
"""
from __future__ import annotations

from dataclasses import dataclass

ARM_FIELDS = ("x", "y", "z", "qx", "qy", "qz", "qw", "gripper")
ARM_DIM = len(ARM_FIELDS)


@dataclass(frozen=True)
class ActionLayout:
    embodiment: str
    arms: tuple[str, ...]

    def __post_init__(self):
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"action layout {self.embodiment!r}: arms must be unique and non-empty, got {self.arms}")

    @property
    def dim(self) -> int:
        return ARM_DIM * len(self.arms)

    @property
    def names(self) -> list[str]:
        if len(self.arms) == 1:
            return list(ARM_FIELDS)
        return [f"{arm}_{field}" for arm in self.arms for field in ARM_FIELDS]

    def arm_slice(self, arm: str) -> slice:
        i = self.arms.index(arm)
        return slice(i * ARM_DIM, (i + 1) * ARM_DIM)

    def to_dict(self) -> dict:
        return {"embodiment": self.embodiment, "arms": list(self.arms)}

    @classmethod
    def from_dict(cls, d: dict) -> "ActionLayout":
        return cls(d["embodiment"], tuple(d["arms"]))

    @classmethod
    def from_names(cls, names: list[str], embodiment: str | None = None) -> "ActionLayout":
        """Infer the layout from dataset feature names; anything else is an error, never a guess."""
        names = list(names)
        if names == list(ARM_FIELDS):
            return cls(embodiment or "franka_panda", ("arm",))
        if len(names) % ARM_DIM == 0 and names:
            arms = []
            for i in range(0, len(names), ARM_DIM):
                prefix = names[i].rsplit("_x", 1)[0] if names[i].endswith("_x") else None
                if prefix is None or names[i:i + ARM_DIM] != [f"{prefix}_{f}" for f in ARM_FIELDS]:
                    break
                arms.append(prefix)
            else:
                default = "quanta_x1" if arms == ["left", "right"] else "custom"
                return cls(embodiment or default, tuple(arms))
        raise ValueError(
            f"unknown action layout {names}: expected {list(ARM_FIELDS)} for one arm or the same names "
            f"with '<arm>_' prefixes (e.g. left_x … right_gripper) for several arms")


KNOWN_LAYOUTS = {
    "franka_panda": ActionLayout("franka_panda", ("arm",)),
    "quanta_x1": ActionLayout("quanta_x1", ("left", "right")),
}


def get_layout(embodiment: str) -> ActionLayout:
    try:
        return KNOWN_LAYOUTS[embodiment]
    except KeyError:
        raise ValueError(f"unknown embodiment {embodiment!r}; known: {sorted(KNOWN_LAYOUTS)}") from None
