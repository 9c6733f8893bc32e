"""The shipped sim checkpoints do their task in a ROS-free closed loop (twin scene + bridge core + policy),
deterministically (fixed policy seed, one torch thread), on fixed evaluation seeds, for every instruction.
Success is the scene's own test: the named cube in the bowl, the other cube not, the gripper open."""
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "src" / "lawam_bringup" / "checkpoints"
CASES = {  # scene -> (seeds (indices into EVAL_SEEDS), successes needed per instruction)
    "franka_pick_place": (range(5), 4),
}


@pytest.mark.slow
@pytest.mark.parametrize("scene_name", sorted(CASES))
def test_shipped_checkpoint_solves_its_task(scene_name):
    from lawam_policy.model import LaWAMPolicy
    from lawam_sim.rendering import CameraRig
    from lawam_sim.scenes import make_scene
    from lawam_sim.seeds import EVAL_SEEDS
    from lawam_training.sim_demos import TWINS, twin_settings
    from lawam_training.sim_rollout import rollout

    ckpt = CHECKPOINTS / scene_name
    assert (ckpt / "model.safetensors").is_file(), f"no shipped checkpoint in {ckpt}"
    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = LaWAMPolicy.from_pretrained(ckpt)
    twin, embodiment, camera, _ = TWINS[scene_name]
    s = twin_settings(ROOT / "config", twin)
    scene = make_scene(scene_name, physics_hz=s.physics_hz, workspace=s.workspace)
    rig = CameraRig(scene.model, s.image_size[1], s.image_size[0])
    rate = policy.config.trained_rates_hz(embodiment)[0]
    seeds, needed = CASES[scene_name]
    failures = []
    for instruction in scene.instructions:
        results = [rollout(policy, scene, rig, camera, EVAL_SEEDS[i], instruction, rate, embodiment, policy_seed=0)
                   for i in seeds]
        wins = sum(r.success for r in results)
        if wins < needed:
            failures.append(f"{instruction!r}: {wins}/{len(results)} "
                            + str([(r.seed, r.success, {k: round(v, 3) if isinstance(v, float) else v
                                                        for k, v in r.metrics.items()}) for r in results]))
    rig.close()
    assert not failures, "; ".join(failures)
