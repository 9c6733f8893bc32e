#!/usr/bin/env python3
"""The paper's ablations in small (issue 15) on a lawam-sim-train run: Fig. 6 (w/o LaWM, w/o latent-action
distillation, w/o KI), Fig. 7 (physical-time encoding with mixed control rates) and App. D.4 (LaWM dynamics,
Appendix-B heatmap strip).

    python benchmarks/ablations.py --run outputs/sim_train/pp_c --output outputs/ablations/pp_c \\
        --budget-min 20 --eval-seeds 10 --seeds 0,1 --rates --dynamics --json outputs/ablations/pp_c.json

Every arm is a LaWAMConfig switch of the same model and the same stage-2 code (ARMS); each starts from the
run's stage-1 checkpoint (the same frozen encoder, IDM and LaWM for every arm) on the run's dataset and
held-out split, trains stage 2 for the same wall-time budget (--budget-min per arm, the full model included:
steps reached differ with each arm's step cost), is exported and evaluated ROS-free in the closed loop
(lawam_training.sim_train.evaluate_checkpoint) on the same fixed evaluation seeds, each instruction on every
seed. `--seeds 0,1` trains the arms of --multi-seed-arms (default: full, no_lawm) once per training seed
(initialisation of the VLM prior and the expert, batch order, flow noise) and reports the spread; the other
arms use the first seed.

--rates (Fig. 7 in small): the run's demos recorded again at 20 Hz (the same seeds, DART noise and expert,
collected once into OUTPUT/demos_20hz; resumable) and their 10 Hz and 5 Hz versions (every 2nd / 4th frame),
co-trained with the physical-time encoding (seconds) and without it (tokens coded by index); the model
trained on the 20 Hz demos alone is the reference. All three are evaluated at 20 Hz and their held-out error
is measured on the 20 Hz held-out episodes.
--dynamics (App. D.4): on the held-out episodes, the mean cosine distance of LaWM's subgoal to the true future
features and to the current features, with z* (the frozen IDM's posterior mean) and with the policy's z_hat
(the `full` arm); and the Appendix-B heatmap strip of one evaluation episode (--strip-arm) as a PNG:
chunk-final frames with the heatmap of the subgoal against one arm patch of the first frame.

Resumable: each finished arm is read back from OUTPUT/arms/<arm>_s<seed>/result.json; an interrupted arm
continues from its last training checkpoint with the wall time it had used. Bad input: one line
`ablations: error: ...` and exit status 2.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src" / p) for p in ("lawam_training", "lawam_policy", "lawam_sim")]

import numpy as np  # noqa: E402

# Every arm starts from the paper's model (Fig. 6's "full"), then applies its own switches. The sim preset
# trains without knowledge insulation (its VLM starts random), so the run's stage-1 config alone would make
# the full arm a w/o-KI arm.
PAPER_SWITCHES = {"subgoal_conditioning": True, "knowledge_insulation": True, "lambda_distill": 1.0,
                  "time_encoding": "seconds"}
# arm -> (LaWAMConfig switches, control rates (Hz) of the training data; the first is the evaluation rate)
ARMS = {
    "full": ({}, (10.0,)),
    "no_lawm": ({"subgoal_conditioning": False}, (10.0,)),
    "no_distill": ({"lambda_distill": 0.0}, (10.0,)),
    "no_ki": ({"knowledge_insulation": False}, (10.0,)),
    "no_ki_distill": ({"knowledge_insulation": False, "lambda_distill": 0.0}, (10.0,)),
    "fig7_20hz_only": ({}, (20.0,)),
    "fig7_seconds": ({}, (20.0, 10.0, 5.0)),
    "fig7_index": ({"time_encoding": "index"}, (20.0, 10.0, 5.0)),
}
FIG6_ARMS = ("full", "no_lawm", "no_distill", "no_ki", "no_ki_distill")
RATE_ARMS = ("fig7_20hz_only", "fig7_seconds", "fig7_index")  # the first is the reference
FAST_HZ = 20  # the rate the Fig. 7 demos are recorded at: the experts' control rate
LABELS = {"full": "full LaWAM", "no_lawm": "w/o LaWM (no subgoal in the expert)",
          "no_distill": "w/o latent-action distillation", "no_ki": "w/o KI",
          "no_ki_distill": "w/o KI & distillation", "fig7_20hz_only": "20 Hz only (reference)",
          "fig7_seconds": "5+10+20 Hz, physical-time encoding", "fig7_index": "5+10+20 Hz, index encoding"}
RATES_NOTE = ("Fig. 7 in small: the run's demos recorded again at 20 Hz (same seeds, noise and expert), and their "
              "10 Hz and 5 Hz versions (every 2nd / 4th frame); every model is evaluated at 20 Hz and its held-out "
              "error measured on the 20 Hz held-out episodes; the 20 Hz-only model is the reference.")
# Settings a resumed output must share with the arms already in it (the comparison must stay fair).
FAIR = ("run", "budget_min", "steps", "eval_seeds", "batch_size", "stage1_checkpoint", "rates_demos")


class AblationError(Exception):
    """Bad input: a one-line message, exit status 2."""


def log(msg: str) -> None:
    print(f"ablations: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- arguments
def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="ablations", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--run", required=True, help="lawam-sim-train run directory (dataset + stage-1 checkpoint)")
    ap.add_argument("--output", required=True, help="ablation directory (one sub-directory per arm and seed)")
    ap.add_argument("--budget-min", type=float, default=20.0, help="stage-2 training wall time per arm, minutes")
    ap.add_argument("--steps", type=int, default=None,
                    help="budget in stage-2 optimiser steps per arm instead of wall time: the same for every arm, "
                         "and a re-run reproduces it on a busy machine (wall time is then only reported)")
    ap.add_argument("--eval-seeds", type=int, default=10, help="fixed evaluation seeds per instruction (0: none)")
    ap.add_argument("--arms", default=",".join(FIG6_ARMS), help=f"Fig. 6 arms, of {', '.join(FIG6_ARMS)}")
    ap.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1")
    ap.add_argument("--multi-seed-arms", default="full,no_lawm", help="arms trained with every --seeds seed")
    ap.add_argument("--rates", action="store_true", help=f"also the Fig. 7 arms (mixed 5 + 10 + {FAST_HZ} Hz, "
                    "from the run's demos recorded again at that rate)")
    ap.add_argument("--rates-demos", default=None,
                    help=f"a LeRobot dataset of the {FAST_HZ} Hz demos to use instead of recording them "
                         "(default: recorded into OUTPUT/demos_{FAST_HZ}hz once)")
    ap.add_argument("--dynamics", action="store_true", help="also App. D.4: LaWM dynamics and the heatmap strip")
    ap.add_argument("--strip-arm", default="full", help="arm whose evaluation episode the heatmap strip shows")
    ap.add_argument("--strip-patch", default="auto",
                    help="ROW,COL of the arm patch in the first frame (auto: the one showing the tool centre)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the run's")
    ap.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)), help="torch threads")
    ap.add_argument("--json", default=None, help="write every figure to this JSON file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if not args.budget_min > 0:
        raise AblationError(f"--budget-min must be positive, got {args.budget_min}")
    if args.steps is not None and args.steps < 1:
        raise AblationError(f"--steps must be >= 1, got {args.steps}")
    if args.eval_seeds < 0:
        raise AblationError(f"--eval-seeds must be >= 0, got {args.eval_seeds}")
    if args.batch_size is not None and args.batch_size < 1:
        raise AblationError(f"--batch-size must be >= 1, got {args.batch_size}")
    args.arm_list = _names(args.arms, FIG6_ARMS, "--arms")
    args.multi_list = _names(args.multi_seed_arms, tuple(ARMS), "--multi-seed-arms")
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise AblationError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if not args.seed_list or any(s < 0 for s in args.seed_list) or len(set(args.seed_list)) != len(args.seed_list):
        raise AblationError(f"--seeds must be distinct integers >= 0, got {args.seeds!r}")
    if args.strip_arm not in ARMS:
        raise AblationError(f"unknown --strip-arm {args.strip_arm!r}; arms: {', '.join(ARMS)}")
    args.patch = None
    if args.strip_patch != "auto":
        try:
            row, col = (int(v) for v in args.strip_patch.split(","))
        except ValueError:
            raise AblationError(f"--strip-patch must be ROW,COL or auto, got {args.strip_patch!r}") from None
        args.patch = (row, col)
    if args.rates_demos is not None:
        args.rates_demos = Path(args.rates_demos).expanduser().absolute()
        if not (args.rates_demos / "meta" / "info.json").is_file():
            raise AblationError(f"--rates-demos {args.rates_demos} is not a LeRobot dataset (no meta/info.json)")
    run = Path(args.run).expanduser()
    if not (run / "dataset").is_dir():
        raise AblationError(f"{run} holds no lawam-sim-train dataset (no {run / 'dataset'})")
    from lawam_training.train import latest_checkpoint
    args.stage1 = latest_checkpoint(run / "runs", 1)
    if args.stage1 is None:
        raise AblationError(f"{run} holds no stage-1 checkpoint (runs/stage1_step*): run lawam-sim-train first")
    recipe = run / "recipe.json"
    state = json.loads(recipe.read_text()) if recipe.is_file() else {}
    args.recipe = state.get("settings", {})
    args.collected = state.get("phases", {}).get("collect", {})  # episodes per demo, colour exchange
    if args.batch_size is None:
        args.batch_size = int(args.recipe.get("batch_size", 32))
    if args.patch is not None:
        from lawam_policy.model import LaWAMConfig
        side = LaWAMConfig.load(args.stage1).image_size // 16
        if not all(0 <= v < side for v in args.patch):
            raise AblationError(f"--strip-patch {args.strip_patch} outside the {side}x{side} patch grid")
    return args


def _names(text: str, known: tuple, flag: str) -> list:
    names = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in names if a not in known]
    if bad or not names:
        raise AblationError(f"{flag}: unknown arm(s) {bad or text!r}; known: {', '.join(known)}")
    return names


def plan_jobs(args) -> list[tuple[str, int]]:
    """(arm, training seed) pairs in training order."""
    arms = list(args.arm_list)
    if args.rates:
        arms += [a for a in RATE_ARMS if a not in arms]
    if args.dynamics and args.strip_arm not in arms:
        arms.append(args.strip_arm)
    if args.dynamics and "full" not in arms:
        arms.append("full")
    return [(arm, seed) for arm in arms for seed in (args.seed_list if arm in args.multi_list else args.seed_list[:1])]


# ---------------------------------------------------------------------------------------------- data
class Data:
    """The run's frame cache (features and z* of the stage-1 model), its held-out split as in the recipe,
    and for the rate arms the 20 Hz demos with their 10 and 5 Hz versions; built once and shared by every arm."""

    def __init__(self, args, policy, progress: bool):
        self.progress = progress
        from tqdm import tqdm

        from lawam_training.data import DemoDataset, MixedDataset
        from lawam_training.frame_cache import CachedDemoDataset
        from lawam_training.sim_train import _episode_view, held_out_episodes, run_demo_groups

        run = Path(args.run).expanduser()
        cfg = policy.config
        t = time.monotonic()
        demo = DemoDataset(run / "dataset", cfg.horizon_s)
        cache = CachedDemoDataset(demo, cfg.image_size, encoder=policy.encode_features,
                                  progress=tqdm if progress else None)
        # the recipe's split: whole demos (with their counterfactual renderings), drawn from the dataset's groups
        groups = run_demo_groups(run, args.collected)
        val_eps = int(args.recipe.get("val_episodes", 6))
        if not 0 < val_eps < len(groups):
            val_eps = max(1, len(groups) // 5)
        held = held_out_episodes(groups, val_eps, int(args.recipe.get("seed", 0)))
        self.held = sorted(held)
        cache.cache_teacher_latents(policy.teacher_latent)
        self.cache = cache
        self.train = _episode_view(cache, lambda e: e not in held)
        self.val = _episode_view(cache, lambda e: e in held)
        self.train10 = MixedDataset([self.train])
        self.val10 = MixedDataset([self.val])
        self._fast = None  # (train views at 20, 10 and 5 Hz, 20 Hz held-out view) of the Fig. 7 demos
        self.args = args
        self.policy = policy
        log(f"cached {len(cache.frames)} frames, features and z* in {time.monotonic() - t:.0f} s; "
            f"{len(self.train)} training samples, {len(self.val)} held out ({len(held)} episodes)")

    def training(self, rates) -> "MixedDataset":
        """Training samples at `rates` (Hz): the run's own (10 Hz) or the Fig. 7 demos at 20 Hz and below."""
        from lawam_training.data import MixedDataset
        if tuple(rates) == (float(self.cache.fps),):
            return self.train10
        views, _ = self._fig7()
        missing = [r for r in rates if r not in views]
        if missing:
            raise AblationError(f"no training data at {missing} Hz (have {sorted(views)})")
        return MixedDataset([views[r] for r in rates])

    def validation(self, rates) -> "MixedDataset":
        """Held-out samples at the arm's evaluation rate (its first)."""
        from lawam_training.data import MixedDataset
        if rates[0] == float(self.cache.fps):
            return self.val10
        return MixedDataset([self._fig7()[1]])

    def _fig7(self):
        if self._fast is None:
            from tqdm import tqdm

            from lawam_training.data import DemoDataset
            from lawam_training.frame_cache import CachedDemoDataset
            from lawam_training.sim_demos import collect
            from lawam_training.sim_train import _episode_view, workspace_root

            path = self.args.rates_demos
            if path is None:  # the run's demos again: the recipe's seeds, noise and count
                demos = int(self.args.recipe.get("demos", len(self.cache.episodes)))
                path = Path(self.args.output).expanduser().absolute() / f"demos_{FAST_HZ}hz"
                t = time.monotonic()
                info = collect(self.args.scene, workspace_root() / "config", path, demos, FAST_HZ,
                               first_seed=1 + 10_000 * int(self.args.recipe.get("seed", 0)),
                               dart_sigma_m=float(self.args.recipe.get("dart_sigma", 0.0)),
                               exchange_colours=bool(self.args.collected.get("exchange_colours", False)),
                               distractor_moves=int(self.args.recipe.get("distractor_moves", 0)),
                               progress=self.progress)
                log(f"Fig. 7 demos: {info['episodes']} episodes at {FAST_HZ} Hz in {path} "
                    f"({time.monotonic() - t:.0f} s)")
            cfg = self.policy.config
            demo = DemoDataset(path, cfg.horizon_s)
            if demo.fps != FAST_HZ:
                raise AblationError(f"--rates-demos {path} is recorded at {demo.fps:g} Hz, not {FAST_HZ} Hz")
            fast = CachedDemoDataset(demo, cfg.image_size, encoder=self.policy.encode_features,
                                     progress=tqdm if self.progress else None)
            held = set(self.held)
            views = {}
            for factor in (1, 2, 4):
                d = fast if factor == 1 else downsample(fast, factor, cfg.horizon_steps(fast.fps / factor))
                d.cache_teacher_latents(self.policy.teacher_latent)
                views[float(fast.fps / factor)] = _episode_view(d, lambda e: e not in held)
            self._fast = views, _episode_view(fast, lambda e: e in held)
        return self._fast


