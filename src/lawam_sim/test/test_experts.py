"""Scripted experts over the fixed evaluation seeds: pick-and-place >= 90 % of 20, towel fold >= 80 % of 20."""
import numpy as np

from lawam_sim.episode import run_expert_episode
from lawam_sim.scenes import make_scene
from lawam_sim.scenes.towel_fold import FOLD_SUCCESS
from lawam_sim.seeds import EVAL_SEEDS

SEEDS = EVAL_SEEDS[:20]


def _rate(name):
    scene = make_scene(name)
    results = [run_expert_episode(scene, s) for s in SEEDS]
    return sum(r.success for r in results) / len(results), results


def test_pick_place_expert_succeeds_on_90_percent():
    rate, results = _rate("franka_pick_place")
    assert rate >= 0.9, [(r.seed, r.metrics) for r in results if not r.success]


def test_drawer_expert_succeeds_on_90_percent():
    rate, results = _rate("franka_drawer")
    assert rate >= 0.9, [(r.seed, r.metrics) for r in results if not r.success]


def test_towel_expert_reaches_fold_threshold_on_80_percent():
    rate, results = _rate("quanta_towel_fold")
    assert rate >= 0.8, [(r.seed, r.metrics) for r in results if not r.success]
    assert all(r.metrics["fold_quality"] >= FOLD_SUCCESS for r in results if r.success)


def test_doing_nothing_is_not_success():
    """The success tests can fail: an idle robot never solves a task."""
    for name in ("franka_pick_place", "franka_drawer", "quanta_towel_fold"):
        scene = make_scene(name)
        scene.reset(EVAL_SEEDS[0])
        scene.run_for(1.0)
        assert not scene.success()
        if name == "quanta_towel_fold":
            assert scene.fold_quality() < 0.1


def test_crumpled_towel_is_not_a_fold():
    scene = make_scene("quanta_towel_fold")
    scene.reset(EVAL_SEEDS[0])
    centre = scene.cloth_vertices().mean(axis=0)
    for a, b in zip(scene._vert_qadr, scene._vert_bodies):
        scene.data.qpos[a:a + 3] = centre - scene.model.body_pos[b]
    scene.step(1)
    assert scene.fold_quality() > 0.9     # every mirrored pair coincides ...
    assert not scene.success()            # ... but a ball of cloth is not a folded towel


def test_cloth_grasp_attaches_only_near_vertices_and_releases():
    scene = make_scene("quanta_towel_fold")
    scene.reset(EVAL_SEEDS[0])
    scene.set_gripper("left", 0.0)      # closing far above the cloth grabs nothing
    scene.step(5)
    assert scene.grasped_vertices("left") == [] and scene.active_attachments("left") == 0
    # closing at the corner attaches a few vertices near the fingertips
    corner = scene.cloth_vertices()[scene.corner_indices()["near_left"]]
    target, _ = scene.world_to_base(corner + [0.01, 0.01, 0.016], [1, 0, 0, 0])
    scene.set_gripper("left", 1.0)
    scene.step(5)
    assert scene.set_target("left", target, _down("left"))[0]
    scene.run_for(2.0)
    scene.set_gripper("left", 0.0)
    scene.step(5)
    attached = scene.grasped_vertices("left")
    assert 1 <= len(attached) <= 4 and scene.active_attachments("left") == len(attached)
    tcp = scene.eef_pose_world("left")[0]
    assert np.all(np.linalg.norm(scene.cloth_vertices()[attached] - tcp, axis=1) < 0.03)
    scene.set_gripper("left", 1.0)
    scene.step(5)
    assert scene.active_attachments("left") == 0


def _down(arm):
    from lawam_sim.experts.towel_fold import down_quat_xyzw
    return down_quat_xyzw(arm)
