"""Scene registry: ``make_scene(name, **kw)``."""
from __future__ import annotations


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


SCENES = ("franka_pick_place", "franka_drawer", "quanta_towel_fold")