def downsample(cache, factor: int, horizon_steps: int):
    """A copy of a CachedDemoDataset at fps / factor: every `factor`-th frame of each episode, from its first
    (actions and states are the ones recorded at those frames; the physical horizon stays the same)."""
    slow = copy.copy(cache)
    keep, episodes = [], []
    for a, b, instruction in cache.episodes:
        idx = list(range(a, b, factor))
        episodes.append((len(keep), len(keep) + len(idx), instruction))
        keep += idx
    keep = np.asarray(keep)
    slow.frames, slow.actions, slow.states = cache.frames[keep], cache.actions[keep], cache.states[keep]
    slow.features = None if cache.features is None else cache.features[keep]
    slow.teacher_latents = None
    slow.episodes = episodes
    slow.fps = cache.fps / factor
    slow.horizon_steps = horizon_steps
    slow.indices = [(e, t) for e, (a, b, _) in enumerate(episodes) for t in range(b - a)]
    return slow


# ---------------------------------------------------------------------------------------------- one arm
def build_policy(args, arm: str, seed: int):
    """The stage-2 policy of `arm`: the run's stage-1 config with the paper's switches, then the arm's; VLM
    prior and expert initialised from `seed`, the stage-1 modules loaded from the run's stage-1 checkpoint."""
    import torch

    from lawam_policy.model import LaWAMConfig, LaWAMPolicy
    from lawam_training.sim_train import load_weights

    switches, rates = ARMS[arm]
    cfg = LaWAMConfig.load(args.stage1)
    cfg.components = "all"
    for key, value in {**PAPER_SWITCHES, **switches}.items():
        setattr(cfg, key, value)
    emb = cfg.layout().embodiment
    cfg.control_rates_hz = dict(cfg.control_rates_hz, **{emb: [float(r) for r in rates]})  # first: evaluation
    cfg.validate()
    torch.manual_seed(seed)
    policy = LaWAMPolicy(cfg)
    load_weights(policy, args.stage1, stage1_only=True)
    return policy


