"""Scenes load from the installed model packages, reset deterministically from a seed, and render images of the
configured size and encoding."""
import numpy as np
import pytest

from lawam_sim.rendering import CameraRig
from lawam_sim.scenes import INSTRUCTIONS, SCENES, make_scene
from lawam_sim.seeds import EVAL_SEEDS, EvalSeedCycler


@pytest.fixture(scope="module", params=SCENES)
def scene(request):
    return make_scene(request.param)


def test_scene_loads_with_robot_and_task_objects(scene):
    assert scene.model.nu > 0 and scene.model.nv > 0
    assert scene.model.opt.timestep <= 1 / 500
    for arm in scene.arms:
        pos, quat = scene.eef_pose(arm)
        assert np.all(np.isfinite(pos)) and abs(np.linalg.norm(quat) - 1) < 1e-6
    assert not scene.success(), "a freshly reset scene must not already count as solved"


def test_reset_is_deterministic_per_seed(scene):
    scene.reset(EVAL_SEEDS[0])
    a = scene.data.qpos.copy()
    scene.run_for(0.1)
    scene.reset(EVAL_SEEDS[0])
    assert np.array_equal(a, scene.data.qpos)
    scene.reset(EVAL_SEEDS[1])
    assert not np.allclose(a, scene.data.qpos)


def test_holds_measured_pose_after_reset(scene):
    scene.reset(3)
    before = {arm: scene.eef_pose(arm)[0] for arm in scene.arms}
    scene.run_for(0.5)
    for arm in scene.arms:
        assert np.linalg.norm(scene.eef_pose(arm)[0] - before[arm]) < 0.01


@pytest.mark.parametrize("size", [(224, 224), (160, 120)])
def test_images_have_configured_size_and_encoding(scene, size):
    w, h = size
    rig = CameraRig(scene.model, w, h)
    try:
        for cam in scene.cameras:
            img = rig.render(scene.data, cam)
            assert img.shape == (h, w, 3) and img.dtype == np.uint8
            assert img.std() > 5, f"camera {cam} rendered a flat image"
    finally:
        rig.close()


def test_eval_seeds_are_fixed_and_cycle():
    assert len(EVAL_SEEDS) == 30 and len(set(EVAL_SEEDS)) == 30
    c = EvalSeedCycler()
    got = [c.next() for _ in range(31)]
    assert got[:30] == list(EVAL_SEEDS) and got[30] == EVAL_SEEDS[0]


def test_instructions_default_known_and_unknown(scene):
    assert scene.instructions and scene.instructions == INSTRUCTIONS[scene.name]
    scene.reset(EVAL_SEEDS[0])
    assert scene.instruction == scene.instructions[0]
    last = scene.instructions[-1]
    scene.reset(EVAL_SEEDS[0], "  " + last.upper() + " ")   # case and outer whitespace do not matter
    assert scene.instruction == last
    qpos = scene.data.qpos.copy()
    with pytest.raises(ValueError) as e:
        scene.reset(EVAL_SEEDS[1], "juggle the cubes")
    assert all(repr(i) in str(e.value) for i in scene.instructions)
    assert scene.instruction == last and np.array_equal(qpos, scene.data.qpos)  # nothing changed
    with pytest.raises(ValueError):
        scene.set_instruction("juggle the cubes")
    scene.set_instruction(scene.instructions[0])
    assert scene.instruction == scene.instructions[0]


def test_one_seed_gives_one_layout_for_every_instruction(scene):
    layouts = []
    for instruction in scene.instructions:
        scene.reset(EVAL_SEEDS[2], instruction)
        layouts.append((scene.data.qpos.copy(), scene.model.body_pos.copy()))
    for qpos, body_pos in layouts[1:]:
        assert np.array_equal(qpos, layouts[0][0]) and np.array_equal(body_pos, layouts[0][1])


