"""`finetune`: post-train a LaWAM checkpoint on LeRobot datasets, or train the preset from scratch.

    finetune --dataset DIR [--dataset DIR …] --output DIR [--checkpoint DIR] [--preset tiny|paper]
             [--steps N] [--config FILE] [--stage auto|1|2|both] [--video DIR …] [--resume] …
    torchrun --nproc_per_node 4 -m lawam_training.finetune …      (DDP; FSDP for the paper preset)

With --checkpoint the default is stage 2 (policy post-training, lr 5e-5). Without it the preset's untrained
weights are trained stage 1 (latent action model / LaWM), then stage 2, on the given data. --video DIR adds
action-free video (a folder of video files or a camera-only LeRobot dataset; pairs T = 0.4 s apart, see
video_data.py) to stage 1 only, without the auxiliary state loss; the robot data keep their T.
Settings: code defaults (FinetuneSettings; listed in docs/parameters.md) < --config FILE < options.

The output directory ends up a `LaWAMPolicy.from_pretrained` checkpoint (normalisation statistics, action
layouts, T and camera roles in lawam_config.json), with `checkpoints/` (periodic, for --resume),
`tensorboard/` and `run.json` beside it. Bad input (path, dataset features, checkpoint of another preset,
settings, non-finite values in a dataset) is reported before anything is written: exit status 2, nothing left
on disk. A non-finite loss or gradient stops training at that step with exit status 3 (the checkpoints of the
steps before stay; no checkpoint with non-finite weights or statistics is ever written).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from lawam_policy.parameters import check_fields, setting

from .train_options import TrainOptions

EXIT_BAD_INPUT = 2
EXIT_NON_FINITE = 3


class FinetuneError(Exception):
    """Bad input: reported as one line, exit status 2."""


# The training options' defaults are the finetune settings' defaults (one home: train_options.py).
_TRAIN = TrainOptions()


@dataclass
class FinetuneSettings:
    """Every finetune setting (one home: each field's default, description and bounds; the reference in
    docs/parameters.md is generated from them). The YAML keys of --config are these field names."""
    # --- what to train
    datasets: list = setting([], "LeRobot dataset directories (--dataset DIR, repeatable); rates may differ",
                             per_instance=True)
    output: str | None = setting(None, "output directory: new or empty, unless --resume")
    checkpoint: str | None = setting(None, "LaWAM checkpoint to post-train; null: train the preset from "
                                           "untrained weights")
    preset: str | None = setting(None, "tiny or paper; null: the checkpoint's preset, else tiny. Must match the "
                                       "checkpoint's")
    stage: str = setting("auto", "auto: 2 with a checkpoint, both (stage 1 then stage 2) without; or 1, 2, both")
    steps: int = setting(_TRAIN.steps, "optimiser steps of stage 2 (of stage 1 when stage is 1)", min=1)
    stage1_steps: int | None = setting(None, "stage-1 steps when both stages run; null: same as steps")
    # --- data
    horizon_s: float | None = setting(None, "chunk horizon T (s); null: the checkpoint's, else the preset's "
                                            "(1.2 s)")
    cameras: list | None = setting(None, "camera order, primary first (e.g. [primary, wrist]); null: the "
                                         "dataset's order")
    action_layout: str | None = setting(None, "embodiment the data must have (franka_panda, quanta_x1); null: "
                                              "from the dataset's feature names")
    videos: list = setting([], "action-free video for stage 1 only (--video DIR, repeatable): a folder of video "
                               "files (mp4, mov, avi, mkv, webm, m4v) or a camera-only LeRobot dataset; its "
                               "auxiliary state loss is masked. Whole video and robot batches are shuffled "
                               "together, so each source's share of stage-1 batches follows its number of pairs",
                           per_instance=True)
    video_horizon_s: float = setting(0.4, "T of the video frame pairs (s), at each video's own fps; the robot "
                                          "data keep horizon_s", above=0.0)
    val_fraction: float = setting(0.1, "share of each dataset's episodes held out for the validation loss "
                                       "(0: none)", min=0.0, max=1.0)
    # --- optimisation (AdamW, linear warm-up then cosine decay)
    batch_size: int = setting(_TRAIN.batch_size, "samples per micro-batch and process; global batch = "
                                                 "batch_size x grad_accum x processes", min=1)
    grad_accum: int = setting(_TRAIN.grad_accum, "micro-batches per optimiser step", min=1)
    lr: float | None = setting(None, "one rate for all trained modules; null: with a checkpoint "
                                     "post_training_lr, without one the model's rates (action expert 1e-4, "
                                     "other modules 1e-5)", above=0.0)
    post_training_lr: float = setting(5e-5, "rate with a checkpoint when lr is null", above=0.0)
    weight_decay: float = setting(_TRAIN.weight_decay, "AdamW weight decay", min=0.0)
    warmup_steps: int = setting(_TRAIN.warmup_steps, "linear warm-up steps", min=0)
    min_lr_ratio: float = setting(_TRAIN.min_lr_ratio, "the cosine ends at lr x min_lr_ratio", min=0.0)
    max_grad_norm: float | None = setting(_TRAIN.max_grad_norm, "gradient clipping norm; null: off", min=0.0)
    precision: str = setting(_TRAIN.precision, "auto: bf16 autocast on GPU, fp32 on CPU; or fp32, bf16",
                             choices=("auto", "fp32", "bf16"))
    seed: int = setting(_TRAIN.seed, "data order and loss noise; same seed + same global batch = same run")
    # --- bookkeeping
    log_every: int = setting(_TRAIN.log_every, "steps between logged losses and samples/s (progress bar, "
                                               "TensorBoard)", min=1)
    val_every: int = setting(_TRAIN.val_every, "steps between validation losses (and at the end)", min=1)
    val_batches: int = setting(_TRAIN.val_batches, "validation batches per evaluation", min=1)
    checkpoint_every: int = setting(_TRAIN.checkpoint_every, "steps between checkpoints in OUTPUT/checkpoints "
                                                             "(and at the end of each stage)", min=1)
    keep_checkpoints: int = setting(_TRAIN.keep_checkpoints, "newest checkpoints kept per stage (0: all)", min=0)
    num_workers: int = setting(_TRAIN.num_workers, "DataLoader worker processes (video decoding)", min=0)
    distributed: str = setting(_TRAIN.distributed, "under torchrun: auto = FSDP for the paper preset, DDP "
                                                   "otherwise; or ddp, fsdp", choices=("auto", "ddp", "fsdp"))
    progress: bool = setting(_TRAIN.progress, "tqdm progress bar (false: one log line per log_every steps)")
    model: dict = setting({}, "LaWAMConfig overrides for a new model, e.g. {qwen3vl_path: /models/Qwen3-VL-2B, "
                              "dinov3_path: /models/dinov3-vitb16}; ignored with a checkpoint", per_instance=True)


TRAIN_FIELDS = ("batch_size", "grad_accum", "weight_decay", "warmup_steps", "min_lr_ratio", "max_grad_norm",
                "precision", "seed", "val_every", "val_batches", "checkpoint_every", "keep_checkpoints",
                "log_every", "num_workers", "distributed", "progress")


def load_settings_file(path) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FinetuneError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise FinetuneError(f"config file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise FinetuneError(f"config file {p} must hold a mapping of settings")
    known = {f.name for f in dataclasses.fields(FinetuneSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise FinetuneError(f"config file {p}: unknown setting(s) {unknown}; known: {sorted(known)}")
    for key in ("datasets", "videos"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
    return data


def parse_args(argv=None) -> tuple[FinetuneSettings, argparse.Namespace]:
    ap = argparse.ArgumentParser(prog="finetune", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", action="append", dest="datasets", metavar="DIR", help="LeRobot dataset (repeat)")
    ap.add_argument("--video", action="append", dest="videos", metavar="DIR",
                    help="action-free video for stage 1 (repeat): a folder of video files or a camera-only "
                         "LeRobot dataset; its state loss is masked")
    ap.add_argument("--video-horizon", type=float, dest="video_horizon_s", metavar="SECONDS",
                    help="T of the video frame pairs (default 0.4 s)")
    ap.add_argument("--output", metavar="DIR", help="output directory (new or empty, unless --resume)")
    ap.add_argument("--checkpoint", metavar="DIR", help="LaWAM checkpoint to post-train")
    ap.add_argument("--preset", choices=["tiny", "paper"])
    ap.add_argument("--config", metavar="FILE", help="YAML settings (see config/finetune.yaml)")
    ap.add_argument("--stage", choices=["auto", "1", "2", "both"])
    ap.add_argument("--steps", type=int)
    ap.add_argument("--stage1-steps", type=int)
    ap.add_argument("--horizon", type=float, dest="horizon_s", metavar="SECONDS", help="chunk horizon T")
    ap.add_argument("--cameras", nargs="+", metavar="NAME", help="camera order, primary first")
    ap.add_argument("--action-layout", metavar="EMBODIMENT")
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--grad-accum", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--seed", type=int)
    ap.add_argument("--num-workers", type=int)
    ap.add_argument("--val-fraction", type=float)
    ap.add_argument("--val-every", type=int)
    ap.add_argument("--checkpoint-every", type=int)
    ap.add_argument("--log-every", type=int)
    ap.add_argument("--distributed", choices=["auto", "ddp", "fsdp"])
    ap.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    ap.add_argument("--resume", action="store_true", help="continue the run in --output from its newest checkpoint")
    ap.add_argument("--stop-after", type=int, metavar="N",
                    help="leave a stage after N of its steps, with a checkpoint (preemptible jobs; tests)")
    args = ap.parse_args(argv)

    values = dataclasses.asdict(FinetuneSettings())
    if args.config:
        values.update(load_settings_file(args.config))
    for key, value in vars(args).items():
        if key in values and value is not None:
            values[key] = value
    try:
        settings = FinetuneSettings(**values)
    except TypeError as e:
        raise FinetuneError(f"bad settings: {e}") from None
    try:
        check_fields(settings)  # the bounds the reference lists; one line naming the setting
    except ValueError as e:
        raise FinetuneError(str(e)) from None
    return settings, args


# ---------------------------------------------------------------------------------------------- data
def split_episodes(ds, val_fraction: float, seed: int):
    """(train, val) views of a DemoDataset holding whole episodes each; val is None without held-out data."""
    episodes = ds._ds.meta.episodes  # (DemoDataset keeps the LeRobotDataset; episode bounds live there)
    n_ep = len(episodes)
    n_val = 0 if val_fraction <= 0 or n_ep < 2 else min(n_ep - 1, max(1, round(val_fraction * n_ep)))
    if n_val == 0:
        return ds, None
    import numpy as np
    chosen = set(np.random.default_rng(seed).permutation(n_ep)[:n_val].tolist())
    bounds = [(int(episodes[e]["dataset_from_index"]), int(episodes[e]["dataset_to_index"])) for e in range(n_ep)]

    def view(keep):
        v = copy.copy(ds)
        v.indices = [i for i in ds.indices if any(keep(e) and a <= i < b for e, (a, b) in enumerate(bounds))]
        return v

    train, val = view(lambda e: e not in chosen), view(lambda e: e in chosen)
    return train, (val if val.indices else None)


def open_datasets(settings: FinetuneSettings, horizon_s: float):
    from .data import DemoDataset
    from .episode_store import DatasetError

    if not settings.datasets:
        raise FinetuneError("no --dataset given")
    out = []
    for d in settings.datasets:
        p = Path(d).expanduser()
        if not p.exists():
            raise FinetuneError(f"dataset path {p} does not exist")
        if not p.is_dir():
            raise FinetuneError(f"dataset path {p} is not a directory")
        try:
            out.append(DemoDataset(p, horizon_s, cameras=settings.cameras, action_layout=settings.action_layout))
        except DatasetError as e:
            raise FinetuneError(str(e)) from None
        except ValueError as e:  # unknown action layout and the like
            raise FinetuneError(f"dataset {p}: {e}") from None
    return out


def open_videos(settings: FinetuneSettings, image_size: int):
    """The action-free video sources (stage 1 only), resized to the model's input size."""
    from .episode_store import DatasetError
    from .video_data import VideoClipDataset

    out = []
    for d in settings.videos or []:
        p = Path(d).expanduser()
        if not p.exists():
            raise FinetuneError(f"video path {p} does not exist")
        try:
            out.append(VideoClipDataset(p, settings.video_horizon_s, image_size=image_size))
        except DatasetError as e:
            raise FinetuneError(str(e)) from None
    return out


