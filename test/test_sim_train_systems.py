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
    scene, demos, fps, dart = sim_train.SYSTEMS[name]
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