def test_pick_place_cubes_share_one_distribution():
    """Red and green are drawn i.i.d. (exchangeable): neither colour has a typical place, so only the
    instruction tells them apart. Also the separation rules hold on every layout."""
    from lawam_sim.scenes.franka_pick_place import MIN_BOWL_CLEARANCE, MIN_CUBE_SEPARATION
    scene = make_scene("franka_pick_place")
    red, green = [], []
    for seed in range(300):
        scene.reset(seed)
        r, g, bowl = scene.cube_pose("red")[0], scene.cube_pose("green")[0], scene.bowl_pos()
        assert np.linalg.norm(r[:2] - g[:2]) >= MIN_CUBE_SEPARATION - 1e-9
        assert min(np.linalg.norm(r[:2] - bowl[:2]), np.linalg.norm(g[:2] - bowl[:2])) >= MIN_BOWL_CLEARANCE - 1e-9
        red.append(r[:2])
        green.append(g[:2])
    red, green = np.array(red), np.array(green)
    # same spread and centre (3 standard errors), and the red one is the nearer to the robot half of the time
    se = np.sqrt((red.var(axis=0) + green.var(axis=0)) / len(red))
    assert np.all(np.abs(red.mean(axis=0) - green.mean(axis=0)) < 3 * se), (red.mean(axis=0), green.mean(axis=0))
    assert np.allclose(red.min(axis=0), green.min(axis=0), atol=0.02)
    assert np.allclose(red.max(axis=0), green.max(axis=0), atol=0.02)
    nearer = np.mean(np.linalg.norm(red, axis=1) < np.linalg.norm(green, axis=1))
    assert 0.4 < nearer < 0.6
    for colour in ("red", "green"):
        geom = scene.model.geom(f"{colour}_cube")
        assert np.allclose(geom.size, scene.model.geom("red_cube").size)
        assert np.allclose(geom.friction, scene.model.geom("red_cube").friction)
        assert scene.model.body(f"{colour}_cube").mass == scene.model.body("red_cube").mass


def test_pick_place_colour_exchange_swaps_the_cubes_in_the_image_only():
    """Inside colours_exchanged the red cube's pixels look like the green cube's and back; nothing else in
    the image or the physics changes, and the colours come back after the block (also on an exception)."""
    scene = make_scene("franka_pick_place")
    scene.reset(EVAL_SEEDS[0], "put the red cube in the bowl")
    rig = CameraRig(scene.model, 224, 224)
    plain = rig.render(scene.data, "front").astype(int)
    qpos = scene.data.qpos.copy()
    with scene.colours_exchanged():
        swapped = rig.render(scene.data, "front").astype(int)
    with pytest.raises(RuntimeError):
        with scene.colours_exchanged():
            raise RuntimeError("inside")
    after = rig.render(scene.data, "front").astype(int)
    rig.close()
    assert np.array_equal(after, plain) and np.array_equal(scene.data.qpos, qpos)
    changed = np.abs(swapped - plain).sum(-1) > 30
    red = (plain[..., 0] > 120) & (plain[..., 1] < 60)
    green = (plain[..., 1] > 100) & (plain[..., 0] < 60)
    assert red.sum() > 10 and green.sum() > 10
    assert changed[red].mean() > 0.9 and changed[green].mean() > 0.9  # both cubes changed colour ...
    assert changed.sum() <= 1.2 * (red.sum() + green.sum())  # ... and nothing else did
    assert ((swapped[red][:, 1] > 100) & (swapped[red][:, 0] < 60)).mean() > 0.9  # red became green
    assert ((swapped[green][:, 0] > 120) & (swapped[green][:, 1] < 60)).mean() > 0.9


def test_pick_place_exchanged_instruction_names_the_other_colour():
    scene = make_scene("franka_pick_place")
    red, green = "put the red cube in the bowl", "put the green cube in the bowl"
    assert scene.exchanged_instruction(red) == green and scene.exchanged_instruction(green) == red
    with pytest.raises(KeyError):
        scene.exchanged_instruction("put the blue cube in the bowl")