def dataset_metadata(datasets) -> dict:
    """Per embodiment: its layout, camera roles and the (actions, states) of all its datasets."""
    import numpy as np
    emb: dict = {}
    for ds in datasets:
        e = emb.setdefault(ds.embodiment, dict(layout=ds.layout, cameras=list(ds.cameras), actions=[], states=[],
                                                roots=[], rates=[]))
        if ds.layout != e["layout"]:
            raise FinetuneError(f"datasets {e['roots'][0]} and {ds.root} both say {ds.embodiment!r} but have "
                                f"different action layouts ({e['layout'].arms} vs {ds.layout.arms})")
        if list(ds.cameras) != e["cameras"]:
            raise FinetuneError(f"datasets of {ds.embodiment!r} have different cameras: {e['cameras']} in "
                                f"{e['roots'][0]}, {list(ds.cameras)} in {ds.root} (choose with --cameras)")
        a, s = ds.wire_arrays()
        for key, arr in (("action", a), ("observation.state", s)):
            _require_finite(ds, key, arr)
        e["actions"].append(a)
        e["states"].append(s)
        e["roots"].append(ds.root)
        e["rates"].append(float(ds.fps))
    for e in emb.values():
        e["actions"], e["states"] = np.concatenate(e["actions"]), np.concatenate(e["states"])
    return emb


