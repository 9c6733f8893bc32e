"""lawam-sim-train's systems are the registry's systems: the same scene, embodiment and ordered camera roles
(so a checkpoint trained by the recipe is accepted by the system's policy node and by lawam-eval), and the
scene cameras the recipe renders are cameras of the scene."""
import pytest

from lawam_bringup.systems import SCENE_SYSTEMS, SYSTEMS
from lawam_training import sim_train
from lawam_training.sim_demos import TWINS, twin_cameras, twin_settings
from lawam_training.sim_rollout import bridge_limits


@pytest.mark.parametrize("name", sorted(sim_train.SYSTEMS))
def test_recipe_system_matches_the_registry(name):
    scene = sim_train.SYSTEMS[name][0]
    system = SYSTEMS[name]
    assert system.scene == scene and SCENE_SYSTEMS[scene] == name
    twin, embodiment, _, _ = TWINS[scene]
    assert embodiment == system.embodiment
    assert [role for _, role in twin_cameras(scene)] == system.camera_roles()  # default camera arguments
    nodes = {n.name: n for n in system.resolve({"checkpoint": "preset:tiny"})}
    assert twin in nodes and nodes[twin].parameters["scene"] == scene
    config = sim_train.workspace_root() / "config"
    assert twin_settings(config, twin).image_size[0] > 0
    limits = bridge_limits(config, embodiment)
    assert all(lo < hi for lo, hi in zip(limits.workspace_min, limits.workspace_max))


@pytest.mark.parametrize("name", sorted(sim_train.SYSTEMS))
def test_recipe_cameras_exist_in_the_scene(name):
    import mujoco
    from lawam_sim.scenes import make_scene
    scene = make_scene(sim_train.SYSTEMS[name][0])
    for cam, _ in twin_cameras(scene.name):
        assert cam in scene.cameras and mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_CAMERA, cam) >= 0, cam


def _published_camera_topics(twin_node) -> set:
    """The image topics a twin node publishes: its camera settings (declared defaults, its parameter file,
    the system's overrides), then the system's remappings."""
    from lawam_policy.parameters import node_values
    p = node_values(twin_node.name, [sim_train.workspace_root() / "config" / f for f in twin_node.param_files])
    p.update(twin_node.parameters)
    if "wrist_camera" in p:  # Franka twin: the front camera, the hand camera when wrist_camera
        topics = [p["camera_topic"]] + ([p["wrist_camera_topic"]] if p["wrist_camera"] else [])
    else:  # Quanta twin: the high camera and, with wrist_cameras, one per arm
        topics = [p["camera_topic"]] + ([v for k, v in p.items() if k.endswith("_wrist_camera_topic")]
                                        if p["wrist_cameras"] else [])
    remap = dict(twin_node.remappings)
    return {remap.get(t, t) for t in topics}


@pytest.mark.parametrize("name, wrist", [(name, wrist) for name in sorted(SYSTEMS) for wrist in (
    ("default", "", "/my/wrist") if SYSTEMS[name].twin == "franka_twin" else ("default",))])
def test_in_sim_the_twin_publishes_every_camera_the_policy_takes(name, wrist):
    """franka_pick_place's policy takes the hand camera by default (its checkpoint's roles): the twin must
    render it; franka_drawer's does not (and the twin renders no camera nobody reads)."""
    system = SYSTEMS[name]
    overrides = {"checkpoint": "preset:tiny"}
    if wrist != "default":
        overrides["wrist_camera"] = wrist
    nodes = {n.name: n for n in system.resolve(overrides)}
    wanted = nodes["policy_node"].parameters["camera_topics"]
    assert wanted == system.camera_topics(overrides)
    if system.twin == "franka_twin":
        assert _published_camera_topics(nodes[system.twin]) == set(wanted)
    else:
        assert set(wanted) <= _published_camera_topics(nodes[system.twin])


def test_pick_place_takes_the_wrist_camera_and_the_drawer_does_not():
    assert SYSTEMS["franka_pick_place"].camera_roles() == ["primary", "wrist"]
    assert SYSTEMS["franka_drawer"].camera_roles() == ["primary"]
