"""Scripted experts from privileged simulator state, for demonstrations and tests.

``make_expert(scene)`` returns the expert of the scene's task. An expert is called at its control rate with
``act(scene)`` and returns, per arm, an absolute base-frame target: (position, quaternion x,y,z,w, opening) —
exactly one step of an ActionChunk, so the twin can publish it on the teleop topic.
"""
from __future__ import annotations


def make_expert(scene):
    name = getattr(scene, "name", "")
    if name == "franka_pick_place":
        from lawam_sim.experts.pick_place import PickPlaceExpert
        return PickPlaceExpert(scene)
    if name == "franka_drawer":
        from lawam_sim.experts.drawer import DrawerExpert
        return DrawerExpert(scene)
    if name == "quanta_towel_fold":
        from lawam_sim.experts.towel_fold import TowelFoldExpert
        return TowelFoldExpert(scene)
    raise ValueError(f"no scripted expert for scene {name!r}")