def _require_finite(ds, key: str, arr) -> None:
    """FinetuneError naming the dataset, frame, episode and feature of the first non-finite value."""
    import numpy as np
    bad = np.argwhere(~np.isfinite(np.asarray(arr, np.float64)))
    if not bad.size:
        return
    row, col = (int(v) for v in bad[0])
    try:
        episode = int(ds._ds.hf_dataset.with_format(None)[row]["episode_index"])
    except Exception:  # noqa: BLE001 - only for the message
        episode = None
    name = ds.layout.names[col] if col < len(ds.layout.names) else col
    raise FinetuneError(f"dataset {ds.root}: {key} is not finite ({len(bad)} value(s); the first in frame {row}"
                        f"{f' of episode {episode}' if episode is not None else ''}, {name} = {arr[row, col]}); "
                        "nothing is trained on it (re-import or re-record those episodes)")


# ---------------------------------------------------------------------------------------------- model
def read_checkpoint_config(path):
    from lawam_policy.model import LaWAMConfig

    p = Path(path).expanduser()
    if not p.is_dir():
        raise FinetuneError(f"checkpoint {p} does not exist or is not a directory")
    try:
        return LaWAMConfig.load(p)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as e:
        raise FinetuneError(f"checkpoint {p} is not a LaWAM checkpoint: {e}") from None


