"""The LaWAM training loop: stage 1 (latent action model / LaWM) and stage 2 (policy), one process or many.

    trainer = Trainer(policy, stage=2, train_data=mixed, val_data=val, options=TrainOptions(steps=1000),
                      run_dir="out/checkpoints", dist=DistContext.from_env())
    trainer.fit()                       # resumes by itself from the newest checkpoint of this stage in run_dir

What a step is. One optimiser step consumes a *global batch* of `batch_size x grad_accum x world_size` samples,
cut into `grad_accum x world_size` equal micro-batches ("slots"); process r runs slots r*accum … r*accum+accum-1.
Every slot draws its loss noise (flow-matching tau/eps, the reparameterised z) from its own generator seeded by
(seed, stage, step, slot), never from the global RNG. Hence one process with grad_accum=2 and two DDP processes
with grad_accum=1 compute the same gradient up to float summation order, and a resumed run repeats the
uninterrupted one bit for bit (the data order is a pure function of (seed, epoch) too).

Checkpoints: `run_dir/stage{S}_step{N:08d}/` = a `LaWAMPolicy.save_pretrained` directory (loadable as is) plus
`trainer_state.pt` (optimiser, scheduler, step, data position, RNG states). Each is written under a temporary
name and renamed into place, so a crash never leaves a half-written checkpoint that resume would pick up.

Non-finite numbers stop training: a non-finite loss term or gradient norm raises NonFiniteTraining naming the
stage and step, before the optimiser step (the weights stay those of the step before), and `save_policy`,
through which every checkpoint is written, refuses non-finite weights or normalisation statistics.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn as nn
from torch.utils.data import DataLoader, Sampler

from .data import EmbodimentBatchSampler, MixedDataset, collate
from .train_options import TrainOptions  # noqa: F401 - torch-free home, re-exported

TRAINER_STATE = "trainer_state.pt"
_CKPT_RE = re.compile(r"^stage(\d)_step(\d{8})$")
# The loss terms each stage reports (a fixed set: processes all-reduce them in this order).
LOSS_KEYS = {1: ("loss", "feature", "kl", "state"), 2: ("loss", "distill", "subgoal", "flow")}


class NonFiniteTraining(FloatingPointError):
    """A non-finite loss or gradient (training stops), or non-finite weights/statistics (nothing is saved)."""


# ---------------------------------------------------------------------------------------------- distributed

@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False

    @classmethod
    def from_env(cls) -> "DistContext":
        """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a plain single process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available()
        device = torch.device("cuda", local) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        here = False
        if world > 1 and not torch_dist.is_initialized():
            torch_dist.init_process_group("nccl" if cuda else "gloo")
            here = True
        return cls(rank, world, local, device, here)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self):
        if self.distributed:
            torch_dist.barrier()

    def mean(self, values: dict) -> dict:
        """Mean over processes of a dict of floats (one all-reduce)."""
        if not self.distributed or not values:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                         device=self.device if self.device.type == "cuda" else "cpu")
        torch_dist.all_reduce(t)
        return {k: float(v) / self.world_size for k, v in zip(keys, t.tolist())}

    def gather_objects(self, obj) -> list:
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    def close(self):
        if self.initialized_here and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------- data order
class RankBatches(Sampler):
    """This process's micro-batches, in step order, from a given global-batch position.

    The inner EmbodimentBatchSampler makes global batches (one embodiment each, drop_last so every slot has
    the same size); global batch g yields, for a = 0 … accum-1, the slice of slot rank*accum + a.
    """

    def __init__(self, inner: EmbodimentBatchSampler, micro: int, accum: int, rank: int, world: int):
        self.inner, self.micro, self.accum, self.rank, self.world = inner, micro, accum, rank, world
        self.start = 0

    def global_batches(self) -> list:
        return list(self.inner)

    def __iter__(self):
        # Built eagerly: `start` moves while the loader is iterating.
        out = []
        for batch in self.global_batches()[self.start:]:
            for a in range(self.accum):
                slot = self.rank * self.accum + a
                out.append(batch[slot * self.micro:(slot + 1) * self.micro])
        return iter(out)

    def __len__(self):
        return (len(self.inner) - self.start) * self.accum


