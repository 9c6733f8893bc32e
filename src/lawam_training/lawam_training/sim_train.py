"""lawam-sim-train: the reproducible recipe from scripted-expert demos in a twin to a LaWAM that does the task.

    lawam-sim-train --system franka_pick_place --output DIR [--budget-min 60] [--resume]
    lawam-sim-train --system franka_drawer --output DIR          (150 demos)
    lawam-sim-train --system quanta_towel_fold --output DIR      (280 demos; bimanual, three cameras)

Phases (each resumable; state in DIR/recipe.json, training checkpoints in DIR/runs):
1. collect: `--demos` successful scripted-expert episodes (the paper's per-task count, D.3) on seeds disjoint
   from the fixed evaluation seeds, the scene's instructions alternating, through the twin's scene, physics
   rate and cameras (sim_demos.py; every camera role of the system, primary first), with DART noise (its
   sigma per system: SYSTEMS); pick-and-place also writes each demo's counterfactual renderings (colours
   exchanged, the other cube moved: --distractor-moves); written as a LeRobot v3.0 dataset (DIR/dataset).
2. cache: frames decoded once and frozen features computed once (frame_cache.py); a few demos held out, each
   with its renderings.
3. stage 0 (pick-and-place): grounding pretraining of the VLM prior on twin renders (vlm_grounding.py:
   the stand-in for the paper's pretrained VLM); its training time counts against the budget.
   plan: a few timed steps of each stage turn the rest of `--budget-min` into step counts (stage 1 gets
   `--stage1-share` of it); fixed in recipe.json so a resumed run keeps its schedule.
4. stage 1 (latent action model), then its latent-action figures on held-out clips: per-dimension variance of
   z*, and LaWM's feature error with z*, with z* shuffled across the batch, and with z = 0.
5. stage 2 (policy), with held-out figures printed along the way; the first report (after 5 % of stage 2,
   within the first 20 min of training with the default split) is the go/no-go line: held-out action error,
   and the share of held-out start frames whose first target lies within the bridge's start distance.
   `--ground-weight W` keeps stage 0's grounding loss on through it (vlm_grounding.GroundingObjective).
6. export DIR/checkpoint (safetensors + config with the trained control rate), evaluate it in the ROS-free
   closed loop (sim_rollout.py) on the fixed evaluation seeds, each instruction on every seed; write
   DIR/report.json and DIR/report.md.
Model selection never looks at the evaluation seeds: the checkpoint is the last step of the fixed schedule.
`--init CHECKPOINT` post-trains a trained checkpoint instead: no stage 0 or 1, stage 2 from its weights.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SYSTEMS = {  # system -> (scene, default demo count (paper D.3), dataset fps, default DART sigma (m),
    #   counterfactual renderings of each demo (sim_demos.collect): (colours exchanged, distractor moves))
    "franka_pick_place": ("franka_pick_place", 150, 10, 0.015, (True, 2)),
    "franka_drawer": ("franka_drawer", 150, 10, 0.002, (False, 0)),
    "quanta_towel_fold": ("quanta_towel_fold", 280, 10, 0.0075, (False, 0)),
}
# DART sigma per task: the largest noise at which the scripted expert still succeeds in most episodes (failed
# ones are dropped). The drawer's handle grasp slips when the executed target drifts up by a few mm during the
# pull (expert success on 16-20 training seeds: 0.001 m 16/16, 0.002 m 19/20, 0.003 m 10/16, 0.015 m 5/16);
# the towel's corner grasps and fold quality degrade more gently (0.005 m 16/20, 0.0075 m 15/20, 0.015 m 11/20).
# Counterfactual renderings (pick-and-place): a policy trained on the demos alone closed its gripper at the same
# place for both instructions of a layout (16 held-out episodes, run pp_d): it had learnt to reach for "a cube".
# The same motion rendered with the cubes' colours exchanged (under the other instruction) and with the other
# cube elsewhere ties the word to the colour, and multiplies the layouts, at the cost of rendering only.
# Stage 0 (vlm_grounding.py): steps of grounding pretraining of the VLM prior, for systems whose instruction names
# one of several objects; 0 elsewhere. Its render set: start layouts of GROUNDING_FRAMES seeds. The sim VLM learnt
# to place the named cube between 1,400 and 1,600 steps (0.9 cm held out at 2,400), so 3,000 leave a margin.
GROUNDING_STEPS = {"franka_pick_place": 3000}
GROUNDING_FRAMES = 3000
# 10 Hz: divides the experts' 20 Hz, so every recorded action is an issued command; the policy then runs at the
# same rate (the checkpoint records it).


class RecipeError(Exception):
    """Bad input: a one-line message, exit status 2, nothing written."""


def grounding_held_out() -> int:
    """The render set's last frames, never trained on (by stage 0 or stage 2's grounding loss)."""
    return max(1, GROUNDING_FRAMES // 15)


def workspace_root() -> Path:
    return Path(os.environ.get("LAWAM_WS", Path(__file__).resolve().parents[3]))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="lawam-sim-train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--system", required=True, help=f"one of {sorted(SYSTEMS)}")
    ap.add_argument("--output", required=True, help="run directory (dataset, runs, checkpoint, report)")
    ap.add_argument("--budget-min", type=float, default=60.0, help="training wall time (both stages), minutes")
    ap.add_argument("--resume", action="store_true", help="continue the run in --output")
    ap.add_argument("--demos", type=int, default=None, help="expert episodes (default: the paper's count)")
    ap.add_argument("--dart-sigma", type=float, default=None,
                    help="DART noise std of executed targets (m); default: the system's (" +
                         ", ".join(f"{k} {v[3]:g}" for k, v in SYSTEMS.items()) + ")")
    ap.add_argument("--distractor-moves", type=int, default=None,
                    help="pick-and-place: renderings of each demo with the other cube at a new place (default: the "
                         "system's, " + ", ".join(f"{k} {v[4][1]}" for k, v in SYSTEMS.items()) + ")")
    ap.add_argument("--grounding-steps", type=int, default=None,
                    help="stage 0: VLM grounding steps on twin renders (default: the system's, " +
                         ", ".join(f"{k} {GROUNDING_STEPS.get(k, 0)}" for k in SYSTEMS) + "; 0: none)")
    ap.add_argument("--ground-weight", type=float, default=0.0,
                    help="stage 2: keep stage 0's grounding regression on as an auxiliary loss of this weight "
                         "(vlm_grounding.GroundingObjective; systems with stage 0 only); 0: off")
    ap.add_argument("--stage1-share", type=float, default=0.2, help="share of the budget for stage 1")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)), help="torch threads")
    ap.add_argument("--val-episodes", type=int, default=6,
                    help="demos held out for the figures (each with its counterfactual renderings)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-seeds", type=int, default=30, help="fixed evaluation seeds to evaluate on (0: skip)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--extend-min", type=float, default=0.0,
                    help="with --resume: continue stage 2 until this many extra minutes of training in all (a new "
                         "cosine schedule from --extend-lr), then export and evaluate again; 0: no extension")
    ap.add_argument("--extend-lr", type=float, default=3e-4, help="peak learning rate of an extension")
    ap.add_argument("--init", default=None, metavar="CHECKPOINT",
                    help="post-train this trained checkpoint on the run's demos: stages 0 and 1 are skipped (its "
                         "frozen encoder, latent action model and grounded VLM are kept) and stage 2 continues "
                         "from its weights for the whole budget, from --extend-lr")
    args = ap.parse_args(argv)
    if args.system not in SYSTEMS:
        raise RecipeError(f"unknown system {args.system!r}; lawam-sim-train knows {sorted(SYSTEMS)}")
    if args.dart_sigma is None:  # resolved here: recipe.json keeps the value used, so --resume compares it
        args.dart_sigma = SYSTEMS[args.system][3]
    if args.distractor_moves is None:  # resolved here, as --dart-sigma
        args.distractor_moves = SYSTEMS[args.system][4][1]
    if args.distractor_moves < 0 or (args.distractor_moves and not SYSTEMS[args.system][4][0]):
        raise RecipeError(f"--distractor-moves must be >= 0 and needs a system with counterfactual renderings "
                          f"(franka_pick_place), got {args.distractor_moves} for {args.system}")
    if args.grounding_steps is None:  # resolved here, as --dart-sigma
        args.grounding_steps = GROUNDING_STEPS.get(args.system, 0)
    if args.grounding_steps < 0 or (args.grounding_steps and args.system not in GROUNDING_STEPS):
        raise RecipeError(f"--grounding-steps must be >= 0 and needs a system whose instructions name objects "
                          f"({', '.join(GROUNDING_STEPS)}), got {args.grounding_steps} for {args.system}")
    if not args.ground_weight >= 0 or (args.ground_weight and args.system not in GROUNDING_STEPS):
        raise RecipeError(f"--ground-weight must be >= 0 and needs a system whose instructions name objects "
                          f"({', '.join(GROUNDING_STEPS)}), got {args.ground_weight} for {args.system}")
    if not args.dart_sigma >= 0:
        raise RecipeError(f"--dart-sigma must be >= 0 m, got {args.dart_sigma}")
    demos = args.demos or SYSTEMS[args.system][1]
    if not 0 <= args.val_episodes < demos:  # nothing would be left to train on
        raise RecipeError(f"--val-episodes must be in 0..{demos - 1} for {demos} demos, got {args.val_episodes}")
    if not args.budget_min > 0:
        raise RecipeError(f"--budget-min must be positive, got {args.budget_min}")
    if not args.extend_min >= 0 or not args.extend_lr > 0:
        raise RecipeError(f"--extend-min must be >= 0 and --extend-lr > 0, got {args.extend_min}, {args.extend_lr}")
    if args.init is not None:
        args.init = str(Path(args.init).expanduser().absolute())
        if not (Path(args.init) / "lawam_config.json").is_file():
            raise RecipeError(f"--init {args.init} is not a LaWAM checkpoint (no lawam_config.json)")
        args.grounding_steps = 0  # the checkpoint's VLM is already grounded
    if not 0 < args.stage1_share < 1:
        raise RecipeError(f"--stage1-share must be in (0, 1), got {args.stage1_share}")
    return args


class Recipe:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.output).expanduser().absolute()
        self.state_path = self.out / "recipe.json"
        self.scene_name, default_demos, self.fps, _, (self.exchange_colours, _) = SYSTEMS[args.system]
        self.demos = args.demos or default_demos
        self.progress = not args.no_progress
        # an extension is recorded in its own phase entry: it may be asked for on a finished run
        settings = {k: v for k, v in vars(args).items()
                    if k not in ("resume", "no_progress", "threads", "extend_min", "extend_lr")}
        settings["demos"] = self.demos
        if args.init:  # --extend-lr is then the run's own learning rate: --resume must keep it
            settings["extend_lr"] = args.extend_lr
        if self.state_path.is_file():
            if not args.resume:
                raise RecipeError(f"{self.out} holds another run (recipe.json): use --resume or a new --output")
            self.state = json.loads(self.state_path.read_text())
            # a run from before counterfactual renderings had none
            self.state["settings"].setdefault("distractor_moves", 0)
            self.state["settings"].setdefault("grounding_steps", 0)  # and none before stage 0
            self.state["settings"].setdefault("ground_weight", 0.0)  # nor a grounding loss in stage 2
            if self.state["settings"] != settings:
                diff = sorted(k for k in settings if self.state["settings"].get(k) != settings[k])
                raise RecipeError(f"--resume with different settings than the run in {self.out}: {diff}")
        elif self.out.exists() and any(self.out.iterdir()):
            raise RecipeError(f"output {self.out} is not empty and holds no lawam-sim-train run")
        else:
            self.state = {"settings": settings, "phases": {}}

    # ------------------------------------------------------------------ bookkeeping
    def log(self, msg: str) -> None:
        print(f"lawam-sim-train: {msg}", file=sys.stderr, flush=True)

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, self.state_path)

    def phase(self, name: str) -> dict | None:
        return self.state["phases"].get(name)

    def done(self, name: str, **info) -> None:
        self.state["phases"][name] = info
        self.save()

    # ------------------------------------------------------------------ phases
    def collect(self) -> None:
        if self.phase("collect"):
            return
        from .sim_demos import collect
        self.save()
        t = time.monotonic()
        info = collect(self.scene_name, workspace_root() / "config", self.out / "dataset", self.demos, self.fps,
                       first_seed=1 + 10_000 * self.args.seed, dart_sigma_m=self.args.dart_sigma,
                       exchange_colours=self.exchange_colours, distractor_moves=self.args.distractor_moves,
                       progress=self.progress, record_workers=1)  # a child renders while this process writes
        info["wall_s"] = time.monotonic() - t
        self.log(f"collected {info['episodes']} episodes, {info['frames']} frames in {info['wall_s']:.0f} s")
        self.done("collect", **info)

    def build(self):
        """Policy (weights of the newest checkpoint if any) and the cached train / held-out data."""
        import torch
        from tqdm import tqdm

        from lawam_policy.model import LaWAMConfig, LaWAMPolicy
        from .data import DemoDataset, MixedDataset
        from .finetune import apply_data_to_config, dataset_metadata
        from .frame_cache import CachedDemoDataset
        from .train import find_checkpoints

        torch.manual_seed(self.args.seed)
        if self.args.init:
            # float32 master weights whatever the file stores; the checkpoint keeps its normalisation (post-training
            # on more demos of its own task: new statistics would move every output it learnt)
            policy = LaWAMPolicy.from_pretrained(self.args.init, components="all", dtype=torch.float32)
            demo = DemoDataset(self.out / "dataset", policy.config.horizon_s)
            check_init_fits(policy.config, dataset_metadata([demo]), self.args.init)
        else:
            cfg = LaWAMConfig.from_preset("sim")
            demo = DemoDataset(self.out / "dataset", cfg.horizon_s)
            apply_data_to_config(cfg, dataset_metadata([demo]), from_checkpoint=False)
            policy = LaWAMPolicy(cfg)
        cfg = policy.config
        found = find_checkpoints(self.out / "runs")
        if found:  # the frozen encoder's weights must be the trained ones before features are cached
            stage, _, path = found[-1]
            load_weights(policy, path, stage1_only=stage == 1)
        t = time.monotonic()
        cache = CachedDemoDataset(demo, cfg.image_size, encoder=policy.encode_features,
                                  progress=tqdm if self.progress else None)
        held = held_out_episodes(run_demo_groups(self.out, self.phase("collect")), self.args.val_episodes,
                                 self.args.seed)
        train, val = _episode_view(cache, lambda e: e not in held), _episode_view(cache, lambda e: e in held)
        self.log(f"cached {len(cache.frames)} frames and features in {time.monotonic() - t:.0f} s; "
                 f"{len(train)} training samples, {len(val)} held out ({len(held)} episodes)")
        return policy, MixedDataset([train]), MixedDataset([val])

    def stage0(self, policy) -> None:
        """VLM grounding pretraining (vlm_grounding.py); its VLM weights are kept for stage 2's start."""
        if self.phase("stage0") or not self.args.grounding_steps:
            return
        from tqdm import tqdm

        from .vlm_grounding import pretrain_grounding, save_vlm
        t = time.monotonic()
        data = self.grounding_set(policy)
        render_s = time.monotonic() - t
        figures = pretrain_grounding(policy, data, self.args.grounding_steps, self.args.batch_size,
                                     seed=self.args.seed, held_out=grounding_held_out(), log=self.log,
                                     progress=tqdm if self.progress else None)
        save_vlm(policy, self.out / "runs" / "stage0_vlm.safetensors")
        self.log(f"stage 0: held-out xy error of the named cube {figures['named_error_m'] * 100:.1f} cm, of the "
                 f"other {figures['other_error_m'] * 100:.1f} cm (mean guess "
                 f"{figures['mean_guess_error_m'] * 100:.1f} cm) after {figures['steps']} steps in "
                 f"{figures['wall_s'] / 60:.1f} min; {figures['frames']} renders in {render_s:.0f} s")
        self.done("stage0", render_s=render_s, **figures)

    def grounding_set(self, policy) -> dict:
        """Stage 0's render set (vlm_grounding.render_grounding_set), rendered once per run and kept in
        runs/grounding_set.pt for stage 2's grounding loss and for resumes."""
        import torch
        from tqdm import tqdm

        from .sim_rollout import twin_env
        from .vlm_grounding import GROUNDING_FIRST_SEED, render_grounding_set
        path = self.out / "runs" / "grounding_set.pt"
        if path.is_file():
            return torch.load(path, weights_only=False)
        t = time.monotonic()
        env = twin_env(self.scene_name, workspace_root() / "config")
        try:
            data = render_grounding_set(env, policy, GROUNDING_FRAMES, GROUNDING_FIRST_SEED + 10_000 * self.args.seed,
                                        progress=tqdm if self.progress else None)
        finally:
            env.close()
        self.log(f"rendered {GROUNDING_FRAMES} start layouts for grounding in {time.monotonic() - t:.0f} s")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(data, tmp)
        tmp.replace(path)
        return data

    def grounding_objective(self, policy):
        """Stage 2's auxiliary grounding loss (--ground-weight), or None when it is off."""
        if not self.args.ground_weight:
            return None
        from .vlm_grounding import GroundingObjective
        return GroundingObjective(policy, self.grounding_set(policy), GROUNDING_FRAMES - grounding_held_out(),
                                  self.args.batch_size, self.args.ground_weight)

    def stage0_wall_s(self) -> float:
        """Training wall time of stage 0 (s); 0 when the run has none."""
        return (self.phase("stage0") or {}).get("wall_s", 0.0)

    def trained_before_stage2_s(self) -> float:
        """Training wall time of stages 0 and 1 (s): what the budget has already spent when stage 2 starts."""
        return self.phase("stage1")["wall_s"] + self.stage0_wall_s()

    def options(self, steps: int, stage: int):
        from .train import TrainOptions
        lr = self.args.extend_lr if self.args.init else None  # post-training: one lower peak for all modules
        return TrainOptions(steps=steps, batch_size=self.args.batch_size, lr=lr, warmup_steps=min(100, steps // 10),
                            min_lr_ratio=0.05, seed=self.args.seed + stage, log_every=25, val_every=10 ** 9,
                            checkpoint_every=max(50, steps // 20), keep_checkpoints=2, num_workers=0,
                            progress=self.progress)

    def plan(self, policy, train) -> dict:
        """Seconds per optimiser step of each stage, measured, turned into step counts for the budget."""
        if self.phase("plan"):
            return self.phase("plan")
        import copy

        import torch

        from .data import collate
        batch = collate([train[i] for i in range(self.args.batch_size)])
        per_step = {}
        for stage in ((2,) if self.args.init else (1, 2)):
            probe = copy.deepcopy(policy)
            groups = probe.parameter_groups(stage)
            opt = torch.optim.AdamW(groups)
            fn = probe.latent_action_losses if stage == 1 else probe.training_losses
            c = probe.config  # stage 2 reads z* from the cache (stage2()): time it that way
            timed = batch if stage == 1 else dict(batch, z_star=torch.zeros(len(batch["actions"]), c.z_tokens, c.z_dim))
            times = []
            for _ in range(4):
                t = time.perf_counter()
                fn(timed)["loss"].backward()
                opt.step()
                opt.zero_grad()
                times.append(time.perf_counter() - t)
            per_step[str(stage)] = float(np.median(times[1:])) * 1.1  # + logging, checkpoints; str: JSON keys
        epoch = len(train) // self.args.batch_size
        share = 0.0 if self.args.init else self.args.stage1_share  # --init: stage 2 only, the whole budget
        s1, s2 = steps_for_budget(self.args.budget_min - self.stage0_wall_s() / 60, share, per_step, epoch)
        plan = {"s_per_step": per_step, "stage1_steps": s1, "stage2_steps": s2, "epoch_steps": epoch}
        self.log(f"plan: stage 1 {s1} steps ({per_step.get('1', 0):.2f} s/step), stage 2 {s2} steps "
                 f"({per_step['2']:.2f} s/step, {s2 / max(epoch, 1):.1f} epochs)")
        self.done("plan", **plan)
        return self.phase("plan")  # the recorded dict: replan_stage2 adds to it

    def stage1(self, policy, train, val, steps: int) -> None:
        from .train import Trainer
        if not self.phase("stage1") and self.args.init:  # the checkpoint's stage-1 modules, as they are
            self.state["phases"]["stage1"] = {"wall_s": 0.0, "steps": 0, "init": self.args.init}
            self.save()
        if not self.phase("stage1"):
            trainer = Trainer(policy, 1, train, self.out / "runs", self.options(steps, 1), val_data=None,
                              log=self.log)
            out = trainer.fit(resume=True)
            self.state["phases"]["stage1"] = {"wall_s": out["train_wall_s"], "steps": out["step"],
                                              "final": _last(out["history"])}
            self.save()
        if "latent" not in self.phase("stage1"):
            figures = latent_figures(policy, val)
            self.log("latent action on held-out clips: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()
                                                                      if not isinstance(v, list)))
            self.phase("stage1")["latent"] = figures
            self.save()

    def replan_stage2(self, plan: dict) -> int:
        """Stage-2 steps for what is left of the budget, from stage 1's measured speed (kept in the plan, so a
        resumed run keeps its schedule). The start-up probe times four steps on whatever load the machine has
        then; stage 1 measures the load training actually runs under (a probe taken beside another job
        planned 45 of 60 minutes)."""
        from .train import latest_checkpoint
        if "stage2_steps_final" in plan:
            return plan["stage2_steps_final"]
        s1 = self.phase("stage1")
        steps = plan["stage2_steps"]
        if latest_checkpoint(self.out / "runs", 2) is None and s1.get("steps") and s1.get("wall_s"):
            steps = stage2_steps_left(self.args.budget_min, plan, s1["wall_s"], s1["steps"],
                                      self.trained_before_stage2_s())
            self.log(f"plan: stage 1 ran at {s1['wall_s'] / s1['steps']:.2f} s/step (probe "
                     f"{plan['s_per_step']['1']:.2f}): stage 2 gets {steps} steps for the "
                     f"{(self.args.budget_min * 60 - self.trained_before_stage2_s()) / 60:.1f} min left "
                     f"(planned {plan['stage2_steps']})")
        plan["stage2_steps_final"] = steps
        self.save()
        return steps

    def stage2(self, policy, train, val, steps: int) -> None:
        from .train import Trainer, latest_checkpoint
        if self.phase("stage2"):
            return
        self.start_stage2(policy)
        self.cache_teacher_latents(policy, train, val)
        plan = self.phase("plan")
        aux = self.grounding_objective(policy)
        trainer = Trainer(policy, 2, train, self.out / "runs", self.options(steps, 2), val_data=None, log=self.log,
                          aux=aux)
        reports = self.state.setdefault("stage2_reports", [])
        first = True
        while trainer.step < steps:
            # Held-out reports after 5 % of stage 2 (the go/no-go figure: with the default 20 % stage-1 share it
            # comes within the first 20 min of training) and at every sixth.
            # (After the re-plan, 5 % of the new total is not a second go/no-go line: pp_v4 reported at 319, then 340.)
            marks = sorted({steps * k // 6 for k in range(1, 7)} | (set() if reports else {max(1, steps // 20)}))
            trainer.fit(resume=first, stop_after=next((m for m in marks if m > trainer.step), steps))
            first = False
            # training wall time over resumes (the trainer's, kept in its checkpoints; evaluations excluded)
            self.state["stage2_wall_s"] = trainer.train_wall_s
            figures = heldout_figures(policy, val)
            elapsed = self.trained_before_stage2_s() + self.state["stage2_wall_s"]
            figures.update(step=trainer.step, training_wall_s=elapsed, go_no_go=not reports)
            grounding = ""
            if aux is not None:  # the head is trained alongside: its held-out error is the VLM's grounding now
                named, other = (float(e) for e in aux.held_out_errors_m())
                figures.update(ground_named_error_m=named, ground_other_error_m=other)
                grounding = f"; grounding held out: named cube {named * 100:.1f} cm, other {other * 100:.1f} cm"
            reports.append(figures)
            self.log(f"{'GO/NO-GO ' if figures['go_no_go'] else ''}step {trainer.step}, {elapsed / 60:.1f} min of "
                     f"training: held-out action error {figures['action_error_m'] * 100:.1f} cm (chunk mean; first "
                     f"step {figures['first_error_m'] * 100:.1f} cm), start frames within the bridge's start "
                     f"distance {figures['start_within_share'] * 100:.0f} % (distance and angle: "
                     f"{figures['start_accepted_share'] * 100:.0f} %){grounding}")
            self.save()
            if "stage2_measured_s_per_step" not in plan and trainer.step < steps:  # once, at the go/no-go mark
                new = self.replan_from_stage2(plan, trainer.step, steps)
                if new != steps:  # the same run from the mark's checkpoint, with the new total
                    steps = new
                    trainer = Trainer(policy, 2, train, self.out / "runs", self.options(steps, 2), val_data=None,
                                      log=self.log, aux=aux)
                    trainer.load_checkpoint(latest_checkpoint(self.out / "runs", 2))
        self.done("stage2", wall_s=self.state.get("stage2_wall_s", 0.0), steps=trainer.step,
                  final=reports[-1] if reports else {})

    def start_stage2(self, policy) -> None:
        """A fresh stage 2 (no stage-2 checkpoint yet) starts from stage 1's modules and stage 0's VLM; the
        other weights keep their seeded initialisation."""
        from .train import latest_checkpoint
        if latest_checkpoint(self.out / "runs", 2) is not None or self.args.init:  # (--init: loaded in build)
            return
        load_weights(policy, latest_checkpoint(self.out / "runs", 1), stage1_only=True)
        if self.phase("stage0"):  # the grounded VLM, not the initialisation a stage-1 checkpoint stores
            from .vlm_grounding import load_vlm
            load_vlm(policy, self.out / "runs" / "stage0_vlm.safetensors")

    def replan_from_stage2(self, plan: dict, step: int, steps: int) -> int:
        """Stage-2 steps for the budget at stage 2's own measured speed (its first 5 %). Stage 1's speed relative
        to its probe did not carry over: pp_v3 planned 0.35 s per stage-2 step, ran 0.39 and trained 66 min of
        60. The cosine schedule is stretched or shortened from here (the trainer resumes with the new total)."""
        measured = self.state["stage2_wall_s"] / max(step, 1)
        new = stage2_steps_measured(self.args.budget_min, self.trained_before_stage2_s(), self.state["stage2_wall_s"],
                                    step, measured, plan["epoch_steps"])
        self.log(f"plan: stage 2 runs at {measured:.2f} s/step (planned {plan['s_per_step']['2']:.2f}): "
                 f"{new} steps in all (was {steps})")
        plan.update(stage2_measured_s_per_step=measured, stage2_steps_final=new)
        self.save()
        return new

    def cache_teacher_latents(self, policy, train, val) -> None:
        views = list(train.datasets) + list(val.datasets)  # views of one frame cache
        if views[0].teacher_latents is not None:  # stage 2 cached them in this process: the IDM is frozen since
            return
        t = time.monotonic()
        views[0].cache_teacher_latents(policy.teacher_latent)
        for view in views[1:]:
            view.teacher_latents = views[0].teacher_latents
        self.log(f"cached z* of the frozen stage-1 IDM in {time.monotonic() - t:.0f} s")

    def extend(self, policy, train, val) -> None:
        """Continue stage 2 past the planned schedule (--extend-min minutes of training in all, over every
        extension): a fresh warm-up + cosine schedule from --extend-lr in DIR/runs_ext<k>, then the
        export and the evaluation run again; the figures they replace stay in the extension's record."""
        from .train import Trainer, latest_checkpoint
        exts = self.state.setdefault("extensions", [])
        done_min = sum(e["minutes"] for e in exts if e.get("done"))
        if exts and not exts[-1].get("done"):
            ext = exts[-1]  # an interrupted extension resumes with its own schedule
        elif self.args.extend_min - done_min > 0.5:
            per_step = self.phase("stage2")["wall_s"] / max(1, self.phase("stage2")["steps"])  # measured
            minutes = self.args.extend_min - done_min
            ext = {"minutes": minutes, "lr": self.args.extend_lr, "steps": max(1, int(minutes * 60 / per_step)),
                   "runs": f"runs_ext{len(exts)}", "before": {k: self.state["phases"].get(k) for k in ("export", "eval")}}
            exts.append(ext)
            self.save()
        else:
            return
        runs = self.out / ext["runs"]
        previous = self.out / (exts[-2]["runs"] if len(exts) > 1 else "runs")
        if latest_checkpoint(runs, 2) is None:
            load_weights(policy, latest_checkpoint(previous, 2), stage1_only=False)
        self.cache_teacher_latents(policy, train, val)
        opts = self.options(ext["steps"], 2)
        opts.lr, opts.warmup_steps, opts.seed = ext["lr"], min(100, ext["steps"] // 10), opts.seed + 100 * len(exts)
        self.log(f"extension {len(exts)}: {ext['steps']} more stage-2 steps (~{ext['minutes']:.0f} min) from lr "
                 f"{ext['lr']:g}")
        t = time.monotonic()
        Trainer(policy, 2, train, runs, opts, val_data=None, log=self.log,
                aux=self.grounding_objective(policy)).fit(resume=True)
        figures = heldout_figures(policy, val)
        self.log(f"after extension {len(exts)}: held-out action error {figures['action_error_m'] * 100:.1f} cm "
                 f"(first step {figures['first_error_m'] * 100:.1f} cm)")
        ext.update(done=True, wall_s=time.monotonic() - t, final=figures)
        for k in ("export", "eval"):  # the extended policy is exported and evaluated anew
            self.state["phases"].pop(k, None)
        self.save()

    def export(self, policy) -> Path:
        target = self.out / "checkpoint"
        if not self.phase("export"):
            from .train import save_policy, write_atomic_dir
            import torch
            policy.eval()
            # float16 on disk keeps the shipped file small; loading casts back to float32.
            write_atomic_dir(target, lambda d: save_policy(policy, d, dtype=torch.float16))
            size = sum(f.stat().st_size for f in target.iterdir()) / 1e6
            self.done("export", path=str(target), size_mb=round(size, 2))
        return target

    def evaluate(self, checkpoint: Path) -> None:
        if self.phase("eval") or self.args.eval_seeds <= 0:
            return
        results = evaluate_checkpoint(checkpoint, self.scene_name, self.args.eval_seeds, self.progress)
        self.done("eval", **results)

    def report(self) -> None:
        phases = self.state["phases"]
        rep = {"system": self.args.system, "settings": self.state["settings"], "phases": phases,
               "stage2_reports": self.state.get("stage2_reports", []), "extensions": self.state.get("extensions", [])}
        (self.out / "report.json").write_text(json.dumps(rep, indent=2))
        (self.out / "report.md").write_text(render_report(rep))
        self.log(f"report: {self.out / 'report.md'}")

    def run(self) -> int:
        import torch
        torch.set_num_threads(self.args.threads)
        self.collect()
        policy, train, val = self.build()
        self.stage0(policy)
        plan = self.plan(policy, train)
        self.stage1(policy, train, val, plan["stage1_steps"])
        self.stage2(policy, train, val, self.replan_stage2(plan))
        if self.args.extend_min > 0 or self.state.get("extensions"):
            self.extend(policy, train, val)
        checkpoint = self.export(policy)
        self.evaluate(checkpoint)
        self.report()
        return 0


STAGE1_MODULES = ("encoder", "idm", "lawm", "aux_heads")


def load_weights(policy, checkpoint_dir: Path, stage1_only: bool) -> None:
    """Weights from a training checkpoint; `stage1_only`: only the stage-1 modules (a stage-1 checkpoint
    also stores the VLM and expert it never trained: stage 2 starts them from their initialisation, which the
    seeded construction makes the same values)."""
    from safetensors.torch import load_file
    state = load_file(str(Path(checkpoint_dir) / "model.safetensors"))
    if stage1_only:
        state = {k: v for k, v in state.items() if k.split(".", 1)[0] in STAGE1_MODULES}
    missing, unexpected = policy.load_state_dict(state, strict=not stage1_only)
    if unexpected or any(k.split(".", 1)[0] in STAGE1_MODULES for k in missing):
        raise RuntimeError(f"checkpoint {checkpoint_dir} does not fit the model: {unexpected[:3]} {missing[:3]}")


def check_init_fits(cfg, meta: dict, init: str) -> None:
    """Raises RecipeError unless the demos are of an embodiment the --init checkpoint knows, with its
    action layout, its ordered camera roles and a control rate it was trained at."""
    for name, e in meta.items():
        if name not in cfg.embodiments or cfg.layout(name).arms != e["layout"].arms:
            raise RecipeError(f"--init {init}: the checkpoint has no {name!r} embodiment with arms {e['layout'].arms}")
        if cfg.cameras(name) != list(e["cameras"]):
            raise RecipeError(f"--init {init}: the checkpoint's cameras {cfg.cameras(name)} differ from the "
                              f"demos' {list(e['cameras'])}")
        if not set(e["rates"]) <= set(cfg.trained_rates_hz(name)):
            raise RecipeError(f"--init {init}: the demos' rate(s) {sorted(set(e['rates']))} Hz are not the "
                              f"checkpoint's {cfg.trained_rates_hz(name)}")


def steps_for_budget(budget_min: float, stage1_share: float, s_per_step: dict, epoch_steps: int) -> tuple[int, int]:
    """(stage-1 steps, stage-2 steps) that fit `budget_min` minutes of training. Raises RecipeError when
    stage 2 would not see one epoch."""
    budget = budget_min * 60
    s1 = int(budget * stage1_share / s_per_step["1"]) if stage1_share else 0  # 0: stage 2 only (--init)
    s2 = int(budget * (1 - stage1_share) / s_per_step["2"])
    if s2 < epoch_steps or (stage1_share and s1 < 1):
        raise RecipeError(f"--budget-min {budget_min:g} buys {s2} stage-2 steps at {s_per_step['2']:.2f} s/step, "
                          f"less than one epoch ({epoch_steps} steps): raise --budget-min")
    return s1, s2


def stage2_steps_left(budget_min: float, plan: dict, stage1_wall_s: float, stage1_steps: int,
                      trained_s: float | None = None) -> int:
    """Stage-2 steps that fit the budget left after `trained_s` seconds of training (default: stage 1's): the
    probe's stage-2 step time scaled by how much slower (or faster) stage 1 ran than its own probe. Never under
    one epoch."""
    probe = plan["s_per_step"]
    load = (stage1_wall_s / stage1_steps) / probe["1"]
    left = budget_min * 60 - (stage1_wall_s if trained_s is None else trained_s)
    return max(int(plan["epoch_steps"]), int(left / (probe["2"] * load)))


def stage2_steps_measured(budget_min: float, before_s: float, stage2_wall_s: float, step: int,
                          s_per_step: float, epoch_steps: int) -> int:
    """Stage-2 steps in all when `step` of them took `stage2_wall_s` at `s_per_step`, after `before_s` seconds of
    earlier training (stages 0 and 1): what fits the rest of the budget. Never under one epoch, never fewer than
    already taken."""
    left = budget_min * 60 - before_s - stage2_wall_s
    return max(int(epoch_steps), step, step + int(max(left, 0.0) / s_per_step))


def run_demo_groups(run: Path, collected: dict) -> list[list[int]]:
    """Each demo's episodes in the dataset of the recipe run `run`, given its collect phase (`collected`;
    runs from before `episodes_per_demo` was recorded: 2 per demo with the colour exchange, else 1)."""
    from .sim_demos import demo_groups
    per_demo = collected.get("episodes_per_demo", 2 if collected.get("exchange_colours") else 1)
    return demo_groups(Path(run) / "dataset", per_demo)


def held_out_episodes(groups: list, demos: int, seed: int) -> set[int]:
    """Indices of the episodes of `demos` randomly chosen demos, given each demo's episodes (`groups`,
    sim_demos.demo_groups): a demo's counterfactual renderings are held out with it, or they would leak its
    motion."""
    picks = np.random.default_rng(seed).permutation(len(groups))[:demos]
    return {e for d in picks for e in groups[int(d)]}


def _episode_view(cache, keep):
    import copy
    v = copy.copy(cache)
    v.indices = [(e, t) for e, t in cache.indices if keep(e)]
    return v


def _last(history: list) -> dict:
    rows = [r for r in history if r.get("kind") == "train"]
    return rows[-1] if rows else {}


# ---------------------------------------------------------------------------------------------- figures
def _batches(data, batch_size=64, limit=None):
    from .data import collate
    n = len(data) if limit is None else min(limit, len(data))
    idx = np.linspace(0, len(data) - 1, n).round().astype(int)
    for i in range(0, n, batch_size):
        yield collate([data[int(j)] for j in idx[i:i + batch_size]])


def latent_figures(policy, val) -> dict:
    """Is z* informative? Per-dimension variance of z* and LaWM's feature error with z*, shuffled z*, z = 0."""
    import torch
    policy.eval()
    zs, err = [], {"z_star": 0.0, "z_shuffled": 0.0, "z_zero": 0.0, "copy_current": 0.0}
    n = 0
    with torch.no_grad():
        for batch in _batches(val, limit=1024):
            f_t, f_tT = batch["features_t"].float(), batch["features_tT"].float()
            z = policy.teacher_latent(f_t, f_tT)
            zs.append(z.flatten(1))
            g = torch.Generator().manual_seed(0)
            perm = torch.randperm(len(z), generator=g)
            for key, zz in (("z_star", z), ("z_shuffled", z[perm]), ("z_zero", torch.zeros_like(z))):
                err[key] += float(((policy.lawm(f_t, zz) - f_tT) ** 2).mean()) * len(z)
            err["copy_current"] += float(((f_t - f_tT) ** 2).mean()) * len(z)
            n += len(z)
    var = torch.cat(zs).var(0)
    out = {f"feature_mse_{k}": v / n for k, v in err.items()}
    out.update(z_var_min=float(var.min()), z_var_median=float(var.median()), z_var_max=float(var.max()),
               clips=n)
    return out


def _positions(wire: np.ndarray) -> np.ndarray:
    """(..., 8*arms) wire actions/states -> (..., arms, 3) positions (per arm: position, quaternion, gripper)."""
    wire = np.asarray(wire)
    return wire.reshape(*wire.shape[:-1], -1, 8)[..., :3]


def start_accepted(first_action: np.ndarray, state: np.ndarray, limits) -> bool:
    """Would the bridge's start-up check take a chunk whose first target is `first_action` with the robot at
    `state` (wire format, 8 per arm)? Every arm within max_start_distance_m and max_start_angle_rad."""
    from lawam_policy.runtime.quaternion import angle_between
    a, s = np.asarray(first_action).reshape(-1, 8), np.asarray(state).reshape(-1, 8)
    return all(np.linalg.norm(x[:3] - y[:3]) <= limits.max_start_distance_m
               and angle_between(x[3:7], y[3:7]) <= limits.max_start_angle_rad for x, y in zip(a, s))


def heldout_figures(policy, val, max_samples: int = 96) -> dict:
    """Held-out action error (m, chunk mean and first step, averaged over arms); the share of held-out
    episode starts whose first predicted targets lie within the bridge's start distance of the measured EEF
    (every arm), and the share the bridge's start-up check would accept (distance and angle, every arm).
    The policy sees every camera of the sample, primary first."""
    from lawam_policy.runtime.safety import SafetyLimits
    policy.eval()
    cache = val.datasets[0]
    picks = np.linspace(0, len(cache) - 1, min(max_samples, len(cache))).round().astype(int)
    errs, firsts = [], []
    for i in picks:
        s = cache[int(i)]
        pred = policy.predict_chunk(list(s["images_t"].numpy()), s["instruction"], s["control_hz"],
                                    embodiment=s["embodiment"], seed=0)
        d = np.linalg.norm(_positions(pred.actions) - _positions(s["actions"].numpy()), axis=-1).mean(axis=-1)
        errs.append(d.mean())
        firsts.append(d[0])
    starts = [j for j, (e, t) in enumerate(cache.indices) if t == 0]
    within, accepted = [], []
    limits = SafetyLimits()  # the start-up limits of both bridges (config/*_bridge.yaml)
    for j in starts:
        s = cache[j]
        pred = policy.predict_chunk(list(s["images_t"].numpy()), s["instruction"], s["control_hz"],
                                    embodiment=s["embodiment"], seed=0)
        d = np.linalg.norm(_positions(pred.actions[0]) - _positions(s["states_t"].numpy()), axis=-1)
        within.append(bool(np.all(d <= limits.max_start_distance_m)))
        accepted.append(start_accepted(pred.actions[0], s["states_t"].numpy(), limits))
    policy.train()
    return {"action_error_m": float(np.mean(errs)), "first_error_m": float(np.mean(firsts)),
            "start_within_share": float(np.mean(within)) if within else 0.0,
            "start_accepted_share": float(np.mean(accepted)) if accepted else 0.0, "samples": len(picks)}


def evaluate_checkpoint(checkpoint: Path, scene_name: str, n_seeds: int, progress: bool = True) -> dict:
    """ROS-free closed loop on the first n fixed evaluation seeds, each instruction on every seed."""
    import torch
    from tqdm import tqdm

    from lawam_policy.model import LaWAMPolicy
    from lawam_sim.seeds import EVAL_SEEDS
    from .sim_rollout import summarize, twin_env

    torch.manual_seed(0)
    policy = LaWAMPolicy.from_pretrained(checkpoint)
    env = twin_env(scene_name, workspace_root() / "config")
    rate = policy.config.trained_rates_hz(env.embodiment)[0]
    t = time.monotonic()
    results = []
    runs = [(seed, ins) for seed in EVAL_SEEDS[:n_seeds] for ins in env.scene.instructions]
    for seed, ins in tqdm(runs, desc="evaluate", unit="ep", disable=not progress):
        results.append(env.rollout(policy, seed, ins, rate))
    env.close()
    return {"wall_s": time.monotonic() - t, "control_hz": rate, "summary": summarize(results),
            "episodes": [{"seed": r.seed, "instruction": r.instruction, "success": r.success,
                          "time_to_success_s": r.time_to_success_s, "chunks": r.chunks,
                          "refused_chunks": r.refused_chunks} for r in results]}


def render_report(rep: dict) -> str:
    p = rep["phases"]
    lines = [f"# lawam-sim-train report: {rep['system']}", ""]
    c = p.get("collect", {})
    lines += [f"- demos: {c.get('episodes')} episodes, {c.get('frames')} frames at {c.get('fps')} fps "
              f"(DART sigma {c.get('dart_sigma_m')} m), collected in {c.get('wall_s', 0):.0f} s"]
    init = rep["settings"].get("init")
    if init:
        lines.append(f"- post-trained from `{init}`: no stage 0 or 1 (its encoder, latent action model and VLM "
                     f"kept), stage 2 from its weights at lr {rep['settings'].get('extend_lr', '?')}")
    if rep["settings"].get("ground_weight"):
        lines.append(f"- stage 2 keeps stage 0's grounding loss on (weight {rep['settings']['ground_weight']:g})")
    g = p.get("stage0")
    if g:
        lines.append(f"- stage0 (VLM grounding): {g['steps']} steps in {g['wall_s'] / 60:.1f} min on {g['frames']} "
                     f"renders ({g['render_s']:.0f} s to render); held-out xy error of the named cube "
                     f"{g['named_error_m'] * 100:.1f} cm, of the other {g['other_error_m'] * 100:.1f} cm (mean guess "
                     f"{g['mean_guess_error_m'] * 100:.1f} cm)")
    pl = p.get("plan", {})
    for st in ("stage1", "stage2"):
        ph = p.get(st, {})
        key = "1" if st == "stage1" else "2"
        sps = pl.get("s_per_step", {}).get(key)
        bs = rep["settings"]["batch_size"]
        achieved = (ph.get("steps") or 0) * bs / ph["wall_s"] if ph.get("wall_s") else None
        lines.append(f"- {st}: {ph.get('steps')} steps in {ph.get('wall_s', 0) / 60:.1f} min"
                     + (f", {achieved:.1f} samples/s" if achieved else "")
                     + (f" ({bs / sps:.1f} samples/s planned by the timing probe)" if sps else ""))
    lat = p.get("stage1", {}).get("latent")
    if lat:
        lines += ["", "## Latent action (held-out clips)", "",
                  f"- z* per-dimension variance: min {lat['z_var_min']:.3g}, median {lat['z_var_median']:.3g}, "
                  f"max {lat['z_var_max']:.3g}",
                  f"- LaWM feature MSE: z* {lat['feature_mse_z_star']:.4g}, z* shuffled {lat['feature_mse_z_shuffled']:.4g}, "
                  f"z = 0 {lat['feature_mse_z_zero']:.4g} (copying f_t: {lat['feature_mse_copy_current']:.4g})"]
    reps = rep.get("stage2_reports", [])
    if reps:
        grounded = "ground_named_error_m" in reps[0]  # --ground-weight: the VLM's grounding, held out
        lines += ["", "## Held-out figures during stage 2", "", "| step | training min | action error (cm) | "
                  "first-step error (cm) | starts within start distance | starts accepted (distance and angle) |"
                  + (" grounding error, named / other cube (cm) |" if grounded else ""),
                  "|---|---|---|---|---|---|" + ("---|" if grounded else "")]
        for r in reps:
            acc = r.get("start_accepted_share")  # absent in reports of runs started before it existed
            lines.append(f"| {r['step']} | {r['training_wall_s'] / 60:.1f} | {r['action_error_m'] * 100:.1f} | "
                         f"{r['first_error_m'] * 100:.1f} | {r['start_within_share'] * 100:.0f} %"
                         + (" (go/no-go)" if r.get("go_no_go") else "")
                         + f" | {'-' if acc is None else f'{acc * 100:.0f} %'} |"
                         + (f" {r['ground_named_error_m'] * 100:.1f} / {r['ground_other_error_m'] * 100:.1f} |"
                            if grounded else ""))
    ev = p.get("eval")
    if ev:
        lines += ["", f"## Closed loop (ROS-free, fixed evaluation seeds, {ev['control_hz']:g} Hz)", "",
                  "| instruction | success | mean time to success (s) |", "|---|---|---|"]
        for k, v in ev["summary"].items():
            t = v["mean_time_to_success_s"]
            lines.append(f"| {k} | {v['successes']}/{v['episodes']} ({v['success_rate'] * 100:.0f} %) | "
                         f"{'-' if t is None else f'{t:.1f}'} |")
    for k, e in enumerate(rep.get("extensions", []), 1):
        before = (e.get("before") or {}).get("eval") or {}
        was = ", ".join(f"{name} {v['successes']}/{v['episodes']}" for name, v in before.get("summary", {}).items())
        fin = e.get("final") or {}
        lines += ["", f"## Extension {k}: {e['steps']} more stage-2 steps (~{e['minutes']:.0f} min, lr {e['lr']:g})"
                  + ("" if e.get("done") else " (unfinished)"), ""]
        if fin:
            lines.append(f"- held-out action error after it: {fin['action_error_m'] * 100:.1f} cm (first step "
                         f"{fin['first_error_m'] * 100:.1f} cm)")
        if was:
            lines.append(f"- closed loop before it: {was}")
    ex = p.get("export")
    if ex:
        lines += ["", f"Checkpoint: `{ex['path']}` ({ex['size_mb']} MB)"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        recipe = Recipe(args)
    except RecipeError as e:
        print(f"lawam-sim-train: error: {e}", file=sys.stderr)
        return 2
    try:
        return recipe.run()
    except RecipeError as e:
        print(f"lawam-sim-train: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