def apply_data_to_config(cfg, meta: dict, from_checkpoint: bool):
    """Action layouts, camera roles and normalisation statistics of the data go into the model config."""
    from lawam_policy.model import compute_stats

    for name, e in meta.items():
        layout = e["layout"]
        if name in cfg.embodiments and tuple(cfg.embodiments[name]["arms"]) != layout.arms:
            raise FinetuneError(f"the data's {name!r} layout has arms {layout.arms}, the model's has "
                                f"{tuple(cfg.embodiments[name]['arms'])}")
        if from_checkpoint and name not in cfg.embodiments:
            raise FinetuneError(f"the checkpoint knows the embodiments {sorted(cfg.embodiments)}, not the data's "
                                f"{name!r} (its action heads do not exist)")
        cfg.embodiments[name] = layout.to_dict()
        cfg.camera_roles[name] = list(e["cameras"])
        try:
            cfg.normalization[name] = {"action": compute_stats(e["actions"], layout),
                                       "state": compute_stats(e["states"], layout)}
        except ValueError as err:  # (the datasets were checked already; this is the last guard)
            raise FinetuneError(f"{name}: {err}") from None
        cfg.control_rates_hz[name] = sorted(set(e["rates"]) | set(cfg.control_rates_hz.get(name, [])))
    cfg.default_embodiment = next(iter(meta))


def stage_plan(settings: FinetuneSettings, has_checkpoint: bool) -> list[tuple[int, int]]:
    stage = settings.stage
    if stage == "auto":
        stage = "2" if has_checkpoint else "both"
    if stage == "both":
        return [(1, settings.stage1_steps or settings.steps), (2, settings.steps)]
    return [(int(stage), settings.steps)]


# ---------------------------------------------------------------------------------------------- run
def _say(dist, msg):
    if dist.is_main:
        print(f"finetune: {msg}", file=sys.stderr, flush=True)