def seconds_per_step(policy, data, batch_size: int) -> float:
    """Median wall time of a stage-2 optimiser step of this arm (3 timed after one warm-up), on a copy."""
    import torch

    from lawam_training.data import collate
    probe = copy.deepcopy(policy).train()
    opt = torch.optim.AdamW(probe.parameter_groups(2))
    batch = collate([data[i] for i in np.linspace(0, len(data) - 1, batch_size).round().astype(int)])
    times = []
    for _ in range(4):
        t = time.perf_counter()
        probe.training_losses(batch)["loss"].backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:])) * 1.1  # + data loading and the segment checkpoints (as the recipe)


def run_arm(args, arm: str, seed: int, data: Data, out: Path, progress: bool) -> dict:
    """Train (or continue) one arm for the budget, export, evaluate; result.json is the arm's record."""
    from lawam_training.sim_train import evaluate_checkpoint, heldout_figures
    from lawam_training.train import Trainer, TrainOptions, write_atomic_dir

    arm_dir = out / "arms" / f"{arm}_s{seed}"
    result_path = arm_dir / "result.json"
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        log(f"{arm} seed {seed}: finished earlier, read back from {result_path}")
        return result
    arm_dir.mkdir(parents=True, exist_ok=True)
    state_path = arm_dir / "progress.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    policy = build_policy(args, arm, seed)
    switches, rates = ARMS[arm]
    train = data.training(rates)
    budget_s = float("inf") if args.steps else args.budget_min * 60
    if "steps_planned" not in state:
        sps = seconds_per_step(policy, train, args.batch_size)
        state.update(s_per_step=sps, steps_planned=args.steps or max(1, int(budget_s / sps)), wall_s=0.0)
        state_path.write_text(json.dumps(state))
    steps = state["steps_planned"]
    opts = TrainOptions(steps=steps, batch_size=args.batch_size, lr=None, warmup_steps=min(100, steps // 10),
                        min_lr_ratio=0.05, seed=seed + 2, log_every=25, val_every=10 ** 9, checkpoint_every=10 ** 9,
                        keep_checkpoints=1, num_workers=0, progress=progress)
    trainer = Trainer(policy, 2, train, arm_dir / "runs", opts, val_data=None, log=lambda m: None)
    # wall time is checked between segments, each ending with a checkpoint: 20 per arm, at most one a minute
    segment = max(1, steps // 20, min(steps, int(60 / state["s_per_step"])))
    trainer.fit(resume=True, stop_after=0)  # an interrupted arm: its last checkpoint (weights, step, optimiser)
    log(f"{arm} seed {seed}: {LABELS[arm]}; {steps} steps planned "
        f"{'(--steps)' if args.steps else f'for {args.budget_min:g} min'} "
        f"({state['s_per_step']:.2f} s/step), switches {switches or 'none'}, rates {list(rates)} Hz")
    while trainer.step < steps and state["wall_s"] < budget_s:
        t = time.monotonic()
        trainer.fit(resume=False, stop_after=trainer.step + segment)
        state["wall_s"] += time.monotonic() - t
        state["step"] = trainer.step
        state_path.write_text(json.dumps(state))
    figures = heldout_figures(policy, data.validation(rates))
    checkpoint = arm_dir / "checkpoint"
    policy.eval()
    write_atomic_dir(checkpoint, lambda d: policy.save_pretrained(d))
    result = {"arm": arm, "label": LABELS[arm], "seed": seed, "switches": switches, "rates_hz": list(rates),
              "budget_min": args.budget_min, "steps_planned": steps, "steps": trainer.step,
              "training_wall_s": state["wall_s"], "s_per_step": state["s_per_step"],
              "heldout": figures, "checkpoint": str(checkpoint), "eval": None}
    if args.eval_seeds > 0:
        result["eval"] = evaluate_checkpoint(checkpoint, args.scene, args.eval_seeds, progress)
    result_path.write_text(json.dumps(result, indent=2))
    log(f"{arm} seed {seed}: {trainer.step} steps, held-out action error "
        f"{figures['action_error_m'] * 100:.1f} cm")
    return result


# ---------------------------------------------------------------------------------------------- App. D.4
def cosine_distance(a, b):
    """Mean over samples and patches of 1 - cos(a, b); a, b (B, N, C)."""
    import torch.nn.functional as F
    return float((1 - F.cosine_similarity(a.float(), b.float(), dim=-1)).mean())


def lawm_dynamics(policy, val, limit: int = 512) -> dict:
    """On held-out samples: mean cosine distance of LaWM's subgoal, driven by z* and by the policy's z_hat,
    to the true future features f_{t+T} and to the current features f_t; and f_t to f_{t+T} for scale."""
    import torch

    from lawam_training.sim_train import _batches
    policy.eval()
    sums = {k: 0.0 for k in ("z_star_to_future", "z_star_to_current", "z_hat_to_future", "z_hat_to_current",
                             "current_to_future")}
    n = 0
    with torch.no_grad():
        for batch in _batches(val, limit=limit):
            f_t, f_tT = batch["features_t"].float(), batch["features_tT"].float()
            z_star = batch["z_star"].float() if "z_star" in batch else policy.teacher_latent(f_t, f_tT)
            unit = policy.processor.views(batch["images_t"], policy.device)
            valid = batch["action_mask"].bool()
            state = policy.vlm.encode_prefix(unit, list(batch["instructions"]),
                                             policy._time_inputs(batch["timestamps"].float(), valid), valid,
                                             fused_queries=True)
            z_hat = policy.vlm.aggregate(state["latent_states"])
            b = len(f_t)
            for name, z in (("z_star", z_star), ("z_hat", z_hat)):
                f_hat = policy.lawm(f_t, z)
                sums[f"{name}_to_future"] += cosine_distance(f_hat, f_tT) * b
                sums[f"{name}_to_current"] += cosine_distance(f_hat, f_t) * b
            sums["current_to_future"] += cosine_distance(f_t, f_tT) * b
            n += b
    return {**{k: v / max(n, 1) for k, v in sums.items()}, "samples": n}


def heatmap_strip(checkpoint: Path, scene: str, patch, path: Path, max_panels: int = 10) -> dict:
    """One evaluation episode (first evaluation seed, first instruction) of `checkpoint`; a panel per chunk i
    (at most `max_panels`, spread evenly over the episode) shows the last frame of chunk i (the frame when chunk
    i + 1 is requested) with the heatmap of chunk i's subgoal against the arm patch's feature in the episode's
    first frame (Appendix B). Returns what the strip shows."""
    from PIL import Image, ImageDraw

    from lawam_policy.model import LaWAMPolicy
    from lawam_policy.runtime.heatmap import render_heatmap, similarity_map
    from lawam_sim.seeds import EVAL_SEEDS
    from lawam_training.sim_train import workspace_root
    from lawam_training.sim_rollout import twin_env

    policy = LaWAMPolicy.from_pretrained(checkpoint)
    env = twin_env(scene, workspace_root() / "config")
    rate = policy.config.trained_rates_hz(env.embodiment)[0]
    chunks = []  # (sim time, primary image, prediction)
    eef = []  # the first arm's tool centre in the first frame's patch grid

    def on_chunk(now, img, pred):
        if not chunks:
            side = int(round(np.sqrt(len(pred.current_features))))
            eef.append(project_to_patch(env.scene, env.cameras[0], img.shape[:2], side))
        chunks.append((now, img, pred))

    instruction = env.scene.instructions[0]
    res = env.rollout(policy, EVAL_SEEDS[0], instruction, rate, on_chunk=on_chunk)
    env.close()
    if len(chunks) < 2:
        raise AblationError("the strip's episode produced fewer than two chunks")
    first = chunks[0][2].current_features
    side = int(round(np.sqrt(len(first))))
    if patch is None:
        patch = eef[0]
    panels = []
    for i in sorted({int(v) for v in np.linspace(0, len(chunks) - 2, max_panels).round()}):
        _, _, pred = chunks[i]
        t_end, frame, _ = chunks[i + 1]
        hm = similarity_map(first, pred.subgoal, patch)
        tile = Image.fromarray(render_heatmap(frame, hm))
        draw = ImageDraw.Draw(tile)
        draw.text((3, 2), f"chunk {i + 1}, t={t_end:.1f} s", fill=(255, 255, 255))
        panels.append(tile)
    h, w = panels[0].height, panels[0].width
    strip = Image.new("RGB", (w * len(panels), h))
    for i, p in enumerate(panels):
        strip.paste(p, (i * w, 0))
    # the chosen patch, boxed in the first panel
    ImageDraw.Draw(strip).rectangle([patch[1] * w / side, patch[0] * h / side, (patch[1] + 1) * w / side - 1,
                                     (patch[0] + 1) * h / side - 1], outline=(0, 255, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path)
    return {"png": str(path), "seed": EVAL_SEEDS[0], "instruction": instruction, "patch": list(patch),
            "panels": len(panels), "success": res.success, "control_hz": rate}


def project_to_patch(scene, camera: str, image_hw, side: int) -> tuple[int, int]:
    """(row, col) of the patch (a side x side grid over the camera image) that shows the first arm's tool
    centre: a pinhole projection with the MuJoCo camera's pose and vertical field of view."""
    import mujoco
    cid = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if cid < 0:
        raise AblationError(f"no camera {camera!r} in scene {scene.name!r}")
    world = np.asarray(scene.eef_pose_world(scene.arms[0])[0], float)
    rot = scene.data.cam_xmat[cid].reshape(3, 3)  # columns: the camera's x (right), y (up), z (backwards)
    x, y, z = rot.T @ (world - scene.data.cam_xpos[cid])
    h, w = image_hw
    focal = 0.5 * h / np.tan(np.radians(scene.model.cam_fovy[cid]) / 2)
    u, v = w / 2 + focal * x / -z, h / 2 - focal * y / -z
    return (int(np.clip(v / h * side, 0, side - 1)), int(np.clip(u / w * side, 0, side - 1)))


# ---------------------------------------------------------------------------------------------- report
def _fmt(v, scale=1.0, digits=1, none="-"):
    return none if v is None else f"{v * scale:.{digits}f}"


def render(results: list[dict], instructions: list, header: list, rates: bool, dynamics: dict | None,
           strip: dict | None) -> str:
    lines = list(header) + [""]
    head = ["arm", "training seed", "steps reached"] + [f"success: {i}" for i in instructions] + \
        ["mean time to success (s)", "held-out action error (cm)"]

    def row(r, labels):
        ev = (r.get("eval") or {}).get("summary", {})
        cells = [labels.get(r["arm"], r["label"]), str(r["seed"]), f"{r['steps']}/{r['steps_planned']}"]
        for ins in instructions:
            s = ev.get(ins)
            cells.append("-" if s is None else f"{s['successes']}/{s['episodes']}")
        cells.append(_fmt(ev.get("all", {}).get("mean_time_to_success_s")))
        cells.append(_fmt(r["heldout"]["action_error_m"], 100))
        return "| " + " | ".join(cells) + " |"

    def table(arms, title, labels=None):
        rows = [r for a in arms for r in results if r["arm"] == a]
        if not rows:
            return []
        out = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += [row(r, labels or {}) for r in rows]
        spread = []
        for a in arms:
            rs = [r for r in results if r["arm"] == a]
            if len(rs) > 1:
                succ = [(r.get("eval") or {}).get("summary", {}).get("all", {}).get("success_rate") for r in rs]
                err = [r["heldout"]["action_error_m"] * 100 for r in rs]
                s = "" if None in succ else (f"success {np.mean(succ) * 100:.0f} % (range "
                                             f"{min(succ) * 100:.0f}-{max(succ) * 100:.0f} %), ")
                spread.append(f"- {LABELS[a]} over seeds {', '.join(str(r['seed']) for r in rs)}: {s}held-out "
                              f"action error {np.mean(err):.1f} cm (range {min(err):.1f}-{max(err):.1f} cm)")
        return out + ([""] + spread if spread else []) + [""]

    lines += table([a for a in FIG6_ARMS if any(r["arm"] == a for r in results)],
                   "Fig. 6 in small: what each part of the interface buys")
    if rates:
        lines += [RATES_NOTE, ""] + table(list(RATE_ARMS), "Fig. 7 in small: physical-time encoding")
    if dynamics:
        d = dynamics
        lines += ["### App. D.4 in small: LaWM dynamics on held-out episodes", "",
                  f"Mean cosine distance over {d['samples']} held-out samples (policy: {d['arm']} seed {d['seed']}).",
                  "", "| subgoal from | to the true future f(t+T) | to the current f(t) |", "|---|---|---|",
                  f"| z* (IDM posterior) | {d['z_star_to_future']:.4f} | {d['z_star_to_current']:.4f} |",
                  f"| z_hat (policy) | {d['z_hat_to_future']:.4f} | {d['z_hat_to_current']:.4f} |",
                  f"| (f(t) itself) | {d['current_to_future']:.4f} | 0 |", ""]
    if strip:
        lines += [f"Heatmap strip ({strip['arm']} seed {strip['arm_seed']}, evaluation seed {strip['seed']}, "
                  f"\"{strip['instruction']}\", patch (row, col) {tuple(strip['patch'])}, {strip['panels']} chunks, "
                  f"episode {'succeeded' if strip['success'] else 'failed'}): `{strip['png']}`", ""]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main
def run(args) -> int:
    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    progress = not args.no_progress
    out = Path(args.output).expanduser().absolute()
    settings = {"run": str(Path(args.run).expanduser().absolute()), "budget_min": args.budget_min,
                "steps": args.steps,
                "eval_seeds": args.eval_seeds, "batch_size": args.batch_size,
                "stage1_checkpoint": Path(args.stage1).name,
                "rates_demos": None if args.rates_demos is None else str(args.rates_demos)}
    settings_path = out / "settings.json"
    if settings_path.is_file():
        old = json.loads(settings_path.read_text())
        diff = [k for k in FAIR if old.get(k) != settings[k]]
        if diff:
            raise AblationError(f"{out} holds arms trained with other settings ({', '.join(diff)}): "
                                "use a new --output")
    out.mkdir(parents=True, exist_ok=True)
    settings_path.write_text(json.dumps(settings, indent=2))
    args.scene = args.recipe.get("system", "franka_pick_place")
    from lawam_training.sim_train import SYSTEMS
    if args.scene not in SYSTEMS:
        raise AblationError(f"run system {args.scene!r} is not a lawam-sim-train system")
    args.scene = SYSTEMS[args.scene][0]

    jobs = plan_jobs(args)
    data = None
    results = []
    for arm, seed in tqdm(jobs, desc="arms", unit="arm", disable=not progress):
        if (out / "arms" / f"{arm}_s{seed}" / "result.json").is_file():
            results.append(run_arm(args, arm, seed, data, out, progress))
            continue
        if data is None:
            data = Data(args, build_policy(args, "full", args.seed_list[0]), progress)
        results.append(run_arm(args, arm, seed, data, out, progress))

    dynamics = strip = None
    if args.dynamics:
        from lawam_policy.model import LaWAMPolicy
        ref = next(r for r in results if r["arm"] == "full")
        if data is None:
            data = Data(args, build_policy(args, "full", args.seed_list[0]), progress)
        dynamics = dict(lawm_dynamics(LaWAMPolicy.from_pretrained(ref["checkpoint"]), data.val10),
                        arm="full", seed=ref["seed"])
        chosen = next(r for r in results if r["arm"] == args.strip_arm)
        strip = dict(heatmap_strip(Path(chosen["checkpoint"]), args.scene, args.patch, out / "heatmap_strip.png"),
                     arm=args.strip_arm, arm_seed=chosen["seed"])

    from lawam_sim.scenes import make_scene
    instructions = list(make_scene(args.scene).instructions)
    command = "python benchmarks/ablations.py " + " ".join(shlex.quote(a) for a in args.argv)
    header = ["## Ablations (issue 15)", "",
              f"- command: `{command}`",
              f"- run: `{settings['run']}` (stage-1 checkpoint {settings['stage1_checkpoint']}, shared by every arm)",
              (f"- budget: {args.steps} stage-2 optimiser steps per arm (every arm, the full model included; the "
               f"wall time each took is in the JSON)" if args.steps else
               f"- budget: {args.budget_min:g} min of stage-2 training wall time per arm (every arm, the full model "
               f"included)") + f", {args.threads} torch thread(s), batch {args.batch_size}",
              f"- evaluation: ROS-free closed loop, {args.eval_seeds} fixed evaluation seeds x each instruction"]
    text = render(results, instructions, header, args.rates, dynamics, strip)
    print(text)
    (out / "ablations.md").write_text(text)
    if args.json:
        Path(args.json).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).expanduser().write_text(json.dumps(
            {"command": command, "settings": settings, "results": results, "dynamics": dynamics, "strip": strip,
             "rates_note": RATES_NOTE if args.rates else None}, indent=2))
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
        args.argv = argv
        return run(args)
    except AblationError as e:
        print(f"ablations: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