def slot_seed(seed: int, stage: int, step: int, slot: int) -> int:
    """Independent, reproducible noise stream per (seed, stage, step, slot)."""
    return int(np.random.SeedSequence([seed, stage, step, slot]).generate_state(1, np.uint64)[0] >> 1)


def lr_lambda(total: int, warmup: int, min_ratio: float):
    """Linear warm-up, then cosine decay to min_ratio at step `total`."""
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def rng_state() -> dict:
    state = dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_checkpoints(run_dir: str | Path) -> list[tuple[int, int, Path]]:
    """Complete checkpoints in run_dir as (stage, step, path), oldest first (temporaries are ignored)."""
    run_dir = Path(run_dir)
    found = []
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = _CKPT_RE.match(p.name)
            if m and (p / TRAINER_STATE).is_file():
                found.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(found)


def latest_checkpoint(run_dir, stage: int | None = None) -> Path | None:
    found = [c for c in find_checkpoints(run_dir) if stage is None or c[0] == stage]
    return found[-1][2] if found else None


def commit_dir(tmp: Path, target: Path) -> Path:
    """Rename a finished temporary directory to `target` (replacing an older one of the same name)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
    return target


def write_atomic_dir(target: Path, fill) -> Path:
    """Write a directory under a temporary name with fill(tmp), then rename it into place."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        return commit_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------- the model
class _StageLoss(nn.Module):
    """forward(batch, generator) -> the stage's loss dict; DDP/FSDP need a module whose forward is the loss."""

    def __init__(self, policy, stage: int):
        super().__init__()
        self.policy, self.stage = policy, stage

    def forward(self, batch, generator=None):
        if self.stage == 1:
            return self.policy.latent_action_losses(batch, generator=generator)
        return self.policy.training_losses(batch, generator=generator)