def prepare(settings: FinetuneSettings, resume: bool):
    """All checks and the model, before anything is written. Returns (policy, plan, datasets, info)."""
    import torch

    from lawam_policy.model import LaWAMConfig, LaWAMPolicy
    from .train import find_checkpoints, latest_checkpoint

    if not settings.output:
        raise FinetuneError("no --output given")
    out = Path(settings.output).expanduser()
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"output {out} exists and is not a directory")
    run_dir = out / "checkpoints"
    if resume:
        if not (out / "run.json").is_file():
            raise FinetuneError(f"--resume: {out} holds no finetune run (no run.json)")
        recorded = json.loads((out / "run.json").read_text())
        now = [str(Path(d).expanduser().absolute()) for d in settings.datasets]
        if recorded["datasets"] != now:
            raise FinetuneError(f"--resume: the run in {out} trained on {recorded['datasets']}, not {now}")
    elif out.exists() and any(out.iterdir()):
        raise FinetuneError(f"output {out} is not empty (use --resume to continue a run there, or a new directory)")

    for key, value in (("steps", settings.steps), ("batch_size", settings.batch_size)):
        if value is None or int(value) < 1:
            raise FinetuneError(f"{key} must be >= 1, got {value}")

    ckpt_cfg = None
    if settings.checkpoint:
        ckpt_cfg = read_checkpoint_config(settings.checkpoint)
        if settings.preset and settings.preset != ckpt_cfg.preset:
            raise FinetuneError(f"checkpoint {settings.checkpoint} is of the {ckpt_cfg.preset!r} preset, but "
                                f"--preset {settings.preset} was asked for")
        if settings.horizon_s and abs(settings.horizon_s - ckpt_cfg.horizon_s) > 1e-9:
            raise FinetuneError(f"horizon T = {settings.horizon_s} s differs from the checkpoint's "
                                f"T = {ckpt_cfg.horizon_s} s (its LaWM only knows that horizon)")
    preset = ckpt_cfg.preset if ckpt_cfg else (settings.preset or "tiny")
    horizon = ckpt_cfg.horizon_s if ckpt_cfg else (settings.horizon_s or LaWAMConfig.from_preset(preset).horizon_s)

    datasets = open_datasets(settings, horizon)
    meta = dataset_metadata(datasets)
    plan = stage_plan(settings, ckpt_cfg is not None)
    if settings.videos and 1 not in [s for s, _ in plan]:
        raise FinetuneError("--video is used only in stage 1, and this run trains stage 2 only "
                            "(choose --stage 1 or --stage both)")

    latest = latest_checkpoint(run_dir) if resume else None
    if latest is not None:
        # Resume: the model (with the statistics computed at the start of the run) comes from the checkpoint.
        policy = LaWAMPolicy.from_pretrained(latest, components="all")
        done_stage = max(s for s, _, _ in find_checkpoints(run_dir))
        plan = [(s, n) for s, n in plan if s >= done_stage]
        how = f"resuming from {latest}"
    elif ckpt_cfg is not None:
        # float32 master weights whatever the file stores (training autocasts to bf16 where asked).
        policy = LaWAMPolicy.from_pretrained(Path(settings.checkpoint).expanduser(), components="all",
                                             dtype=torch.float32)
        apply_data_to_config(policy.config, meta, from_checkpoint=True)
        how = f"post-training checkpoint {settings.checkpoint} ({preset} preset)"
        if settings.model:
            how += f"; the model settings {sorted(settings.model)} are ignored (the checkpoint defines the model)"
    else:
        try:
            cfg = LaWAMConfig.from_preset(preset, horizon_s=horizon, **settings.model)
        except ValueError as e:
            raise FinetuneError(f"model settings: {e}") from None
        apply_data_to_config(cfg, meta, from_checkpoint=False)
        torch.manual_seed(settings.seed)
        policy = LaWAMPolicy(cfg)
        how = (f"no --checkpoint: training the {preset} preset from its untrained weights, "
               + " then ".join(f"stage {s} ({n} steps)" for s, n in plan) + " on the given data")
        if preset == "paper" and not (cfg.dinov3_path and cfg.qwen3vl_path):
            how += ("; without model.dinov3_path / model.qwen3vl_path the frozen DINOv3 encoder and the "
                    "Qwen3-VL prior start random too")
    videos = open_videos(settings, policy.config.image_size) if any(s == 1 for s, _ in plan) else []
    if videos:
        how += f"; stage 1 also on {sum(len(v) for v in videos)} action-free video pairs (state loss masked)"
    return policy, plan, datasets + videos, dict(how=how, preset=preset, horizon_s=horizon, embodiments=sorted(meta))


