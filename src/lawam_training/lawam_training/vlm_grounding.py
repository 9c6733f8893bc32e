"""Stage 0 of the sim recipe: grounding pretraining of the VLM prior on twin renders.

The paper's VLM prior is a pretrained Qwen3-VL that can already find "the red cube" in an image; the sim preset's
VLM starts random and nothing reachable offline can pretrain it. Trained only by the stage-2 losses it never learnt
to see the cubes (run pp_v3: a ridge probe from its image-token states placed the red cube with 8.9 cm error
against 9.7 cm for the mean guess, and the frozen encoder's features 3.0 cm), so the instruction could not choose
a cube and the policy reached for either. This stage stands in for that pretraining: from (primary image,
instruction) the latent-query states regress the xy of the cube the instruction names and of the other cube
(labels from the twin's privileged state, start layouts on seeds disjoint from demos and evaluation). The VLM's
weights carry over into stage 2; the regression head is discarded, like stage 1's auxiliary state heads.

Measured on the sim preset (3,000 renders, batch 32, lr 1e-3): without warm-up and gradient clipping the held-out
error of the named cube stayed at the mean guess (9-10 cm) for 1,400 steps, then fell to 0.9 cm by 2,400; with
them (as here, run pp_v4) the loss is down 10x by step 300, and the held-out error is 0.5 cm after 3,000 steps
(6.3 min on 2 threads). An interrupted stage 0 starts again: it keeps no checkpoints.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

GROUNDING_FIRST_SEED = 500_000  # + 10,000 x recipe seed: away from demo seeds (1 + 10,000 x seed ...) and EVAL_SEEDS


def render_grounding_set(env, policy, count: int, first_seed: int, progress=None) -> dict:
    """Start layouts of `count` seeds rendered by the twin's primary camera.

    Returns units (N, 3, S, S) float16 in [0, 1] (the policy's processed primary view) and objects
    (N, I, 2, 2) float32: per instruction of the scene, the base-frame xy (m) of the cube it names, then of the
    other one (scene.grounding_targets). Raises ValueError for a scene without grounding targets."""
    scene = env.scene
    if not hasattr(scene, "grounding_targets"):
        raise ValueError(f"scene {scene.name} names no objects to ground (no grounding_targets)")
    camera = env.cameras_for(policy)[0]
    units, objects = [], []
    seeds = range(first_seed, first_seed + count)
    for seed in (progress(seeds, desc="grounding renders", unit="frame") if progress else seeds):
        scene.reset(seed)
        image = env.rig.render(scene.data, camera)
        units.append(policy.processor.unit_images([image], "cpu")[0, 0].to(torch.float16))
        per_instruction = []
        for instruction in scene.instructions:
            scene.set_instruction(instruction)
            per_instruction.append(scene.grounding_targets())
        objects.append(np.stack(per_instruction))
    return {"units": torch.stack(units), "objects": torch.from_numpy(np.stack(objects).astype(np.float32)),
            "instructions": list(scene.instructions)}


class GroundingHead(nn.Module):
    """Latent-query states (B, M, hidden) -> (B, K, 2) object xy, normalised (training only, then discarded)."""

    def __init__(self, num_queries: int, hidden: int, num_objects: int):
        super().__init__()
        self.num_objects = num_objects
        self.proj = nn.Linear(num_queries * hidden, num_objects * 2)

    def forward(self, latent_states: torch.Tensor) -> torch.Tensor:
        return self.proj(latent_states.flatten(1).float()).view(len(latent_states), self.num_objects, 2)


class Grounding:
    """The VLM prior + a regression head on its latent-query states, over a render set whose first `train_n`
    frames are trained on (the label normaliser comes from them alone)."""

    def __init__(self, policy, data: dict, train_n: int):
        self.vlm = policy.vlm
        self.data = data
        xy = data["objects"][:train_n].reshape(-1, 2)
        self.mean, self.std = xy.mean(0), xy.std(0)
        K = data["objects"].shape[2]
        self.head = GroundingHead(policy.config.num_latent_queries, policy.config.vlm_hidden, K)

    def predict(self, idx: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Frames `idx` under instruction number `which` (both (B,)) -> predicted object xy (B, K, 2), metres."""
        B = len(idx)
        valid = torch.ones(B, 1, dtype=torch.bool)  # one dummy action token: the prefix pass only reads it
        names = [self.data["instructions"][i] for i in which.tolist()]
        state = self.vlm.encode_prefix(self.data["units"][idx, None].float(), names, torch.zeros(B, 1), valid)
        return self.head(state["latent_states"]) * self.std + self.mean

    def loss(self, idx, which) -> torch.Tensor:
        target = self.data["objects"][idx, which]
        return (((self.predict(idx, which) - target) / self.std) ** 2).mean()

    @torch.no_grad()
    def errors_m(self, idx: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Mean xy error (m) per object (named, other), every frame of `idx` under every instruction."""
        errs = []
        for which in range(len(self.data["instructions"])):
            for chunk in idx.split(batch_size):
                w = torch.full_like(chunk, which)
                errs.append((self.predict(chunk, w) - self.data["objects"][chunk, w]).norm(dim=-1))
        return torch.cat(errs).mean(0).numpy()


class GroundingObjective(nn.Module):
    """Stage 0's regression kept on through stage 2, as an auxiliary loss (the Trainer's `aux`).

    Stage 2's losses alone wash the cube positions out of the VLM: after `pp_v4`'s stage 2 a ridge probe on its
    latent-query states placed the named cube with 1.5 cm error (stage 0 had ended at 0.5 cm). `loss(generator)`
    is `weight` x the normalised xy loss of one batch of training frames under random instructions; only the
    head is this module's own parameters (the VLM is the policy's, trained by stage 2 anyway)."""

    def __init__(self, policy, data: dict, train_n: int, batch_size: int, weight: float):
        super().__init__()
        if not 0 < train_n <= len(data["units"]):
            raise ValueError(f"train_n must be in 1..{len(data['units'])}, got {train_n}")
        self.grounding = Grounding(policy, data, train_n)
        self.head = self.grounding.head
        self.train_n, self.batch_size, self.weight = train_n, batch_size, float(weight)

    def loss(self, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(0, self.train_n, (self.batch_size,), generator=generator)
        which = torch.randint(0, len(self.grounding.data["instructions"]), (self.batch_size,), generator=generator)
        return self.weight * self.grounding.loss(idx, which)

    def held_out_errors_m(self) -> np.ndarray:
        """Mean xy error (m) of the named and the other object on the frames after `train_n`."""
        return self.grounding.errors_m(torch.arange(self.train_n, len(self.grounding.data["units"])))


def pretrain_grounding(policy, data: dict, steps: int, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
                       held_out: int = 200, log=print, progress=None) -> dict:
    """Train policy.vlm (all its weights) and a fresh head for `steps` AdamW steps on `data`
    (render_grounding_set); the last `held_out` frames are never trained on, nor enter the label normaliser or
    the mean guess. Returns the figures: held-out xy error of the named and the other object (m), the mean
    guess's (the training labels' mean), wall time, steps."""
    n = len(data["units"])
    if not 0 < held_out < n:
        raise ValueError(f"held_out must be in 1..{n - 1}, got {held_out}")
    train_n, val_idx = n - held_out, torch.arange(n - held_out, n)
    objective = GroundingObjective(policy, data, train_n, batch_size, weight=1.0)
    gen = torch.Generator().manual_seed(seed)
    params = list(policy.vlm.parameters()) + list(objective.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    policy.vlm.train()
    t0 = time.monotonic()
    bar = progress(range(steps), desc="stage 0 (VLM grounding)", unit="step") if progress else range(steps)
    for step in bar:
        loss = objective.loss(gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if (step + 1) % max(1, steps // 10) == 0:
            log(f"stage 0 step {step + 1}/{steps}: loss {loss.item():.4f}")
    wall = time.monotonic() - t0
    policy.vlm.eval()
    named, other = objective.held_out_errors_m()
    guess = (data["objects"][val_idx] - objective.grounding.mean).norm(dim=-1).mean().item()
    return {"steps": steps, "wall_s": wall, "frames": n, "held_out": held_out, "named_error_m": float(named),
            "other_error_m": float(other), "mean_guess_error_m": guess}


def save_vlm(policy, path: Path) -> None:
    """The VLM prior's weights after stage 0, written atomically (safetensors)."""
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in policy.vlm.state_dict().items()}, str(tmp))
    tmp.replace(path)


def load_vlm(policy, path: Path) -> None:
    from safetensors.torch import load_file
    policy.vlm.load_state_dict(load_file(str(path)), strict=True)