def test_pick_place_distractor_moves_in_a_rendering_copy_only():
    """data_with_distractor_at puts the cube the instruction does not name at a new place drawn by the layout
    rules, in a copy for rendering: the scene's state, the named cube and the arm stay where they are."""
    from lawam_sim.scenes.franka_pick_place import MIN_BOWL_CLEARANCE, MIN_CUBE_SEPARATION
    scene = make_scene("franka_pick_place")
    scene.reset(EVAL_SEEDS[1], "put the green cube in the bowl")
    qpos, xpos = scene.data.qpos.copy(), scene.data.xpos.copy()
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy, yaw = scene.draw_distractor_place(rng)
        assert np.linalg.norm(xy - scene.cube_pose("green")[0][:2]) >= MIN_CUBE_SEPARATION
        assert np.linalg.norm(xy - scene.bowl_pos()[:2]) >= MIN_BOWL_CLEARANCE
    copy = scene.data_with_distractor_at(xy, yaw)
    assert np.array_equal(scene.data.qpos, qpos) and np.array_equal(scene.data.xpos, xpos)
    red = scene.model.body("red_cube").id
    assert np.allclose(copy.xpos[red][:2], xy) and not np.allclose(xpos[red][:2], xy)
    others = [b for b in range(scene.model.nbody) if b != red]  # the green cube, the arm, the bowl, ...
    assert np.allclose(copy.xpos[others], xpos[others])
    # the cameras and lights are posed as in the scene, so a rendering differs only where the cube moved
    assert np.allclose(copy.cam_xpos, scene.data.cam_xpos) and np.allclose(copy.cam_xmat, scene.data.cam_xmat)
    assert np.allclose(copy.light_xpos, scene.data.light_xpos)
    rig = CameraRig(scene.model, 224, 224)
    for camera in ("front", "handcam_rgb"):
        plain, moved = rig.render(scene.data, camera).astype(int), rig.render(copy, camera).astype(int)
        assert (np.abs(plain - moved).sum(-1) > 30).mean() < 0.1, camera  # a broken pose: ~100 %
    rig.close()


def test_pick_place_front_camera_frames_the_workspace_closely():
    """The pick-and-place front camera is zoomed on the cubes' region and the bowl: every corner of their
    layout regions and the gripper's start and carry heights project inside the image, and a cube covers
    at least 150 px of a 224 px image (about 110 with the drawer's wider view)."""
    import mujoco
    from lawam_sim.scenes.franka_pick_place import BOWL_RADIUS, BOWL_X, BOWL_Y, CUBE_X, CUBE_Y
    scene = make_scene("franka_pick_place")
    scene.reset(EVAL_SEEDS[0])
    cam = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_CAMERA, "front")
    pos, rot = scene.data.cam_xpos[cam], scene.data.cam_xmat[cam].reshape(3, 3)
    focal = 0.5 / np.tan(np.radians(scene.model.cam_fovy[cam]) / 2)
    r = BOWL_RADIUS + 0.01
    points = [(x, y, 0.02) for x in CUBE_X for y in CUBE_Y] + \
             [(x, y, 0.0) for x in (BOWL_X[0] - r, BOWL_X[1] + r) for y in (BOWL_Y[0] - r, BOWL_Y[1] + r)] + \
             [tuple(scene.eef_pose("arm")[0]), (np.mean(BOWL_X), np.mean(BOWL_Y), 0.25)]
    for p in points:
        c = rot.T @ (np.asarray(p) - pos)  # camera frame: x right, y up, looking along -z
        u, v = 0.5 + focal * c[0] / -c[2], 0.5 - focal * c[1] / -c[2]
        assert 0.05 < u < 0.95 and 0.05 < v < 0.95, (p, u, v)
    rig = CameraRig(scene.model, 224, 224)
    for seed in EVAL_SEEDS[:5]:
        scene.reset(seed)
        im = rig.render(scene.data, "front").astype(int)
        assert ((im[..., 0] > 120) & (im[..., 1] < 60)).sum() >= 150, seed
    rig.close()