def _fsdp_wrap(module: nn.Module, dist: DistContext, stage: int):
    """FSDP (full sharding, original parameters kept for the per-module learning rates).

    Only blocks that the model runs through their own forward() become FSDP units: stage 1 the IDM and LaWM
    blocks, stage 2 the Qwen3-VL vision blocks (and, both stages, the frozen DINOv3 layers). Everything else
    stays in the root unit, sharded at rest and gathered for the whole step, because the model reaches it
    outside forward(): the expert's `context()` projections, and `functional_call` with detached weights
    (Knowledge Insulation's action-query pass, the frozen LaWM in stage 2), which a per-block all-gather would
    silently bypass. Optimiser state and gradients are sharded everywhere.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from lawam_policy.model.layers import AdaLNZeroBlock, TransformerBlock

    blocks = {TransformerBlock, AdaLNZeroBlock} if stage == 1 else set()
    for m in module.modules():  # transformers' classes, by name (their module paths vary between versions)
        name = type(m).__name__
        if name == "DINOv3ViTLayer" or (stage == 2 and name.endswith("VisionBlock")):
            blocks.add(type(m))
    # (sync_module_states broadcasts rank 0's weights; FSDP does that on accelerators only. On CPU the
    # processes hold the same weights anyway: same seed, or the same checkpoint.)
    cuda = dist.device.type == "cuda"
    return FSDP(module, auto_wrap_policy=ModuleWrapPolicy(blocks), use_orig_params=True, sync_module_states=cuda,
                device_id=dist.device)


class Trainer:
    """Trains one stage of a LaWAMPolicy for `options.steps` optimiser steps (resuming if a checkpoint exists)."""

    def __init__(self, policy, stage: int, train_data: MixedDataset, run_dir: str | Path,
                 options: TrainOptions | None = None, val_data: MixedDataset | None = None,
                 dist: DistContext | None = None, tensorboard_dir: str | Path | None = None, log=None,
                 aux: nn.Module | None = None):
        """`aux`: an auxiliary objective, a module with `loss(generator) -> scalar tensor` (e.g.
        vlm_grounding.GroundingObjective): its loss is added to every micro-batch's, its own parameters train
        in an optimiser group "aux" at the largest group learning rate, and its state is checkpointed. One
        process only (its gradients are not reduced across processes): ValueError under DDP/FSDP."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.options = options or TrainOptions()
        self.options.validate()
        self.policy, self.stage = policy, stage
        self.dist = dist or DistContext()
        self.run_dir = Path(run_dir)
        self.tb_dir = Path(tensorboard_dir) if tensorboard_dir else None
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        o = self.options
        self.global_batch = o.batch_size * o.grad_accum * self.dist.world_size

        self.policy.to(self.dist.device)
        self._stage_groups()  # requires_grad must be final before DDP/FSDP look at the parameters
        self.loss_module = _StageLoss(self.policy, stage)
        self.model = self._wrap(self.loss_module)
        groups = self._stage_groups()  # (again: FSDP's wrapping may re-register the parameters)
        self.aux = aux
        if aux is not None:
            if self.dist.distributed:
                raise ValueError("an auxiliary objective trains in one process only (its gradients are not reduced)")
            aux.to(self.dist.device)
            groups.append(dict(params=list(aux.parameters()), lr=max(g["lr"] for g in groups), name="aux"))
        if o.lr is not None:
            groups = [dict(g, lr=o.lr) for g in groups]
        self.group_names = [g.get("name", str(i)) for i, g in enumerate(groups)]
        self.optimizer = torch.optim.AdamW(groups, weight_decay=o.weight_decay, betas=tuple(o.betas))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(o.steps, o.warmup_steps, o.min_lr_ratio))

        self.train_data, self.val_data = train_data, val_data
        self.sampler = EmbodimentBatchSampler(train_data, self.global_batch, shuffle=True, seed=o.seed,
                                              drop_last=True)
        if len(self.sampler) == 0:
            raise ValueError(f"the training data hold {len(train_data)} samples, fewer than one global batch of "
                             f"{self.global_batch} (batch_size {o.batch_size} x grad_accum {o.grad_accum} x "
                             f"{self.dist.world_size} processes) of one embodiment: lower batch_size")
        self.rank_batches = RankBatches(self.sampler, o.batch_size, o.grad_accum, self.dist.rank,
                                        self.dist.world_size)
        self.step, self.epoch = 0, 0
        self.history: list[dict] = []  # logged metrics (main process)
        # seconds spent in fit() over every resume (in the checkpoints; 0 for checkpoints from before it)
        self._wall_before = 0.0
        self._fit_started: float | None = None
        self.last_val: dict | None = None

    # ------------------------------------------------------------------ setup helpers
    def _stage_groups(self) -> list[dict]:
        """The model's optimiser groups for this stage; everything outside them is frozen (DDP must not
        wait for gradients that never come, and frozen weights must not drift through weight decay)."""
        groups = self.policy.parameter_groups(self.stage)
        trainable = {id(p) for g in groups for p in g["params"]}
        for p in self.policy.parameters():
            p.requires_grad_(id(p) in trainable)
        return groups

    def _wrap(self, module):
        if not self.dist.distributed:
            return module
        mode = self.options.distributed
        if mode == "auto":
            mode = "fsdp" if self.policy.config.preset == "paper" else "ddp"
        self.mode = mode
        if mode == "fsdp":
            return _fsdp_wrap(module, self.dist, self.stage)
        from torch.nn.parallel import DistributedDataParallel as DDP
        ids = [self.dist.device] if self.dist.device.type == "cuda" else None
        # Unused parameters exist by design (the aux head of an embodiment absent from a batch).
        return DDP(module, device_ids=ids, find_unused_parameters=True)

    @property
    def _fsdp(self) -> bool:
        return self.dist.distributed and getattr(self, "mode", "ddp") == "fsdp"

    @property
    def sharded(self) -> bool:
        """True under FSDP: the policy's modules are wrapped in place and hold only this process's shard."""
        return self._fsdp

    def _autocast(self):
        o, dev = self.options, self.dist.device
        bf16 = o.precision == "bf16" or (o.precision == "auto" and dev.type == "cuda")
        if not bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)

    def _loader(self, sampler) -> DataLoader:
        return DataLoader(self.train_data, batch_sampler=sampler, collate_fn=collate,
                          num_workers=self.options.num_workers, persistent_workers=False)

    def _generator(self, step: int, slot: int, salt: int = 0) -> torch.Generator:
        g = torch.Generator(device=self.dist.device)
        g.manual_seed(slot_seed(self.options.seed + salt, self.stage, step, slot))
        return g

    # ------------------------------------------------------------------ checkpoints
    def _fsdp_full_model_state(self) -> dict:
        """The whole (unsharded) model state on CPU, gathered from the FSDP shards (collective)."""
        from torch.distributed.fsdp import FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT,
                                  FullStateDictConfig(offload_to_cpu=True, rank0_only=False)):
            msd = self.model.state_dict()
        return {k[len("policy."):]: v for k, v in msd.items() if k.startswith("policy.")}

    def save_checkpoint(self) -> Path:
        """Everything exact resume needs; collective under DDP/FSDP, committed by the main process.

        Under FSDP the model is gathered whole (so the checkpoint loads anywhere), while every process saves
        its own optimiser shard (`optimizer_rank{r}.pt`): exact, and resuming needs the same process count.
        (With the optimiser state gathered whole, a resumed FSDP run did not repeat the uninterrupted one on
        CPU/gloo, torch 2.14; with per-process shards it does.)
        """
        model_sd = self._fsdp_full_model_state() if self._fsdp else None
        check_finite_policy(self.policy, model_sd)  # on every process (same weights): all stop together
        rngs = self.dist.gather_objects(rng_state())
        target = self.run_dir / f"stage{self.stage}_step{self.step:08d}"
        tmp = target.with_name(f".{target.name}.tmp")
        if self.dist.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.dist.barrier()
        if self._fsdp:
            torch.save(self.optimizer.state_dict(), tmp / f"optimizer_rank{self.dist.rank}.pt")
        self.dist.barrier()
        if self.dist.is_main:
            state = dict(stage=self.stage, step=self.step, epoch=self.epoch, position=self.rank_batches.start,
                         optimizer=None if self._fsdp else self.optimizer.state_dict(),
                         scheduler=self.scheduler.state_dict(), rng=rngs, world_size=self.dist.world_size,
                         sharded_optimizer=self._fsdp, global_batch=self.global_batch, options=asdict(self.options),
                         train_wall_s=self.train_wall_s,
                         aux=None if self.aux is None else self.aux.state_dict())
            try:
                save_policy(self.policy, tmp, model_sd)
                torch.save(state, tmp / TRAINER_STATE)  # written last: its presence marks a whole checkpoint
                commit_dir(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._prune()
        self.dist.barrier()
        return target

    def _prune(self):
        keep = self.options.keep_checkpoints
        if keep <= 0:
            return
        mine = [c for c in find_checkpoints(self.run_dir) if c[0] == self.stage]
        for _, _, path in mine[:-keep]:
            shutil.rmtree(path, ignore_errors=True)

    def load_checkpoint(self, path: str | Path):
        """Restore weights, optimiser, scheduler, step, data position and RNG from a checkpoint of this stage."""
        from safetensors.torch import load_file

        path = Path(path)
        state = torch.load(path / TRAINER_STATE, map_location="cpu", weights_only=False)
        if state["stage"] != self.stage:
            raise ValueError(f"checkpoint {path} is of stage {state['stage']}, this trainer runs stage {self.stage}")
        if state["global_batch"] != self.global_batch:
            raise ValueError(f"checkpoint {path} was trained with a global batch of {state['global_batch']} "
                             f"samples, this run has {self.global_batch}: exact resume needs the same")
        if bool(state.get("sharded_optimizer")) != self._fsdp or (self._fsdp and
                                                                    state["world_size"] != self.dist.world_size):
            raise ValueError(f"checkpoint {path} was written by {state['world_size']} process(es) "
                             f"{'with' if state.get('sharded_optimizer') else 'without'} FSDP: resume it the same way")
        if (state.get("aux") is None) != (self.aux is None):
            raise ValueError(f"checkpoint {path} was trained {'without' if state.get('aux') is None else 'with'} an "
                             f"auxiliary objective, this trainer runs {'with' if self.aux is not None else 'without'}"
                             f" one: resume it the same way")
        weights = load_file(str(path / "model.safetensors"))
        if self._fsdp:
            from torch.distributed.fsdp import FullStateDictConfig, StateDictType
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
            with FSDP.state_dict_type(self.model, StateDictType.FULL_STATE_DICT,
                                      FullStateDictConfig(offload_to_cpu=True, rank0_only=False)):
                self.model.load_state_dict({f"policy.{k}": v for k, v in weights.items()})
            shard = torch.load(path / f"optimizer_rank{self.dist.rank}.pt", map_location="cpu", weights_only=False)
            self.optimizer.load_state_dict(shard)
        else:
            self.policy.load_state_dict({k: v.to(self.dist.device) for k, v in weights.items()}, strict=True)
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.aux is not None:
            self.aux.load_state_dict(state["aux"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self._wall_before = float(state.get("train_wall_s", 0.0))
        if self._fit_started is not None:
            self._fit_started = time.perf_counter()
        self.rank_batches.start = int(state["position"])
        rngs = state["rng"]
        set_rng_state(rngs[self.dist.rank] if self.dist.rank < len(rngs) else rngs[0])
        self.log(f"stage {self.stage}: resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict | None:
        """Mean validation losses over up to `val_batches` batches, with fixed noise (comparable across steps)."""
        if self.val_data is None or self.options.val_batches <= 0:
            return None
        sampler = EmbodimentBatchSampler(self.val_data, self.options.batch_size, shuffle=False)
        batches = list(sampler)[:self.options.val_batches]
        mine = batches[self.dist.rank::self.dist.world_size]
        loader = DataLoader(self.val_data, batch_sampler=mine, collate_fn=collate,
                            num_workers=self.options.num_workers)
        self.model.eval()
        sums: dict = {}
        n = 0
        for i, batch in zip(range(self.dist.rank, len(batches), self.dist.world_size), loader):
            with self._autocast():
                out = self.model(batch, self._generator(0, i, salt=7919))
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach().float())
            n += 1
        self.model.train()
        # Processes may hold different numbers of batches: reduce sums and counts, not means.
        totals = {k: sums.get(k, 0.0) for k in LOSS_KEYS[self.stage]}
        totals["_n"] = float(n)
        reduced = self.dist.mean(totals)
        count = reduced.pop("_n") * self.dist.world_size
        if count == 0:
            return None
        return {k: v * self.dist.world_size / count for k, v in reduced.items()}

    # ------------------------------------------------------------------ the loop
    @property
    def train_wall_s(self) -> float:
        """Wall seconds spent in fit() so far, summed over resumed runs (from the checkpoints)."""
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self._wall_before + running

    def fit(self, resume: bool = True, stop_after: int | None = None) -> dict:
        """Train to options.steps. `stop_after`: leave after that many steps with a checkpoint (preemption).
        Returns step, the last validation, the history and train_wall_s (over resumes)."""
        o = self.options
        self._fit_started = time.perf_counter()
        if resume:
            ckpt = latest_checkpoint(self.run_dir, self.stage)
            if ckpt is not None:
                self.load_checkpoint(ckpt)
        self.policy.train()
        writer = None
        if self.dist.is_main and self.tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(self.tb_dir), purge_step=self.step or None)
        bar = None
        if self.dist.is_main and o.progress:
            from tqdm import tqdm
            bar = tqdm(total=o.steps, initial=self.step, desc=f"stage {self.stage}", dynamic_ncols=True,
                       file=sys.stderr)
        ddp = self.dist.distributed
        it = None
        window_t, window_steps = time.perf_counter(), 0
        sums: dict = {}
        bad_terms: dict = {}  # loss terms that were not finite in this step's micro-batches
        saved_at = self.step if ckpt_exists(self) else None
        try:
            while self.step < o.steps:
                if stop_after is not None and self.step >= stop_after:
                    break
                micro = []
                while len(micro) < o.grad_accum:
                    if it is None:
                        self.sampler.set_epoch(self.epoch)
                        it = iter(self._loader(self.rank_batches))
                    try:
                        micro.append(next(it))
                    except StopIteration:  # epoch over: the next starts at its first global batch
                        self.epoch += 1
                        self.rank_batches.start = 0
                        it = None
                        if micro:
                            raise RuntimeError("an epoch ended inside a global batch (sampler bug)")
                for a, batch in enumerate(micro):
                    slot = self.dist.rank * o.grad_accum + a
                    last = a == o.grad_accum - 1
                    sync = contextlib.nullcontext() if (last or not ddp) else self.model.no_sync()
                    with sync:
                        with self._autocast():
                            out = self.model(batch, self._generator(self.step, slot))
                            if self.aux is not None:
                                aux_loss = self.aux.loss(self._generator(self.step, slot, salt=1))
                                out = dict(out, loss=out["loss"] + aux_loss, aux=aux_loss.detach())
                        (out["loss"] / o.grad_accum).backward()
                    values = {k: float(v.detach().float()) for k, v in out.items()}
                    bad_terms.update({k: v for k, v in values.items() if not math.isfinite(v)})
                    for k, v in values.items():
                        sums[k] = sums.get(k, 0.0) + v / o.grad_accum
                # the gradient norm is computed every step (clipping or not): a non-finite one stops training
                max_norm = o.max_grad_norm or math.inf
                if self._fsdp:
                    grad_norm = float(self.model.clip_grad_norm_(max_norm))
                else:
                    params = [p for g in self.optimizer.param_groups for p in g["params"]]
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
                self._stop_if_not_finite(bad_terms, grad_norm)
                bad_terms = {}
                if o.max_grad_norm:
                    sums["grad_norm"] = sums.get("grad_norm", 0.0) + grad_norm
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.rank_batches.start += 1
                window_steps += 1
                if bar is not None:
                    bar.update(1)

                if self.step % o.log_every == 0 or self.step == o.steps:
                    now = time.perf_counter()
                    keys = (LOSS_KEYS[self.stage] + (("aux",) if self.aux is not None else ())
                            + (("grad_norm",) if o.max_grad_norm else ()))
                    metrics = self.dist.mean({k: sums.get(k, 0.0) / window_steps for k in keys})
                    metrics["samples_per_s"] = window_steps * self.global_batch / max(now - window_t, 1e-9)
                    for name, g in zip(self.group_names, self.optimizer.param_groups):
                        metrics[f"lr/{name}"] = g["lr"]
                    self._report(metrics, writer, bar, "train")
                    sums, window_t, window_steps = {}, time.perf_counter(), 0
                if self.step % o.val_every == 0 or self.step == o.steps:
                    val = self.validate()
                    if val is not None:
                        self.last_val = val
                        self._report(val, writer, bar, "val")
                if self.step % o.checkpoint_every == 0 or self.step == o.steps:
                    self.save_checkpoint()
                    saved_at = self.step
            if self.step != saved_at:  # stopped early: keep the position
                self.save_checkpoint()
        finally:
            self._wall_before, self._fit_started = self.train_wall_s, None
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        return dict(step=self.step, val=self.last_val, history=self.history, train_wall_s=self.train_wall_s)

    def _stop_if_not_finite(self, bad_terms: dict, grad_norm: float) -> None:
        """Raise NonFiniteTraining on every process if any process saw a non-finite loss term or gradient norm
        in this step (before the optimiser step: the weights stay finite and no checkpoint is written)."""
        bad = bool(bad_terms) or not math.isfinite(grad_norm)
        if self.dist.distributed:  # one process's NaN must stop them all, not leave the others waiting
            bad = self.dist.mean({"bad": float(bad)})["bad"] > 0
        if not bad:
            return
        step = self.step + 1
        if bad_terms:
            what = "loss (" + ", ".join(f"{k} = {v}" for k, v in sorted(bad_terms.items())) + ")"
        elif not math.isfinite(grad_norm):
            what = f"gradient (norm {grad_norm})"
        else:
            what = "loss or gradient on another process"
        last = latest_checkpoint(self.run_dir, self.stage)
        raise NonFiniteTraining(f"stage {self.stage} step {step}: non-finite {what}; training stopped before "
                                f"the optimiser step (last checkpoint: {last or 'none'}). Check the data for "
                                "outliers, or lower the learning rate")

    def _report(self, metrics: dict, writer, bar, prefix: str):
        if not self.dist.is_main:
            return
        row = dict(step=self.step, stage=self.stage, kind=prefix, **metrics)
        self.history.append(row)
        if writer is not None:
            for k, v in metrics.items():
                tag = k if k.startswith("lr/") else f"stage{self.stage}/{prefix}/{k}"
                writer.add_scalar(tag, v, self.step)
            writer.flush()
        if prefix == "train":
            line = f"loss {metrics['loss']:.4f}, {metrics['samples_per_s']:.1f} samples/s"
        else:
            line = f"val loss {metrics['loss']:.4f}"
        if bar is None:
            self.log(f"stage {self.stage} step {self.step}/{self.options.steps}: {line}")
        elif prefix == "train":
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", samples_s=f"{metrics['samples_per_s']:.1f}")
        else:
            bar.write(f"stage {self.stage} step {self.step}: {line}", file=sys.stderr)


def ckpt_exists(trainer: Trainer) -> bool:
    return (trainer.run_dir / f"stage{trainer.stage}_step{trainer.step:08d}" / TRAINER_STATE).is_file()


def check_finite_policy(policy, state_dict: dict | None = None) -> None:
    """Raise NonFiniteTraining if a weight or a normalisation statistic of the policy is not finite."""
    state = state_dict if state_dict is not None else policy.state_dict()
    bad = [k for k, v in state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteTraining(f"refusing to save a checkpoint with non-finite weights: {bad[:5]}"
                                + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    for emb, stats in (policy.config.normalization or {}).items():
        for kind, d in stats.items():
            for stat, values in d.items():
                if not np.all(np.isfinite(np.asarray(values, np.float64))):
                    raise NonFiniteTraining(f"refusing to save a checkpoint with non-finite normalisation "
                                            f"statistics: {emb} {kind} {stat} = {values}")


def save_policy(policy, directory: Path, state_dict: dict | None = None, dtype=None) -> Path:
    """policy.save_pretrained (with `state_dict`, e.g. FSDP's gathered full one, as the weights; floating
    tensors cast to `dtype` if given). Every checkpoint training writes goes through here; raises
    NonFiniteTraining (nothing written) for non-finite weights or statistics."""
    check_finite_policy(policy, state_dict)
    return policy.save_pretrained(directory, dtype=dtype, state_dict=state_dict)
