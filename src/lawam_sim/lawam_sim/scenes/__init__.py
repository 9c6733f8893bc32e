"""Scene registry: ``make_scene(name, **kw)`` and each scene's language instructions.

``INSTRUCTIONS`` lives here, free of MuJoCo imports, so the system registry (lawam_bringup.systems) and the
evaluation read the same tuples the scene classes use. The first instruction of a scene is its default.
"""
from __future__ import annotations

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "franka_pick_place": ("put the red cube in the bowl", "put the green cube in the bowl"),
    "franka_drawer": ("open the drawer",),
    "quanta_towel_fold": ("fold the towel in half",),
}

SCENES = tuple(INSTRUCTIONS)


def make_scene(name: str, **kwargs):
    if name == "franka_pick_place":
        from lawam_sim.scenes.franka_pick_place import PickPlaceScene
        return PickPlaceScene(**kwargs)
    if name == "franka_drawer":
        from lawam_sim.scenes.franka_drawer import DrawerScene
        return DrawerScene(**kwargs)
    if name == "quanta_towel_fold":
        from lawam_sim.scenes.towel_fold import TowelFoldScene
        return TowelFoldScene(**kwargs)
    raise ValueError(f"unknown scene {name!r}; known: {sorted(SCENES)}")