def run(settings: FinetuneSettings, resume: bool = False, stop_after: int | None = None) -> dict:
    """The whole finetune job (library entry; main() wraps it). Raises FinetuneError on bad input."""
    from .data import MixedDataset
    from .train import DistContext, Trainer, latest_checkpoint, write_atomic_dir

    out = Path(settings.output or "").expanduser()
    dist = DistContext.from_env()
    created = False
    try:
        policy, plan, sources, info = prepare(settings, resume)
        dist.barrier()  # every process has checked the (still empty) output before the main one writes to it
        _say(dist, info["how"])
        from .video_data import VideoClipDataset
        datasets = [d for d in sources if not isinstance(d, VideoClipDataset)]
        videos = [d for d in sources if isinstance(d, VideoClipDataset)]
        splits = [split_episodes(ds, settings.val_fraction, settings.seed) for ds in datasets]
        train = MixedDataset([t for t, _ in splits])
        # stage 1 mixes in the videos: whole batches of video beside robot batches, shuffled together
        train1 = MixedDataset([t for t, _ in splits] + videos) if videos else train
        vals = [v for _, v in splits if v is not None]
        val = MixedDataset(vals) if vals else None
        if val is None:
            _say(dist, "no held-out episodes (val_fraction 0 or single-episode datasets): no validation loss")

        if dist.is_main:
            created = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
            if not resume:
                record = dict(datasets=[str(Path(d).expanduser().absolute()) for d in settings.datasets],
                              settings=dataclasses.asdict(settings), plan=plan, **info)
                (out / "run.json").write_text(json.dumps(record, indent=2, default=str))
        dist.barrier()

        lr = settings.lr if settings.lr is not None else (settings.post_training_lr if settings.checkpoint else None)
        results = {}
        for stage, steps in plan:
            opts = TrainOptions(steps=steps, lr=lr, **{k: getattr(settings, k) for k in TRAIN_FIELDS})
            try:
                trainer = Trainer(policy, stage, train1 if stage == 1 else train, out / "checkpoints", opts, val_data=val, dist=dist,
                                  tensorboard_dir=out / "tensorboard" / f"stage{stage}")
            except ValueError as e:
                raise FinetuneError(str(e)) from None
            results[stage] = trainer.fit(resume=resume or stage != plan[0][0], stop_after=stop_after)
            if results[stage]["step"] < steps:
                _say(dist, f"stopped at step {results[stage]['step']} of stage {stage}; continue with --resume")
                return dict(finished=False, results=results, output=str(out))
            final = latest_checkpoint(out / "checkpoints", stage)
            if trainer.sharded:  # FSDP wrapped the modules in place: go on with a plain model from the checkpoint
                from lawam_policy.model import LaWAMPolicy
                policy = LaWAMPolicy.from_pretrained(final, components="all")

        if dist.is_main:
            def fill(tmp):
                # The last stage's final checkpoint holds the model (gathered in full under FSDP).
                for f in final.iterdir():
                    if f.suffix != ".pt":  # not trainer_state.pt / optimizer shards
                        shutil.copy2(f, tmp / f.name)
                summary = {f"stage{s}": dict(step=r["step"], val=r["val"]) for s, r in results.items()}
                (tmp / "training_summary.json").write_text(json.dumps(summary, indent=2))

            staged = write_atomic_dir(out / ".final", fill)
            # Move the files next to checkpoints/; the config last, so a loadable config means a whole model.
            names = sorted(p.name for p in staged.iterdir())
            for name in sorted(names, key=lambda n: n == "lawam_config.json"):
                os.replace(staged / name, out / name)
            staged.rmdir()
            _say(dist, f"done: {out} (load with LaWAMPolicy.from_pretrained)")
        dist.barrier()
        return dict(finished=True, results=results, output=str(out))
    except BaseException:
        # Nothing partial: a directory this call created, with no checkpoint in it, goes again.
        if dist.is_main and created and not any((out / "checkpoints").glob("stage*_step*")):
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        dist.close()


def main(argv=None) -> int:
    from .train import NonFiniteTraining
    try:
        settings, args = parse_args(argv)
        result = run(settings, resume=args.resume, stop_after=args.stop_after)
    except FinetuneError as e:
        print(f"finetune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NonFiniteTraining as e:
        print(f"finetune: error: {e}", file=sys.stderr)
        return EXIT_NON_FINITE
    return 0 if result["finished"] or args.stop_after else 1


if __name__ == "__main__":
    sys.exit(main())
